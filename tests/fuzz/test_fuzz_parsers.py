"""Fuzz the document parsers: any bytes give a ``Document`` or a ``FlightdeckError`` that names the document.

For every media type of :data:`flightdeck.data.parsers.PARSERS` (text, Markdown, HTML, records, PDF, DOCX,
PPTX, images) and the tabular readers (CSV, JSON): arbitrary bytes, structured text (Markdown lines, HTML
tag soup nested thousands deep, huge attributes, JSON records) and mutations of real documents written
here (a PDF with fpdf2, compressed and not, a DOCX, a PPTX, a PNG: bytes flipped, cut, inserted,
duplicated). A parsed document's text is valid Unicode (it must encode as UTF-8 for hashing and storage)
and has no empty section. See ``fuzzing.py`` for running them longer.
"""

from __future__ import annotations

import io
import json
import time
from functools import cache

import pytest
from fuzzing import fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from flightdeck.data.documents import Document, SourceItem
from flightdeck.data.parsers import PARSERS, parse
from flightdeck.data.parsers.limits import PARSER_OPTIONS_KEY, ParserOptions
from flightdeck.data.parsers.tabular import ColumnMapping, RowError, csv_columns, read_csv, read_json
from flightdeck.errors import FlightdeckError, MissingDependencyError, SourceError
from needs import needs

# Pillow warns about the corrupt images it is fed here (on purpose): not news in the test summary
pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning:PIL")]

MARKDOWN, HTML, RECORD, PDF = "text/markdown", "text/html", "application/x-record", "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PNG, JPEG, TIFF = "image/png", "image/jpeg", "image/tiff"
URI = "corpus/fuzz-Ä b.doc"  # a URI that must show in every error as is
# The longest one parse may take: the Markdown heading pattern took 32 s on a 50 kB line before the fix.
SECONDS = 10.0

# The parsers of these types need an extra (the others need nothing beyond the base install); the images need
# pytesseract and Pillow, or say MissingDependencyError, which _check accepts for them.
PARSER_EXTRA = {PDF: needs("pdf", "pdfplumber"), DOCX: needs("docx", "docx"), PPTX: needs("pptx", "pptx")}
# what writes the documents that are mutated: fpdf2 (the dev extra) and the parsers' own libraries; Pillow
# (which the ocr and pdf extras bring) the images
_PDF_SAMPLE, _IMAGE_SAMPLE = needs("dev,pdf", "fpdf", "pdfplumber"), needs("ocr", "PIL")
SAMPLE_NEEDS = {"pdf": _PDF_SAMPLE, "pdf-uncompressed": _PDF_SAMPLE, "docx": PARSER_EXTRA[DOCX],
                "pptx": PARSER_EXTRA[PPTX], "png": _IMAGE_SAMPLE, "jpeg": _IMAGE_SAMPLE, "tiff": _IMAGE_SAMPLE}


def _item(media_type: str, **options: object) -> SourceItem:
    # OCR off for PDFs: whether tesseract is installed must not change what the fuzz tests run, nor their time
    options = {"ocr": "off", **options} if media_type == PDF else options
    meta = {PARSER_OPTIONS_KEY: ParserOptions(**options).to_metadata()} if options else {}  # type: ignore[arg-type]
    return SourceItem(URI, "hash", media_type, meta)


def _valid_text(s: str) -> None:
    s.encode("utf-8")  # no lone surrogates: chunk ids hash the text as UTF-8, and stores encode it


def _check(media_type: str, data: bytes, **options: object) -> Document | FlightdeckError:
    """Parse ``data``: a well-formed Document, or a FlightdeckError whose message names the document."""
    start = time.monotonic()
    try:
        doc: Document | FlightdeckError = parse(_item(media_type, **options), data)
    except MissingDependencyError as e:  # an image needs the tesseract binary, which may not be installed
        assert media_type in (PNG, JPEG, TIFF), e
        return e
    except FlightdeckError as e:
        assert URI in str(e), str(e)
        return e
    else:
        assert doc.uri == URI
        _valid_text(doc.title)
        for section in doc.sections:
            assert isinstance(section.heading_path, tuple)
            assert section.text.strip(), section
            _valid_text(section.text)
            for heading in section.heading_path:
                assert isinstance(heading, str)
                _valid_text(heading)
    finally:
        assert time.monotonic() - start < SECONDS
    return doc


