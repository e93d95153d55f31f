"""The contract every generator passes: a test class that each generator's test module inherits.

Usage (in a generator's test module)::

    from flightdeck.testing.generator_contract import GeneratorContract

    class TestMyGenerator(GeneratorContract):
        @pytest.fixture(scope="class")
        def generator(self):
            return MyGenerator(MyConfig(...))

The ``generator`` fixture may have any scope (a model loaded once keeps the suite fast); ``embedder`` (handed to
``answer``, which the extractive generator ranks sentences with) defaults to :class:`FakeEmbedder`. The suite
checks what ``Project.ask`` and the API rely on (:class:`flightdeck.models.generators.base.Generator`): the
answer repeats the question and the index version; every citation is one of the hits given, among the first
``config.top_chunks``, numbered as the answer's ``[n]`` markers; no hits give :data:`NOT_FOUND` without
citations; the same question and hits give the same answer. Three more promises hold for a generator that
reads well enough (``answers_from_sources``, ``cites_sources`` and ``refuses_without_an_answer`` on the test
class, all on by default): a question the hits answer is found, citing the hits that answer it, and one they do
not answer is not found. Needs pytest.
"""

from __future__ import annotations

from typing import Any

import pytest

from flightdeck.models.generators.base import NOT_FOUND, Answer, Citation, Generator, parse_citations
from flightdeck.retrieval.embedders.base import Embedder
from flightdeck.retrieval.search import SearchHit
from flightdeck.testing.fakes import FakeEmbedder

__all__ = ["GeneratorContract", "contract_hits", "QUESTION", "UNANSWERABLE", "INDEX_VERSION"]

QUESTION = "What does a widget need?"
UNANSWERABLE = "Who painted the ceiling of the Sistine Chapel?"
INDEX_VERSION = "v-contract-1"


def _hit(n: int, title: str, heading: str, text: str) -> SearchHit:
    return SearchHit(f"chunk-{n}", f"doc-{n}", f"file:///docs/{n}.md", title, heading, 1.0 - n / 100, text, {})


def contract_hits() -> list[SearchHit]:
    """Two hits that answer :data:`QUESTION`, then one that does not."""
    return [
        _hit(1, "Installing Widgets", "Requirements",
             "A widget needs a frame, two sprockets and a license key. The license key is printed on the box."),
        _hit(2, "Caring for widgets", "Storage", "Store widgets in a dry place between 5 and 25 degrees Celsius."),
        _hit(3, "Timetable", "Night trains", "The night train to Vienna leaves the central station at nine."),
    ]


def _filler(n: int) -> SearchHit:
    return _hit(n, "Baking", f"Step {n}", f"Knead the bread dough for {n} minutes, then let it rise in a warm room.")


