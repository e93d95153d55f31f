"""Judge-free groundedness and answer similarity with the project's own embedder.

Each sentence of an answer is compared with every sentence of the chunks the answer cites (with none cited,
the chunks the generator read); its *support* is the best cosine similarity, and the chunk and sentence that
give it are kept — which chunk supports which sentence, for the reader of a report. A sentence whose support is
under the threshold is flagged as unsupported (hallucination testing). The answer's *groundedness* is the mean
support of its sentences. A number exists with no LLM at all; it measures closeness of meaning, not
entailment, so a paraphrase of a source scores high and so does a fluent contradiction of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from flightdeck.evaluation.metrics.text import strip_citations
from flightdeck.models.generators.extractive import split_sentences

__all__ = ["SentenceSupport", "VectorCache", "sentence_support", "similarity"]

EVIDENCE_CHARS = 240


@dataclass
class SentenceSupport:
    """One answer sentence, how well the best evidence supports it, and where that evidence is."""

    sentence: str
    support: float
    supported: bool
    chunk_id: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VectorCache:
    """Embeds texts once per run with ``embed`` (a list of texts → unit vectors)."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray]) -> None:
        self._embed = embed
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for text, vector in zip(missing, self._embed(missing), strict=True):
                self._vectors[text] = np.asarray(vector, dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


def _sentences(text: str) -> list[str]:
    found = split_sentences(text)
    return found or ([text.strip()] if text.strip() else [])


def sentence_support(answer: str, evidence: Sequence[tuple[str, str]], vectors: VectorCache,
                     threshold: float) -> list[SentenceSupport]:
    """Support of each sentence of ``answer`` by ``evidence`` (``(chunk_id, text)`` pairs)."""
    sentences = _sentences(strip_citations(answer))
    pool = [(chunk_id, s) for chunk_id, text in evidence for s in _sentences(text)]
    if not sentences:
        return []
    if not pool:
        return [SentenceSupport(s, 0.0, False, "", "") for s in sentences]
    sims = vectors(sentences) @ vectors([s for _, s in pool]).T
    out = []
    for i, sentence in enumerate(sentences):
        j = int(np.argmax(sims[i]))
        support = round(float(sims[i, j]), 4)
        chunk_id, best = pool[j]
        out.append(SentenceSupport(sentence, support, support >= threshold, chunk_id, best[:EVIDENCE_CHARS]))
    return out


def similarity(a: str, b: str, vectors: VectorCache) -> float:
    """Cosine similarity of two texts' embeddings (unit vectors: their dot product)."""
    pair = vectors([strip_citations(a), b])
    return round(float(pair[0] @ pair[1]), 4)
