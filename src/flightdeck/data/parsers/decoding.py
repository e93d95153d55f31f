"""Bytes to text for the text-like formats, without trusting any declared charset."""

from __future__ import annotations

import codecs

from flightdeck.errors import SourceError

__all__ = ["decode_text"]


def decode_text(data: bytes, uri: str) -> str:
    """Decode the bytes of a text file.

    A byte-order mark decides (UTF-8, UTF-32, UTF-16); otherwise the bytes must be UTF-8 and, when
    they are not, they are read as Windows-1252 and finally Latin-1 (which accepts any byte), since
    legacy Western files are by far the most common non-UTF-8 text. NUL bytes outside UTF-16/32 mean a
    binary file, which raises :class:`~flightdeck.errors.SourceError` naming ``uri``.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace")
    # UTF-32 LE's mark begins with UTF-16 LE's, so it is tested first.
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return data.decode("utf-32", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data:
        raise SourceError(f"{uri}: binary content, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined
        return data.decode("latin-1")
