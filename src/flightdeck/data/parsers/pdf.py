"""PDF: text by page with headings from font sizes, tables kept readable, OCR for scanned pages.

Read with pdfplumber (imported on first use). Per page, characters are grouped into lines by their
position; each line's font size is kept, so that lines set clearly larger than the document's body text
become headings (bigger size = higher level) and build the heading path, as Markdown headings do.
Tables found from the page's ruling lines are taken out of the running text and put back at their place
as pipe-separated rows, header row first. Each section covers one page (a page break starts a new section
under the same headings) and says so in its metadata: ``{"page": 3}``.

Pages without a text layer are OCRed according to the ``ocr`` option (see
:class:`~flightdeck.data.parsers.limits.ParserOptions`); their sections also hold ``ocr_confidence``.
Pages that end up without text are listed in the document's ``pages_without_text``, which is a warning,
not a failure: scanned pages that could not be OCRed (``ocr: auto`` without tesseract) and pages that could
not be read are also said in the document's ``warnings``, which the run reports.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.limits import ParserOptions, document_metadata, render_table
from flightdeck.data.parsers.ocr import fit_resolution, ocr_available, ocr_image, require_ocr
from flightdeck.data.parsers.text import title_from_uri
from flightdeck.errors import MissingDependencyError, SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["parse_pdf", "PDF_MEDIA_TYPE"]

PDF_MEDIA_TYPE = "application/pdf"
_log = logging.getLogger(__name__)

#: A page with fewer non-blank characters than this has no usable text layer (a scan may still carry
#: a stamped page number or a few stray glyphs).
_MIN_TEXT_CHARS = 10
#: A line is a heading when its font size is at least this much larger than the body size, both
#: relatively and in points.
_HEADING_RATIO = 1.15
_HEADING_MIN_DELTA_PT = 1.0
_HEADING_MAX_CHARS = 200
_MAX_LEVELS = 6
_HAS_LETTER = re.compile(r"[^\W\d_]")


@dataclass
class _Block:
    top: float
    bottom: float
    text: str
    size: float | None = None  # None for tables and OCR text: never a heading
    table: bool = False


@dataclass
class _Page:
    number: int
    blocks: list[_Block] = field(default_factory=list)
    ocr_confidence: float | None = None
    ocr: bool = False
    needs_ocr: bool = False  # a scanned page (no text layer, an image) that OCR would have read


def _pdfplumber() -> Any:
    return optional_import("pdfplumber", "pdf", "reading PDF files")


def _open_error(uri: str, exc: BaseException) -> SourceError:
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    name = type(inner).__name__
    if name == "PDFPasswordIncorrect":
        return SourceError(f"{uri}: encrypted PDF: needs a password")
    if name.startswith("PDFEncryption"):
        return SourceError(f"{uri}: encrypted PDF: unsupported encryption ({inner})")
    detail = str(inner) or name
    return SourceError(f"{uri}: corrupt or not a PDF ({name}: {detail})")


def _line_size(chars: list[dict[str, Any]]) -> float | None:
    sizes = Counter(round(float(c.get("size", 0.0)), 1) for c in chars if not str(c.get("text", "")).isspace())
    return sizes.most_common(1)[0][0] if sizes else None


def _text_blocks(page: Any) -> list[_Block]:
    """The page's lines and tables, top to bottom."""
    tables = page.find_tables()
    boxes = [t.bbox for t in tables]
    blocks: list[_Block] = []
    for table, (_x0, top, _x1, bottom) in zip(tables, boxes, strict=True):
        rendered = render_table(table.extract())
        if rendered:
            blocks.append(_Block(top, bottom, rendered, table=True))

    def outside_tables(obj: dict[str, Any]) -> bool:
        if obj.get("object_type") != "char":
            return True
        cx, cy = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= cx <= x1 and t <= cy <= b for x0, t, x1, b in boxes)

    text_page = page.filter(outside_tables) if boxes else page
    for line in text_page.extract_text_lines(strip=True, return_chars=True):
        text = line["text"].strip()
        if text:
            blocks.append(_Block(float(line["top"]), float(line["bottom"]), text, _line_size(line["chars"])))
    blocks.sort(key=lambda b: b.top)
    return blocks


def _ocr_page(page: Any, options: ParserOptions) -> tuple[str, float | None]:
    resolution = fit_resolution(float(page.width), float(page.height), options.ocr_resolution,
                                options.max_image_pixels)
    image = page.to_image(resolution=resolution).original
    result = ocr_image(image, options.ocr_languages)
    return result.text, result.confidence


