"""OpenLineage export: run events for every run and every step that runs, to a file or an HTTP receiver.

The events are OpenLineage ``RunEvent``s (spec 2-0-2) built with the openlineage-python client and sent
by its transports: ``file`` (one JSON event per line, appended) or ``http`` (POSTed to a receiver:
DataHub's ``/openapi/openlineage/api/v1/lineage`` by default, Marquez's ``api/v1/lineage`` works too).

- the run is the job ``<project>`` (run id = the flightdeck run id); each step that runs is the job
  ``<project>.<step>`` with a ``parent`` facet naming the run. START when it begins, then COMPLETE or FAIL
  (with an ``errorMessage`` facet). Skipped steps did nothing and emit nothing.
- inputs and outputs: ingest reads the sources (local folders as namespace ``file``) and writes the
  workspace's ``documents`` and ``chunks`` tables; embed reads ``chunks`` and writes ``embeddings``; index
  reads both and writes ``index``; checkout reads ``dataset_versions``. Outputs carry a ``version`` facet
  (dataset version or index version id) and ``outputStatistics`` (row count).

Lineage export never fails the pipeline: when the receiver cannot be reached, a ``lineage_failed`` event
is reported and the rest of the run's events are not sent.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select

from flightdeck.core import Reporter, RunHook, StepRecord
from flightdeck.data.versioning.base import VersioningContext, file_uri_path
from flightdeck.errors import MissingDependencyError
from flightdeck.registry.lookup import optional_import
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX
from flightdeck.workspace.schema import chunks, documents

__all__ = ["OpenLineageConfig", "OpenLineageVersioning", "OpenLineageEmitter", "step_run_id", "PRODUCER"]

PRODUCER = "urn:flightdeck:{version}"  # a URI naming the producer (the spec asks for one, not a URL)
_log = logging.getLogger(__name__)
_RUN_NS = uuid.UUID("6c1b2f3e-9a57-4d0e-b2a1-3f7f8f6d2c10")  # namespace of step run ids (uuid5)


def step_run_id(run_id: str, step: str) -> str:
    """The OpenLineage run id of ``step`` in flightdeck run ``run_id``: stable, so it can be looked up."""
    return str(uuid.uuid5(_RUN_NS, f"{run_id}/{step}"))


class OpenLineageConfig(BaseModel):
    """Settings of ``{provider: openlineage, ...}`` under ``data.versioning``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    transport: Literal["file", "http"] = "file"
    path: str = Field("./lineage", description="file transport: a folder (events appended to "
                                               "openlineage.jsonl in it) or a .jsonl file; relative to the spec")
    url: str | None = Field(None, description="http transport: base URL of the receiver, e.g. http://datahub-gms:8080")
    endpoint: str = Field("openapi/openlineage/api/v1/lineage",
                          description="http transport: path of the lineage endpoint under `url`")
    api_key: str | None = Field(None, description="http transport: bearer token (use ${ENV})")
    namespace: str = Field("flightdeck", min_length=1, description="OpenLineage namespace of jobs and "
                                                                   "workspace datasets")
    timeout: float = Field(5.0, gt=0, description="http transport: seconds per request")
    retries: int = Field(2, ge=0, le=10, description="http transport: retries on connection errors and 5xx")

    @model_validator(mode="after")
    def _url_for_http(self) -> OpenLineageConfig:
        if self.transport == "http" and not self.url:
            raise ValueError("transport http needs `url:` (e.g. http://datahub-gms:8080)")
        return self


class OpenLineageVersioning:
    """The ``openlineage`` provider: an :class:`OpenLineageEmitter` per project."""

    name = "openlineage"

    def __init__(self, config: OpenLineageConfig | None = None) -> None:
        self.config = config or OpenLineageConfig()

    def hook(self, context: VersioningContext) -> RunHook:
        return OpenLineageEmitter(self.config, context)


