"""OCR with the real Tesseract (pytesseract + the tesseract-ocr binary): scans, images, and a full run.

The scans are images of text drawn here with Pillow's built-in font, embedded in PDF pages.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.limits import PARSER_OPTIONS_KEY, ParserOptions
from flightdeck.data.parsers.ocr import ocr_available
from flightdeck.data.sources.files import FilesConfig, FilesSource
from flightdeck.errors import MissingDependencyError, SourceError
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.integration

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (the dev extra) generates the test PDFs")

SCAN_LINES = ("Scanned invoice from Zebulon Freight", "The quarterly total is forty dollars.")


def scan_image(lines: tuple[str, ...] = SCAN_LINES):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (1000, 80 + 80 * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=36)
    for n, line in enumerate(lines):
        draw.text((40, 40 + 80 * n), line, fill=0, font=font)
    return img


def scanned_pdf() -> bytes:
    """A PDF whose only page is an image of text: no text layer at all."""
    out = io.BytesIO()
    scan_image().save(out, format="PDF", resolution=200)
    return out.getvalue()


def mixed_pdf() -> bytes:
    """Page 1 has a text layer; page 2 is a scan (an image only)."""
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Freight report. The scanned invoice follows on the next page.")
    pdf.add_page()
    pdf.image(scan_image(), x=10, y=10, w=180)
    return bytes(pdf.output())


def _item(uri: str, data: bytes, media_type: str = "application/pdf", **options: object) -> SourceItem:
    meta = {PARSER_OPTIONS_KEY: ParserOptions(**options).to_metadata()} if options else {}  # type: ignore[arg-type]
    return SourceItem(uri, content_hash(data), media_type, meta)


@pytest.fixture(autouse=True, scope="module")
def _tesseract_installed() -> None:
    why_not = ocr_available()
    assert why_not is None, f"these tests need OCR ({why_not}); `make test` installs tesseract-ocr"


@pytest.mark.exercises("data.preprocessing.ocr")
def test_scanned_pdf_is_ocred_with_confidence_per_page() -> None:
    data = scanned_pdf()
    doc = parse(_item("scan.pdf", data), data)  # ocr: auto is the default
    [section] = doc.sections
    assert section.text.split("\n\n") == list(SCAN_LINES)
    assert section.metadata["page"] == 1 and section.metadata["ocr_confidence"] > 50
    assert doc.metadata["ocr_pages"] == [1] and doc.metadata["ocr_confidence"] > 50
    assert "pages_without_text" not in doc.metadata


@pytest.mark.exercises("data.preprocessing.ocr")
def test_auto_ocrs_only_the_page_without_a_text_layer() -> None:
    data = mixed_pdf()
    doc = parse(_item("mixed.pdf", data), data)
    assert [(s.metadata["page"], "ocr_confidence" in s.metadata) for s in doc.sections] == [(1, False), (2, True)]
    assert doc.sections[0].text.startswith("Freight report.")
    assert "Zebulon Freight" in doc.sections[1].text and "forty dollars" in doc.sections[1].text
    assert doc.metadata["ocr_pages"] == [2]


def test_force_ocrs_pages_that_have_text_and_off_ocrs_none() -> None:
    data = mixed_pdf()
    forced = parse(_item("mixed.pdf", data, ocr="force"), data)
    assert forced.metadata["ocr_pages"] == [1, 2]
    assert "scanned invoice follows" in forced.sections[0].text
    off = parse(_item("mixed.pdf", data, ocr="off"), data)
    assert [s.metadata["page"] for s in off.sections] == [1]
    assert off.metadata["pages_without_text"] == [2] and "ocr_pages" not in off.metadata


def test_without_pytesseract_auto_warns_and_force_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytesseract", None)  # what `import` sees when it is not installed
    data = mixed_pdf()
    doc = parse(_item("mixed.pdf", data), data)
    assert [s.metadata["page"] for s in doc.sections] == [1]
    assert doc.metadata["pages_without_text"] == [2]
    assert "pip install 'flightdeck[ocr]'" in doc.metadata["ocr_skipped"]
    with pytest.raises(MissingDependencyError, match=r"mixed\.pdf: ocr is 'force' but .*flightdeck\[ocr\]"):
        parse(_item("mixed.pdf", data, ocr="force"), data)
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[ocr\]'"):
        parse(_item("note.png", b"\x89PNG", "image/png"), b"\x89PNG")


def test_image_files_are_ocred_when_included_and_refused_when_ocr_is_off(tmp_path: Path) -> None:
    scan_image().save(tmp_path / "note.png")
    src = FilesSource(FilesConfig(path=str(tmp_path), include=["*.png"]))
    [item] = list(src.scan())
    doc = parse(item, src.read(item))
    assert doc.title == "note" and "Zebulon Freight" in doc.text
    assert doc.metadata["ocr_confidence"] > 50 and doc.sections[0].metadata["ocr_confidence"] > 50
    off = FilesSource(FilesConfig(path=str(tmp_path), include=["*.png"], ocr="off"))
    assert list(off.scan()) == [] and "ocr is 'off'" in off.failures[0].reason


def test_image_over_the_pixel_limit_or_not_an_image_is_refused() -> None:
    buf = io.BytesIO()
    scan_image().save(buf, format="PNG")
    data = buf.getvalue()
    with pytest.raises(SourceError, match=r"^big\.png: image is 1000x240 pixels, over max_image_pixels=1,000"):
        parse(_item("big.png", data, "image/png", max_image_pixels=1000), data)
    with pytest.raises(SourceError, match=r"^fake\.png: not a readable image"):
        parse(_item("fake.png", b"not a png", "image/png"), b"not a png")


# --- end to end: a folder mixing every format, through Project.run with the fake embedder ---

SPEC = """\
project: mixed-formats
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources:
    - {provider: files, path: ./docs, id_field: id, title_field: question, text_fields: [question, answer]}
  chunking: {provider: recursive, size: 96, overlap: 16}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
  search: {mode: hybrid, k: 5}
