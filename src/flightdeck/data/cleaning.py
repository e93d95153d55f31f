"""Text cleaning: the ``cleaning_normalization`` preprocessor.

Parsers hand over text as the source had it; this step makes equal text look equal (so that hashes,
keyword search and chunk boundaries do not depend on how an editor saved the file) without touching
what a reader sees, in particular the indentation of code blocks.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_text"]

# Runs of 3+ newlines are 2+ blank lines; one blank line is enough to mark a paragraph break.
_BLANK_RUN = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Return ``text`` normalised for indexing.

    Applies Unicode NFKC (so that ligatures, full-width forms and non-breaking spaces compare equal to
    their plain forms), turns ``\\r\\n`` and ``\\r`` into ``\\n``, drops control characters other than
    ``\\n`` and ``\\t``, strips trailing whitespace from every line, collapses runs of blank lines into a
    single blank line and removes blank lines at both ends. Leading indentation is kept.
    """
    text = unicodedata.normalize("NFKC", text)
    # Line endings first: "\r" is itself a control character and would otherwise be dropped below.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_RUN.sub("\n\n", text)
    # strip("\n") rather than strip(): the first line may be indented code.
    return text.strip("\n")
