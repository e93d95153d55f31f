"""The ``semantic`` chunker: breaks where the meaning changes, found with the project's embedder.

Each section is split into sentences (as by the ``sentence`` chunker), every sentence of the document is
embedded in one batch, and a chunk boundary is placed between two neighbouring sentences whose cosine
similarity falls below the ``breakpoint_percentile``-th percentile of all neighbour similarities of the
document (the approach of Greg Kamradt's "semantic chunking", also in LangChain and LlamaIndex). Section
boundaries are always boundaries; a run of sentences longer than the budget is packed sentence by
sentence like the ``sentence`` chunker does, so the size bound holds.

The chunker needs an embedder, which ``Chunker.chunk(document, tokenizer)`` does not pass: it takes one in its
constructor (its registry entry says ``takes=("embedder",)``, so the pipeline's assembly passes the project's);
pass one yourself when using the chunker directly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from flightdeck.data.chunkers.base import ChunkerConfig, chunk_metadata
from flightdeck.data.chunkers.sentence import SentenceChunker, SentenceConfig, split_sentences
from flightdeck.data.documents import Chunk, Document
from flightdeck.errors import FlightdeckError

if TYPE_CHECKING:
    from flightdeck.data.tokenization import Tokenizer

__all__ = ["SemanticConfig", "SemanticChunker"]


class SemanticConfig(ChunkerConfig):
    """Options of the ``semantic`` chunker.

    ``breakpoint_percentile``: a boundary goes where the similarity of neighbouring sentences is below
    this percentile of the document's neighbour similarities (lower: fewer, larger chunks).
    ``size`` bounds every chunk as indexed; ``overlap`` (whole sentences, in tokens) applies only when a
    run of related sentences has to be cut to fit.
    """

    overlap: int = Field(0, ge=0)  # whole sentences are repeated: none unless asked (the base says 32)
    breakpoint_percentile: float = Field(25.0, gt=0.0, lt=100.0)
    include_heading: bool = True


class SemanticChunker:
    """Embedding-similarity breakpoints (see :class:`SemanticConfig`); ``count(indexed_text) <= size``.

    ``embedder`` is any object with ``embed_documents(texts) -> array`` (the project's embedder, or
    :class:`flightdeck.testing.FakeEmbedder` in tests).
    """

    def __init__(self, config: SemanticConfig | None = None, embedder: Any = None) -> None:
        self.config = config or SemanticConfig()
        self.embedder = embedder
        c = self.config
        self._packer = SentenceChunker(SentenceConfig(size=c.size, overlap=c.overlap,
                                                      include_heading=c.include_heading))

    def chunk(self, document: Document, tokenizer: Tokenizer) -> list[Chunk]:
        """Return the chunks of ``document``, numbered ``0..n-1``; sections without text give none."""
        if self.embedder is None:
            raise FlightdeckError(
                "the semantic chunker has no embedder: the pipeline passes the one of retrieval.embedding_model;"
                " in Python build it as SemanticChunker(config, embedder=project.embedder)")
        sections = [s for s in document.sections if s.text.strip()]
        sentences = [split_sentences(s.text) for s in sections]
        breaks = self._breaks([sent for group in sentences for sent in group])
        chunks: list[Chunk] = []
        k = 0  # index of the current sentence across the document
        for section, sents in zip(sections, sentences, strict=True):
            heading = self._packer._heading(section, tokenizer)
            meta = chunk_metadata(document, [section], section.heading_path)
            runs: list[str] = []
            current = ""
            for i, sentence in enumerate(sents):
                if i > 0 and (k + i - 1) in breaks:
                    runs.append(current)
                    current = ""
                current += sentence
            runs.append(current)
            k += len(sents)
            for run in runs:
                # A run that fits is one chunk; a longer one is packed sentence by sentence.
                for text in self._packer._section_texts(run, heading, tokenizer):
                    chunk = Chunk(document.uri, len(chunks), text, heading, 0, dict(meta))
                    chunks.append(replace(chunk, token_count=tokenizer.count(chunk.indexed_text)))
        return chunks

    def _breaks(self, sentences: list[str]) -> set[int]:
        """Indices ``i`` such that a boundary goes between sentence ``i`` and ``i + 1``."""
        if len(sentences) < 3:
            return set()
        vectors = np.asarray(self.embedder.embed_documents([s.strip() for s in sentences]), dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1)
        vectors = vectors / np.where(norms == 0, 1.0, norms)[:, None]
        sims = np.einsum("ij,ij->i", vectors[:-1], vectors[1:])
        threshold = float(np.percentile(sims, self.config.breakpoint_percentile))
        return {i for i, s in enumerate(sims) if s < threshold}