"""


def _write_mixed_folder(root: Path) -> Path:
    import docx
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pptx import Presentation

    docs = root / "docs"
    (docs / "pdf").mkdir(parents=True)
    (docs / "pdf" / "mixed.pdf").write_bytes(mixed_pdf())
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "Sprocket Guide", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Sprockets must be aligned with the calibration jig before use.")
    (docs / "pdf" / "guide.pdf").write_bytes(bytes(pdf.output()))
    d = docx.Document()
    d.add_heading("Warranty", level=1)
    d.add_paragraph("The warranty lasts three years from the date of purchase.")
    d.save(str(docs / "warranty.docx"))
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Launch Plan"
    slide.placeholders[1].text = "The gizmo launches in the autumn."
    prs.save(str(docs / "launch.pptx"))
    (docs / "faq.csv").write_text("id,question,answer\nq1,Do widgets float?,No. Widgets sink in water.\n", "utf-8")
    (docs / "faq.json").write_text(json.dumps({"items": [
        {"id": "j1", "question": "Are sprockets recyclable?", "answer": "Yes, sprockets are recyclable steel."}]}),
        "utf-8")
    pq.write_table(pa.table({"id": [7], "question": ["Where are widgets made?"],
                             "answer": ["Widgets are made in Lyon."]}), docs / "faq.parquet")
    (docs / "notes.md").write_text("# Notes\n\nThe office cat is named Biscuit.\n", "utf-8")
    (root / "flightdeck.yaml").write_text(SPEC, "utf-8")
    return docs


@pytest.mark.exercises("data.preprocessing.ocr")
@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
def test_project_run_over_a_folder_mixing_every_format_finds_ocred_text(tmp_path: Path) -> None:
    _write_mixed_folder(tmp_path)
    project = Project.load(tmp_path)
    project.use(embedder=FakeEmbedder())
    summary = project.run()
    ingest = next(s for s in summary.steps if s.step == "ingest")
    assert summary.status == "succeeded" and "failures" not in ingest.counts, ingest.counts
    assert ingest.counts["documents"] == 8 and ingest.counts["parsed"] == 8

    def top(query: str) -> str:
        return project.search(query, mode="keyword").hits[0].document_id

    assert top("Zebulon Freight invoice") == "docs/pdf/mixed.pdf"  # text that exists only in the scan
    assert top("calibration jig") == "docs/pdf/guide.pdf"
    assert top("warranty three years") == "docs/warranty.docx"
    assert top("gizmo launches autumn") == "docs/launch.pptx"
    assert top("widgets float sink") == "docs/faq.csv#q1"
    assert top("sprockets recyclable steel") == "docs/faq.json#j1"
    assert top("widgets made Lyon") == "docs/faq.parquet#7"
    hit = project.search("Zebulon Freight quarterly total", mode="keyword").hits[0]
    assert hit.metadata["ocr_confidence"] > 50 and hit.metadata["page_count"] == 2
    assert hit.source_uri == (tmp_path / "docs" / "pdf" / "mixed.pdf").as_uri()
    parquet_hit = project.search("widgets made Lyon", mode="keyword").hits[0]
    assert parquet_hit.source_uri == (tmp_path / "docs").as_uri() + "/faq.parquet#7"
    assert parquet_hit.title == "Where are widgets made?"

    again = Project.load(tmp_path)
    again.use(embedder=FakeEmbedder())
    assert [s.status for s in again.run().steps] == ["skipped"] * 3  # nothing is parsed or OCRed twice
