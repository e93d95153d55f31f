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
