"""The chunker protocol: a parsed document to chunks that fit the embedder; the options every chunker shares
(:class:`ChunkerConfig`); and the metadata chunks inherit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flightdeck.core.chunking import DEFAULT_CHUNK_SIZE
from flightdeck.data.documents import Chunk, Document, Section

if TYPE_CHECKING:
    from flightdeck.data.tokenization import Tokenizer

__all__ = ["Chunker", "ChunkerConfig", "chunk_metadata", "merge_section_metadata", "POSITION_KEYS", "LOWEST_KEYS"]

#: Section metadata that says where a section sits; a chunk gets the range ``<key>_start``/``<key>_end``.
POSITION_KEYS = ("page", "slide")
#: Section metadata of which a chunk keeps the lowest value: a chunk is only as reliable as its worst part.
LOWEST_KEYS = ("ocr_confidence",)


@runtime_checkable
class Chunker(Protocol):
    """Splits a document into chunks measured with the embedder's tokenizer.

    Chunks are numbered ``0..n-1`` in reading order across the whole document, and the same document
    always gives the same chunks (ids are derived from them and must be stable across runs). Each chunk's
    metadata is :func:`chunk_metadata` of the sections its text comes from. Every chunk fits the chunker's
    ``size`` as indexed (``tokenizer.count(chunk.indexed_text) <= size``, the count ``token_count`` records), and
    a document without text gives no chunks. :mod:`flightdeck.testing.chunker_contract` checks all of it.
    """

    def chunk(self, document: Document, tokenizer: Tokenizer) -> list[Chunk]:
        """Return the chunks of ``document``, in order."""
        ...


class ChunkerConfig(BaseModel):
    """The options every chunker has: ``size`` and ``overlap``, written once with their checks.

    ``size`` is the most tokens a chunk may have, counted with the embedder's tokenizer without special tokens
    (``Tokenizer.count``); each chunker says what of the chunk counts (its heading line or not). A run lowers it
    to what the embedding model holds with its special tokens (:func:`flightdeck.core.chunking.fit_chunk_size`).
    ``overlap`` is how much of the previous chunk is repeated at the start of the next; each chunker says how
    (tokens, whole sentences) and when. A chunker's config subclasses this one and adds its own options; one
    whose defaults differ (``overlap`` 0 for the sentence-based chunkers) overrides the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(DEFAULT_CHUNK_SIZE, ge=16)
    overlap: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_half(self) -> Self:
        if self.overlap * 2 >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be less than half of size ({self.size}); "
                             f"set overlap to at most {(self.size - 1) // 2} or raise size")
        return self


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def merge_section_metadata(sections: Sequence[Section]) -> dict[str, Any]:
    """The metadata a chunk takes from the sections its text comes from (one or several).

    - ``page`` / ``slide``: ``page_start`` and ``page_end`` (the lowest and highest page), and ``page``
      itself when the chunk lies on one page, so that both ``{"page": 3}`` and the range
      ``{"page_start": {"$lte": 3}, "page_end": {"$gte": 3}}`` filter alike for every chunk;
    - ``ocr_confidence``: the lowest among the sections that were OCRed;
    - any other key: kept when every section holds it with the same value.
    """
    out: dict[str, Any] = {}
    if not sections:
        return out
    keys = dict.fromkeys(k for s in sections for k in s.metadata)
    for key in keys:
        values = [s.metadata[key] for s in sections if key in s.metadata]
        numbers = [v for v in values if _number(v)]
        if key in POSITION_KEYS and numbers:
            low, high = min(numbers), max(numbers)
            out[f"{key}_start"], out[f"{key}_end"] = low, high
            if low == high and len(numbers) == len(sections):
                out[key] = low
        elif key in LOWEST_KEYS:
            if numbers:
                out[key] = min(numbers)
        elif len(values) == len(sections) and all(v == values[0] for v in values[1:]):
            out[key] = values[0]
    return out


def chunk_metadata(document: Document, sections: Sequence[Section], heading_path: tuple[str, ...]) -> dict[str, Any]:
    """A chunk's metadata: the document's, then what its ``sections`` say (:func:`merge_section_metadata`),
    then ``title`` and ``heading`` (the full heading path, joined with `` > ``)."""
    meta = {**document.metadata}
    for key in LOWEST_KEYS:
        # The document's value is a summary (the mean over its OCRed pages); once its sections say which
        # parts were OCRed, a chunk of the others must not look OCRed. None (not a deletion) so that it also
        # overrides the document's value where the index merges document and chunk metadata again.
        if any(key in s.metadata for s in document.sections):
            meta[key] = None
    meta.update(merge_section_metadata(sections))
    meta["title"] = document.title
    meta["heading"] = " > ".join(heading_path)
    return meta
