"""OCR with Tesseract (through pytesseract): text and the mean word confidence of an image.

Used for image files (``.png``, ``.jpg``, ``.tif``…) and by the PDF parser for pages without a text
layer. pytesseract and Pillow are imported on first use; the ``tesseract`` binary itself comes from the
``tesseract-ocr`` Debian package (``make system-deps``).
"""

from __future__ import annotations

import io
import math
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.limits import ParserOptions, document_metadata
from flightdeck.data.parsers.text import title_from_uri
from flightdeck.errors import MissingDependencyError, SourceError
from flightdeck.registry.lookup import missing_program, optional_import

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["OcrResult", "ocr_image", "ocr_available", "require_ocr", "parse_image", "IMAGE_MEDIA_TYPES"]

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/tiff")
#: A page that takes Tesseract longer than this is given up (and reported), not waited on forever.
OCR_TIMEOUT_S = 180


@dataclass(frozen=True)
class OcrResult:
    """The text Tesseract read, in reading order, and the mean confidence (0-100) of its words."""

    text: str
    confidence: float | None  # None when no word was read
    words: int


def _pytesseract(purpose: str = "OCR") -> Any:
    return optional_import("pytesseract", "ocr", purpose)


def require_ocr(purpose: str = "OCR") -> Any:
    """pytesseract, once the tesseract program it runs is found too; else :class:`MissingDependencyError`.

    ``purpose`` begins the error's message (what needs OCR); the message says what to install.
    """
    pytesseract = _pytesseract(purpose)
    cmd = pytesseract.pytesseract.tesseract_cmd
    if shutil.which(cmd) is None:
        raise missing_program(cmd, purpose)
    return pytesseract


def ocr_available() -> str | None:
    """``None`` when OCR can run here, else why not (pytesseract or the tesseract program missing)."""
    try:
        require_ocr()
    except MissingDependencyError as e:
        return str(e)
    return None


def ocr_image(image: Image, languages: str = "eng") -> OcrResult:
    """Read the text of ``image`` (a Pillow image) with Tesseract.

    Words are grouped back into Tesseract's lines and paragraphs: the lines of a paragraph are joined
    with spaces, paragraphs are separated by a blank line. The confidence is the mean over the words
    read (Tesseract reports -1 for layout rows, which are left out). Raises
    :class:`~flightdeck.errors.MissingDependencyError` when pytesseract or the binary is missing.
    """
    pytesseract = _pytesseract()
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    try:
        data = pytesseract.image_to_data(image, lang=languages, output_type=pytesseract.Output.DICT,
                                         timeout=OCR_TIMEOUT_S)
    except pytesseract.TesseractNotFoundError as e:
        raise missing_program(pytesseract.pytesseract.tesseract_cmd, "OCR") from e
    except pytesseract.TesseractError as e:
        raise SourceError(f"tesseract failed: {e.message or e}") from e
    except RuntimeError as e:  # pytesseract's timeout
        raise SourceError(f"tesseract gave up: {e} (over {OCR_TIMEOUT_S} s)") from e
    paragraphs: dict[tuple[int, int], dict[int, list[str]]] = {}
    confidences: list[float] = []
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        if not word:
            continue
        conf = float(data["conf"][i])
        if conf >= 0:
            confidences.append(conf)
        par = paragraphs.setdefault((data["block_num"][i], data["par_num"][i]), {})
        par.setdefault(data["line_num"][i], []).append(word)
    text = "\n\n".join(" ".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values())
    confidence = round(sum(confidences) / len(confidences), 1) if confidences else None
    return OcrResult(text, confidence, len(confidences))


def fit_resolution(width_pt: float, height_pt: float, resolution: int, max_pixels: int) -> int:
    """The resolution (dpi) at which a ``width_pt`` × ``height_pt`` page stays under ``max_pixels``."""
    area_in = max(width_pt / 72.0, 0.01) * max(height_pt / 72.0, 0.01)
    return max(1, min(resolution, int(math.sqrt(max_pixels / area_in))))


def parse_image(item: SourceItem, data: bytes) -> Document:
    """OCR an image file into a document: one section per frame (a multi-page TIFF has several).

    Section metadata holds ``ocr_confidence`` (and ``page`` for multi-frame images); the document's
    metadata holds the mean confidence over all frames. Images bigger than ``max_image_pixels`` are
    refused rather than decoded.
    """
    options = ParserOptions.of(item)
    if options.ocr == "off":
        raise SourceError(f"{item.uri}: an image needs OCR, and ocr is 'off' for this source; set ocr: auto")
    _pytesseract()
    from PIL import Image, ImageSequence, UnidentifiedImageError

    title = title_from_uri(item.uri)
    sections: list[Section] = []
    confidences: list[float] = []
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > options.max_image_pixels:
                raise SourceError(f"{item.uri}: image is {width}x{height} pixels, over "
                                  f"max_image_pixels={options.max_image_pixels:,}; scale it down")
            frames = getattr(img, "n_frames", 1)
            if frames > options.max_pages:
                raise SourceError(f"{item.uri}: image has {frames} frames, over max_pages={options.max_pages}")
            for number, frame in enumerate(ImageSequence.Iterator(img), start=1):
                result = ocr_image(frame.copy(), options.ocr_languages)
                if result.confidence is not None:
                    confidences.append(result.confidence)
                if result.text.strip():
                    meta: dict[str, Any] = {"ocr_confidence": result.confidence}
                    if frames > 1:
                        meta["page"] = number
                    sections.append(Section((title,), result.text, meta))
    except SourceError as e:
        if str(e).startswith(item.uri):
            raise
        raise SourceError(f"{item.uri}: {e}") from e
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, EOFError,
            SyntaxError, KeyError, TypeError) as e:  # Pillow's plugins raise the last three for corrupt files too
        raise SourceError(f"{item.uri}: not a readable image ({e})") from e
    extra: dict[str, Any] = {"ocr_confidence": round(sum(confidences) / len(confidences), 1) if confidences
                             else None}
    return Document(item.uri, item.content_hash, title, tuple(sections), document_metadata(item, **extra))
