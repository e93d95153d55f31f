"""DOCX and PPTX parsing with the real python-docx and python-pptx, on files generated here; zip bombs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.limits import PARSER_OPTIONS_KEY, ParserOptions
from flightdeck.data.sources.files import MEDIA_TYPES, FilesConfig, FilesSource
from flightdeck.errors import SourceError
from needs import needs

pytestmark = pytest.mark.integration

DOCX = MEDIA_TYPES[".docx"]
PPTX = MEDIA_TYPES[".pptx"]
# Each parser needs its library, even to refuse a file: without it parsing says MissingDependencyError first.
NEEDS_DOCX, NEEDS_PPTX = needs("docx", "docx"), needs("pptx", "pptx")


def handbook_docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph("Widget Handbook", style="Title")
    d.add_paragraph("This handbook covers every widget we sell.")
    d.add_heading("Installation", level=1)
    d.add_paragraph("Run the widget installer in a terminal.")
    d.add_heading("Requirements", level=2)
    d.add_paragraph("A frame and two sprockets.")
    table = d.add_table(rows=3, cols=2)
    for r, cells in enumerate([("Part", "Count"), ("Frame", "1"), ("Sprocket", "2")]):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    d.add_paragraph("Keep the box for the license key.")
    d.add_heading("Care", level=1)
    d.add_paragraph("Clean widgets with a soft cloth.")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def roadmap_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[0])  # title slide
    s1.shapes.title.text = "Widget Roadmap"
    s1.placeholders[1].text = "Plans for the next two quarters"
    s2 = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    s2.shapes.title.text = "Prices"
    rows = [("Model", "Price"), ("W-100", "10 EUR"), ("W-200", "15 EUR")]
    shape = s2.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(1.5))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            shape.table.cell(r, c).text = text
    box = s2.shapes.add_textbox(Inches(1), Inches(4.5), Inches(6), Inches(1))
    box.text_frame.text = "Prices include the sprockets."
    s2.notes_slide.notes_text_frame.text = "Mention the spring discount."
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def zip_bomb(path: Path, megabytes: int, name: str = "word/document.xml") -> Path:
    """A zip of ``megabytes`` MB of zeros, written as a stream: small on disk, quick to build."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open(name, "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(megabytes):
                f.write(chunk)
    return path


def _item(uri: str, data: bytes, media_type: str, **options: object) -> SourceItem:
    meta = {PARSER_OPTIONS_KEY: ParserOptions(**options).to_metadata()} if options else {}  # type: ignore[arg-type]
    return SourceItem(uri, content_hash(data), media_type, meta)


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
@NEEDS_DOCX
def test_docx_heading_styles_build_the_path_and_tables_stay_readable() -> None:
    data = handbook_docx()
    doc = parse(_item("handbook.docx", data, DOCX), data)
    assert doc.title == "Widget Handbook"
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Widget Handbook",), "This handbook covers every widget we sell."),
        (("Widget Handbook", "Installation"), "Run the widget installer in a terminal."),
        (("Widget Handbook", "Installation", "Requirements"),
         "A frame and two sprockets.\n\nPart | Count\nFrame | 1\nSprocket | 2\n\nKeep the box for the license key."),
        (("Widget Handbook", "Care"), "Clean widgets with a soft cloth."),
    ]
    assert doc.metadata == {}


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
@NEEDS_PPTX
def test_pptx_one_section_per_slide_with_deck_and_slide_titles() -> None:
    data = roadmap_pptx()
    doc = parse(_item("roadmap.pptx", data, PPTX), data)
    assert doc.title == "Widget Roadmap"
    assert [(s.heading_path, s.metadata) for s in doc.sections] == [
        (("Widget Roadmap",), {"slide": 1}),
        (("Widget Roadmap", "Prices"), {"slide": 2}),
    ]
    assert doc.sections[0].text == "Plans for the next two quarters"
    assert doc.sections[1].text.split("\n\n") == [
        "Model | Price\nW-100 | 10 EUR\nW-200 | 15 EUR",
        "Prices include the sprockets.",
        "Mention the spring discount.",  # speaker notes last
    ]
    assert doc.metadata == {"slide_count": 2}


@needs("docx,pptx", "docx", "pptx")
def test_office_files_through_the_files_source(tmp_path: Path) -> None:
    (tmp_path / "handbook.docx").write_bytes(handbook_docx())
    (tmp_path / "roadmap.pptx").write_bytes(roadmap_pptx())
    src = FilesSource(FilesConfig(path=str(tmp_path)))
    items = list(src.scan())
    assert [(i.uri, i.media_type) for i in items] == [("handbook.docx", DOCX), ("roadmap.pptx", PPTX)]
    titles = [parse(i, src.read(i)).title for i in items]
    assert titles == ["Widget Handbook", "Widget Roadmap"] and src.failures == []


@NEEDS_DOCX
def test_zip_bomb_docx_is_refused_without_inflating_it(tmp_path: Path) -> None:
    data = zip_bomb(tmp_path / "bomb.docx", 300).read_bytes()
    assert len(data) < 3_000_000  # 300 MB of zeros, compressed
    with pytest.raises(SourceError, match=r"^bomb\.docx: zip bomb suspected: 314,572,8\d\d bytes uncompressed, "
                                          r"over max_unzipped_bytes=200,000,000"):
        parse(_item("bomb.docx", data, DOCX, max_unzipped_bytes=200_000_000), data)


@NEEDS_PPTX
def test_zip_bomb_by_compression_ratio_under_the_size_limit(tmp_path: Path) -> None:
    data = zip_bomb(tmp_path / "deck.pptx", 20, name="ppt/slides/slide1.xml").read_bytes()
    with pytest.raises(SourceError, match=r"^deck\.pptx: zip bomb suspected: 'ppt/slides/slide1\.xml' inflates "
                                          r"\d[\d,]*x .*over max_zip_ratio=100"):
        parse(_item("deck.pptx", data, PPTX), data)
    # with a generous ratio the check passes and python-pptx then finds the package broken
    with pytest.raises(SourceError, match=r"^deck\.pptx: not a readable PPTX file"):
        parse(_item("deck.pptx", data, PPTX, max_zip_ratio=100_000), data)


@pytest.mark.parametrize("uri, media_type", [pytest.param("x.docx", DOCX, marks=NEEDS_DOCX),
                                             pytest.param("x.pptx", PPTX, marks=NEEDS_PPTX)])
def test_not_a_zip_and_empty_office_files(uri: str, media_type: str) -> None:
    with pytest.raises(SourceError, match=rf"^x\.{uri[-4:]}: not a valid {uri[-4:].upper()} file \(not a zip"):
        parse(_item(uri, b"hello, not a zip", media_type), b"hello, not a zip")
    with pytest.raises(SourceError, match=r"empty file \(0 bytes\)"):
        parse(_item(uri, b"", media_type), b"")
