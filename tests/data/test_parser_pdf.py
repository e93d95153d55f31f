"""PDF parsing with the real pdfplumber, on PDFs generated here with fpdf2 (and Pillow for a scan)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.limits import PARSER_OPTIONS_KEY, ParserOptions
from flightdeck.data.sources.files import FilesConfig, FilesSource
from flightdeck.errors import MissingDependencyError, SourceError

pytestmark = pytest.mark.integration

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (the dev extra) generates the test PDFs")

PDF = "application/pdf"


def manual_pdf(**encryption: str) -> bytes:
    """Two pages: a 20 pt title, 15 pt section headings, 11 pt body text and a ruled table."""
    pdf = fpdf.FPDF()
    pdf.set_title("metadata title, not used")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "Widget Manual", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Widgets are installed with the widget installer. Run it in a terminal and wait for "
                         "the sprockets to align before you continue with the setup of the frame.")
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 10, "Specifications", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "The table lists the models.")
    with pdf.table() as table:
        for cells in [("Model", "Weight", "Price"), ("W-100", "2 kg", "10 EUR"), ("W-200", "3 kg", "15 EUR")]:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.multi_cell(0, 6, "After the table comes more text.")
    pdf.add_page()
    pdf.multi_cell(0, 6, "The specifications continue on the second page.")
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 10, "Troubleshooting", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Error W42 means the sprockets are not aligned.")
    if encryption:
        pdf.set_encryption(**encryption)
    return bytes(pdf.output())


def blank_image_pdf() -> bytes:
    """One page holding only an image (a scan without text layer)."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (400, 120), 255)
    ImageDraw.Draw(img).rectangle((20, 20, 380, 100), outline=0, width=3)
    out = io.BytesIO()
    img.save(out, format="PDF", resolution=100)
    return out.getvalue()


def _item(uri: str = "manual.pdf", data: bytes = b"", **options: object) -> SourceItem:
    meta = {PARSER_OPTIONS_KEY: ParserOptions(**options).to_metadata()} if options else {}  # type: ignore[arg-type]
    return SourceItem(uri, content_hash(data), PDF, meta)


def _parse(data: bytes, uri: str = "manual.pdf", **options: object):
    return parse(_item(uri, data, **options), data)


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
def test_pdf_headings_from_font_sizes_pages_and_a_readable_table() -> None:
    doc = _parse(manual_pdf())
    assert doc.title == "Widget Manual"  # the largest heading, not the metadata title
    got = [(s.heading_path, s.metadata["page"]) for s in doc.sections]
    assert got == [
        (("Widget Manual",), 1),
        (("Widget Manual", "Specifications"), 1),
        (("Widget Manual", "Specifications"), 2),  # a page break starts a section under the same headings
        (("Widget Manual", "Troubleshooting"), 2),
    ]
    intro, specs, specs2, trouble = (s.text for s in doc.sections)
    # wrapped lines of one paragraph are joined into one line
    assert intro.startswith("Widgets are installed") and "\n" not in intro and "setup of the frame." in intro
    assert specs.split("\n\n") == [
        "The table lists the models.",
        "Model | Weight | Price\nW-100 | 2 kg | 10 EUR\nW-200 | 3 kg | 15 EUR",
        "After the table comes more text.",
    ]
    assert specs2 == "The specifications continue on the second page."
    assert trouble == "Error W42 means the sprockets are not aligned."
    assert "Specifications" not in specs  # heading text lives in the path only
    assert doc.metadata == {"page_count": 2}


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
def test_pdf_through_the_files_source_gets_limits_and_strips_them(tmp_path: Path) -> None:
    (tmp_path / "manual.pdf").write_bytes(manual_pdf())
    src = FilesSource(FilesConfig(path=str(tmp_path), max_pages=5, ocr="off"))
    [item] = list(src.scan())
    assert item.media_type == PDF
    assert item.metadata[PARSER_OPTIONS_KEY]["max_pages"] == 5
    assert item.metadata[PARSER_OPTIONS_KEY]["ocr"] == "off"
    doc = parse(item, src.read(item))
    assert PARSER_OPTIONS_KEY not in doc.metadata
    assert [s.heading_path[-1] for s in doc.sections][-1] == "Troubleshooting"
    assert src.source_uri(item) == (tmp_path / "manual.pdf").as_uri()


def test_encrypted_pdf_that_needs_a_password_is_a_clear_failure() -> None:
    with pytest.raises(SourceError, match=r"^locked\.pdf: encrypted PDF: needs a password$"):
        _parse(manual_pdf(owner_password="owner", user_password="user"), "locked.pdf")


