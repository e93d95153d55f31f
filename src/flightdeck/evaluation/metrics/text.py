"""Answer-text metrics against a reference answer: BLEU (sacrebleu), ROUGE-1/2/L (rouge-score), and SQuAD's
token F1 and exact match (normalised: lower case, no punctuation, no articles). Citation markers such as
``[1]`` or ``[2, 3]`` are removed from an answer before it is scored: they are not words of the answer."""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Any

from flightdeck.registry.lookup import optional_import

__all__ = ["strip_citations", "normalize", "token_f1", "exact_match", "bleu", "corpus_bleu", "rouge"]

_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def strip_citations(text: str) -> str:
    return _CITATION.sub("", text).strip()


def normalize(text: str) -> str:
    """SQuAD's answer normalisation."""
    return " ".join(_ARTICLES.sub(" ", strip_citations(text).lower().translate(_PUNCT)).split())


def token_f1(answer: str, reference: str) -> float:
    a, r = normalize(answer).split(), normalize(reference).split()
    common = sum((Counter(a) & Counter(r)).values())
    if not a or not r or not common:
        return float(a == r)
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def exact_match(answer: str, reference: str) -> float:
    return float(normalize(answer) == normalize(reference))


def _sacrebleu() -> Any:
    return optional_import("sacrebleu", "eval", "BLEU")


def bleu(answer: str, reference: str) -> float:
    """Sentence BLEU (0–1, exponential smoothing as sacrebleu's sentence_bleu does)."""
    return _sacrebleu().sentence_bleu(strip_citations(answer), [reference]).score / 100


def corpus_bleu(answers: list[str], references: list[str]) -> float:
    """Corpus BLEU over the answered questions (0–1): the number BLEU means in papers."""
    if not answers:
        return 0.0
    return _sacrebleu().corpus_bleu([strip_citations(a) for a in answers], [references]).score / 100


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    module = optional_import("rouge_score.rouge_scorer", "eval", "ROUGE")
    return module.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(answer: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures (stemmed)."""
    scores = _rouge_scorer().score(reference, strip_citations(answer))
    return {name: s.fmeasure for name, s in scores.items()}
