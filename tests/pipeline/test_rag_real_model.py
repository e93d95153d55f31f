"""The thin real path with the real all-MiniLM-L6-v2 and FAISS: run, search, ask, model changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck import IndexMismatchError, Project
from flightdeck.cli.main import app
from flightdeck.models.generators.base import NOT_FOUND
from flightdeck.pipeline.progress import NullReporter

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    from conftest import SPEC, write_docs

    root = tmp_path_factory.mktemp("real")
    write_docs(root)
    (root / "flightdeck.yaml").write_text(SPEC.format(size=64))
    project = Project.load(root)
    summary = project.run()
    assert summary.status == "succeeded"
    return project


@pytest.mark.exercises("retrieval.embedding_model.sentence_transformers")
@pytest.mark.exercises("retrieval.vector_database.faiss")
def test_vector_search_with_the_packaged_minilm_finds_the_paraphrase(built: Project) -> None:
    # the query shares no word with the answer's sentence but "widgets": the vectors have to do the work
    hits = built.search("how warm or cold may the room be where widgets are kept", mode="vector", k=3).hits
    assert hits[0].document_id == "docs/guide/care.html" and "dry place" in hits[0].text
    assert built.embedder.model_id.startswith("sentence_transformers:all-MiniLM-L6-v2@")
    assert built.embedder.dimension == 384


@pytest.mark.exercises("scoping.use_case.rag")
@pytest.mark.exercises("scoping.objective.retrieval_system")
def test_ask_answers_with_numbered_citations_or_says_not_found(built: Project) -> None:
    answer = built.ask("What does installer error W42 mean?")
    assert answer.found
    assert "sprockets are not aligned" in answer.answer and "[1]" in answer.answer
    first = answer.citations[0]
    assert first.number == 1 and first.document_id == "docs/guide/install.md"
    assert first.heading == "Installing Widgets > Troubleshooting" and first.quote in answer.answer
    assert answer.index_version == built.workspace.get_state("current_index")
    assert {"embed_query", "keyword", "vector", "answer", "total"} <= set(answer.timings_ms)
    nothing = built.ask("Who won the football world cup in 1966?")
    assert not nothing.found and nothing.answer == NOT_FOUND and nothing.citations == []


@pytest.mark.exercises("retrieval.system.hybrid_search")
def test_hybrid_search_fuses_bm25_and_minilm_where_each_alone_falls_short(built: Project) -> None:
    # BM25 alone ranks the installer's introduction first (it repeats "installer"); the vectors know the question
    # is about a failure, and the fused list follows them while keeping BM25's evidence
    question = "what to do when the installer fails"
    keyword = built.search(question, mode="keyword", k=3).hits
    assert "If the installer stops" not in keyword[0].text
    fused = built.search(question, k=3)
    assert fused.mode == "hybrid" and fused.hits[0].text.startswith("If the installer stops with error W42")
    assert set(fused.hits[0].ranks) == {"keyword", "vector"}
    # an error code the model's vocabulary splits into pieces: the fused list is led by the chunk both found
    top = built.search("installer error W42 sprockets aligned", k=3).hits[0]
    assert top.document_id == "docs/guide/install.md" and "W42" in top.text
    assert set(top.ranks) == {"keyword", "vector"}  # ranked by BM25 and by the vectors, then fused
    # the fused score is neither list's own: weighted min-max fusion of both
    vector_top = built.search("installer error W42 sprockets aligned", mode="vector", k=3).hits[0]
    keyword_top = built.search("installer error W42 sprockets aligned", mode="keyword", k=3).hits[0]
    assert top.score not in (vector_top.score, keyword_top.score)


@pytest.mark.exercises("data.preprocessing.embedding_generation")
def test_every_chunk_is_embedded_once_by_the_real_model_and_cached(built: Project) -> None:
    import sqlite3

    import numpy as np

    db = sqlite3.connect(built.workspace.root / "metadata.db")
    chunks = db.execute("select distinct text_hash, indexed_text from chunks").fetchall()
    stored = {h: np.frombuffer(v, dtype="<f4") for h, v in db.execute(
        "select text_hash, vector from embeddings where model_id = ?", (built.embedder.model_id,))}
    assert chunks and {h for h, _ in chunks} <= set(stored)
    texts = [t for _, t in chunks]
    fresh = built.embedder.embed_documents(texts)
    for (text_hash, _), vector in zip(chunks, fresh, strict=True):
        got = stored[text_hash]
        assert got.shape == (384,) and abs(float(np.linalg.norm(got)) - 1) < 1e-3
        assert float(np.dot(got, vector)) > 0.999  # the vector of that very text, by all-MiniLM-L6-v2
    # a second run embeds nothing: the vectors are cached by model and content hash
    rerun = {s.step: s for s in Project.load(built.loaded.base_dir).run().steps}
    assert rerun["embed"].status == "skipped" or rerun["embed"].counts.get("embedded") == 0


def test_cli_search_and_ask_json(built: Project) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["search", "sprockets license key", "--json", "-k", "3", "--spec",
                              str(built.spec_path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["index_version"] == built.workspace.get_state("current_index") and len(out["hits"]) == 3
    hit = out["hits"][0]
    assert {"chunk_id", "document_id", "source_uri", "score", "text", "metadata", "heading"} <= set(hit)
    assert hit["source_uri"].startswith("file://") and hit["metadata"]["title"]
    res = runner.invoke(app, ["ask", "Where should widgets be stored?", "--json", "--spec", str(built.spec_path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["found"] and out["citations"][0]["document_id"] == "docs/guide/care.html"
    assert out["index_version"] and "answer" in out


def test_a_changed_embedding_model_is_refused_until_rebuilt(built: Project, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(built.loaded.base_dir, root)
    spec = root / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace(
        "embedding_model: sentence_transformers",
        "embedding_model: {provider: sentence_transformers, document_prefix: 'passage: '}"))
    changed = Project.load(root)
    with pytest.raises(IndexMismatchError, match="was built with sentence_transformers:all-MiniLM-L6-v2"):
        changed.search("sprockets")
    events: list[tuple[str, dict]] = []

    class Recorder(NullReporter):
        def event(self, name: str, **fields: object) -> None:
            events.append((name, fields))

    steps = {s.step: s for s in changed.run(Recorder()).steps}
    assert steps["ingest"].status == "succeeded" and steps["embed"].counts["embedded"] > 0
    # the run says so: in the embed step's counts and as an event (a line on the terminal, JSON with --json)
    old_id, new_id = built.embedder.model_id, changed.embedder.model_id
    assert steps["embed"].counts["model_changed"] == f"{old_id} -> {new_id}"
    changed_events = [f for n, f in events if n == "model_changed"]
    assert changed_events and changed_events[0]["previous"] == old_id and changed_events[0]["current"] == new_id
    assert changed.search("sprockets").hits


def test_a_query_is_embedded_on_one_thread_and_the_count_is_restored(built: Project) -> None:
    import torch

    from flightdeck.retrieval.embedders.sentence_transformers import cpu_threads

    before = torch.get_num_threads()
    seen: list[int] = []
    original = built.embedder._encode

    def spy(texts: list[str]):
        seen.append(torch.get_num_threads())
        return original(texts)

    built.embedder._encode = spy
    try:
        built.embedder.embed_query("sprockets")
        built.embedder.embed_documents(["a widget", "a sprocket"])
    finally:
        del built.embedder._encode
    assert seen == [1, before]
    assert torch.get_num_threads() == before
    with cpu_threads(None):
        assert torch.get_num_threads() == before
