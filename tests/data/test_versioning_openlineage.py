"""The openlineage provider: OpenLineage run events through the real openlineage-python transports.

Every emitted event is checked two ways:

1. against ``RUN_EVENT_SCHEMA`` below, a JSON Schema (draft 2020-12) of OpenLineage 2-0-2's ``RunEvent``
   written for this test from the spec's definitions (BaseEvent: eventTime date-time, producer and
   schemaURL URIs, all required; RunEvent: eventType enum, run {runId uuid, facets}, job {namespace, name,
   facets}, inputs/outputs datasets {namespace, name, facets}; every facet a BaseFacet with ``_producer``
   and ``_schemaURL``) plus the required fields of each facet we emit. openlineage-python 1.54 does not
   ship the spec's JSON files and there is no network here to fetch them;
2. by rebuilding it with the package's generated classes (``openlineage.client.generated``, generated
   from the spec; their attrs validators check the UUID and the ISO date-time) and serialising it back
   with the package's ``Serde``: the result must equal what was emitted.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flightdeck import Project
from flightdeck.data.versioning.openlineage import OpenLineageConfig, step_run_id
from flightdeck.testing import FakeEmbedder, RecordingReporter

jsonschema = pytest.importorskip("jsonschema")

pytestmark = pytest.mark.integration

_FACET = {"type": "object", "required": ["_producer", "_schemaURL"],
          "properties": {"_producer": {"type": "string", "format": "uri"},
                         "_schemaURL": {"type": "string", "format": "uri"}}}


def _facet(required: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": [{"$ref": "#/$defs/BaseFacet"},
                      {"type": "object", "required": sorted(required), "properties": required}]}


_DATASET = {"type": "object", "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1},
                           "facets": {"type": "object", "additionalProperties": {"$ref": "#/$defs/BaseFacet"},
                                      "properties": {"version": {"$ref": "#/$defs/DatasetVersionDatasetFacet"}}}}}

RUN_EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri",
                      "const": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"},
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {"type": "object", "required": ["runId"], "properties": {
            "runId": {"type": "string", "format": "uuid"},
            "facets": {"type": "object", "additionalProperties": {"$ref": "#/$defs/BaseFacet"}, "properties": {
                "parent": {"$ref": "#/$defs/ParentRunFacet"},
                "processing_engine": _facet({"version": {"type": "string"}}),
                "errorMessage": _facet({"message": {"type": "string"}, "programmingLanguage": {"type": "string"}}),
            }}}},
        "job": {"type": "object", "required": ["namespace", "name"], "properties": {
            "namespace": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1},
            "facets": {"type": "object", "additionalProperties": {"$ref": "#/$defs/BaseFacet"}, "properties": {
                "jobType": _facet({"processingType": {"type": "string"}, "integration": {"type": "string"}})}}}},
        "inputs": {"type": "array", "items": {"allOf": [{"$ref": "#/$defs/Dataset"}, {"type": "object", "properties": {
            "inputFacets": {"type": "object", "additionalProperties": {"$ref": "#/$defs/BaseFacet"}}}}]}},
        "outputs": {"type": "array", "items": {"allOf": [{"$ref": "#/$defs/Dataset"}, {"type": "object", "properties": {
            "outputFacets": {"type": "object", "additionalProperties": {"$ref": "#/$defs/BaseFacet"},
                             "properties": {"outputStatistics": _facet({"rowCount": {"type": "integer"}})}}}}]}},
    },
    "$defs": {
        "BaseFacet": _FACET,
        "Dataset": _DATASET,
        "DatasetVersionDatasetFacet": _facet({"datasetVersion": {"type": "string"}}),
        "ParentRunFacet": _facet({
            "run": {"type": "object", "required": ["runId"], "properties": {"runId": {"type": "string",
                                                                                     "format": "uuid"}}},
            "job": {"type": "object", "required": ["namespace", "name"]}}),
    },
}

_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("uri")
def _is_absolute_uri(value: object) -> bool:  # RFC 3986: scheme ":" hier-part
    return isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$", value) is not None


def _validate(event: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(RUN_EVENT_SCHEMA, format_checker=_FORMATS).validate(event)
    _rebuild_and_compare(event)


def _rebuild_and_compare(event: dict[str, Any]) -> None:
    """Rebuild with openlineage.client.generated (runs its validators) and serialise back with Serde."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.generated import (
        dataset_version_dataset,
        error_message_run,
        job_type_job,
        output_statistics_output_dataset,
        parent_run,
        processing_engine_run,
        tags_run,
    )
    from openlineage.client.serde import Serde

    def facet(cls: Any, data: dict[str, Any]) -> Any:
        fields = {k: v for k, v in data.items() if not k.startswith("_")}
        return cls(**fields, producer=data["_producer"])

    def run_facet(name: str, data: dict[str, Any]) -> Any:
        if name == "parent":
            return parent_run.ParentRunFacet(run=parent_run.Run(runId=data["run"]["runId"]),
                                             job=parent_run.Job(namespace=data["job"]["namespace"],
                                                                name=data["job"]["name"]), producer=data["_producer"])
        if name == "tags":
            return tags_run.TagsRunFacet(tags=[tags_run.TagsRunFacetFields(**t) for t in data["tags"]],
                                         producer=data["_producer"])
        cls = {"processing_engine": processing_engine_run.ProcessingEngineRunFacet,
               "errorMessage": error_message_run.ErrorMessageRunFacet}[name]
        return facet(cls, data)

    rebuilt = RunEvent(
        eventType=RunState[event["eventType"]], eventTime=event["eventTime"], producer=event["producer"],
        run=Run(runId=event["run"]["runId"],
                facets={k: run_facet(k, v) for k, v in event["run"].get("facets", {}).items()}),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"],
                facets={k: facet(job_type_job.JobTypeJobFacet, v) for k, v in event["job"]["facets"].items()}),
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in event["inputs"]],
        outputs=[OutputDataset(
            namespace=d["namespace"], name=d["name"],
            facets={k: facet(dataset_version_dataset.DatasetVersionDatasetFacet, v) for k, v in d["facets"].items()},
            outputFacets={k: facet(output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet, v)
                          for k, v in d["outputFacets"].items()}) for d in event["outputs"]])
    assert rebuilt.schemaURL == event["schemaURL"]
    assert json.loads(Serde.to_json(rebuilt)) == event