def test_encrypted_pdf_without_user_password_is_read() -> None:
    doc = _parse(manual_pdf(owner_password="owner"))
    assert doc.title == "Widget Manual" and len(doc.sections) == 4


@pytest.mark.parametrize("data, reason", [
    (b"%PDF-1.7\nthis is not really a PDF\n", "No /Root object"),
    (b"plain text, no PDF at all", "No /Root object"),
    (None, "Unexpected EOF"),  # a PDF cut in half
    (b"", "empty file"),
])
def test_corrupt_pdf_fails_with_the_parsers_reason(data: bytes | None, reason: str) -> None:
    if data is None:
        whole = manual_pdf()
        data = whole[: len(whole) // 2]
    with pytest.raises(SourceError, match=r"^broken\.pdf: ") as err:
        _parse(data, "broken.pdf")
    assert reason in str(err.value)


def test_pdf_over_max_pages_is_refused() -> None:
    with pytest.raises(SourceError, match=r"manual\.pdf: PDF has 2 pages, over max_pages=1"):
        _parse(manual_pdf(), max_pages=1)


def test_textless_page_with_ocr_off_is_a_warning_not_a_failure() -> None:
    doc = _parse(blank_image_pdf(), "scan.pdf", ocr="off")
    assert doc.sections == ()
    assert doc.metadata["pages_without_text"] == [1] and doc.metadata["page_count"] == 1
    assert "ocr_pages" not in doc.metadata


def test_missing_pdfplumber_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pdfplumber", None)  # what `import` sees when it is not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[pdf\]'"):
        _parse(manual_pdf())


def test_limits_and_ocr_mode_are_validated_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ocr"):
        FilesConfig(path=str(tmp_path), ocr="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pages"):
        FilesConfig(path=str(tmp_path), max_pages=0)
    with pytest.raises(ValueError, match="text_fields is empty"):
        FilesConfig(path=str(tmp_path), text_fields=[])
    cfg = FilesConfig(path=str(tmp_path))
    assert (cfg.max_file_bytes, cfg.max_pages, cfg.max_unzipped_bytes, cfg.max_zip_ratio, cfg.ocr) == (
        50_000_000, 2000, 200_000_000, 100.0, "auto")


def test_scanned_pages_that_need_ocr_without_tesseract_are_document_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import flightdeck.data.parsers.ocr as ocr

    monkeypatch.setattr(ocr.shutil, "which", lambda cmd, *a, **k: None)  # no tesseract binary on PATH
    doc = _parse(blank_image_pdf(), "scans/scan.pdf")  # ocr: auto
    assert doc.sections == () and doc.metadata["pages_without_text"] == [1]
    assert doc.warnings == ("1 page(s) of scan.pdf need OCR and were left out (pages 1): OCR needs the `tesseract` "
                            "program on PATH (apt-get install tesseract-ocr)",)
    assert _parse(blank_image_pdf(), "scan.pdf", ocr="off").warnings == ()  # off: asked for, not a warning
    assert _parse(manual_pdf()).warnings == ()  # pages with text need no OCR


def test_pages_that_cannot_be_read_are_document_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import flightdeck.data.parsers.pdf as pdf_parser

    real = pdf_parser._text_blocks

    def broken_second_page(page):  # a broken content stream on page 2
        if page.page_number == 2:
            raise ValueError("bad content stream")
        return real(page)

    monkeypatch.setattr(pdf_parser, "_text_blocks", broken_second_page)
    doc = _parse(manual_pdf())
    assert doc.metadata["pages_failed"] == [2] and {s.metadata["page"] for s in doc.sections} == {1}
    assert doc.warnings == ("1 page(s) of manual.pdf could not be read and were left out (pages 2; page 2: "
                            "ValueError: bad content stream)",)


def test_a_page_whose_data_is_damaged_is_said_not_silently_shortened() -> None:
    """pdfminer reports a content stream it could only partly decompress in its log alone; the parser says it."""
    from flightdeck.testing.parser_contract import damaged

    data = damaged(manual_pdf())["nul_spliced"]
    doc = _parse(data)
    [warning] = [w for w in doc.warnings if "damaged data" in w]
    assert warning.startswith("1 page(s) of manual.pdf hold damaged data and may have lost text (pages 2; page 2: ")
    assert doc.metadata["pages_damaged"] == [2]
    intact = _parse(manual_pdf())
    assert intact.warnings == () and "pages_damaged" not in intact.metadata