def _read_page(page: Any, number: int, options: ParserOptions, ocr_ok: bool) -> _Page:
    out = _Page(number)
    textless = sum(1 for c in page.chars if not str(c.get("text", "")).isspace()) < _MIN_TEXT_CHARS
    # "auto" OCRs a textless page only when it shows something (an image): a blank page stays blank.
    if ocr_ok and (options.ocr == "force" or (options.ocr == "auto" and textless and page.images)):
        text, confidence = _ocr_page(page, options)
        out.ocr, out.ocr_confidence = True, confidence
        out.blocks = [_Block(0.0, 0.0, p) for p in text.split("\n\n") if p.strip()]
        return out
    out.blocks = _text_blocks(page)
    if options.ocr == "auto" and textless:  # only said, so a page whose images cannot be listed is not lost
        with contextlib.suppress(Exception):
            out.needs_ocr = bool(page.images)
    return out


def _body_size(pages: list[_Page]) -> float | None:
    weights: Counter[float] = Counter()
    for p in pages:
        for b in p.blocks:
            if b.size is not None:
                weights[b.size] += len(b.text)
    return weights.most_common(1)[0][0] if weights else None


def _is_heading(block: _Block, body: float | None) -> bool:
    return (body is not None and block.size is not None
            and block.size >= body * _HEADING_RATIO and block.size - body >= _HEADING_MIN_DELTA_PT
            and len(block.text) <= _HEADING_MAX_CHARS and _HAS_LETTER.search(block.text) is not None)


def _sections(pages: list[_Page], default_title: str, meta_title: str) -> tuple[str, list[Section]]:
    body = _body_size(pages)
    heading_sizes = sorted({round(b.size * 2) / 2 for p in pages for b in p.blocks
                            if _is_heading(b, body) and b.size is not None}, reverse=True)
    level_of = {s: min(i + 1, _MAX_LEVELS) for i, s in enumerate(heading_sizes)}
    headings: list[tuple[int, str]] = []
    # (headings, page, paragraphs): one entry per heading or page change
    raw: list[tuple[tuple[tuple[int, str], ...], _Page, list[str]]] = []
    for page in pages:
        raw.append((tuple(headings), page, []))
        paragraph: list[str] = []
        prev: _Block | None = None
        prev_heading = False
        for block in page.blocks:
            if _is_heading(block, body) and block.size is not None:
                if paragraph:
                    raw[-1][2].append(" ".join(paragraph))
                    paragraph = []
                level = level_of[round(block.size * 2) / 2]
                if prev_heading and headings and headings[-1][0] == level:
                    # A heading set over two lines: one heading.
                    headings[-1] = (level, f"{headings[-1][1]} {block.text}")
                    raw[-1] = (tuple(headings), page, raw[-1][2])
                else:
                    while headings and headings[-1][0] >= level:
                        headings.pop()
                    headings.append((level, block.text))
                    raw.append((tuple(headings), page, []))
                prev, prev_heading = block, True
                continue
            prev_heading = False
            size = block.size or 10.0
            new_paragraph = (block.table or (prev is not None and prev.table) or prev is None
                             or block.top - prev.bottom > 0.6 * size or block.size is None)
            if new_paragraph and paragraph:
                raw[-1][2].append(" ".join(paragraph))
                paragraph = []
            if block.table:
                raw[-1][2].append(block.text)
            else:
                paragraph.append(block.text)
            prev = block
        if paragraph:
            raw[-1][2].append(" ".join(paragraph))

    title = next((h for path, _, _ in raw for lvl, h in path if lvl == 1), "") or meta_title or default_title
    sections: list[Section] = []
    for path, page, paragraphs in raw:
        text = "\n\n".join(paragraphs)
        if not text.strip():
            continue
        names = tuple(h for _, h in path)
        if not path or path[0][0] != 1:
            names = (title, *names)
        meta: dict[str, Any] = {"page": page.number}
        if page.ocr:
            meta["ocr_confidence"] = page.ocr_confidence
        sections.append(Section(names, text, meta))
    return title, sections


