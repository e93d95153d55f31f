"""Hallucination mitigation (checklist 8.2): ``governance.hallucination_mitigation`` applied to a finished answer.

An answer that fails a check becomes a refusal: the text :data:`~flightdeck.models.generators.base.NOT_FOUND`,
``found`` false, no citations. ``Answer.mitigation`` says what was checked and why it was refused, and keeps the
withheld text (``withheld``) for the trace; the server strips it from the response. Checks, cheapest first, and a
refused answer is not checked further:

- ``require_citation``: the answer cites at least one source;
- ``min_support``: each sentence's best cosine similarity to a sentence of the cited sources (of the sources the
  generator read, when it cites none: the judge-free groundedness of :mod:`flightdeck.evaluation.metrics.grounding`)
  reaches the threshold;
- ``judge_check``: the LLM judge answers YES to the faithfulness question (an unparsed reply: ``judge_unparsed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flightdeck.evaluation.metrics.grounding import VectorCache, sentence_support
from flightdeck.models.generators.base import NOT_FOUND, Answer
from flightdeck.spec.mitigation import MitigationSettings

__all__ = ["HallucinationGuard"]

WITHHELD_CHARS = 2000


class HallucinationGuard:
    """Checks answers against ``settings``; ``embed`` (texts → unit vectors) serves ``min_support``, ``judge`` (an
    :class:`~flightdeck.evaluation.judge.LlmJudge`, or a callable returning one, built on first use) ``judge_check``."""

    def __init__(self, settings: MitigationSettings, *, embed: Callable[[list[str]], Any] | None = None,
                 judge: Any = None, top_chunks: int = 5) -> None:
        self.settings = settings
        self.embed = embed
        self._judge = judge
        self.top_chunks = top_chunks  # how many of the hits an answer that cites nothing is checked against

    @property
    def active(self) -> bool:
        return self.settings.active

    def judge(self) -> Any:
        if callable(self._judge) and not hasattr(self._judge, "judge"):
            self._judge = self._judge()  # built on first use: the judge may be a model to load
        return self._judge

    def check(self, answer: Answer, hits: list[Any]) -> Answer:
        """``answer`` as it may be returned: itself with what was checked, or a refusal saying why."""
        if not self.active or not answer.found:
            return answer
        s = self.settings
        checked: dict[str, Any] = {"checks": [n for n, on in (("require_citation", s.require_citation),
                                                               ("min_support", s.min_support is not None),
                                                               ("judge_check", s.judge_check)) if on]}
        texts = {h.chunk_id: h.text for h in hits}
        cited = [(c.chunk_id, texts.get(c.chunk_id, c.quote)) for c in answer.citations]
        # what the answer is checked against: the sources it cites, else (no citation) the ones it was given, as
        # the evaluation's groundedness does; whether it must cite is require_citation's question
        read = cited or [(h.chunk_id, h.text) for h in hits[:self.top_chunks]]
        reason = None
        if s.require_citation and not cited:
            reason = "the answer cites no source"
        if reason is None and s.min_support is not None:
            if self.embed is None:
                raise ValueError("min_support needs the project's embedder")
            support = sentence_support(answer.answer, read, VectorCache(self.embed), s.min_support)
            weakest = min(support, key=lambda x: x.support, default=None)
            checked["min_support"] = None if weakest is None else weakest.support
            if weakest is not None and not weakest.supported:
                reason = (f"a sentence is supported {weakest.support:.2f} < {s.min_support:g} by the cited sources: "
                          f"{weakest.sentence[:160]!r}")
        if reason is None and s.judge_check:
            [verdict] = self.judge().judge(answer.question, answer.answer, [t for _, t in read])[:1] or [None]
            score = None if verdict is None else verdict.score
            checked["judge"] = {"score": score, "reasoning": None if verdict is None else verdict.reasoning}
            if score == 0.0:
                reason = "the judge found the answer unfaithful to its sources"
            elif score is None and s.judge_unparsed == "refuse":
                reason = "the judge's reply was neither yes nor no (judge_unparsed: refuse)"
        if reason is None:
            return dataclasses.replace(answer, mitigation={**checked, "refused": False})
        return dataclasses.replace(answer, answer=NOT_FOUND, found=False, citations=[],
                                   mitigation={**checked, "refused": True, "reason": reason,
                                               "withheld": answer.answer[:WITHHELD_CHARS]})
