"""DOCX (Word): paragraphs under their ``Heading N`` styles, tables kept readable.

Read with python-docx (imported on first use), after the container passed the zip-bomb check. The body
is walked in document order: a paragraph styled ``Heading 1``…``Heading 9`` starts a section and sets the
heading path (as Markdown headings do), other paragraphs are the section's text, and tables are rendered
as pipe-separated rows, header row first. Headers, footers and comments are page furniture and left out.
"""

from __future__ import annotations

import io
import re
from typing import Any

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.limits import ParserOptions, check_zip_container, document_metadata, render_table
from flightdeck.data.parsers.text import title_from_uri
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["parse_docx", "DOCX_MEDIA_TYPE"]

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)


def _docx() -> Any:
    return optional_import("docx", "docx", "reading DOCX files")


def _style_name(paragraph: Any) -> str:
    try:
        style = paragraph.style
    except (KeyError, ValueError):  # a style id the styles part does not define
        return ""
    return (style.name or "") if style is not None else ""


def _table_rows(table: Any) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells, previous = [], None
        for cell in row.cells:
            # python-docx repeats a merged cell once per grid column it spans: keep it once.
            if previous is not None and cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(cell.text)
        rows.append(cells)
    return rows


def parse_docx(item: SourceItem, data: bytes) -> Document:
    """Parse a ``.docx`` item into a document with one section per heading.

    The title is the first paragraph styled ``Title``, else the document's core title property, else
    the first ``Heading 1``, else the file name. Raises :class:`~flightdeck.errors.SourceError` naming
    the item for a suspected zip bomb or a file python-docx cannot read.
    """
    options = ParserOptions.of(item)
    docx = _docx()
    if not data:
        raise SourceError(f"{item.uri}: empty file (0 bytes), not a DOCX file")
    check_zip_container(data, item.uri, options, "DOCX")
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
        core_title = (document.core_properties.title or "").strip()
    except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors… for a broken package
        raise SourceError(f"{item.uri}: not a readable DOCX file ({type(e).__name__}: {e})") from e

    headings: list[tuple[int, str]] = []
    raw: list[tuple[tuple[tuple[int, str], ...], list[str]]] = [((), [])]
    style_title = ""
    try:
        for block in blocks:
            if isinstance(block, Table):
                rendered = render_table(_table_rows(block))
                if rendered:
                    raw[-1][1].append(rendered)
                continue
            text = block.text.strip()
            if not text:
                continue
            style = _style_name(block)
            if style.lower() == "title":
                style_title = style_title or text
                continue
            if m := _HEADING_STYLE.match(style):
                level = int(m.group(1))
                while headings and headings[-1][0] >= level:
                    headings.pop()
                headings.append((level, text))
                raw.append((tuple(headings), []))
                continue
            raw[-1][1].append(text)
    except Exception as e:
        raise SourceError(f"{item.uri}: not a readable DOCX file ({type(e).__name__}: {e})") from e

    first_h1 = next((h for path, _ in raw for lvl, h in path if lvl == 1), "")
    explicit_title = style_title or core_title
    title = explicit_title or first_h1 or title_from_uri(item.uri)
    sections: list[Section] = []
    for path, paragraphs in raw:
        if not paragraphs:
            continue
        names = tuple(h for _, h in path)
        # Every path starts with the title: the document's own, or its first H1 (as in Markdown).
        if not path or path[0][0] != 1 or (explicit_title and names[0] != title):
            names = (title, *names)
        sections.append(Section(names, "\n\n".join(paragraphs)))
    return Document(item.uri, item.content_hash, title, tuple(sections), document_metadata(item))