class _DamageReports(logging.Handler):
    """Collects what pdfminer logs at WARNING or above while pages are read: it reports damaged data (a content
    stream it could only partly decompress) in its log alone, and the text lost with it must not go unsaid."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def parse_pdf(item: SourceItem, data: bytes) -> Document:
    """Parse an ``application/pdf`` item into a document with one section per heading and page.

    Raises :class:`~flightdeck.errors.SourceError` naming the item for an encrypted PDF that needs a
    password, a corrupt file, or one with more than ``max_pages`` pages.
    """
    options = ParserOptions.of(item)
    pdfplumber = _pdfplumber()
    if not data:
        raise SourceError(f"{item.uri}: empty file (0 bytes), not a PDF")
    ocr_ok = False
    ocr_skipped = ""
    if options.ocr == "force":
        require_ocr(f"{item.uri}: ocr is 'force' but OCR")  # asked for: say what is missing, skip no page
        ocr_ok = True
    elif options.ocr != "off":
        ocr_skipped = ocr_available() or ""
        ocr_ok = not ocr_skipped
    try:
        pdf = pdfplumber.open(io.BytesIO(data))
    except Exception as e:  # pdfplumber wraps every pdfminer error in its own exception
        raise _open_error(item.uri, e) from e
    pages: list[_Page] = []
    failed: list[int] = []
    first_error = ""
    damage = _DamageReports()
    damaged: dict[int, str] = {}  # page number -> the first damage pdfminer reported while reading it
    pdfminer_log = logging.getLogger("pdfminer")
    pdfminer_log.addHandler(damage)
    try:
        try:
            count = len(pdf.pages)
        except Exception as e:
            raise _open_error(item.uri, e) from e
        if count > options.max_pages:
            raise SourceError(f"{item.uri}: PDF has {count:,} pages, over max_pages={options.max_pages:,}; "
                              "raise max_pages or exclude the file")
        for number, page in enumerate(pdf.pages, start=1):
            reported = len(damage.messages)
            try:
                pages.append(_read_page(page, number, options, ocr_ok))
                if len(damage.messages) > reported:
                    damaged[number] = damage.messages[reported]
            except MissingDependencyError:
                raise
            except Exception as e:  # one bad page (a broken content stream) does not lose the others
                failed.append(number)
                first_error = first_error or f"page {number}: {type(e).__name__}: {e}"
                _log.warning("%s: page %d skipped: %s", item.uri, number, e)
            finally:
                with contextlib.suppress(Exception):
                    page.close()
        try:
            info = pdf.metadata or {}
        except Exception:  # a broken info dictionary only costs the metadata title
            info = {}
    finally:
        pdfminer_log.removeHandler(damage)
        # Not `with pdf:`: closing walks the page tree again, and on a broken tree its error would
        # replace the clear one raised above.
        with contextlib.suppress(Exception):
            pdf.close()
    if count and len(failed) == count:
        raise SourceError(f"{item.uri}: corrupt PDF, no page could be read ({first_error})")
    meta_title = info.get("Title") if isinstance(info.get("Title"), str) else ""
    title, sections = _sections(pages, title_from_uri(item.uri), (meta_title or "").strip())
    with_text = {s.metadata["page"] for s in sections}
    extra: dict[str, Any] = {"page_count": count}
    without = [p.number for p in pages if p.number not in with_text]
    if without:
        extra["pages_without_text"] = without
        if ocr_skipped:
            extra["ocr_skipped"] = ocr_skipped
    ocr_conf = [p.ocr_confidence for p in pages if p.ocr and p.ocr_confidence is not None]
    if any(p.ocr for p in pages):
        extra["ocr_pages"] = [p.number for p in pages if p.ocr]
        extra["ocr_confidence"] = round(sum(ocr_conf) / len(ocr_conf), 1) if ocr_conf else None
    if failed:
        extra["pages_failed"] = failed
    warnings: list[str] = []
    name = item.uri.rsplit("/", 1)[-1]
    scans = [p.number for p in pages if p.needs_ocr and p.number not in with_text]
    if scans and ocr_skipped:
        warnings.append(f"{len(scans)} page(s) of {name} need OCR and were left out (pages "
                        f"{_page_list(scans)}): {ocr_skipped}")
    if failed:
        warnings.append(f"{len(failed)} page(s) of {name} could not be read and were left out (pages "
                        f"{_page_list(failed)}; {first_error})")
    if damaged:
        extra["pages_damaged"] = sorted(damaged)
        first = min(damaged)
        warnings.append(f"{len(damaged)} page(s) of {name} hold damaged data and may have lost text (pages "
                        f"{_page_list(sorted(damaged))}; page {first}: {damaged[first]})")
    return Document(item.uri, item.content_hash, title, tuple(sections), document_metadata(item, **extra),
                    warnings=tuple(warnings))


def _page_list(numbers: list[int], shown: int = 10) -> str:
    """``1, 2, 3`` or ``1, 2, … (12 in all)`` for a long list."""
    head = ", ".join(str(n) for n in numbers[:shown])
    return head if len(numbers) <= shown else f"{head}, … ({len(numbers)} in all)"
