"""The token budget of a grounded answer: the whole rendered prompt is measured (a template's own text counts),
sources are cut lowest-ranked first, llama.cpp keeps question + sources + answer inside n_ctx, and a request may
cap its answer's length (``max_tokens``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import FlightdeckError
from flightdeck.models.generators.base import (
    PROMPT_RESERVE,
    Answer,
    Completion,
    LlmGenerator,
    LlmSettings,
    stream_answer,
)
from flightdeck.retrieval.search import SearchHit

TOPICS = ["sprockets", "frames", "license keys", "storage", "cleaning", "shipping"]


def _hits(words: int = 120) -> list[SearchHit]:
    """Six hits of about ``words`` words each, best first."""
    out = []
    for n, topic in enumerate(TOPICS, 1):
        sentence = f"Part {n} of the widget manual explains {topic} in detail for every model. "
        text = (sentence * (words // len(sentence.split()) + 1)).strip()
        out.append(SearchHit(f"c{n}", f"d{n}", f"file:///docs/{n}.md", f"Manual {n}", topic.title(), 1 - n / 10,
                             text, {}))
    return out


class _CharCounted(LlmGenerator):
    """No model: a token per four characters; records what it was asked."""

    def __init__(self, **settings: Any) -> None:
        self.config = LlmSettings(**settings)
        self.asked: dict[str, Any] = {}

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def complete(self, messages, *, max_tokens=None, temperature=None, stop=None):  # noqa: ANN001, ANN201
        self.asked = {"messages": messages, "max_tokens": max_tokens}
        return Completion("Part one explains sprockets [1].", 40, 8, "stop", 1.0)


def _prompt_tokens(gen: LlmGenerator, messages: list[dict[str, str]]) -> int:
    return sum(gen.count_tokens(m["content"]) for m in messages)


@pytest.mark.parametrize("budget", [400, 700, 1200])
def test_the_whole_prompt_stays_in_budget_and_the_lowest_ranked_go_first(budget: int) -> None:
    gen = _CharCounted(max_prompt_tokens=budget, top_chunks=6)
    hits = _hits()
    messages, used = gen.answer_messages("What do the parts explain?", hits)
    assert _prompt_tokens(gen, messages) <= budget - PROMPT_RESERVE
    assert used == hits[: len(used)] and 0 < len(used) < len(hits)  # a prefix of the ranking
    # one more source would not have fitted
    bigger = _CharCounted(max_prompt_tokens=budget + 200, top_chunks=6).answer_messages("What do the parts explain?",
                                                                                       hits)[1]
    assert len(bigger) > len(used)


def test_a_templates_own_text_counts_against_the_budget(tmp_path: Path) -> None:
    wordy = tmp_path / "wordy.j2"
    wordy.write_text("{% block system %}{{ system_prompt }}\n" + "Remember the house style. " * 120 +
                     "{% endblock %}{% block user %}{% for s in sources %}<source id=\"{{ s.id }}\">{{ s.text }}"
                     "</source>\n{% endfor %}Question: {{ question }}{% endblock %}")
    plain = _CharCounted(max_prompt_tokens=1200, top_chunks=6)
    verbose = _CharCounted(max_prompt_tokens=1200, top_chunks=6, prompt_template=str(wordy))
    _, plain_used = plain.answer_messages("q?", _hits())
    messages, used = verbose.answer_messages("q?", _hits())
    assert len(used) < len(plain_used) and _prompt_tokens(verbose, messages) <= 1200 - PROMPT_RESERVE


def test_an_over_budget_best_hit_is_cut_to_its_head_and_fits() -> None:
    gen = _CharCounted(max_prompt_tokens=300)
    long = _hits(words=2000)
    messages, used = gen.answer_messages("What does part one explain?", long)
    assert used == long[:1] and _prompt_tokens(gen, messages) <= 300 - PROMPT_RESERVE
    body = messages[1]["content"].split("\n", 3)[3].split("\n</source>")[0]
    assert len(body) > 200 and long[0].text.startswith(body)


def test_a_prompt_over_budget_without_sources_names_the_fix() -> None:
    gen = _CharCounted(max_prompt_tokens=256, system_prompt="Be brief. " * 100)
    with pytest.raises(FlightdeckError, match=r"takes \d+ tokens before any source, over its budget of 256.*"
                                              r"raise model.generator.max_prompt_tokens"):
        gen.answer("q?", _hits(), None, "v1")


def test_a_request_caps_its_answer_length() -> None:
    gen = _CharCounted()
    gen.answer("What does part one explain?", _hits(), None, "v1", max_tokens=7)
    assert gen.asked["max_tokens"] == 7
    gen.answer("What does part one explain?", _hits(), None, "v1")
    assert gen.asked["max_tokens"] is None  # the provider's config applies
    items = list(stream_answer(gen, "What does part one explain?", _hits(), None, "v1", max_tokens=5))
    assert isinstance(items[-1], Answer) and gen.asked["max_tokens"] == 5


@pytest.mark.integration
def test_llama_cpp_fits_question_sources_and_answer_in_a_small_context(gemma_gguf: Path) -> None:
    from flightdeck.models.generators.llama_cpp import LlamaCppConfig, LlamaCppGenerator

    small = LlamaCppGenerator(LlamaCppConfig(model_path=str(gemma_gguf), n_ctx=512, max_tokens=32, top_chunks=8,
                                             n_threads=2))
    try:
        question = "What does a widget need?"
        hits = [SearchHit("w1", "w", "file:///docs/install.md", "Installing Widgets", "Requirements", 1.0,
                          "A widget needs a frame, two sprockets and a license key. The license key is printed on "
                          "the box.", {}), *_hits(words=70)]
        assert small.prompt_budget() == 512 - 32 and small.prompt_budget(max_tokens=300) == 212
        # all seven sources (about 650 tokens) overflow the window: before the budget knew n_ctx, this failed
        everything = small.prompt_template().render_messages(
            system_prompt=small.config.system_prompt, question=question, not_found="",
            sources=[{"id": n, "title": h.title, "text": h.text, "uri": "", "chunk_id": h.chunk_id}
                     for n, h in enumerate(hits, 1)])
        with pytest.raises(FlightdeckError, match="exceed context window"):
            small.complete(everything)
        _, used = small.answer_messages(question, hits)
        assert 1 < len(used) < len(hits) and used == hits[: len(used)]  # the lowest-ranked are left out
        answer = small.answer(question, hits, None, "v1")
        assert answer.found and "sprocket" in answer.answer.lower()
        assert answer.usage["prompt_tokens"] + small.config.max_tokens <= 512
        # a longer answer leaves room for fewer sources; a per-request cap is honoured
        _, fewer = small.answer_messages(question, hits, max_tokens=300)
        assert 0 < len(fewer) < len(used)
        capped = small.answer(question, hits, None, "v1", max_tokens=3)
        assert capped.usage["completion_tokens"] == 3 and len(capped.answer.split()) <= 3
    finally:
        small.close()
