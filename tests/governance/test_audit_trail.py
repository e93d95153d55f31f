"""Every state change is an entry of the audit log (checklist 8.1, audit logs): runs and the spec they ran with, API
keys, evaluation runs and tuning studies, documents uploaded and deleted over the API by the key that did it, and —
with log_queries — every answer with its trace id and the question PII-redacted; then `GET /v1/audit` reads it back
and `GET /v1/audit/verify` checks it, for admins only."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck import Project
from flightdeck.models.trackers.builtin import ExperimentRuns
from flightdeck.testing import FakeEmbedder
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX
from flightdeck.workspace.audit import local_actor

pytestmark = pytest.mark.unit

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv followed by the folder "
               "name. Activate it before installing packages with pip.\n",
    "sorting.md": "# Sorting\n\nThe sorted function returns a new sorted list. Pass a key function to sort records "
                  "by one of their fields.\n",
}


def _project(root: Path, *, size: int = 64, audit: str = "{}") -> Project:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "eval").mkdir(exist_ok=True)
    (root / "eval" / "qa.jsonl").write_text(json.dumps({
        "id": "venv", "question": "How do I create a virtual environment?", "reference_answer":
        "Create a virtual environment with python -m venv.", "reference_sources": ["venv.md"]}) + "\n", "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: audited
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: {size}, overlap: 8}}
        retrieval: {{system: [hybrid_search]}}
        model:
          generator: {{provider: extractive, min_score: 0.2, max_sentences: 1}}
        evaluation:
          metrics: [cosine_similarity]
          sets: [eval/qa.jsonl]
        governance:
          audit: {audit}
        """), "utf-8")
    return Project.load(root).use(embedder=FakeEmbedder())


