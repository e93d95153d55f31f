"""kill -9 during `flightdeck run`, run again: the workspace equals that of one uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flightdeck import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = """\
project: kill-test
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 48, overlap: 8}
retrieval: {search: {k: 10}}
"""
QUERIES = ["topic seven gardens", "river number 12 bridges", "machines that fold paper"]


def _make_project(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir(parents=True)
    words = ["garden", "river", "bridge", "machine", "paper", "lantern", "orchard", "harbour", "signal", "copper"]
    for d in range(40):
        paragraphs = []
        for p in range(6):
            sentence = " ".join(f"{words[(d + p + i) % len(words)]}{(d * 7 + i) % 13}" for i in range(18))
            paragraphs.append(f"Topic {d} part {p}: the {words[d % 10]} number {d} and {sentence}.")
        (docs / f"doc{d:02d}.md").write_text(f"# Document {d}\n\n" + "\n\n".join(paragraphs) + "\n")
    (root / "flightdeck.yaml").write_text(SPEC)
    return root


def _run(root: Path, kill_at: str | None = None) -> int:
    """Run `flightdeck run --json`; with kill_at, SIGKILL it at the first progress event of that step."""
    proc = subprocess.Popen([sys.executable, "-m", "flightdeck", "run", "--json", "--spec", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stdout is not None
    killed = False
    for line in proc.stdout:
        if not line.startswith("{") or kill_at is None:
            continue
        event = json.loads(line)
        if event.get("event") == "progress" and event.get("step") == kill_at and 0 < event["done"] < event["total"]:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=600)
    if kill_at is not None:
        assert killed, f"the run ended before reaching the {kill_at} step: {proc.stderr.read()}"
    else:
        assert proc.returncode == 0, proc.stderr.read()
    return proc.returncode


def _state(root: Path) -> dict:
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as db:
        return {
            "documents": sorted(r[0] for r in db.execute("select id from documents")),
            "chunks": sorted(r[0] for r in db.execute("select id from chunks")),
            "fts": db.execute("select count(*) from chunks_fts").fetchone()[0],
            "fts_distinct": db.execute("select count(distinct chunk_id) from chunks_fts").fetchone()[0],
            "vectors": db.execute("select count(*) from embeddings").fetchone()[0],
        }


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = _make_project(tmp_path_factory.mktemp("clean"))
    _run(root)
    project = Project.load(root)
    results = {q: [h.chunk_id for h in project.search(q).hits] for q in QUERIES}
    return root, _state(root), results


@pytest.mark.parametrize("kill_at", ["ingest", "embed"])
def test_kill_during_run_then_rerun_equals_a_clean_run(kill_at: str, clean_run, tmp_path: Path) -> None:
    clean_root, clean_state, clean_results = clean_run
    root = _make_project(tmp_path / "killed")
    assert _run(root, kill_at=kill_at) == -signal.SIGKILL
    partial = _state(root)
    assert partial["chunks"] != clean_state["chunks"] or partial["vectors"] < clean_state["vectors"]
    _run(root)
    state = _state(root)
    assert state == clean_state  # same documents, chunks, keyword rows and vectors: nothing duplicated
    assert state["fts"] == state["fts_distinct"] == len(state["chunks"])
    project = Project.load(root)
    results = {q: [h.chunk_id for h in project.search(q).hits] for q in QUERIES}
    assert results == clean_results
    # a killed run leaves no half-written index folder behind once a later run finished
    assert not list((root / ".flightdeck" / "indexes").glob(".tmp-*"))
    shutil.rmtree(root)
