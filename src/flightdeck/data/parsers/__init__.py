"""Parsers: raw bytes of a :class:`~flightdeck.data.documents.SourceItem` to a ``Document``.

:func:`parse` picks the parser from the item's media type. Parser modules are imported on first use, so
importing this package imports neither BeautifulSoup nor pdfplumber, python-docx, python-pptx or
pytesseract.
"""

from __future__ import annotations

from importlib import import_module

from flightdeck.data.documents import Document, SourceItem
from flightdeck.data.parsers.base import Parser
from flightdeck.errors import SourceError

__all__ = ["parse", "PARSERS", "Parser"]

#: media type -> "module:function" of its parser (a :class:`Parser`)
PARSERS: dict[str, str] = {
    "text/plain": "flightdeck.data.parsers.text:parse_text",
    "text/markdown": "flightdeck.data.parsers.markdown:parse_markdown",
    "text/html": "flightdeck.data.parsers.html:parse_html",
    "application/x-record": "flightdeck.data.parsers.records:parse_record",
    "application/pdf": "flightdeck.data.parsers.pdf:parse_pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
        "flightdeck.data.parsers.docx:parse_docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation":
        "flightdeck.data.parsers.pptx:parse_pptx",
    "image/png": "flightdeck.data.parsers.ocr:parse_image",
    "image/jpeg": "flightdeck.data.parsers.ocr:parse_image",
    "image/tiff": "flightdeck.data.parsers.ocr:parse_image",
}


def parse(item: SourceItem, data: bytes) -> Document:
    """Parse ``data``, the bytes of ``item``, with the parser for ``item.media_type``.

    Raises :class:`~flightdeck.errors.SourceError` naming the item for an unknown media type, binary
    content or a malformed record.
    """
    target = PARSERS.get(item.media_type)
    if target is None:
        raise SourceError(f"{item.uri}: no parser for media type {item.media_type!r}; "
                          f"supported: {', '.join(sorted(PARSERS))}")
    module, _, name = target.partition(":")
    parser: Parser = getattr(import_module(module), name)
    return parser(item, data)
