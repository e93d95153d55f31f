"""The records that flow through phase 1: source items, parsed documents, sections and chunks.

These are plain dataclasses so that every provider (source, parser, cleaner, chunker) exchanges the same
shapes without importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SourceItem", "Document", "Section", "Chunk", "content_hash"]


def content_hash(data: bytes | str) -> str:
    """Return the hex SHA-256 of ``data`` (text is hashed as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SourceItem:
    """One item a source can deliver, identified before it is read.

    ``uri`` is stable across runs (a relative path for files, ``file.jsonl#<_id>`` for records);
    ``content_hash`` changes whenever the item's bytes change, which is what incremental runs compare.
    """

    uri: str
    content_hash: str
    media_type: str  # "text/markdown", "text/plain", "text/html", "application/x-record"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path, e.g. ``("Tutorial", "Lists")``.

    ``metadata`` says where the text comes from, when the parser knows: ``{"page": 3}`` (PDF),
    ``{"slide": 2}`` (PPTX), ``{"page": 1, "ocr_confidence": 91.4}`` (an OCRed page). Chunkers carry it
    into each chunk's metadata (see :func:`flightdeck.data.chunkers.base.chunk_metadata`).
    """

    heading_path: tuple[str, ...]
    text: str
    # hash=False: a dict is unhashable, and sections stay usable wherever they were hashable before
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Document:
    """A parsed document: its title and its text split into heading sections, in reading order."""

    uri: str
    content_hash: str
    title: str
    sections: tuple[Section, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    # What the parser could not do for this document (pages skipped, a fallback decoding...): shown as the
    # run's warnings, never stored with the chunks. Not part of equality: two parses of the same bytes are
    # the same document whatever was warned.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedder, with where it came from.

    ``ordinal`` is the chunk's position within its document; ``token_count`` is measured with the
    embedder's tokenizer (special tokens excluded).
    """

    document_uri: str
    ordinal: int
    text: str
    heading_path: tuple[str, ...]
    token_count: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable id: the same document, position and text always give the same id."""
        return content_hash(f"{self.document_uri}\x00{self.ordinal}\x00{self.text}")[:24]

    @property
    def indexed_text(self) -> str:
        """What gets embedded and keyword-indexed: the heading path on its own line, then the text.

        The heading line gives the chunk the context its text often lacks ("Lists" under "Data
        Structures"); chunkers count it in the token budget.
        """
        if self.heading_path:
            return " > ".join(self.heading_path) + "\n" + self.text
        return self.text

    @property
    def text_hash(self) -> str:
        """Hash of the text alone: the key of the embedding cache."""
        return content_hash(self.text)
