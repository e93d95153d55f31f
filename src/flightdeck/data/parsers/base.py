"""The parser protocol: the raw bytes of one source item to a :class:`~flightdeck.data.documents.Document`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from flightdeck.data.documents import Document, SourceItem

__all__ = ["Parser"]


@runtime_checkable
class Parser(Protocol):
    """A function ``(item, data) -> Document`` for one media type (``flightdeck.data.parsers.PARSERS``).

    The document keeps ``item.uri`` and ``item.content_hash``; its sections come in reading order, each with
    the heading path it sits under. What the parser could only do in part (a page skipped, a fallback
    decoding) goes into ``Document.warnings``, never lost silently. Bytes it cannot read at all (binary content,
    a malformed record) raise :class:`~flightdeck.errors.SourceError` naming the item.
    """

    def __call__(self, item: SourceItem, data: bytes) -> Document: ...