def _actions(project: Project) -> list[str]:
    return [e.action for e in project.audit.entries()]


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLIGHTDECK_AUDIT_KEY", raising=False)


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_a_run_records_its_end_and_a_changed_spec(tmp_path: Path) -> None:
    project = _project(tmp_path)
    summary = project.run()
    spec_changed, finished = project.audit.entries()
    assert (spec_changed.action, spec_changed.actor, spec_changed.target) == ("spec.changed", local_actor(),
                                                                              summary.run_id)
    assert spec_changed.details["old"] is None and len(spec_changed.details["new"]) == 64
    assert (finished.action, finished.target) == ("run.finished", summary.run_id)
    assert finished.details["status"] == "succeeded" and finished.details["error"] is None
    assert finished.details["dataset_version"] == project.workspace.get_state(CURRENT_DATASET)
    assert finished.details["index_version"] == project.workspace.get_state(CURRENT_INDEX)
    project.run()  # the same spec: no spec.changed
    assert _actions(project) == ["spec.changed", "run.finished", "run.finished"]
    changed = _project(tmp_path, size=48)
    changed.run()
    entry = changed.audit.last("spec.changed")
    assert entry is not None and entry.details == {"old": spec_changed.details["new"], "new": entry.details["new"]}
    assert entry.details["new"] != spec_changed.details["new"]
    for doc in (tmp_path / "docs").iterdir():
        doc.unlink()
    with pytest.raises(Exception, match="nothing"):
        changed.run()  # nothing left to ingest: a failed run is recorded too
    failed = changed.audit.last("run.finished")
    assert failed is not None and failed.details["status"] == "failed" and failed.details["error"]
    assert changed.audit.verify().ok


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_keys_created_and_revoked_are_recorded_once(tmp_path: Path) -> None:
    project = _project(tmp_path)
    issued = project.api_keys.create("editor", name="ingest bot", actor="key:0123456789ab")
    project.api_keys.revoke(issued.record.id)
    project.api_keys.revoke(issued.record.id)  # already revoked: nothing changed, nothing recorded
    created, revoked = project.audit.entries()
    assert (created.action, created.actor, created.target) == ("key.created", "key:0123456789ab", issued.record.id)
    assert created.details == {"role": "editor", "name": "ingest bot", "expires_at": None}
    assert (revoked.action, revoked.actor, revoked.details) == ("key.revoked", local_actor(), {"role": "editor"})
    assert issued.key not in json.dumps([e.to_dict() for e in project.audit.entries()])  # never the key itself


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_an_evaluation_and_a_study_are_recorded_when_they_end_and_their_trials_are_not(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.run()
    done = project.evaluate()
    entry = project.audit.last("eval.finished")
    assert entry is not None and entry.target == done.run.id and entry.details["status"] == "succeeded"
    assert entry.details["index_version"] == project.workspace.get_state(CURRENT_INDEX)
    runs = ExperimentRuns(project.workspace, audit=project.audit, actor="user:tuner")
    study = runs.start("tune", "qa", spec_hash="h", params={})
    trial = runs.start("trial", "qa", spec_hash="h", params={})
    trial.status = study.status = "succeeded"
    runs.finish(trial)
    runs.finish(study)
    runs.finish(study)  # again once the trackers have it: one entry
    assert [e.action for e in project.audit.entries(actor="user:tuner")] == ["tune.finished"]


# over the API ------------------------------------------------------------------------------------------------------
@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, Project, dict[str, str]]]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from flightdeck.serving.api import create_app
    from flightdeck.serving.service import Service

    project = _project(tmp_path, audit="{log_queries: true}")
    project.run()
    keys = {role: project.api_keys.create(role).key for role in ("viewer", "editor", "admin")}
    writer = Project.load(tmp_path).use(embedder=FakeEmbedder())
    with TestClient(create_app(Service(project, project.api_keys, writer=lambda: writer)),
                    raise_server_exceptions=False) as client:
        yield client, project, keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_uploads_deletions_and_answers_are_recorded_by_the_key_that_made_them(
        served: tuple[Any, Project, dict[str, str]]) -> None:
    client, project, keys = served
    editor = project.api_keys.verify(keys["editor"]).id
    viewer = project.api_keys.verify(keys["viewer"]).id
    added = client.post("/v1/documents", json={"name": "note.md", "text": "# Note\n\nWidgets are blue."},
                        headers=_auth(keys["editor"]))
    assert added.status_code == 201, added.text
    deleted = client.delete("/v1/documents/uploaded/note.md", headers=_auth(keys["editor"]))
    assert deleted.status_code == 200, deleted.text
    asked = client.post("/v1/query", json={"question": "How do I make a venv? Mail me at jane.doe@example.com"},
                        headers=_auth(keys["viewer"]))
    assert asked.status_code == 200, asked.text
    uploaded = project.audit.last("document.uploaded")
    assert uploaded is not None and (uploaded.actor, uploaded.target) == (f"key:{editor}", "uploaded/note.md")
    assert uploaded.details["content_hash"] == added.json()["content_hash"]
    assert uploaded.details["index_version"] == added.json()["index_version"]
    removed = project.audit.last("document.deleted")
    assert removed is not None and removed.actor == f"key:{editor}"
    assert removed.details["index_version"] == deleted.json()["index_version"]
    query = project.audit.last("query.answered")
    assert query is not None and (query.actor, query.target) == (f"key:{viewer}", asked.json()["trace_id"])
    assert query.details["question"] == "How do I make a venv? Mail me at [EMAIL]" and query.details["found"]
    assert "jane.doe" not in json.dumps([e.to_dict() for e in project.audit.entries()])
    # the runs the uploads made are entries too (by the server's OS user)
    assert _actions(project).count("run.finished") == 3

    read = client.get("/v1/audit", params={"action": "document.*", "limit": 10},
                      headers=_auth(keys["admin"]))
    assert read.status_code == 200, read.text
    body = read.json()
    assert [e["action"] for e in body["entries"]] == ["document.uploaded", "document.deleted"]
    assert body["head"]["seq"] == project.audit.head().seq  # type: ignore[union-attr]
    assert client.get("/v1/audit", params={"since": "1d", "actor": f"key:{viewer}"},
                      headers=_auth(keys["admin"])).json()["entries"][0]["action"] == "query.answered"
    bad = client.get("/v1/audit", params={"since": "last week"}, headers=_auth(keys["admin"]))
    assert bad.status_code == 422 and "a date such as 2026-12-01" in bad.text
    verified = client.get("/v1/audit/verify", headers=_auth(keys["admin"])).json()
    assert verified["ok"] and verified["checked"] == project.audit.head().seq  # type: ignore[union-attr]
    for role in ("viewer", "editor"):
        assert client.get("/v1/audit", headers=_auth(keys[role])).status_code == 403
        assert client.get("/v1/audit/verify", headers=_auth(keys[role])).status_code == 403


def test_answers_are_not_recorded_unless_log_queries_is_on(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from flightdeck.governance.access import Role
    from flightdeck.serving.service import Principal, Service

    project = _project(tmp_path)
    project.run()
    answer = Service(project, None).query(Principal("0123456789ab", Role.VIEWER), "How do I make a venv?")
    assert answer["trace_id"] and "query.answered" not in _actions(project)