class OpenLineageEmitter(RunHook):
    """Emits OpenLineage RunEvents for a flightdeck run and its steps (see the module docstring)."""

    def __init__(self, config: OpenLineageConfig, context: VersioningContext) -> None:
        self.config = config
        self.context = context
        self.emitted = 0
        self._client: Any = None
        self._broken: str | None = None
        self._previous_outputs: list[tuple[str, str]] = []

    # transport -----------------------------------------------------------------------------------
    def events_file(self) -> Path:
        """Where the file transport appends events."""
        path = self.context.resolve(self.config.path)
        return path if path.suffix in (".json", ".jsonl") else path / "openlineage.jsonl"

    def _make_client(self) -> Any:
        client = optional_import("openlineage.client", "openlineage", "versioning 'openlineage'")
        if self.config.transport == "file":
            from openlineage.client.transport.file import FileConfig, FileTransport

            target = self.events_file()
            target.parent.mkdir(parents=True, exist_ok=True)
            transport: Any = FileTransport(FileConfig(log_file_path=str(target), append=True))
        else:
            from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider

            retry = {"total": self.config.retries, "read": self.config.retries, "connect": self.config.retries,
                     "backoff_factor": 0.3, "status_forcelist": [500, 502, 503, 504],
                     "allowed_methods": ["HEAD", "POST"]}
            auth = ApiKeyTokenProvider({"apiKey": self.config.api_key}) if self.config.api_key else TokenProvider({})
            transport = HttpTransport(HttpConfig(url=str(self.config.url), endpoint=self.config.endpoint,
                                                 timeout=self.config.timeout, auth=auth, retry=retry))
        return client.OpenLineageClient(transport=transport)

    def _emit(self, event: Any, reporter: Reporter) -> None:
        if self._broken:
            return
        try:
            if self._client is None:
                self._client = self._make_client()
            self._client.emit(event)
            self.emitted += 1
        except MissingDependencyError:
            raise
        except Exception as exc:  # the catalog being down must not fail the pipeline
            where = self.events_file() if self.config.transport == "file" else self.config.url
            self._broken = f"{type(exc).__name__}: {exc}"
            reporter.event("lineage_failed", transport=self.config.transport, target=str(where),
                           error=self._broken, note="no more lineage events are sent in this run")
            # Also on stderr, where a terminal user sees it (the progress display shows step outcomes only).
            _log.warning("lineage export to %s failed, no more events are sent in this run: %s", where,
                         self._broken)

    # event building ------------------------------------------------------------------------------
    def _producer(self) -> str:
        from flightdeck.core import __version__

        return PRODUCER.format(version=__version__)

    def _ws_dataset(self, table: str) -> tuple[str, str]:
        return self.config.namespace, f"{self.context.project}.{table}"

    def _source_datasets(self) -> list[tuple[str, str]]:
        out = []
        for binding in self.context.sources:
            base = str(getattr(binding, "base_uri", ""))
            local = file_uri_path(base)
            if local is not None:
                out.append(("file", str(local)))
            elif "://" in base:
                scheme, rest = base.split("://", 1)
                host, _, path = rest.partition("/")
                host = host.rsplit("@", 1)[-1]  # never send credentials (user:password@) to the catalog
                out.append((f"{scheme}://{host}", "/" + path.split("?", 1)[0] if path else "/"))
            else:
                out.append((self.config.namespace, f"{self.context.project}.source.{binding.label}"))
        return out

    def _io(self, step: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        ws = self._ws_dataset
        if step == "ingest":
            return self._source_datasets(), [ws("documents"), ws("chunks")]
        if step == "checkout":
            return [ws("dataset_versions")], [ws("documents"), ws("chunks")]
        if step == "embed":
            return [ws("chunks")], [ws("embeddings")]
        if step == "index":
            return [ws("chunks"), ws("embeddings")], [ws("index")]
        return list(self._previous_outputs), [ws(step)]

    def _output_facets(self, table: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(dataset facets, output facets) of a workspace table after its step completed."""
        from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
        from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet

        ws = self.context.workspace
        facets: dict[str, Any] = {}
        out: dict[str, Any] = {}
        version = ws.get_state(CURRENT_INDEX if table == "index" else CURRENT_DATASET)
        if version and table in ("documents", "chunks", "index"):
            facets["version"] = DatasetVersionDatasetFacet(datasetVersion=version, producer=self._producer())
        if table in ("documents", "chunks"):
            tbl = documents if table == "documents" else chunks
            with ws.engine.connect() as conn:
                rows = int(conn.execute(select(func.count()).select_from(tbl)).scalar_one())
            out["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=rows, producer=self._producer())
        return facets, out

    def _event(self, event_type: str, job: str, run_id: str, *, parent_run: str | None = None,
               inputs: list[tuple[str, str]] = (), outputs: list[tuple[str, str]] = (),
               error: BaseException | None = None, final: bool = False) -> Any:
        from datetime import UTC, datetime

        from openlineage.client.constants import __version__ as ol_version
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
        from openlineage.client.generated.job_type_job import JobTypeJobFacet
        from openlineage.client.generated.parent_run import Job as ParentJob
        from openlineage.client.generated.parent_run import ParentRunFacet
        from openlineage.client.generated.parent_run import Run as ParentRun
        from openlineage.client.generated.processing_engine_run import ProcessingEngineRunFacet

        from flightdeck.core import __version__

        producer = self._producer()
        run_facets: dict[str, Any] = {}
        if event_type == "START":
            run_facets["processing_engine"] = ProcessingEngineRunFacet(
                version=__version__, name="flightdeck", openlineageAdapterVersion=ol_version, producer=producer)
        if parent_run is not None:
            run_facets["parent"] = ParentRunFacet(run=ParentRun(runId=parent_run),
                                                  job=ParentJob(namespace=self.config.namespace,
                                                                name=self.context.project), producer=producer)
        if error is not None:
            run_facets["errorMessage"] = ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}", programmingLanguage="PYTHON",
                stackTrace="".join(traceback.format_exception(error)), producer=producer)
        job_facets = {"jobType": JobTypeJobFacet(processingType="BATCH", integration="FLIGHTDECK",
                                                 jobType="TASK" if parent_run else "JOB", producer=producer)}
        out_datasets = []
        for ns, name in outputs:
            facets, out_facets = ({}, {})
            if final and ns == self.config.namespace:
                facets, out_facets = self._output_facets(name.rsplit(".", 1)[-1])
            out_datasets.append(OutputDataset(namespace=ns, name=name, facets=facets, outputFacets=out_facets))
        return RunEvent(
            eventType=RunState[event_type], eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=run_id, facets=run_facets),
            job=Job(namespace=self.config.namespace, name=job, facets=job_facets),
            inputs=[InputDataset(namespace=ns, name=name) for ns, name in inputs],
            outputs=out_datasets, producer=producer)

    # RunHook -------------------------------------------------------------------------------------
    def run_started(self, run_id: str, reporter: Reporter) -> None:
        self._broken = None
        self._previous_outputs = []
        self._emit(self._event("START", self.context.project, str(uuid.UUID(run_id))), reporter)

    def step_started(self, step: Any, run_id: str, reporter: Reporter) -> None:
        inputs, outputs = self._io(step.name)
        self._emit(self._event("START", f"{self.context.project}.{step.name}", step_run_id(run_id, step.name),
                               parent_run=str(uuid.UUID(run_id)), inputs=inputs, outputs=outputs), reporter)

    def step_finished(self, step: Any, run_id: str, record: StepRecord, reporter: Reporter) -> None:
        inputs, outputs = self._io(step.name)
        self._previous_outputs = outputs
        self._emit(self._event("COMPLETE", f"{self.context.project}.{step.name}", step_run_id(run_id, step.name),
                               parent_run=str(uuid.UUID(run_id)), inputs=inputs, outputs=outputs, final=True),
                   reporter)

    def step_failed(self, step: Any, run_id: str, error: BaseException, reporter: Reporter) -> None:
        inputs, outputs = self._io(step.name)
        self._emit(self._event("FAIL", f"{self.context.project}.{step.name}", step_run_id(run_id, step.name),
                               parent_run=str(uuid.UUID(run_id)), inputs=inputs, outputs=outputs, error=error),
                   reporter)

    def run_finished(self, run_id: str, status: str, reporter: Reporter) -> None:
        self._emit(self._event("COMPLETE" if status == "succeeded" else "FAIL", self.context.project,
                               str(uuid.UUID(run_id))), reporter)
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a transport that failed must not fail the run  # noqa: S110
                pass
            self._client = None

    def run_warnings(self) -> list[str]:
        """Say in the run summary that lineage stopped being sent (the catalog misses this run's events)."""
        if not self._broken:
            return []
        where = self.events_file() if self.config.transport == "file" else self.config.url
        return [f"lineage export to {where} failed and was disabled for the rest of the run "
                f"({self.emitted} event(s) sent): {self._broken}"]
