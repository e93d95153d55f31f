"""The pipeline with a deterministic fake embedder: caching, incremental runs, removals, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit


def _project(root: Path) -> tuple[Project, FakeEmbedder]:
    project = Project.load(root)
    fake = FakeEmbedder()
    project.use(embedder=fake)  # replace the real model: this file tests the pipeline, not the model
    return project, fake


def _steps(summary) -> dict:
    return {s.step: s for s in summary.steps}


def _db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".flightdeck" / "metadata.db")


def test_first_run_ingests_embeds_and_indexes_everything(project_dir: Path) -> None:
    project, fake = _project(project_dir)
    steps = _steps(project.run())
    assert [s.status for s in steps.values()] == ["succeeded"] * 3
    assert steps["ingest"].counts["documents"] == 3 and steps["ingest"].counts["parsed"] == 3
    with _db(project_dir) as db:
        n_chunks = db.execute("select count(*) from chunks").fetchone()[0]
        n_texts = db.execute("select count(distinct text_hash) from chunks").fetchone()[0]
        n_fts = db.execute("select count(*) from chunks_fts").fetchone()[0]
    assert n_chunks == steps["ingest"].counts["chunks"] > 3
    assert n_fts == n_chunks
    assert len(fake.embedded_texts) == n_texts == steps["embed"].counts["embedded"]
    assert steps["index"].counts["vectors"] == n_chunks


def test_second_run_with_nothing_changed_skips_every_step(project_dir: Path) -> None:
    project, fake = _project(project_dir)
    project.run()
    embedded = len(fake.embedded_texts)
    again, fake2 = _project(project_dir)
    steps = _steps(again.run())
    assert [s.status for s in steps.values()] == ["skipped"] * 3
    assert fake2.embedded_texts == [] and len(fake.embedded_texts) == embedded


def test_changing_one_file_reembeds_only_its_chunks(project_dir: Path) -> None:
    project, _ = _project(project_dir)
    project.run()
    (project_dir / "docs" / "notes.txt").write_text("Widget colours now include purple and orange.\n")
    again, fake = _project(project_dir)
    steps = _steps(again.run())
    assert steps["ingest"].counts["parsed"] == 1 and steps["ingest"].counts["unchanged"] == 2
    with _db(project_dir) as db:
        notes_texts = [r[0] for r in db.execute(
            "select indexed_text from chunks where document_id = 'docs/notes.txt'")]
    assert fake.embedded_texts == notes_texts  # nothing else was embedded again
    assert steps["index"].status == "succeeded"
    hits = again.search("purple orange colours", mode="keyword").hits
    assert hits and hits[0].document_id == "docs/notes.txt"


def test_removing_a_file_removes_its_chunks_vectors_and_keyword_rows(project_dir: Path) -> None:
    project, _ = _project(project_dir)
    project.run()
    (project_dir / "docs" / "guide" / "care.html").unlink()
    again, _ = _project(project_dir)
    steps = _steps(again.run())
    assert steps["ingest"].counts["removed"] == 1
    with _db(project_dir) as db:
        assert db.execute("select count(*) from chunks where document_id like '%care.html'").fetchone()[0] == 0
        n_chunks = db.execute("select count(*) from chunks").fetchone()[0]
        assert db.execute("select count(*) from chunks_fts").fetchone()[0] == n_chunks
    assert steps["index"].counts["vectors"] == n_chunks
    for mode in ("keyword", "vector", "hybrid"):
        assert all(h.document_id != "docs/guide/care.html" for h in again.search("soft cloth water", mode=mode).hits)


def test_a_bad_file_is_reported_and_the_rest_is_ingested(project_dir: Path) -> None:
    (project_dir / "docs" / "broken.txt").write_bytes(b"\x00\x01\x02binary\x00" * 10)
    project, _ = _project(project_dir)
    ingest = _steps(project.run())["ingest"]
    assert ingest.counts["parsed"] == 3 and ingest.counts["failed"] == 1
    failure = ingest.counts["failures"][0]
    assert failure["uri"] == "docs/broken.txt" and "binary" in failure["reason"]


def test_changing_the_chunk_size_rechunks_every_document(project_dir: Path) -> None:
    project, _ = _project(project_dir)
    first = _steps(project.run())["ingest"].counts["chunks"]
    spec = project_dir / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace("size: 64, overlap: 16", "size: 24, overlap: 4"))
    again, _ = _project(project_dir)
    ingest = _steps(again.run())["ingest"]
    assert ingest.counts["parsed"] == 3 and ingest.counts["chunks"] > first


def test_hybrid_search_fuses_keyword_and_vector_ranks(project_dir: Path) -> None:
    project, _ = _project(project_dir)
    project.run()
    result = project.search("installer error W42 sprockets aligned", k=3)
    assert result.mode == "hybrid"
    top = result.hits[0]
    assert top.document_id == "docs/guide/install.md" and "W42" in top.text
    assert set(top.ranks) == {"keyword", "vector"}  # found by both retrievers, fused
    assert top.heading == "Installing Widgets > Troubleshooting"
    assert top.source_uri == (project_dir / "docs" / "guide" / "install.md").as_uri()
    keyword_only = project.search("installer error W42", mode="keyword")
    assert set(keyword_only.hits[0].ranks) == {"keyword"}
    # scores are fused reciprocal ranks: strictly ordered, best first
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_keyword_query_syntax_is_treated_as_text(project_dir: Path) -> None:
    project, _ = _project(project_dir)
    project.run()
    # FTS5 operators and quotes in user text must not raise or change the query's meaning
    for query in ['"unbalanced', "NEAR(a b)", "sprockets AND OR NOT", "*", "col:umn ^start"]:
        project.search(query, mode="keyword")
    assert project.search("!!!", mode="keyword").hits == []


def test_an_item_the_scan_cannot_read_keeps_its_stored_version(project_dir: Path, monkeypatch) -> None:
    from flightdeck.data.sources.base import ItemFailure
    from flightdeck.data.sources.files import FilesSource

    project, _ = _project(project_dir)
    project.run()
    real_scan = FilesSource.scan

    def flaky_scan(self):  # notes.txt answers with an error this time, as a web page might
        for item in real_scan(self):
            if item.uri == "notes.txt":
                self.failures.append(ItemFailure("notes.txt", "HTTP 500"))
                continue
            yield item

    monkeypatch.setattr(FilesSource, "scan", flaky_scan)
    again, _ = _project(project_dir)
    ingest = _steps(again.run())["ingest"]
    assert ingest.counts["removed"] == 0 and ingest.counts["failed"] == 1
    assert any(h.document_id == "docs/notes.txt" for h in again.search("green widgets spring", mode="keyword").hits)


def test_chunks_leave_room_for_the_encoders_special_tokens(project_dir: Path) -> None:
    long_text = " ".join(f"sentence number {i} about widgets and sprockets." for i in range(400))
    (project_dir / "docs" / "long.md").write_text(f"# Long\n\n{long_text}\n")
    spec = project_dir / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace("size: 64, overlap: 16", "size: 256, overlap: 16"))
    project, fake = _project(project_dir)
    project.run()
    with _db(project_dir) as db:
        longest = db.execute("select max(token_count) from chunks").fetchone()[0]
    # the model's window (256) holds the chunk plus [CLS] and [SEP]
    assert 200 < longest <= fake.max_tokens - 2
