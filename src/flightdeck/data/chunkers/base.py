"""The chunker protocol: a parsed document to chunks that fit the embedder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from flightdeck.data.documents import Chunk, Document

if TYPE_CHECKING:
    from flightdeck.data.tokenization import Tokenizer

__all__ = ["Chunker"]


@runtime_checkable
class Chunker(Protocol):
    """Splits a document into chunks measured with the embedder's tokenizer.

    Chunks are numbered ``0..n-1`` in reading order across the whole document, and the same document
    always gives the same chunks (ids are derived from them and must be stable across runs).
    """

    def chunk(self, document: Document, tokenizer: Tokenizer) -> list[Chunk]:
        """Return the chunks of ``document``, in order."""
        ...
