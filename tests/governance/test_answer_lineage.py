"""Lineage of an answer (checklist 8.1, dataset lineage): a served answer's trace id leads to the release that
answered it, the chunks it retrieved and cited, their documents, source files and content hashes, the dataset
version and ingest run, and the spec; as text, JSON, DOT and an OpenLineage run event; the CLI and the library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.governance.access import Role
from flightdeck.governance.releases import Actor
from flightdeck.serving.releases import ReleaseSwitch
from flightdeck.serving.service import LOCAL, Service
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

SPEC = """\
project: lineage-test
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval:
  system: [hybrid_search]
  search: {mode: hybrid, k: 2}
model:
  generator: {provider: extractive, max_sentences: 1, min_score: 0.05}
governance:
  approvals: {gates_must_pass: false}
"""
DOCS = {"venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv followed by the "
                   "folder name.\n",
        "regex.md": "# Regular expressions\n\nUse re.search to find the first match of a pattern in a string.\n"}


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Project, dict]:
    """A project whose production release answered one question through the service; (project, the answer)."""
    (tmp_path / "docs").mkdir()
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).write_text(text, "utf-8")
    (tmp_path / "flightdeck.yaml").write_text(SPEC, "utf-8")
    embedder = FakeEmbedder(dimension=64)
    load = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load(cls, path).use(embedder=embedder)))
    project = Project.load(tmp_path)
    project.run()
    release, _ = project.create_release(Actor("user:alice", Role.ADMIN))
    project.releases.review(release.id, Actor("key:0123456789ab", Role.APPROVER), "approved")
    project.releases.promote(release.id, Actor("user:alice", Role.ADMIN))
    service = Service(project, None, release=ReleaseSwitch(project, "production"))
    answer = service.query(LOCAL, "How do I create a virtual environment?")
    return project, answer


@pytest.mark.exercises("governance.model_governance.dataset_lineage")
def test_an_answer_leads_back_to_its_release_chunks_and_source_files(served: tuple[Project, dict]) -> None:
    project, answer = served
    release = project.releases.get("production")
    graph = project.lineage_graph(answer["trace_id"])
    assert graph.kind == "answer" and graph.root == answer["trace_id"]
    edges = {(a, r, b) for a, b, r in graph.edges}
    assert (answer["trace_id"], "answered by", release.id) in edges
    manifest = project.releases.manifest(release)
    assert (release.id, "configured by", f"spec/{manifest['spec']['sha256']}") in edges
    # the cited chunk -> its document -> the source file, with the hash of the file's content
    [citation] = answer["citations"]
    cited = citation["chunk_id"]
    assert (answer["trace_id"], "cited", cited) in edges
    doc = next(b for a, r, b in edges if a == cited and r == "of")
    assert doc.endswith("venv.md")
    source = next(b for a, r, b in edges if a == doc and r == "read from")
    path = Path(project.spec_path.parent / "docs" / "venv.md")
    import hashlib

    assert source == path.resolve().as_uri()
    assert graph.nodes[source]["content_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # ... and the dataset version that held it is the one the release's index was built from
    assert (doc, "in", manifest["dataset_version"]) in edges
    assert (manifest["index_version"]["id"], "built from", manifest["dataset_version"]) in edges
    retrieved = [b for a, r, b in edges if a == answer["trace_id"] and r in ("cited", "retrieved")]
    assert len(retrieved) == 2  # k: 2, both retrieved chunks are there, one of them cited

    text = graph.render("text")
    assert text.splitlines()[0].startswith(f"answer {answer['trace_id']}") and "read from: source file://" in text
    dot = graph.render("dot")
    assert dot.startswith("digraph lineage {") and f'"{answer["trace_id"]}" -> "{release.id}"' in dot
    event = json.loads(graph.render("openlineage", namespace="flightdeck/lineage-test", producer="urn:flightdeck:x"))
    assert event["eventType"] == "COMPLETE" and event["job"]["name"] == "flightdeck.answer"
    assert {i["name"] for i in event["inputs"]} >= {source, f"dataset_version/{manifest['dataset_version']}"}
    assert event["outputs"] == [{"namespace": "flightdeck/lineage-test", "name": f"answer/{answer['trace_id']}",
                                 "facets": {}}]


def test_the_cli_shows_the_lineage_of_an_answer_a_release_and_a_chunk(served: tuple[Project, dict]) -> None:
    project, answer = served
    runner = CliRunner()
    spec = ["--spec", str(project.spec_path)]
    res = runner.invoke(app, ["lineage", answer["trace_id"], "--json", *spec])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["kind"] == "answer" and {n["kind"] for n in out["nodes"]} >= {
        "answer", "release", "chunk", "document", "source", "dataset_version", "run", "spec"}
    res = runner.invoke(app, ["lineage", "production", "--format", "dot", *spec])
    assert res.exit_code == 0 and "docs/regex.md" in res.stdout  # every document of the release
    chunk = answer["citations"][0]["chunk_id"]
    res = runner.invoke(app, ["lineage", "chunk", chunk, "--json", *spec])  # the chunk view of before
    assert res.exit_code == 0 and json.loads(res.stdout)["chunk_id"] == chunk
    res = runner.invoke(app, ["lineage", chunk, *spec])
    assert res.exit_code == 0 and res.stdout.startswith(f"chunk {chunk[:16]}")
    res = runner.invoke(app, ["lineage", "tr_nope", *spec])
    assert res.exit_code == 1 and "no trace 'tr_nope'" in res.output
    res = runner.invoke(app, ["lineage", "production", "--format", "svg", *spec])
    assert res.exit_code == 2
