"""What the parsers of binary documents share: their options, safety limits and small helpers.

Parsers are called as ``parse(item, data)`` and never see the source's config, so the source puts the
options a parser needs (OCR mode, page and unzip limits) into the item's metadata under
:data:`PARSER_OPTIONS_KEY` at scan time; the parser reads them with :meth:`ParserOptions.of` and leaves
them out of the document's metadata (:func:`document_metadata`).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import asdict, dataclass, fields
from typing import Any

from flightdeck.data.documents import SourceItem
from flightdeck.errors import SourceError

__all__ = [
    "PARSER_OPTIONS_KEY",
    "ParserOptions",
    "document_metadata",
    "check_zip_container",
    "render_table",
    "ZIP_RATIO_MIN_ENTRY_BYTES",
]

#: Item metadata key holding the :class:`ParserOptions` of a binary document, as a plain dict.
PARSER_OPTIONS_KEY = "parser_options"
#: The compression ratio is only judged for entries bigger than this: a tiny, highly compressible
#: part (an empty XML skeleton) is harmless whatever its ratio.
ZIP_RATIO_MIN_ENTRY_BYTES = 1_000_000


@dataclass(frozen=True)
class ParserOptions:
    """Options and limits of the document parsers (set from ``FilesConfig`` by the files source).

    ``ocr``: ``"auto"`` OCRs PDF pages without a text layer (when pytesseract is installed),
    ``"force"`` OCRs every page, ``"off"`` never OCRs. ``max_pages`` refuses longer PDFs;
    ``max_unzipped_bytes`` and ``max_zip_ratio`` refuse suspected zip bombs among ``.docx``/``.pptx``;
    ``max_image_pixels`` caps what a page is rendered to (or an image may hold) before OCR.
    """

    ocr: str = "auto"
    ocr_languages: str = "eng"
    ocr_resolution: int = 200
    max_pages: int = 2000
    max_unzipped_bytes: int = 200_000_000
    max_zip_ratio: float = 100.0
    max_image_pixels: int = 50_000_000

    @classmethod
    def of(cls, item: SourceItem) -> ParserOptions:
        """The options in ``item.metadata`` (defaults for those missing, unknown keys ignored)."""
        raw = item.metadata.get(PARSER_OPTIONS_KEY) or {}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-friendly dict to put under :data:`PARSER_OPTIONS_KEY`."""
        return asdict(self)


def document_metadata(item: SourceItem, **extra: Any) -> dict[str, Any]:
    """The item's metadata without the parser options, updated with ``extra``."""
    meta = {k: v for k, v in item.metadata.items() if k != PARSER_OPTIONS_KEY}
    meta.update(extra)
    return meta


def check_zip_container(data: bytes, uri: str, options: ParserOptions, kind: str) -> None:
    """Refuse a zip container (``.docx``, ``.pptx``) that is not a zip or looks like a zip bomb.

    Judged from the sizes the archive declares, without inflating anything; the declared sizes are
    binding, since :mod:`zipfile` stops reading an entry at its declared size (and then fails its CRC),
    so an archive cannot hide a bigger payload behind small numbers.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            entries = zf.infolist()
    except Exception as e:  # BadZipFile, NotImplementedError (an unknown zip version), OSError…
        raise SourceError(f"{uri}: not a valid {kind} file (not a zip container: {e})") from e
    total = sum(e.file_size for e in entries)
    if total > options.max_unzipped_bytes:
        raise SourceError(f"{uri}: zip bomb suspected: {total:,} bytes uncompressed, over "
                          f"max_unzipped_bytes={options.max_unzipped_bytes:,}; raise the limit if the file "
                          "is genuine")
    for e in entries:
        if e.file_size > ZIP_RATIO_MIN_ENTRY_BYTES:
            ratio = e.file_size / max(e.compress_size, 1)
            if ratio > options.max_zip_ratio:
                raise SourceError(f"{uri}: zip bomb suspected: {e.filename!r} inflates {ratio:,.0f}x "
                                  f"({e.file_size:,} bytes), over max_zip_ratio={options.max_zip_ratio:g}")


_CELL_SPACE = re.compile(r"\s+")


def render_table(rows: list[list[Any]]) -> str:
    """A table as readable text: one line per row, cells separated by `` | ``, header row first.

    Cells are flattened to one line; rows and columns that are empty throughout are dropped.
    """
    cells = [[_CELL_SPACE.sub(" ", "" if c is None else str(c)).strip() for c in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return ""
    width = max(len(row) for row in cells)
    cells = [row + [""] * (width - len(row)) for row in cells]
    keep = [i for i in range(width) if any(row[i] for row in cells)]
    return "\n".join(" | ".join(row[i] for i in keep) for row in cells)
