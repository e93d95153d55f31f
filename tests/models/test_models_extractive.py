"""The extractive answerer: sentence splitting, selection, numbering of citations, not-found."""

from __future__ import annotations

import pytest

from flightdeck.models.generators.base import NOT_FOUND
from flightdeck.models.generators.extractive import ExtractiveConfig, ExtractiveGenerator, split_sentences
from flightdeck.retrieval.search import SearchHit
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit


def _hit(cid: str, text: str) -> SearchHit:
    return SearchHit(cid, f"doc-{cid}", f"file:///{cid}", "Title", "Title > Part", 1.0, text, {})


def test_split_sentences_keeps_prose_and_drops_code_lines() -> None:
    text = "First we open it. Then we read it!\n\n>>> f = open('x')\n>>> f.read()\n\nShort. Is this kept? Yes."
    # one- and two-word fragments ("Short.", "Yes.") carry no answer on their own and are left out
    assert split_sentences(text) == ["First we open it.", "Then we read it!", "Is this kept?"]


def test_answer_cites_each_chunk_once_with_numbers_in_order_of_use() -> None:
    hits = [_hit("a", "Sprockets must be aligned before use. The frame is blue."),
            _hit("b", "Aligned sprockets make the widget run quietly. Paint is optional.")]
    gen = ExtractiveGenerator(ExtractiveConfig(max_sentences=2, min_score=0.1))
    answer = gen.answer("why align sprockets", hits, FakeEmbedder(), "v1")
    assert answer.found and answer.index_version == "v1"
    numbers = [c.number for c in answer.citations]
    assert numbers == list(range(1, len(numbers) + 1))
    for c in answer.citations:
        assert f"{c.quote} [{c.number}]" in answer.answer


def test_nothing_similar_enough_is_not_found() -> None:
    hits = [_hit("a", "Sprockets must be aligned before use.")]
    answer = ExtractiveGenerator(ExtractiveConfig(min_score=0.99)).answer("weather in Paris", hits,
                                                                        FakeEmbedder(), "v1")
    assert not answer.found and answer.answer == NOT_FOUND and answer.citations == []
    assert ExtractiveGenerator().answer("anything", [], FakeEmbedder(), "v1").answer == NOT_FOUND
