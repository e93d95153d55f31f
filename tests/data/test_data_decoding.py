import codecs

import pytest

from flightdeck.data.parsers.decoding import decode_text
from flightdeck.errors import SourceError

pytestmark = pytest.mark.unit

TEXT = "Café — naïve “quotes” ✓"


def test_utf8_without_bom():
    assert decode_text(TEXT.encode("utf-8"), "a.txt") == TEXT


def test_utf8_with_bom_drops_the_bom():
    assert decode_text(codecs.BOM_UTF8 + TEXT.encode("utf-8"), "a.txt") == TEXT


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom(encoding):
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    data = bom + TEXT.encode(encoding)  # plain "utf-16" writes its own BOM
    assert decode_text(data, "a.txt") == TEXT


def test_cp1252_fallback():
    data = "Café “smart” – 5€".encode("cp1252")
    assert decode_text(data, "a.txt") == "Café “smart” – 5€"


def test_latin1_fallback_for_bytes_cp1252_does_not_define():
    data = "Grüße".encode("latin-1") + b"\x81"  # 0x81 is undefined in cp1252
    assert decode_text(data, "a.txt") == "Grüße\x81"


def test_nul_bytes_mean_binary():
    with pytest.raises(SourceError, match=r"^docs/logo\.png: binary content, not text$"):
        decode_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "docs/logo.png")


def test_empty_input():
    assert decode_text(b"", "empty.txt") == ""


def test_fallback_decodings_say_so_and_clean_text_does_not():
    from flightdeck.data.parsers.decoding import decode_text_noted

    assert decode_text_noted(TEXT.encode("utf-8"), "a.txt") == (TEXT, None)
    assert decode_text_noted(codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "a.txt") == (TEXT, None)
    text, note = decode_text_noted("Café 5€".encode("cp1252"), "a.txt")
    assert text == "Café 5€"
    assert note == "not UTF-8: read as Windows-1252; if characters look wrong, save the file as UTF-8"
    assert "read as Latin-1" in decode_text_noted(b"Gr\xfc\xdfe\x81", "a.txt")[1]
    text, note = decode_text_noted(codecs.BOM_UTF8 + b"ok \xff", "a.txt")
    assert text == "ok \ufffd" and "replaced by U+FFFD" in note


@pytest.mark.parametrize("media_type", ["text/plain", "text/markdown", "text/html"])
def test_text_parsers_put_the_fallback_in_the_documents_warnings(media_type):
    from flightdeck.data.documents import SourceItem
    from flightdeck.data.parsers import parse

    data = "<p>Caf\xe9 cr\xe8me</p>".encode("cp1252")
    doc = parse(SourceItem("legacy.x", "h", media_type), data)
    assert "Café" in doc.text and doc.warnings == (
        "not UTF-8: read as Windows-1252; if characters look wrong, save the file as UTF-8",)
    assert parse(SourceItem("fine.x", "h", media_type), data.decode("cp1252").encode("utf-8")).warnings == ()
