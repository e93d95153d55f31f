"""Plain text: the whole file is one section under its title (the file name without extension)."""

from __future__ import annotations

from pathlib import PurePosixPath

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.decoding import decode_text_noted

__all__ = ["parse_text", "title_from_uri"]


def title_from_uri(uri: str) -> str:
    """The file stem of ``uri`` (``docs/intro.txt`` gives ``intro``), the title of last resort."""
    return PurePosixPath(uri.split("#", 1)[0]).stem or uri


def parse_text(item: SourceItem, data: bytes) -> Document:
    """Parse a ``text/plain`` item into a single-section document."""
    text, warning = decode_text_noted(data, item.uri)
    title = title_from_uri(item.uri)
    sections = (Section((title,), text),) if text.strip() else ()
    return Document(item.uri, item.content_hash, title, sections, dict(item.metadata),
                    warnings=(warning,) if warning else ())