# --- documents to mutate ----------------------------------------------------------------------------------------

@cache
def sample_pdf(compress: bool) -> bytes:
    import fpdf

    pdf = fpdf.FPDF()
    pdf.set_compression(compress)
    pdf.set_title("Fuzz manual")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "Widget Manual", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Widgets are installed with the widget installer.")
    with pdf.table() as table:
        for cells in [("Model", "Price"), ("W-100", "10 EUR")]:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.add_page()
    pdf.multi_cell(0, 6, "The second page.")
    return bytes(pdf.output())


@cache
def sample_docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph("Handbook", style="Title")
    d.add_heading("Installation", level=1)
    d.add_paragraph("Run the installer.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(1, 1).text = "Part", "2"
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


@cache
def sample_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "Prices"
    slide.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1)).text_frame.text = "W-100 costs 10 EUR."
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


@cache
def sample_image(fmt: str) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("L", (60, 20), 255)
    ImageDraw.Draw(img).text((2, 4), "Hi", fill=0)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


@st.composite
def _mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "cut", "truncate", "insert", "duplicate", "zero"]))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
                [b"(", b")", b"<<", b">>", b"[", b"]", b" 0 R", b"obj", b"endstream", b"\xff" * 8, b"<w:p>", b"PK"]))
        elif kind == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 256))]
        elif kind == "zero" and data:
            end = at + draw(st.integers(1, 32))
            data[at:end] = bytes(len(data[at:end]))
    return bytes(data)


# --- regressions ------------------------------------------------------------------------------------------------

def _nested(tag: str, depth: int) -> bytes:
    return f"<html><body>{f'<{tag}>' * depth}deep text{f'</{tag}>' * depth}</body></html>".encode()


@pytest.mark.parametrize("tag", ["div", "span", "td", "li", "font"])
def test_html_nested_thousands_deep_is_parsed(tag):
    # RecursionError in the section walk: html.parser nests unclosed tags, as legacy pages have thousands of
    doc = _check(HTML, _nested(tag, 5000))
    assert isinstance(doc, Document)
    assert doc.text == "deep text"


def test_markdown_heading_with_a_long_run_of_blanks_is_quick():
    # The heading patterns backtracked quadratically: 32 s for this 50 kB line, minutes for 100 kB
    data = b"# Title" + b" " * 100_000 + b"end #\n\n## Part " + b"\t" * 100_000 + b"#" * 3 + b"\nbody\n"
    start = time.monotonic()
    doc = _check(MARKDOWN, data)
    assert time.monotonic() - start < 2.0
    assert isinstance(doc, Document)
    assert doc.sections[0].heading_path == ("Title" + " " * 100_000 + "end", "Part")


@pytest.mark.parametrize("data,message", [
    (b"[" * 100_000, "nested too deeply"),  # RecursionError from json.loads
    (b'{"text": "a", "n": 1' + b"0" * 5000 + b"}", "not valid JSON"),  # ValueError: over 4300 digits
])
def test_records_that_crashed_are_source_errors(data, message):
    err = _check(RECORD, data)
    assert isinstance(err, SourceError)
    assert message in str(err)


def test_record_lone_surrogates_become_replacement_characters():
    # JSON's "\ud800" escapes gave text that no UTF-8 store or hash accepts (UnicodeEncodeError downstream)
    data = b'{"text": "caf\\ud800 ok", "title": "T\\udfff", "tag\\ud800": "x\\udc00", "n": 3}'
    doc = _check(RECORD, data)
    assert isinstance(doc, Document)
    assert (doc.title, doc.text) == ("T\ufffd", "caf\ufffd ok")
    assert doc.metadata == {"tag\ufffd": "x\ufffd", "n": 3}
    # a proper pair escaped as two surrogates is one character, and stays
    assert _check(RECORD, b'{"text": "\\ud83d\\ude00"}').text == "\U0001F600"


@pytest.mark.parametrize("data", [b"[" * 100_000, b'[{"_id": 1' + b"0" * 5000 + b"}]"])
def test_json_files_that_crashed_are_source_errors(data):
    with pytest.raises(SourceError, match="rows.json"):
        list(read_json(data, "rows.json"))


