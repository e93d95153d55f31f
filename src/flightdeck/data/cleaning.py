"""Text cleaning: the ``cleaning_normalization`` preprocessor.

Parsers hand over text as the source had it; this step makes equal text look equal (so that hashes,
keyword search and chunk boundaries do not depend on how an editor saved the file) without touching
what a reader sees, in particular the indentation of code blocks.

Beyond :func:`clean_text`, the preprocessor has settings (``data.cleaning`` in the spec,
:class:`~flightdeck.spec.cleaning.CleaningSettings`) for what the ingest step does around it: boilerplate
removal (this module), PII redaction (:mod:`~flightdeck.data.pii`), language detection
(:mod:`~flightdeck.data.language`) and duplicate removal (:mod:`~flightdeck.data.dedupe`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

# The settings are the spec's (``data.cleaning``), so that the spec layer below needs nothing of data/;
# re-exported here, where the ingest step and older imports look for them.
from flightdeck.spec.cleaning import CleaningSettings, missing_cleaning_modules

if TYPE_CHECKING:
    from flightdeck.data.documents import Document

__all__ = ["clean_text", "CleaningSettings", "missing_cleaning_modules", "line_key", "boilerplate_keys",
           "strip_boilerplate"]

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


# A boilerplate line is short page furniture, not code: at least two words, no leading indentation.
_MAX_BOILERPLATE_CHARS = 300
_WORDS = re.compile(r"\w+")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def line_key(line: str) -> str:
    """Stable key of a line (its stripped text hashed), so lists of boilerplate lines store no text."""
    return hashlib.sha256(line.strip().encode("utf-8")).hexdigest()[:20]


def _lines(text: str) -> Iterable[tuple[str, bool]]:
    """Every line of ``text`` with whether it may be boilerplate (outside fenced code, unindented, short)."""
    fence: str | None = None
    for line in text.split("\n"):
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            yield line, False
            continue
        if m := _FENCE.match(line):
            fence = m.group(1)
            yield line, False
            continue
        yield line, bool(line and not line[0].isspace() and len(line) <= _MAX_BOILERPLATE_CHARS
                         and len(_WORDS.findall(line)) >= 2)


def boilerplate_keys(documents: Iterable[Document], source_size: int, min_documents: int = 5,
                     share: float = 0.5) -> set[str]:
    """Keys of the lines that appear in at least ``share`` of the ``source_size`` documents of a source.

    ``documents`` may be a subset of the source (the documents re-read in an incremental run): counts are
    taken over them but the share over the whole source, so a subset never flags a line that the whole
    source would not. Nothing is flagged in a source of fewer than ``min_documents`` documents.
    Lines inside fenced code and indented lines never count (code repeats for good reasons).
    """
    if source_size < min_documents:
        return set()
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update({line_key(line) for section in doc.sections
                       for line, candidate in _lines(section.text) if candidate})
    needed = max(2, share * source_size)
    return {k for k, n in counts.items() if n >= needed}


def strip_boilerplate(doc: Document, keys: set[str]) -> Document:
    """``doc`` without the lines whose key is in ``keys`` (outside fenced code); the title is kept."""
    if not keys:
        return doc
    sections = []
    for section in doc.sections:
        lines = list(_lines(section.text))
        kept = [line for line, candidate in lines if not (candidate and line_key(line) in keys)]
        if len(kept) == len(lines):
            sections.append(section)
            continue
        text = clean_text("\n".join(kept))
        if text:
            sections.append(replace(section, text=text))
    return replace(doc, sections=tuple(sections))
