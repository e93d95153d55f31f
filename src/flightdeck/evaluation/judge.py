"""LLM-as-a-judge: faithfulness, answer relevancy, context relevance and correctness, with any LLM generator.

Each metric is one short, versioned prompt (``judge_prompts/<metric>.v<N>.txt``; the report keeps its name and the
sha256 of its text) that asks for YES or NO on the first line and one sentence of reasoning. Every verdict is kept
with its reasoning and the model's raw reply; a reply that says neither is counted as unparsed, never guessed.
The texts it reads (documents, answers) are untrusted: they are fenced in the prompt and cut to a budget, and the
verdict is read only from the reply's first words. The default judge is the packaged local model (Gemma 3 270M
through llama.cpp): BENCHMARKS.md measures how far its verdicts agree with a person's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from flightdeck.evaluation.metrics.text import strip_citations

__all__ = ["JUDGE_METRICS", "Verdict", "LlmJudge", "judge_prompt", "parse_verdict"]

JUDGE_METRICS = ("faithfulness", "answer_relevancy", "context_relevance", "correctness")
PROMPT_VERSION = "v1"
_PROMPTS = Path(__file__).parent / "judge_prompts"
# the verdict is the reply's first word, after a label small models like to write ("Answer: Yes.")
_VERDICT = re.compile(r"^\W*(?:(?:answer|verdict|reply|response)\W*:\W*)?(yes|no)\b", re.IGNORECASE)
_STOP = ["\nQuestion:", "\nUser question:", "\nContext:"]  # a small model that goes on writing prompts is cut
CONTEXT_CHARS = 1800  # of all the context a prompt shows: a 270M model reads little well
ANSWER_CHARS = 1200


@dataclass
class Verdict:
    """One judgement: the score (1 yes, 0 no, None unparsed), the reasoning, and the prompt that asked."""

    metric: str
    score: float | None
    reasoning: str
    prompt: str
    prompt_sha256: str
    raw: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def judge_prompt(metric: str, version: str = PROMPT_VERSION) -> tuple[str, str]:
    """The prompt text of ``metric`` at ``version`` and its sha256."""
    text = (_PROMPTS / f"{metric}.{version}.txt").read_text(encoding="utf-8")
    return text, hashlib.sha256(text.encode()).hexdigest()


def parse_verdict(reply: str) -> tuple[float | None, str]:
    """(1.0 for YES, 0.0 for NO, None for neither) and the reasoning that follows it."""
    text = reply.strip()
    match = _VERDICT.match(text)
    if not match:
        return None, text[:400]
    reasoning = text[match.end():].strip(" \n.:,-*_!")
    return (1.0 if match.group(1).lower() == "yes" else 0.0), reasoning[:400]


def _fenced(text: str, limit: int) -> str:
    # a document or an answer must not close the block it is quoted in, nor speak as the prompt's own headings
    cleaned = text.replace("```", "'''")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class LlmJudge:
    """Judges answers with an LLM generator (anything with ``complete(messages, max_tokens=, temperature=)``)."""

    def __init__(self, generator: Any, metrics: tuple[str, ...] = JUDGE_METRICS, max_tokens: int = 64) -> None:
        self.generator = generator
        self.metrics = metrics
        self.max_tokens = max_tokens

    @property
    def model_id(self) -> str:
        return getattr(self.generator, "model_id", "") or type(self.generator).__name__

    def _ask(self, metric: str, **fields: str) -> Verdict:
        template, sha = judge_prompt(metric)
        prompt = template.format(**fields)
        name = f"{metric}.{PROMPT_VERSION}"
        try:
            reply = self.generator.complete([{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                                            temperature=0.0, stop=_STOP).text
        except Exception as exc:  # a judge that fails leaves the metric unmeasured for this question
            return Verdict(metric, None, f"the judge failed: {type(exc).__name__}: {exc}", name, sha, "")
        score, reasoning = parse_verdict(reply)
        return Verdict(metric, score, reasoning, name, sha, reply[:800])

    def judge(self, question: str, answer: str, contexts: list[str], reference: str = "") -> list[Verdict]:
        """The verdicts of one answered question (correctness only when there is a reference)."""
        context = _fenced("\n---\n".join(contexts), CONTEXT_CHARS)
        shown = _fenced(strip_citations(answer), ANSWER_CHARS)
        out = []
        for metric in self.metrics:
            if metric == "faithfulness":
                out.append(self._ask(metric, context=context, answer=shown))
            elif metric == "answer_relevancy":
                out.append(self._ask(metric, question=question, answer=shown))
            elif metric == "context_relevance":
                out.append(self._ask(metric, question=question, context=context))
            elif metric == "correctness" and reference:
                out.append(self._ask(metric, question=question, reference=reference, answer=shown))
        return out
