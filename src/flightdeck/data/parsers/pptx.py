"""PPTX (PowerPoint): one section per slide, under the deck title and the slide title.

Read with python-pptx (imported on first use), after the container passed the zip-bomb check. A slide's
text is its text frames (grouped shapes included) and tables, top to bottom, then its speaker notes;
the section's heading path is ``(deck title, slide title)`` and its metadata ``{"slide": n}``.
"""

from __future__ import annotations

import io
from typing import Any

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.limits import ParserOptions, check_zip_container, document_metadata, render_table
from flightdeck.data.parsers.text import title_from_uri
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["parse_pptx", "PPTX_MEDIA_TYPE"]

PPTX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def _pptx() -> Any:
    return optional_import("pptx", "pptx", "reading PPTX files")


def _frame_text(frame: Any) -> str:
    lines = [p.text.strip() for p in frame.paragraphs]
    return "\n".join(line for line in lines if line)


def _shape_texts(shapes: Any, skip: Any) -> list[str]:
    """Text of the shapes, top to bottom then left to right; ``skip`` is the title shape."""
    from pptx.shapes.group import GroupShape

    ordered = sorted(shapes, key=lambda s: (s.top if s.top is not None else 0, s.left if s.left is not None else 0))
    out: list[str] = []
    for shape in ordered:
        if skip is not None and shape.shape_id == skip.shape_id:
            continue
        if isinstance(shape, GroupShape):
            out.extend(_shape_texts(shape.shapes, None))
        elif getattr(shape, "has_table", False) and shape.has_table:
            rendered = render_table([[cell.text for cell in row.cells] for row in shape.table.rows])
            if rendered:
                out.append(rendered)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = _frame_text(shape.text_frame)
            if text:
                out.append(text)
    return out


def parse_pptx(item: SourceItem, data: bytes) -> Document:
    """Parse a ``.pptx`` item into a document with one section per slide that has text.

    The deck title is the core title property, else the first slide's title, else the file name.
    Raises :class:`~flightdeck.errors.SourceError` naming the item for a suspected zip bomb or a file
    python-pptx cannot read.
    """
    options = ParserOptions.of(item)
    pptx = _pptx()
    if not data:
        raise SourceError(f"{item.uri}: empty file (0 bytes), not a PPTX file")
    check_zip_container(data, item.uri, options, "PPTX")
    try:
        deck = pptx.Presentation(io.BytesIO(data))
        slides: list[tuple[int, str, str]] = []
        for number, slide in enumerate(deck.slides, start=1):
            title_shape = slide.shapes.title
            slide_title = " ".join(title_shape.text.split()) if title_shape is not None else ""
            texts = _shape_texts(slide.shapes, title_shape)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = _frame_text(slide.notes_slide.notes_text_frame)
                if notes:
                    texts.append(notes)
            slides.append((number, slide_title, "\n\n".join(texts)))
        core_title = (deck.core_properties.title or "").strip()
    except Exception as e:  # python-pptx raises KeyError, ValueError, lxml errors… for a broken package
        raise SourceError(f"{item.uri}: not a readable PPTX file ({type(e).__name__}: {e})") from e
    title = core_title or next((t for _, t, _ in slides if t), "") or title_from_uri(item.uri)
    sections: list[Section] = []
    for number, slide_title, text in slides:
        if not text.strip():
            continue
        path = (title, slide_title) if slide_title and slide_title != title else (title,)
        sections.append(Section(path, text, {"slide": number}))
    return Document(item.uri, item.content_hash, title, tuple(sections),
                    document_metadata(item, slide_count=len(slides)))