def _project(root: Path, settings: str, embedder: Any = None) -> Project:
    spec = root / "flightdeck.yaml"
    text = spec.read_text()
    if "versioning:" not in text:
        spec.write_text(text.replace("data:\n", f"data:\n  versioning:\n    - {settings}\n", 1))
    project = Project.load(root)
    project.use(embedder=embedder or FakeEmbedder())
    return project


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_file_transport_writes_valid_start_and_complete_events_for_every_step(project_dir: Path) -> None:
    project = _project(project_dir, "{provider: openlineage, transport: file, path: ./lineage, namespace: acme}")
    summary = project.run()
    events = _read(project_dir / "lineage" / "openlineage.jsonl")
    for e in events:
        _validate(e)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("test-project", "START"),
        ("test-project.ingest", "START"), ("test-project.ingest", "COMPLETE"),
        ("test-project.embed", "START"), ("test-project.embed", "COMPLETE"),
        ("test-project.index", "START"), ("test-project.index", "COMPLETE"),
        ("test-project", "COMPLETE")]
    parent_run = str(uuid.UUID(summary.run_id))
    assert events[0]["run"]["runId"] == events[-1]["run"]["runId"] == parent_run
    assert {e["job"]["namespace"] for e in events} == {"acme"}
    for e in events[1:-1]:
        step = e["job"]["name"].split(".")[-1]
        assert e["run"]["runId"] == step_run_id(summary.run_id, step)
        assert e["run"]["facets"]["parent"]["run"]["runId"] == parent_run
        parent_job = e["run"]["facets"]["parent"]["job"]
        assert (parent_job["namespace"], parent_job["name"]) == ("acme", "test-project")
    ingest_start, ingest_done = events[1], events[2]
    assert ingest_start["inputs"] == [{"namespace": "file", "name": str(project_dir / "docs"), "facets": {},
                                       "inputFacets": {}}]
    assert [(o["namespace"], o["name"]) for o in ingest_done["outputs"]] == [
        ("acme", "test-project.documents"), ("acme", "test-project.chunks")]
    ws = project.workspace
    docs_out, chunks_out = ingest_done["outputs"]
    assert docs_out["facets"]["version"]["datasetVersion"] == ws.get_state("current_dataset")
    assert docs_out["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert chunks_out["outputFacets"]["outputStatistics"]["rowCount"] == summary.steps[0].counts["chunks"]
    embed_done, index_done = events[4], events[6]
    assert [i["name"] for i in embed_done["inputs"]] == ["test-project.chunks"]
    assert [o["name"] for o in embed_done["outputs"]] == ["test-project.embeddings"]
    assert [i["name"] for i in index_done["inputs"]] == ["test-project.chunks", "test-project.embeddings"]
    assert index_done["outputs"][0]["facets"]["version"]["datasetVersion"] == ws.get_state("current_index")
    # an unchanged re-run skips every step: only the run itself is reported, appended to the same file
    again = _project(project_dir, "")
    again.run()
    events = _read(project_dir / "lineage" / "openlineage.jsonl")
    assert len(events) == 10 and [e["eventType"] for e in events[8:]] == ["START", "COMPLETE"]
    assert {e["job"]["name"] for e in events[8:]} == {"test-project"}


class _BrokenEmbedder(FakeEmbedder):
    def embed_documents(self, texts: list[str]) -> Any:
        raise RuntimeError("GPU on fire")


def test_a_failing_step_emits_fail_with_its_error(project_dir: Path) -> None:
    project = _project(project_dir, "{provider: openlineage, path: ./ol/events.jsonl}", embedder=_BrokenEmbedder())
    with pytest.raises(RuntimeError, match="GPU on fire"):
        project.run()
    events = _read(project_dir / "ol" / "events.jsonl")
    for e in events:
        _validate(e)
    assert [(e["job"]["name"], e["eventType"]) for e in events][-3:] == [
        ("test-project.embed", "START"), ("test-project.embed", "FAIL"), ("test-project", "FAIL")]
    error = events[-2]["run"]["facets"]["errorMessage"]
    assert error["message"] == "RuntimeError: GPU on fire" and error["programmingLanguage"] == "PYTHON"
    assert "embed_documents" in error["stackTrace"]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Any:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_transport_posts_every_event_to_the_datahub_endpoint_path(project_dir: Path, receiver: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGE_TOKEN", "s3cret")
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    project = _project(project_dir, f"{{provider: openlineage, transport: http, url: '{url}', "
                                    "api_key: '${LINEAGE_TOKEN}'}")
    project.run()
    received = _Receiver.received
    assert len(received) == 8
    assert {path for path, _, _ in received} == {"/openapi/openlineage/api/v1/lineage"}
    assert {h.get("Authorization") for _, h, _ in received} == {"Bearer s3cret"}
    for _, _, event in received:
        _validate(event)
    assert [e["eventType"] for _, _, e in received] == ["START"] + ["START", "COMPLETE"] * 3 + ["COMPLETE"]


def test_an_unreachable_receiver_does_not_fail_the_run(project_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    project = _project(project_dir, f"{{provider: openlineage, transport: http, url: 'http://127.0.0.1:{port}', "
                                    "retries: 0, timeout: 1}")
    recorder = RecordingReporter()
    summary = project.run(recorder)
    assert summary.status == "succeeded"
    failed = recorder.named("lineage_failed")
    assert len(failed) == 1 and str(port) in failed[0]["target"] and "no more lineage events" in failed[0]["note"]


def test_openlineage_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="needs `url:`"):
        OpenLineageConfig(transport="http")
    with pytest.raises(ValueError, match="extra"):
        OpenLineageConfig(topic="x")  # type: ignore[call-arg]
    assert OpenLineageConfig().endpoint == "openapi/openlineage/api/v1/lineage"


def test_the_checks_reject_a_broken_event(project_dir: Path) -> None:
    project = _project(project_dir, "{provider: openlineage}")
    project.run()
    good = _read(project_dir / "lineage" / "openlineage.jsonl")[2]  # ingest COMPLETE, with facets
    _validate(good)
    broken_run_id = json.loads(json.dumps(good))
    broken_run_id["run"]["runId"] = "run-1"
    no_producer = json.loads(json.dumps(good))
    del no_producer["run"]["facets"]["parent"]["_producer"]
    bad_time = json.loads(json.dumps(good))
    bad_time["eventTime"] = "yesterday"
    no_version = json.loads(json.dumps(good))
    del no_version["outputs"][0]["facets"]["version"]["datasetVersion"]
    for broken in (broken_run_id, no_producer, bad_time, no_version):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(RUN_EVENT_SCHEMA, format_checker=_FORMATS).validate(broken)
    with pytest.raises(ValueError):
        _rebuild_and_compare(broken_run_id)  # the generated classes' own validator refuses it too


def test_missing_openlineage_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from flightdeck.data.versioning.base import VersioningContext
    from flightdeck.data.versioning.openlineage import OpenLineageEmitter
    from flightdeck.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "openlineage.client", None)  # as if openlineage-python were not installed
    emitter = OpenLineageEmitter(OpenLineageConfig(), VersioningContext("p", tmp_path, None, ()))  # type: ignore[arg-type]
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[openlineage\]'"):
        emitter._make_client()


def test_datahub_is_planned_and_points_to_the_openlineage_provider(project_dir: Path) -> None:
    from flightdeck.errors import SpecError

    spec = project_dir / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace("data:\n", "data:\n  versioning: [datahub]\n", 1))
    with pytest.raises(SpecError, match=r"'datahub' .* is planned: no DataHub server can run here.*"
                                        r"provider: openlineage"):
        Project.load(project_dir)