def _png_with_short_idat() -> bytes:
    png = sample_image("PNG")
    at = png.index(b"IDAT")
    length = int.from_bytes(png[at - 4:at], "big")
    return png[:at - 4] + (length - 8).to_bytes(4, "big") + png[at:]


def _tiff_without_dimensions() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("L", (40, 20), 255)
    ImageDraw.Draw(img).rectangle((2, 2, 30, 15), outline=0)
    out = io.BytesIO()
    img.save(out, format="TIFF")
    tiff = bytearray(out.getvalue())
    tiff[118] = 0xFF  # a tag's type byte
    return bytes(tiff)


@needs("ocr", "PIL", "pytesseract")
@pytest.mark.parametrize("media_type,data,error", [
    (PNG, _png_with_short_idat, "SyntaxError"),  # Pillow: "broken PNG file (chunk ...)"
    (TIFF, _tiff_without_dimensions, "TypeError"),  # Pillow: "Missing dimensions"
])
def test_corrupt_images_that_crashed_are_source_errors(media_type, data, error):
    from PIL import Image, ImageSequence

    with pytest.raises(Exception) as raw:  # what Pillow itself raises: not one of the errors caught before
        with Image.open(io.BytesIO(data())) as img:
            for frame in ImageSequence.Iterator(img):
                frame.copy()
    assert type(raw.value).__name__ == error
    err = _check(media_type, data())
    assert isinstance(err, SourceError)
    assert "not a readable image" in str(err)


def test_csv_with_old_mac_line_ends_is_read():
    # csv.Error ("new-line character seen in unquoted field"): the header was cut at "\n" only
    mapping = ColumnMapping()
    text, header = csv_columns(b"_id,text\r1,hello\r2,world\r", "rows.csv", mapping)
    assert header == ["_id", "text"]
    assert [mapping.record(row) for _, row in read_csv(text, "rows.csv", mapping)] == [
        ("1", {"_id": "1", "text": "hello"}), ("2", {"_id": "2", "text": "world"})]


# --- properties -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("media_type", [pytest.param(t, marks=PARSER_EXTRA.get(t, ())) for t in sorted(PARSERS)])
@given(data=st.binary(max_size=600))
@fuzz_settings(25)
@example(data=b"")
@example(data=b"\x00")
@example(data=b"\xff\xfe\x00\xd8")  # UTF-16 with a lone surrogate
@example(data=b"\xef\xbb\xbf\xed\xa0\x80")  # UTF-8 BOM, then an encoded surrogate
@example(data=b"%PDF-1.4\n%%EOF")
@example(data=b"PK\x05\x06" + bytes(18))  # an empty zip
def test_arbitrary_bytes(media_type, data):
    _check(media_type, data)


_md_lines = st.lists(st.one_of(
    st.sampled_from(["# Title", "## Part", "###### six", "####### seven", "# ", "#", "# C# #", "   ## indented #",
                     "```", "~~~", "````python", "", " ", "\t", "---", "text", "> quote", "- item", "\u200b",
                     "# \u200b", "#\ttab"]),
    st.text(max_size=30),
), max_size=40)


@given(_md_lines, st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\u2028"]))
@fuzz_settings(80)
def test_markdown_lines(lines, newline):
    _check(MARKDOWN, newline.join(lines).encode("utf-8"))


_TAGS = ["div", "p", "span", "h1", "h2", "h6", "pre", "br", "td", "th", "tr", "table", "li", "ul", "nav", "script",
         "style", "main", "article", "a", "title", "head", "body", "html", "svg", "template", "code", "font", "!--",
         "![CDATA[", "?xml"]


@st.composite
def _html(draw: st.DrawFn) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 40))):
        tag = draw(st.sampled_from(_TAGS))
        kind = draw(st.sampled_from(["open", "close", "text", "attr", "entity"]))
        if kind == "open":
            parts.append(f"<{tag}>")
        elif kind == "close":
            parts.append(f"</{tag}>")
        elif kind == "text":
            parts.append(draw(st.text(max_size=20)))
        elif kind == "attr":
            value = draw(st.sampled_from(["main", "body", "headerlink", "x" * 5000]) | st.text(max_size=10))
            name = draw(st.sampled_from(["role", "class", "id", "href", "data-x"]))
            parts.append(f"<{tag} {name}=\"{value}\">")
        else:
            parts.append(draw(st.sampled_from(["&amp;", "&#xd800;", "&#55296;", "&#0;", "&#x110000;", "&nbsp;",
                                               "&bogus;", "&#x1F600;", "&"])))
    return "".join(parts)


