"""Issue 13's acceptance story with real processes: ingest, build, evaluate, create a release, try to promote it
without approval (refused), approve it with an approver key over the API, promote it, serve it, query it; then
`flightdeck lineage` on that answer's trace id shows the source files, and `flightdeck audit verify` passes — and
fails, naming the entry, after a row is edited in SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from llm_fixtures import flightdeck_server  # noqa: E402
from needs import needs, needs_provider  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_provider("embedder", "sentence_transformers"),
              needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")]

FLIGHTDECK = [sys.executable, "-m", "flightdeck"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "LOGNAME": "alice"}
DOCS = {
    "venv.md": "# Virtual environments\n\nTo create a virtual environment, run python -m venv .venv, then activate "
               "it before you install packages.\n",
    "files.md": "# Files\n\nUse the with statement so that the file is closed even when an exception is raised.\n",
    "json.md": "# JSON\n\nRead JSON text with json.loads; json.dumps writes it.\n",
}
QUESTIONS = [
    {"id": "venv", "question": "How do I create a virtual environment?", "reference_sources": ["venv.md"],
     "reference_answer": "Run python -m venv .venv, then activate it."},
    {"id": "files", "question": "How do I make sure a file is closed?", "reference_sources": ["files.md"],
     "reference_answer": "Use the with statement."},
    {"id": "json", "question": "How do I read JSON text?", "reference_sources": ["json.md"],
     "reference_answer": "Read JSON text with json.loads."},
]


def cli(root: Path, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*FLIGHTDECK, *args, "--spec", str(root)], capture_output=True, text=True, env=ENV,
                          timeout=600, check=False)
    if code is not None:
        assert done.returncode == code, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def serving(root: Path, *args: str) -> Any:
    return flightdeck_server(root, *args, env=ENV, ready="/ready")


def key(root: Path, role: str) -> dict[str, str]:
    out = json.loads(cli(root, "keys", "create", "--role", role, "--name", f"story {role}", "--json").stdout)
    return {"Authorization": f"Bearer {out['key']}"}


@pytest.mark.exercises("governance.model_governance.approval_workflows")
@pytest.mark.exercises("governance.model_governance.dataset_lineage")
@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_the_whole_governance_story_with_real_processes(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "eval").mkdir()
    (root / "eval" / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), "utf-8")
    anchor = tmp_path / "audit-anchor.jsonl"  # outside the workspace
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: story
        data:
          sources: [{{provider: files, path: ./docs}}]
        model:
          generator: {{provider: extractive, max_sentences: 1}}
        evaluation:
          metrics: [f1]
          sets: [eval/qa.jsonl]
          k: 3
          gates: {{"recall@3": ">= 0.6"}}
        governance:
          audit: {{anchor: {anchor}, anchor_every: 5}}
        """), "utf-8")

    cli(root, "run")
    cli(root, "eval", "--gate")
    created = json.loads(cli(root, "release", "create", "--json").stdout)
    release = created["release"]
    assert created["created"] and release["gates_passed"] is True and release["created_by"] == "user:alice"
    approver, admin = key(root, "approver"), key(root, "admin")

    with serving(root) as url:
        # promotion without an approval is refused, over the API as on the CLI
        refused = httpx.post(f"{url}/v1/releases/{release['id']}/promote", json={}, headers=admin, timeout=30)
        assert refused.status_code == 409, refused.text
        assert "0 of 1 approval(s)" in refused.json()["error"]["message"]
        assert cli(root, "release", "promote", release["id"], code=1).returncode == 1
        # an approver may approve, not promote; an admin's promotion then goes through
        approved = httpx.post(f"{url}/v1/releases/{release['id']}/approve", json={"comment": "checked the eval"},
                              headers=approver, timeout=30)
        assert approved.status_code == 200, approved.text
        assert approved.json()["policy"]["allowed"] is True
        assert httpx.post(f"{url}/v1/releases/{release['id']}/promote", json={}, headers=approver,
                          timeout=30).status_code == 403
        promoted = httpx.post(f"{url}/v1/releases/{release['id']}/promote", json={"comment": "ship it"},
                              headers=admin, timeout=30)
        assert promoted.status_code == 200 and promoted.json()["release"]["stage"] == "production"

    with serving(root, "--release", "production") as url:
        viewer = key(root, "viewer")
        answer = httpx.post(f"{url}/v1/query", json={"question": "How do I create a virtual environment?"},
                            headers=viewer, timeout=120)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "python -m venv" in body["answer"] and body["citations"]
        trace_id = body["trace_id"]
        ready = httpx.get(f"{url}/ready", timeout=10).json()
        assert ready["release"]["id"] == release["id"]
        over_api = httpx.get(f"{url}/v1/lineage/{trace_id}", headers=admin, timeout=30)
        assert over_api.status_code == 200 and over_api.json()["kind"] == "answer"
        assert httpx.get(f"{url}/v1/lineage/{trace_id}", headers=viewer, timeout=30).status_code == 403

    lineage = json.loads(cli(root, "lineage", trace_id, "--json").stdout)
    sources = {n["id"] for n in lineage["nodes"] if n["kind"] == "source"}
    assert (root / "docs" / "venv.md").resolve().as_uri() in sources
    releases = {n["id"] for n in lineage["nodes"] if n["kind"] == "release"}
    assert releases == {release["id"]}

    verified = json.loads(cli(root, "audit", "verify", "--json").stdout)
    assert verified["ok"] is True and verified["checked"] >= 6
    actions = [e["action"] for e in json.loads(cli(root, "audit", "log", "--json", "--limit", "100").stdout)]
    for action in ("run.finished", "eval.finished", "release.created", "key.created", "release.approved",
                   "release.promoted"):
        assert action in actions, actions
    # an entry edited in SQLite: verify fails and names it
    db = root / ".flightdeck" / "metadata.db"
    with sqlite3.connect(db) as conn:
        seq = conn.execute("SELECT seq FROM audit_log WHERE action='release.approved'").fetchone()[0]
        conn.execute("UPDATE audit_log SET actor='key:forged000000' WHERE seq=?", (seq,))
    broken = cli(root, "audit", "verify", "--json", code=1)
    report = json.loads(broken.stdout)
    assert report["ok"] is False and report["first_bad_seq"] == seq
