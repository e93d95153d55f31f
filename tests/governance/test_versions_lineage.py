"""Built-in dataset versions end to end (FakeEmbedder): versions, diff, checkout, chunk lineage, CLI --json."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import WorkspaceError
from flightdeck.governance.versions import document_record, read_manifest, version_documents
from flightdeck.pipeline.assembly import Assembly
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

NEW_NOTES = "Widget colours now include purple and orange. Orange widgets glow at night.\n"
NEW_DOC = "# Painting widgets\n\nPaint a widget with acrylic paint only. Let it dry for a whole day.\n"


def _project(root: Path) -> Project:
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    return project


def _db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".flightdeck" / "metadata.db")


def _chunk_ids(root: Path, doc_id: str) -> list[str]:
    with _db(root) as db:
        return [r[0] for r in db.execute("select id from chunks where document_id = ? order by ordinal", (doc_id,))]


@pytest.fixture
def two_versions(project_dir: Path) -> dict:
    """Run; change notes.txt, add guide/paint.md, delete guide/care.html; run again."""
    first = _project(project_dir).run()
    v1 = _project(project_dir).workspace.get_state("current_dataset")
    old = {"notes": _chunk_ids(project_dir, "docs/notes.txt"), "care": _chunk_ids(project_dir, "docs/guide/care.html"),
           "install": _chunk_ids(project_dir, "docs/guide/install.md")}
    docs = project_dir / "docs"
    (docs / "notes.txt").write_text(NEW_NOTES)
    (docs / "guide" / "paint.md").write_text(NEW_DOC)
    (docs / "guide" / "care.html").unlink()
    second = _project(project_dir).run()
    v2 = _project(project_dir).workspace.get_state("current_dataset")
    return {"root": project_dir, "v1": v1, "v2": v2, "run1": first.run_id, "run2": second.run_id, "old": old}


@pytest.mark.exercises("improvement.future_proofing.dataset_versioning")
def test_every_ingest_records_a_content_addressed_version_with_document_records(two_versions: dict) -> None:
    root, v1, v2 = two_versions["root"], two_versions["v1"], two_versions["v2"]
    project = _project(root)
    listed = project.dataset_versions()
    assert [v.id for v in listed] == [v1, v2] and v1 != v2
    assert [v.current for v in listed] == [False, True]
    assert [v.documents for v in listed] == [3, 3]
    assert [v.run_id for v in listed] == [two_versions["run1"], two_versions["run2"]]
    ws = project.workspace
    # the version id is the SHA-256 of its manifest, which lists source URIs and content hashes
    manifest_bytes = ws.artifacts.get_bytes(v2)
    assert hashlib.sha256(manifest_bytes).hexdigest() == v2
    entries = {e[0]: e for e in read_manifest(ws, v2)["documents"]}
    notes = root / "docs" / "notes.txt"
    assert entries["docs/notes.txt"][1] == hashlib.sha256(notes.read_bytes()).hexdigest()
    assert entries["docs/notes.txt"][3] == notes.as_uri()
    # rows in dataset_version_documents, one record per document; the unchanged document shares its record
    d1, d2 = version_documents(ws, v1), version_documents(ws, v2)
    assert d1["docs/guide/install.md"].chunks_artifact == d2["docs/guide/install.md"].chunks_artifact
    assert d1["docs/notes.txt"].chunks_artifact != d2["docs/notes.txt"].chunks_artifact
    # a record is exactly the document's row and chunks as stored (same bytes rebuilt from the database)
    with _db(root) as db:
        db.row_factory = sqlite3.Row
        doc = dict(db.execute("select * from documents where id = 'docs/notes.txt'").fetchone())
        doc["metadata"] = json.loads(doc["metadata"])
        rows = [dict(r) for r in db.execute("select * from chunks where document_id = 'docs/notes.txt'")]
    for r in rows:
        r["metadata"] = json.loads(r["metadata"])
    record = document_record(doc, rows)
    assert hashlib.sha256(record).hexdigest() == d2["docs/notes.txt"].chunks_artifact
    assert ws.artifacts.get_bytes(d2["docs/notes.txt"].chunks_artifact) == record


@pytest.mark.exercises("improvement.future_proofing.dataset_versioning")
def test_a_run_with_nothing_changed_records_no_new_version(two_versions: dict) -> None:
    project = _project(two_versions["root"])
    project.run()
    assert [v.id for v in project.dataset_versions()] == [two_versions["v1"], two_versions["v2"]]


@pytest.mark.exercises("improvement.future_proofing.dataset_versioning")
def test_diff_lists_exactly_the_added_changed_and_removed_documents(two_versions: dict) -> None:
    root, v1, v2 = two_versions["root"], two_versions["v1"], two_versions["v2"]
    project = _project(root)
    diff = project.diff_datasets(v1[:8], v2[:10])  # unique prefixes are accepted
    docs = root / "docs"
    assert diff.added == [{"document_id": "docs/guide/paint.md", "source_uri": (docs / "guide" / "paint.md").as_uri(),
                           "content_hash": hashlib.sha256(NEW_DOC.encode()).hexdigest()}]
    assert [c["document_id"] for c in diff.changed] == ["docs/notes.txt"]
    assert diff.changed[0]["source_uri"] == (docs / "notes.txt").as_uri()
    assert diff.changed[0]["new_content_hash"] == hashlib.sha256(NEW_NOTES.encode()).hexdigest()
    assert [r["document_id"] for r in diff.removed] == ["docs/guide/care.html"]
    assert diff.removed[0]["source_uri"] == (docs / "guide" / "care.html").as_uri()
    assert diff.unchanged == 1
    back = project.diff_datasets(v2, v1)
    assert [a["document_id"] for a in back.added] == ["docs/guide/care.html"]
    assert [r["document_id"] for r in back.removed] == ["docs/guide/paint.md"]
    with pytest.raises(WorkspaceError, match="no dataset version matches"):
        project.diff_datasets("ffffffff", v2)
    with pytest.raises(WorkspaceError, match="not a dataset version id"):
        project.diff_datasets("v1; drop table", v2)


@pytest.mark.exercises("improvement.future_proofing.dataset_versioning")
def test_lineage_of_a_chunk_names_source_hash_versions_run_and_indexes(two_versions: dict) -> None:
    root, v1, v2 = two_versions["root"], two_versions["v1"], two_versions["v2"]
    project = _project(root)
    ws = project.workspace
    with _db(root) as db:
        index_of = dict(db.execute("select dataset_version, id from index_versions").fetchall())
    # a chunk written by the second run (the changed file)
    notes_chunk = _chunk_ids(root, "docs/notes.txt")[0]
    lin = project.lineage(notes_chunk)
    assert lin.current and lin.document_id == "docs/notes.txt"
    assert lin.source_uri == (root / "docs" / "notes.txt").as_uri()
    assert lin.content_hash == hashlib.sha256(NEW_NOTES.encode()).hexdigest()
    assert [v["id"] for v in lin.dataset_versions] == [v2] and lin.dataset_versions[0]["current"]
    assert lin.ingest_run["id"] == two_versions["run2"] and lin.ingest_run["started_at"]
    assert [i["id"] for i in lin.index_versions] == [index_of[v2]] and lin.index_versions[0]["current"]
    # an unchanged document's chunk: written by the first run, in both versions and both indexes
    install_chunk = two_versions["old"]["install"][0]
    lin = project.lineage(install_chunk[:10])  # a unique prefix of a current chunk
    assert lin.chunk_id == install_chunk and lin.ingest_run["id"] == two_versions["run1"]
    assert [v["id"] for v in lin.dataset_versions] == [v1, v2]
    assert [i["dataset_version"] for i in lin.index_versions] == [v1, v2]
    # a chunk of the deleted document is no longer in the workspace, but its lineage is kept
    care_chunk = two_versions["old"]["care"][0]
    lin = project.lineage(care_chunk)
    assert not lin.current and lin.document_id == "docs/guide/care.html"
    assert lin.source_uri == (root / "docs" / "guide" / "care.html").as_uri()
    assert [v["id"] for v in lin.dataset_versions] == [v1] and not lin.dataset_versions[0]["current"]
    assert lin.ingest_run["id"] == two_versions["run1"]
    assert [i["id"] for i in lin.index_versions] == [index_of[v1]]
    with pytest.raises(WorkspaceError, match="no chunk"):
        project.lineage("0" * 24)
    assert ws.get_state("current_dataset") == v2


@pytest.mark.exercises("improvement.future_proofing.dataset_versioning")
def test_checkout_restores_the_old_version_and_the_next_run_returns_to_the_sources(two_versions: dict) -> None:
    root, v1, v2 = two_versions["root"], two_versions["v1"], two_versions["v2"]
    project = _project(root)
    fake = project.embedder
    result = project.checkout_dataset(v1[:12])
    assert result.dataset_version == v1
    assert result.counts == {"documents": 3, "restored": 2, "removed": 1, "kept": 1, "embedded": 0}
    assert fake.embedded_texts == []  # the embedding cache kept the old vectors
    assert [s.step for s in result.summary.steps] == ["checkout", "embed", "index"]
    assert "next `flightdeck run`" in result.note
    ws = project.workspace
    assert ws.get_state("current_dataset") == v1
    # the workspace now holds exactly version 1: documents, chunks and keyword rows
    assert _chunk_ids(root, "docs/notes.txt") == two_versions["old"]["notes"]
    assert _chunk_ids(root, "docs/guide/care.html") == two_versions["old"]["care"]
    assert _chunk_ids(root, "docs/guide/paint.md") == []
    with _db(root) as db:
        n_chunks = db.execute("select count(*) from chunks").fetchone()[0]
        assert db.execute("select count(*) from chunks_fts").fetchone()[0] == n_chunks
        assert db.execute("select dataset_version, chunk_count from index_versions where id = ?",
                          (result.index_version,)).fetchone() == (v1, n_chunks)
        writer = db.execute("select run_id from documents where id = 'docs/notes.txt'").fetchone()[0]
    assert writer == two_versions["run1"]  # the restored rows keep the run that wrote them
    searcher = _project(root)
    for mode in ("keyword", "vector", "hybrid"):
        hits = searcher.search("green widgets popular spring", mode=mode).hits
        assert hits[0].document_id == "docs/notes.txt" and "spring" in hits[0].text
    assert searcher.search("soft cloth sprockets water", mode="keyword").hits[0].document_id == "docs/guide/care.html"
    assert all(h.document_id != "docs/guide/paint.md" for h in searcher.search("acrylic paint", mode="keyword").hits)
    assert project.lineage(two_versions["old"]["care"][0]).current
    # the next run ingests the sources again (not skipped), re-processing only what differs
    again = _project(root)
    steps = {s.step: s for s in again.run().steps}
    assert steps["ingest"].status == "succeeded"
    assert steps["ingest"].counts["parsed"] == 2 and steps["ingest"].counts["removed"] == 1
    assert again.embedder.embedded_texts == []
    assert again.workspace.get_state("current_dataset") == v2
    assert [v.id for v in again.dataset_versions()] == [v1, v2]
    hits = _project(root).search("acrylic paint", mode="keyword").hits
    assert hits and hits[0].document_id == "docs/guide/paint.md"
    # checking out the current version is a no-op on the data
    same = _project(root).checkout_dataset("current")
    assert same.counts["restored"] == 0 and same.counts["removed"] == 0 and same.counts["kept"] == 3


def test_checkout_refuses_a_version_whose_records_are_missing(two_versions: dict) -> None:
    root, v1 = two_versions["root"], two_versions["v1"]
    project = _project(root)
    record = version_documents(project.workspace, v1)["docs/guide/care.html"].chunks_artifact
    project.workspace.artifacts.path(record).unlink()
    with pytest.raises(WorkspaceError, match="missing"):
        project.checkout_dataset(v1)
    assert project.workspace.get_state("current_dataset") == two_versions["v2"]  # nothing was changed
    assert _chunk_ids(root, "docs/guide/care.html") == []


@pytest.mark.exercises("improvement.future_proofing.dataset_versioning")
def test_cli_versions_diff_lineage_and_checkout_json(two_versions: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    root, v1, v2 = two_versions["root"], two_versions["v1"], two_versions["v2"]
    fake = FakeEmbedder()
    monkeypatch.setattr(Assembly, "embedder", property(lambda self: fake))
    runner = CliRunner()
    spec = ["--spec", str(root)]
    res = runner.invoke(app, ["data", "versions", "--json", *spec])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    assert [v["id"] for v in listed] == [v1, v2] and [v["current"] for v in listed] == [False, True]
    assert listed[0]["short_id"] == v1[:12] and listed[0]["documents"] == 3 and listed[0]["created_at"]
    res = runner.invoke(app, ["data", "versions", *spec])
    assert res.exit_code == 0 and f"* {v2[:12]}" in res.stdout and v1 in res.stdout
    res = runner.invoke(app, ["data", "diff", v1[:12], v2[:12], "--json", *spec])
    assert res.exit_code == 0, res.output
    diff = json.loads(res.stdout)
    assert [a["document_id"] for a in diff["added"]] == ["docs/guide/paint.md"]
    assert [c["document_id"] for c in diff["changed"]] == ["docs/notes.txt"]
    assert [r["document_id"] for r in diff["removed"]] == ["docs/guide/care.html"]
    res = runner.invoke(app, ["data", "diff", v1[:12], v2[:12], *spec])
    assert "+ docs/guide/paint.md" in res.stdout and "- docs/guide/care.html" in res.stdout
    res = runner.invoke(app, ["data", "diff", "abc", v2, "--json", *spec])
    assert res.exit_code == 1 and "no dataset version matches" in json.loads(res.stdout)["error"]
    chunk = two_versions["old"]["install"][0]
    res = runner.invoke(app, ["lineage", "chunk", chunk, "--json", *spec])
    assert res.exit_code == 0, res.output
    lin = json.loads(res.stdout)
    assert lin["chunk_id"] == chunk and lin["document_id"] == "docs/guide/install.md"
    assert lin["source_uri"].startswith("file://") and len(lin["content_hash"]) == 64
    assert [v["id"] for v in lin["dataset_versions"]] == [v1, v2] and lin["ingest_run"]["id"] == two_versions["run1"]
    res = runner.invoke(app, ["lineage", "chunk", chunk, *spec])
    assert res.exit_code == 0 and "docs/guide/install.md" in res.stdout and "ingest run" in res.stdout
    res = runner.invoke(app, ["data", "checkout", v1[:12], "--json", *spec])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["dataset_version"] == v1 and out["restored"] == 2 and out["embedded"] == 0
    assert out["run"]["status"] == "succeeded" and "flightdeck run" in out["note"]
    res = runner.invoke(app, ["data", "checkout", v2[:12], *spec])
    assert res.exit_code == 0, res.output
    assert "checked out dataset version" in res.stdout and "flightdeck run" in res.stdout
