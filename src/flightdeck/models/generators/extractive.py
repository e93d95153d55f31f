"""The extractive answerer: the sentences of the top chunks that best answer the question, cited.

No LLM is involved, so it runs in the real-time tier and cannot invent text: every sentence of an answer
is a sentence of a document, quoted with its numbered citation. When no sentence is similar enough to
the question, the answer says so ("not found in the documents") instead of guessing.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from flightdeck.models.generators.base import NOT_FOUND, Answer, Citation
from flightdeck.models.generators.untrusted import flag_sources

__all__ = ["ExtractiveConfig", "ExtractiveGenerator", "split_sentences", "SPLIT_VERSION"]

# Changes when split_sentences changes: the stored sentence vectors of the `sentences` step are then recomputed.
SPLIT_VERSION = "1"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|\$ |#|[{}()\[\]])")


def split_sentences(text: str) -> list[str]:
    """Prose sentences of ``text``: blocks split on blank lines, code-looking lines left out."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.splitlines() if ln.strip() and not _CODE_LINE.match(ln)]
        prose = " ".join(ln.strip() for ln in lines)
        for sentence in _SENTENCE_END.split(prose):
            sentence = sentence.strip()
            if len(sentence.split()) >= 3 and len(sentence) <= 600:
                out.append(sentence)
    return out


class ExtractiveConfig(BaseModel):
    """Settings of ``model.generator: {provider: extractive, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    top_chunks: int = Field(5, ge=1, le=50, description="retrieved chunks the sentences are taken from")
    max_sentences: int = Field(3, ge=1, le=20)
    min_score: float = Field(0.45, ge=-1, le=1, description="mean of sentence and chunk cosine needed")
    precompute_sentences: bool | None = Field(
        None, description="embed every chunk's sentences at index time (the `sentences` step), so that a question "
        "embeds only itself. Unset: on when scoping.latency is real_time (it costs index time: about 4 minutes "
        "for the demo's 12,000 sentences on 2 CPU cores)")


class ExtractiveGenerator:
    """Answers from the retrieved hits with the embedder that built the index."""

    def __init__(self, config: ExtractiveConfig | None = None) -> None:
        self.config = config or ExtractiveConfig()

    def answer(self, question: str, hits: list[Any], embedder: Any, index_version: str) -> Answer:
        t0 = time.perf_counter()
        flags = flag_sources(hits[: self.config.top_chunks])  # quoted, not obeyed, but a reader should know
        candidates: list[tuple[str, Any]] = []
        for hit in hits[: self.config.top_chunks]:
            candidates.extend((s, hit) for s in dict.fromkeys(split_sentences(hit.text)))
        if not candidates:
            return Answer(question, NOT_FOUND, False, [], index_version,
                          {"answer": round((time.perf_counter() - t0) * 1000, 3)}, flags=flags)
        q = np.asarray(embedder.embed_query(question), dtype=np.float32)
        top = hits[: self.config.top_chunks]
        # A short sentence out of its chunk loses context ("Rotate it monthly."), so a sentence scores the
        # mean of its own similarity and its chunk's: the chunk says "this is the topic", the sentence
        # says "this is the part that answers".
        chunk_scores = {h.chunk_id: float(v @ q) for h, v in
                        zip(top, embedder.embed_documents([h.text for h in top]), strict=True)}
        vectors = embedder.embed_documents([s for s, _ in candidates])
        scores = 0.5 * (vectors @ q) + 0.5 * np.array([chunk_scores[h.chunk_id] for _, h in candidates])
        order = np.argsort(-scores, kind="stable")
        chosen = [int(i) for i in order[: self.config.max_sentences] if scores[i] >= self.config.min_score]
        timings = {"answer": round((time.perf_counter() - t0) * 1000, 3)}
        if not chosen:
            return Answer(question, NOT_FOUND, False, [], index_version, timings, flags=flags)
        numbers: dict[str, int] = {}
        citations: list[Citation] = []
        parts: list[str] = []
        for i in chosen:
            sentence, hit = candidates[i]
            if hit.chunk_id not in numbers:
                numbers[hit.chunk_id] = len(numbers) + 1
                citations.append(Citation(numbers[hit.chunk_id], hit.chunk_id, hit.document_id, hit.source_uri,
                                          hit.title, hit.heading, sentence))
            parts.append(f"{sentence} [{numbers[hit.chunk_id]}]")
        return Answer(question, " ".join(parts), True, citations, index_version, timings, flags=flags)
