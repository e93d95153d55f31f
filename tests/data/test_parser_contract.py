"""Every parser of ``PARSERS`` passes the parser contract (:mod:`flightdeck.testing.parser_contract`), once per
media type.

The samples are the documents the parsers' own tests build, reused from their modules: the manual of
test_parser_pdf.py (fpdf2), the handbook and the roadmap of test_parser_office.py (python-docx, python-pptx) and
the scan of test_parser_ocr.py (Pillow), saved as PNG, JPEG and TIFF. CSV, JSON, JSON Lines and Parquet files are
not parser media types: the files source reads their rows (:mod:`flightdeck.data.parsers.tabular`) and hands each
one over as an ``application/x-record`` item, whose parser runs the contract here.
"""

from __future__ import annotations

import io
import json

import pytest

from flightdeck.data.parsers import PARSERS
from flightdeck.data.parsers.ocr import ocr_available
from flightdeck.testing.parser_contract import ParserContract
from needs import need, needs

pytestmark = pytest.mark.integration

#: Bytes no text-like format reads: NUL bytes mean a binary file.
BINARY = b"\x00\x01\x02\x03 binary \x00 bytes \xff\xfe\x00"


class _Contract(ParserContract):
    MEDIA_TYPE = ""  # the media type of PARSERS the class covers (checked for all of them below)


# --- text formats (decoded by flightdeck.data.parsers.decoding) ------------------------------------------------
class TestTextParser(_Contract):
    MEDIA_TYPE = "text/plain"

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        return self.MEDIA_TYPE, b"Widgets are small machines.\nThey hum quietly when they work.\n"

    @pytest.fixture
    def garbage(self) -> bytes:
        return BINARY

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("small machines", "hum quietly")

    @pytest.fixture
    def heading(self) -> str:
        return "sample"  # the file name of the item's uri: plain text has no headings of its own


class TestMarkdownParser(_Contract):
    MEDIA_TYPE = "text/markdown"

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        text = ("# Widget Guide\n\nWidgets are small machines.\n\n## Installing\n\nRun the installer.\n\n"
                "```\n# not a heading, a comment in code\n```\n\n## Care\n\nOil them weekly.\n")
        return self.MEDIA_TYPE, text.encode()

    @pytest.fixture
    def garbage(self) -> bytes:
        return BINARY

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("small machines", "Run the installer", "a comment in code", "Oil them weekly")

    @pytest.fixture
    def heading(self) -> str:
        return "Installing"


class TestHtmlParser(_Contract):
    MEDIA_TYPE = "text/html"

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        html = ("<html><head><title>Widgets</title></head><body><nav>Home | Shop</nav><main>"
                "<h1>Widget Guide</h1><p>Widgets are small machines.</p><h2>Installing</h2>"
                "<ul><li>Run the installer.</li><li>Align the sprockets.</li></ul><h2>Care</h2>"
                "<p>Oil them weekly.</p></main><footer>(c) Widgets Inc.</footer></body></html>")
        return self.MEDIA_TYPE, html.encode()

    @pytest.fixture
    def garbage(self) -> bytes:
        return BINARY

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("small machines", "Run the installer", "Align the sprockets", "Oil them weekly")

    @pytest.fixture
    def heading(self) -> str:
        return "Installing"


# --- records (a line of .jsonl; a row of .csv, .json or .parquet) ----------------------------------------------
class TestRecordParser(_Contract):
    MEDIA_TYPE = "application/x-record"

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        record = {"_id": "r1", "title": "Sprockets", "text": "Sprockets come in pairs. Oil them weekly.", "year": 2020}
        return self.MEDIA_TYPE, json.dumps(record).encode()

    @pytest.fixture
    def garbage(self) -> bytes:
        return b'{"_id": "r1", "text": '  # a line cut short

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("come in pairs", "Oil them weekly")

    @pytest.fixture
    def heading(self) -> str:
        return "Sprockets"


# --- binary documents -------------------------------------------------------------------------------------------
@needs("pdf", "pdfplumber")
class TestPdfParser(_Contract):
    MEDIA_TYPE = "application/pdf"

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        need("dev", "fpdf")  # fpdf2 writes the test PDF
        from test_parser_pdf import manual_pdf

        return self.MEDIA_TYPE, manual_pdf()

    @pytest.fixture
    def garbage(self) -> bytes:
        return b"plain text, no PDF at all"

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("installed with the widget installer", "The table lists the models", "W-200",
                "After the table comes more text", "continue on the second page", "Error W42")

    @pytest.fixture
    def heading(self) -> str:
        return "Troubleshooting"


@needs("docx", "docx")
class TestDocxParser(_Contract):
    MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        from test_parser_office import handbook_docx

        return self.MEDIA_TYPE, handbook_docx()

    @pytest.fixture
    def garbage(self) -> bytes:
        return b"not a zip container at all"

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("covers every widget", "Run the widget installer", "A frame and two sprockets", "Sprocket | 2",
                "Keep the box", "soft cloth")

    @pytest.fixture
    def heading(self) -> str:
        return "Requirements"


@needs("pptx", "pptx")
class TestPptxParser(_Contract):
    MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        from test_parser_office import roadmap_pptx

        return self.MEDIA_TYPE, roadmap_pptx()

    @pytest.fixture
    def garbage(self) -> bytes:
        return b"not a zip container at all"

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("Plans for the next two quarters", "W-100 | 10 EUR", "Prices include the sprockets",
                "spring discount")

    @pytest.fixture
    def heading(self) -> str:
        return "Prices"


# --- images, read by OCR ----------------------------------------------------------------------------------------
@needs("ocr", "pytesseract", "PIL")
class _ImageContract(_Contract):
    FORMAT = ""  # Pillow's name of the image format

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:
        why_not = ocr_available()
        if why_not is not None:
            pytest.skip(why_not)  # the tesseract program is a system package (make system-deps)
        need("dev", "fpdf")  # test_parser_ocr.py makes PDFs too, with fpdf2
        from test_parser_ocr import scan_image

        out = io.BytesIO()
        scan_image().save(out, format=self.FORMAT, **({"quality": 95} if self.FORMAT == "JPEG" else {}))
        return self.MEDIA_TYPE, out.getvalue()

    @pytest.fixture
    def garbage(self) -> bytes:
        return b"not an image"

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ("Zebulon Freight", "forty dollars")

    @pytest.fixture
    def heading(self) -> str:
        return "sample"  # the file name of the item's uri


class TestPngParser(_ImageContract):
    MEDIA_TYPE, FORMAT = "image/png", "PNG"


class TestJpegParser(_ImageContract):
    MEDIA_TYPE, FORMAT = "image/jpeg", "JPEG"


class TestTiffParser(_ImageContract):
    MEDIA_TYPE, FORMAT = "image/tiff", "TIFF"


def test_every_media_type_of_parsers_runs_the_contract() -> None:
    covered = [cls.MEDIA_TYPE for cls in globals().values()
               if isinstance(cls, type) and issubclass(cls, _Contract) and cls.__name__.startswith("Test")]
    assert sorted(covered) == sorted(PARSERS), "give each media type of PARSERS a contract class here"
