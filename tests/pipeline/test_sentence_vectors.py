"""The real-time tier: with `scoping.latency: real_time` the extractive answerer's sentence vectors are computed at
index time (the `sentences` step), so a question embeds only itself. The timing is measured in
benchmarks/serving_latency.py (BENCHMARKS.md), never here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.errors import SpecError
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit


def _spec(root: Path, latency: str | None = "real_time",
          generator: str = "{provider: extractive, min_score: -1}") -> Path:  # FakeEmbedder: any score answers
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import SPEC, write_docs

    write_docs(root)
    scoping = "objective: retrieval_system" + (f", latency: {latency}" if latency else "")
    (root / "flightdeck.yaml").write_text(SPEC.format(size=64).replace("objective: retrieval_system", scoping)
                                          + f"model:\n  generator: {generator}\n", "utf-8")
    return root


def _project(root: Path) -> tuple[Project, FakeEmbedder]:
    fake = FakeEmbedder()
    return Project.load(root).use(embedder=fake), fake


@pytest.mark.exercises("scoping.latency.real_time")
def test_a_real_time_spec_stores_sentence_vectors_and_answers_embed_only_the_question(tmp_path: Path) -> None:
    project, fake = _project(_spec(tmp_path))
    steps = {s.step: s for s in project.run().steps}
    assert list(steps) == ["ingest", "embed", "index", "sentences"]
    stored = steps["sentences"].counts
    assert stored["embedded"] == stored["texts"] > steps["ingest"].counts["chunks"]  # chunk texts + their sentences
    before = len(fake.embedded_texts)
    question = "Where should widgets be stored?"
    answer = project.ask(question)
    assert answer.found and len(fake.embedded_texts) == before  # no document text embedded at question time
    vectors = project.assembly.answer_embedder
    assert vectors.misses == 0 and vectors.hits > 3
    # the same answer as with every vector computed on the spot
    hits = project.search(question, k=10).hits
    fresh = project.generator.answer(question, hits, FakeEmbedder(), answer.index_version)
    assert (answer.answer, answer.citations) == (fresh.answer, fresh.citations)
    # incremental: nothing changed, nothing embedded; one file changed, only its new texts
    again, fake2 = _project(tmp_path)
    assert {s.step: s.status for s in again.run().steps}["sentences"] == "skipped" and fake2.embedded_texts == []
    (tmp_path / "docs" / "notes.txt").write_text("Widget colours now include purple and orange.\n")
    third, fake3 = _project(tmp_path)
    counts = {s.step: s for s in third.run().steps}["sentences"].counts
    assert counts["embedded"] == 1 and "Widget colours now include purple and orange." in fake3.embedded_texts


def test_without_the_real_time_tier_no_sentence_step_runs_and_answers_are_the_same(tmp_path: Path) -> None:
    project, _ = _project(_spec(tmp_path, latency=None))
    assert [s.step for s in project.run().steps] == ["ingest", "embed", "index"]
    answer = project.ask("Where should widgets be stored?")
    assert answer.found and project.assembly.answer_embedder.misses > 0


@pytest.mark.parametrize(("generator", "message"), [
    ("llama_cpp", "cannot be met by generator 'llama_cpp'"),
    ("{provider: extractive, precompute_sentences: false}", "needs the sentence vectors computed at index time"),
])
def test_a_real_time_spec_that_cannot_be_real_time_is_refused(tmp_path: Path, generator: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Project.load(_spec(tmp_path, generator=generator))