@given(_html(), st.integers(0, 3000), st.sampled_from(["div", "span", "p", "h2", "pre", "td", "nav", "a"]))
@fuzz_settings(60)
@example("<p>&#xd800; &#55296; &#0;</p>", 0, "div")
@example('<div role="main"><h1>T<a class="headerlink">¶</a></h1>x</div>', 2000, "td")
def test_html_tag_soup(html, depth, tag):
    _check(HTML, (f"<{tag}>" * depth + html + f"</{tag}>" * (depth // 2)).encode("utf-8"))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["_id", "title", "text", "lang"]) | st.text(max_size=5), inner, max_size=4),
    max_leaves=10)


@given(st.one_of(
    _json_values,
    st.fixed_dictionaries({"text": _json_values}, optional={"title": _json_values, "_id": _json_values}),
))
@fuzz_settings(80)
def test_json_records(record):
    _check(RECORD, json.dumps(record).encode("utf-8"))


@pytest.mark.parametrize("name", [pytest.param(name, marks=SAMPLE_NEEDS[name]) for name in
                                  ["pdf", "pdf-uncompressed", "docx", "pptx", "png", "jpeg", "tiff"]])
@given(data=st.data())
@fuzz_settings(20)
def test_mutated_real_documents(name, data):
    original, media_type = {
        "pdf": (lambda: sample_pdf(True), PDF),
        "pdf-uncompressed": (lambda: sample_pdf(False), PDF),
        "docx": (sample_docx, DOCX),
        "pptx": (sample_pptx, PPTX),
        "png": (lambda: sample_image("PNG"), PNG),
        "jpeg": (lambda: sample_image("JPEG"), JPEG),
        "tiff": (lambda: sample_image("TIFF"), TIFF),
    }[name]
    _check(media_type, data.draw(_mutated(original()), label="mutated"))


@needs("dev,pdf,docx,pptx", "fpdf", "pdfplumber", "docx", "pptx")
def test_the_unmutated_documents_parse():
    # the mutation tests start from documents that parse, so what they find is due to the mutation
    for data, media_type in [(sample_pdf(True), PDF), (sample_pdf(False), PDF), (sample_docx(), DOCX),
                             (sample_pptx(), PPTX)]:
        doc = _check(media_type, data)
        assert isinstance(doc, Document) and doc.sections, media_type


_csv_cells = st.text(alphabet=st.sampled_from(list("ab1 ,;|\t\"'\n\r\\é") + ["\u2028"]), max_size=12)


@given(st.one_of(
    st.binary(max_size=300),
    st.lists(st.lists(_csv_cells, max_size=5), max_size=8).map(
        lambda rows: "\n".join(",".join(r) for r in [["_id", "title", "text"], *rows]).encode("utf-8")),
))
@fuzz_settings(100)
@example(b'_id,text\n1,"unclosed\n2,b\n')
@example(b"_id;text\n1;" + b"x" * 200_000 + b"\n")
@example(b"\r\x01")  # csv.Error from the header's delimiter probe
def test_csv_rows_become_records_or_say_which_line_is_wrong(data):
    mapping = ColumnMapping()
    try:
        text, header = csv_columns(data, "rows.csv", mapping)
        for where, row in read_csv(text, "rows.csv", mapping):
            assert where.startswith("rows.csv:")
            try:
                rid, record = mapping.record(row)
            except RowError as e:
                assert str(e)
            else:
                assert rid and isinstance(record, dict)
                json.dumps(record)
    except SourceError as e:
        assert str(e).startswith("rows.csv"), str(e)


@given(st.one_of(st.binary(max_size=300), _json_values.map(lambda v: json.dumps(v).encode())))
@fuzz_settings(60)
def test_json_files(data):
    try:
        for where, _row in read_json(data, "rows.json"):
            assert where.startswith("rows.json:")
    except SourceError as e:
        assert str(e).startswith("rows.json"), str(e)
