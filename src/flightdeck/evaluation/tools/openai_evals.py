"""OpenAI Evals (github.com/openai/evals): its JSONL samples and its basic evals Match, Includes and FuzzyMatch,
in-process and offline.

A samples file holds one JSON object per line: ``{"input": PROMPT, "ideal": "…" | ["…", …]}``, where PROMPT is a
chat list (``[{"role": "system", "content": …}, {"role": "user", "content": …}]``, few-shot turns included) or a
plain string. Upstream reads only ``input`` and ``ideal`` and tolerates other keys (docs/build-eval.md: a dataset may
carry "the superset of keys" that several evals need), so :func:`export_samples` keeps flightdeck's own fields (id,
tags, reference sources and chunks) under one extra key, ``"flightdeck"``, and :func:`import_samples` reads them back:
a set survives the round trip.

The checks are upstream's, reimplemented here because the ``evals`` package (3.0.1.post1) cannot be installed
beside flightdeck's pins: it requires google-generativeai, whose every release needs protobuf < 5 while the
constraints pin protobuf 6, and it pulls some forty other packages (anthropic, langchain, playwright, snowflake, …)
for three string comparisons. What was read, in openai/evals (the same functions ship in the 3.0.1.post1 wheel):

- ``evals/elsuite/basic/match.py`` @ c2273588ec44c8479cfbc42f95d8f465a769ec28 and ``record_and_check_match`` in
  ``evals/api.py`` @ 9fcc1cb0f90ce86762802295708fe761f96506ac: the completion *starts with* one of the ideals,
  exactly (no case folding; no separator for Match);
- ``evals/elsuite/basic/includes.py`` @ 4edd9d17b5da35b1a0bce591ab336c41eb81f7ca with ``get_answer`` of
  ``evals/elsuite/utils.py`` @ 0f30226d9c897c43689bbba062bd4b65a189043e: an ideal occurs in the completion,
  case-sensitive unless the eval's ``ignore_case`` (off by default: ``str.lower`` of both);
- ``evals/elsuite/basic/fuzzy_match.py`` @ adc2ff7d83fecc1091f14d4c2b793c2d152bd41e with ``normalize``,
  ``fuzzy_match`` and ``f1_score`` of ``utils.py``: after normalising (lower case, punctuation dropped, articles
  dropped, whitespace collapsed) either text contains the other (two empty texts match, one empty text matches
  nothing), and the sample's F1 is the best SQuAD token F1 over the ideals;
- ``evals/metrics.py`` @ 80aea022273225f96bf8b58f0f80a3c34b1bb3fd: each eval reports ``accuracy``, the share of
  samples that match (FuzzyMatch also the mean ``f1_score``).

Upstream takes the completion as the model returned it (the current Match strips nothing; early versions stripped
it when the model spec said so). flightdeck's answers carry citation markers (``[1]``), which are not words of the
answer: :func:`basic_scores` removes them with :func:`~flightdeck.evaluation.metrics.text.strip_citations`, which
also strips surrounding whitespace, before checking.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightdeck.core.files import write_text_atomic
from flightdeck.evaluation.sets import EvalQuestion, EvalSet, hashed, read_jsonl_questions

__all__ = ["DEFAULT_SYSTEM_PROMPT", "SamplesSet", "export_samples", "import_samples", "samples_lines", "match",
           "includes", "fuzzy_match", "normalize", "f1_score", "basic_scores"]

#: The system message of exported samples: the model that oaieval runs has none of the project's documents.
DEFAULT_SYSTEM_PROMPT = "Answer the question as concisely as possible."
#: The one extra key of an exported sample that carries flightdeck's own fields.
EXTRA_KEY = "flightdeck"
_EXTRA_FIELDS = ("id", "tags", "reference_sources", "reference_chunks")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


# --- the checks -------------------------------------------------------------------------------------------------

def _as_list(ideals: str | Sequence[str]) -> list[str]:
    # upstream wraps a lone string, and a tuple becomes a list (record_and_check_match)
    return [ideals] if isinstance(ideals, str) else list(ideals)


def match(sampled: str, ideals: str | Sequence[str]) -> bool:
    """Upstream ``Match``: the answer starts with one of the ideals (exact comparison, case-sensitive)."""
    return any(sampled.startswith(ideal) for ideal in _as_list(ideals))


def includes(sampled: str, ideals: str | Sequence[str], *, ignore_case: bool = False) -> bool:
    """Upstream ``Includes``: one of the ideals occurs in the answer (``ignore_case``: both lower-cased first)."""
    if ignore_case:
        text = sampled.lower()
        return any(ideal.lower() in text for ideal in _as_list(ideals))
    return any(ideal in sampled for ideal in _as_list(ideals))


def normalize(text: str) -> str:
    """Upstream's ``utils.normalize``: lower case, punctuation removed, articles removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _fuzzy(a: str, b: str) -> bool:
    a, b = normalize(a), normalize(b)
    if a == "" or b == "":
        return a == b
    return a in b or b in a