class GeneratorContract:
    """Inherit and provide a ``generator`` fixture (any scope)."""

    #: Whether a question that the hits answer must come back found (a model too small to read may not).
    answers_from_sources: bool = True
    #: Whether that answer must cite the hits that hold it (and only those).
    cites_sources: bool = True
    #: Whether a question that no hit answers must come back as :data:`NOT_FOUND`.
    refuses_without_an_answer: bool = True

    @pytest.fixture
    def generator(self) -> Generator:  # pragma: no cover - overridden
        raise NotImplementedError("a generator's test class provides the generator fixture")

    @pytest.fixture
    def embedder(self) -> Embedder:
        return FakeEmbedder()

    @pytest.fixture
    def answered(self, generator: Generator, embedder: Embedder) -> tuple[Answer, list[SearchHit]]:
        hits = contract_hits()
        return generator.answer(QUESTION, hits, embedder, INDEX_VERSION), hits

    def _check_shape(self, answer: Any, question: str) -> None:
        assert isinstance(answer, Answer), type(answer)
        assert answer.question == question and answer.index_version == INDEX_VERSION
        assert isinstance(answer.answer, str) and answer.answer.strip()
        assert all(isinstance(c, Citation) for c in answer.citations)
        assert all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in answer.timings_ms.items())
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in answer.usage.items())
        if not answer.found:
            assert answer.answer == NOT_FOUND and answer.citations == [], answer
        else:
            assert answer.answer != NOT_FOUND
        assert answer.to_dict()["question"] == question  # what the API and `ask --json` send

    def _check_citations(self, answer: Answer, hits: list[SearchHit], readable: int) -> None:
        """Each citation is one of ``hits[:readable]``, described as that hit, numbered as the text's markers."""
        by_id = {h.chunk_id: h for h in hits[:readable]}
        for c in answer.citations:
            assert c.chunk_id in by_id, (c, list(by_id))
            hit = by_id[c.chunk_id]
            assert (c.document_id, c.source_uri, c.title, c.heading) == (hit.document_id, hit.source_uri, hit.title,
                                                                         hit.heading), c
            assert 1 <= c.number <= readable, c
        numbers = [c.number for c in answer.citations]
        assert len(set(numbers)) == len(numbers), numbers
        assert len({c.chunk_id for c in answer.citations}) == len(numbers), answer.citations
        cited, invented = parse_citations(answer.answer, len(hits))
        assert invented == [], answer.answer
        assert set(cited) == set(numbers), (answer.answer, numbers)

    def test_satisfies_the_protocol(self, generator: Generator) -> None:
        assert isinstance(generator, Generator)
        assert isinstance(generator.config.top_chunks, int) and generator.config.top_chunks >= 1

    def test_no_hits_give_not_found_without_citations(self, generator: Generator, embedder: Embedder) -> None:
        answer = generator.answer(QUESTION, [], embedder, INDEX_VERSION)
        self._check_shape(answer, QUESTION)
        assert (answer.found, answer.answer, answer.citations) == (False, NOT_FOUND, [])

    def test_an_answer_cites_only_the_hits_it_was_given(self, answered: tuple[Answer, list[SearchHit]]) -> None:
        answer, hits = answered
        self._check_shape(answer, QUESTION)
        self._check_citations(answer, hits, len(hits))

    def test_a_question_the_hits_answer_is_found(self, answered: tuple[Answer, list[SearchHit]]) -> None:
        if not self.answers_from_sources:
            pytest.skip("this generator does not promise to find answers (answers_from_sources = False)")
        answer, hits = answered
        assert answer.found, answer
        if self.cites_sources:
            assert answer.citations, answer
            assert {c.chunk_id for c in answer.citations} <= {hits[0].chunk_id, hits[1].chunk_id}, answer

    def test_the_same_question_and_hits_give_the_same_answer(self, generator: Generator, embedder: Embedder,
                                                             answered: tuple[Answer, list[SearchHit]]) -> None:
        first, hits = answered
        again = generator.answer(QUESTION, hits, embedder, INDEX_VERSION)
        assert (again.answer, again.found, again.citations) == (first.answer, first.found, first.citations)

    def test_only_the_first_top_chunks_hits_are_read(self, generator: Generator, embedder: Embedder) -> None:
        top = generator.config.top_chunks
        # The top-ranked hits do not answer; those ranked below top_chunks do, and must not be read or cited.
        hits = [_filler(n) for n in range(10, 10 + top)] + contract_hits()[:2]
        answer = generator.answer(QUESTION, hits, embedder, INDEX_VERSION)
        self._check_shape(answer, QUESTION)
        self._check_citations(answer, hits, top)

    def test_a_question_no_hit_answers_is_not_found(self, generator: Generator, embedder: Embedder) -> None:
        if not self.refuses_without_an_answer:
            pytest.skip("this generator does not promise to refuse (refuses_without_an_answer = False)")
        hits = contract_hits()
        answer = generator.answer(UNANSWERABLE, hits, embedder, INDEX_VERSION)
        self._check_shape(answer, UNANSWERABLE)
        self._check_citations(answer, hits, len(hits))
        assert not answer.found, answer
