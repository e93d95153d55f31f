"""Bytes to text for the text-like formats, without trusting any declared charset."""

from __future__ import annotations

import codecs

from flightdeck.errors import SourceError

__all__ = ["decode_text", "decode_text_noted"]

_FALLBACK = "not UTF-8: read as {name}; if characters look wrong, save the file as UTF-8"


def decode_text(data: bytes, uri: str) -> str:
    """Decode the bytes of a text file.

    A byte-order mark decides (UTF-8, UTF-32, UTF-16); otherwise the bytes must be UTF-8 and, when
    they are not, they are read as Windows-1252 and finally Latin-1 (which accepts any byte), since
    legacy Western files are by far the most common non-UTF-8 text. NUL bytes outside UTF-16/32 mean a
    binary file, which raises :class:`~flightdeck.errors.SourceError` naming ``uri``.
    """
    return decode_text_noted(data, uri)[0]


def decode_text_noted(data: bytes, uri: str) -> tuple[str, str | None]:
    """:func:`decode_text`, and a warning when the text was guessed rather than read: a fallback encoding
    (Windows-1252, Latin-1) or bytes replaced after a byte-order mark; ``None`` when the bytes were clean.

    Parsers put the warning in :attr:`~flightdeck.data.documents.Document.warnings`, so the run says which
    files were read with a guess.
    """
    # UTF-32 LE's mark begins with UTF-16 LE's, so it is tested first.
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            body = data[len(bom):] if codec == "utf-8" else data
            try:
                return body.decode(codec), None
            except UnicodeDecodeError:
                return body.decode(codec, errors="replace"), (
                    f"bytes that are not valid {codec.upper()} (after its byte-order mark) were replaced by U+FFFD")
    if b"\x00" in data:
        raise SourceError(f"{uri}: binary content, not text")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), _FALLBACK.format(name="Windows-1252")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined
        return data.decode("latin-1"), _FALLBACK.format(name="Latin-1")