def fuzzy_match(sampled: str, ideals: str | Sequence[str]) -> bool:
    """Upstream ``FuzzyMatch``: after :func:`normalize`, the answer contains an ideal or an ideal contains it."""
    return any(_fuzzy(sampled, ideal) for ideal in _as_list(ideals))


def _token_f1(prediction: str, truth: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(truth).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:  # upstream: 0 also when both are empty
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1_score(sampled: str, ideals: str | Sequence[str]) -> float:
    """Upstream ``utils.f1_score`` (FuzzyMatch's ``f1_score``): the best token F1 of the answer over the ideals."""
    ideals = _as_list(ideals)
    if not ideals:
        raise ValueError("f1_score needs at least one ideal answer")
    return max(_token_f1(sampled, ideal) for ideal in ideals)


def basic_scores(results: Iterable[tuple[str | None, str | Sequence[str]]]) -> dict[str, float]:
    """Upstream's three basic evals over ``(answer, ideals)`` pairs, as each reports them: the share of answers
    that match (``openai_match``, ``openai_includes``, ``openai_fuzzy_match``) and FuzzyMatch's mean token F1
    (``openai_fuzzy_match_f1``). Citation markers are removed from each answer first.

    A pair without a non-empty ideal (an unanswerable question, a question with no reference answer) is not a
    sample upstream and is left out; with no sample left the result is ``{}`` (upstream would report NaN).
    """
    from flightdeck.evaluation.metrics.text import strip_citations

    hits = {"openai_match": 0, "openai_includes": 0, "openai_fuzzy_match": 0}
    f1_total, n = 0.0, 0
    for answer, ideals in results:
        kept = [i for i in _as_list(ideals or []) if isinstance(i, str) and i.strip()]
        if not kept:
            continue
        sampled = strip_citations(answer or "")
        n += 1
        hits["openai_match"] += match(sampled, kept)
        hits["openai_includes"] += includes(sampled, kept)
        hits["openai_fuzzy_match"] += fuzzy_match(sampled, kept)
        f1_total += f1_score(sampled, kept)
    if not n:
        return {}
    return {**{name: count / n for name, count in hits.items()}, "openai_fuzzy_match_f1": f1_total / n}


# --- samples files ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamplesSet(EvalSet):
    """An evaluation set read from an OpenAI Evals samples file.

    Each question's ``reference_answer`` is the sample's first ideal; ``ideals`` keeps all of them, by question id,
    for the checks (a flightdeck set has one reference answer per question).
    """

    ideals: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

    def ideals_of(self, question: EvalQuestion | str) -> tuple[str, ...]:
        """Every ideal answer of a question (its id or itself)."""
        qid = question if isinstance(question, str) else question.id
        if qid in self.ideals:
            return self.ideals[qid]
        found = next((q for q in self.questions if q.id == qid), None)
        return (found.reference_answer,) if found is not None and found.reference_answer else ()


def samples_lines(eval_set: EvalSet, system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> list[str]:
    """The samples of :func:`export_samples`, one JSON line each (no blank line: upstream's reader rejects one)."""
    lines = []
    for q in eval_set.questions:
        if not q.answerable or not q.reference_answer.strip():
            continue
        prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
            [{"role": "user", "content": q.question}]
        ideals = eval_set.ideals_of(q) if isinstance(eval_set, SamplesSet) else (q.reference_answer,)
        sample: dict[str, Any] = {"input": prompt, "ideal": ideals[0] if len(ideals) == 1 else list(ideals)}
        extra = {k: v for k, v in q.to_dict().items() if k in _EXTRA_FIELDS and v}
        sample[EXTRA_KEY] = extra
        lines.append(json.dumps(sample, ensure_ascii=False) + "\n")
    return lines


def export_samples(eval_set: EvalSet, path: str | Path, system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> int:
    """Write ``eval_set`` as an OpenAI Evals samples file and return how many samples it holds.

    One sample per answerable question with a reference answer (upstream's basic evals need an ideal):
    ``{"input": [system, user question], "ideal": reference, "flightdeck": {id, tags, reference_sources, …}}``.
    Unanswerable questions have no ideal and are left out. An empty ``system_prompt`` leaves the system turn out.
    """
    lines = samples_lines(eval_set, system_prompt)
    write_text_atomic(Path(path), "".join(lines))
    return len(lines)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _question_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise ValueError("input must be a string or a non-empty list of chat messages ({\"role\": …, \"content\": …})")
    for n, message in enumerate(prompt, 1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"input message {n} is not a chat message with \"role\" and \"content\"")
    users = [m for m in prompt if m["role"] == "user"]
    # a prompt without a user turn (upstream's logic samples put the puzzle in the system message) asks its last one
    chosen = users[-1] if users else prompt[-1]
    return _text(chosen["content"], f"the content of input message {prompt.index(chosen) + 1}")


def _ideals(value: Any) -> tuple[str, ...]:
    ideals = [value] if isinstance(value, str) else value
    if not isinstance(ideals, list):
        raise ValueError(f"ideal must be a string or a list of strings; found {type(value).__name__} {value!r}")
    if not ideals:
        raise ValueError("ideal is an empty list; give at least one right answer")
    for ideal in ideals:
        if not isinstance(ideal, str):
            raise ValueError(f"ideal must be a string or a list of strings; found {type(ideal).__name__} {ideal!r}")
        if not ideal.strip():
            raise ValueError("ideal holds an empty answer, which every answer would match")
    return tuple(ideals)


def _sample(obj: Any, line: int) -> tuple[EvalQuestion, tuple[str, ...]]:
    from flightdeck.evaluation.sets import _question  # the same rules as a flightdeck set's line

    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object with \"input\" and \"ideal\"")
    for key in ("input", "ideal"):
        if key not in obj:
            raise ValueError(f"no \"{key}\"; an OpenAI Evals sample has \"input\" and \"ideal\"")
    question = _question_text(obj["input"])
    ideals = _ideals(obj["ideal"])
    extra = obj.get(EXTRA_KEY) or {}
    if not isinstance(extra, dict):
        raise ValueError(f"\"{EXTRA_KEY}\" must be an object with {', '.join(_EXTRA_FIELDS)}")
    unknown = sorted(set(extra) - set(_EXTRA_FIELDS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in \"{EXTRA_KEY}\"; it holds {', '.join(_EXTRA_FIELDS)}")
    q = _question({**extra, "question": question, "reference_answer": ideals[0], "answerable": True}, line)
    return q, ideals


def import_samples(path: str | Path, name: str | None = None) -> SamplesSet:
    """Read an OpenAI Evals samples file as a flightdeck evaluation set.

    The question is the last user message of ``input`` (or ``input`` itself when it is a string; system turns and
    few-shot examples are not part of it), the reference answer the first ``ideal``; every ideal stays in
    :attr:`SamplesSet.ideals`. Ids, tags and reference sources exported by flightdeck come back; other samples get
    ``line-N``. :class:`~flightdeck.evaluation.sets.EvalSetError` names every bad line (file:line: what is wrong).
    """
    path = Path(path)
    items = read_jsonl_questions(
        path, _sample,
        missing="samples file not found; give an OpenAI Evals samples JSONL file (one {\"input\": …, \"ideal\": …} "
                "object per line)",
        empty="no samples; write one {\"input\": …, \"ideal\": …} object per line")
    ideals = {q.id: its_ideals for q, its_ideals in items}
    unhashed = EvalSet(name or path.stem, str(path), tuple(q for q, _ in items))
    digest = hashed(unhashed)
    return SamplesSet(unhashed.name, unhashed.path, unhashed.questions, digest, ideals)
