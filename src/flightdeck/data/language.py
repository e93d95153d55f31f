"""Language detection (``data.cleaning.language``): an ISO 639-1 code stored as document metadata.

Uses ``py3langid`` (a maintained fork of langid.py: naive Bayes over byte n-grams, its model shipped inside
the wheel, nothing downloaded), answering only with languages that have an ISO 639-1 code. It has no random
part, so the same text always gets the same answer; it is several times faster than langdetect, which
flightdeck used before, with the same answers on clear text (``benchmarks/language_detection.py``). Texts
too short to tell (a title, a table of numbers) or in no language at all (hex digits) get ``"unknown"``
rather than a guess.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

from flightdeck.registry.lookup import optional_import

__all__ = ["detect_language", "UNKNOWN_LANGUAGE"]

UNKNOWN_LANGUAGE = "unknown"
# Fewer letters than this and the n-gram statistics are noise.
MIN_LETTERS = 20
# The head of a long document says which language it is in; the detector's time grows with the text.
MAX_CHARS = 1000
# py3langid's label for text in no language (code, numbers, markup).
_NO_LANGUAGE = "zxx"

_LETTER = re.compile(r"[^\W\d_]")
_identifier: Any = None


def _language_identifier() -> Any:
    global _identifier
    if _identifier is None:
        langid = optional_import("py3langid.langid", "cleaning", "language detection (data.cleaning.language)",
                                 alternative="set data.cleaning.language: false")
        # An identifier of our own, not py3langid's global one, which other code may restrict to some languages.
        _identifier = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE)
    return _identifier


def detect_language(text: str) -> str:
    """The language of ``text`` as an ISO 639-1 code (``"en"``, ``"de"``…) or ``"unknown"``."""
    identifier = _language_identifier()
    head = text[:MAX_CHARS]
    # Counting stops at MIN_LETTERS: on a long text, counting every letter costs a fifth of the detection.
    if sum(1 for _ in islice(_LETTER.finditer(head), MIN_LETTERS)) < MIN_LETTERS:
        return UNKNOWN_LANGUAGE
    code = str(identifier.classify(head)[0])
    if len(code) != 2 and code != _NO_LANGUAGE:
        # The model also knows languages that only have an ISO 639-2/3 code ("grc", "yue"); metadata holds
        # ISO 639-1 codes, so such a text gets the likeliest language that has one. Rare, so ranking every
        # language (slower than classify) only happens then; restricting the model instead slows every call.
        code = next(str(c) for c, _ in identifier.rank(head) if len(c) == 2 or c == _NO_LANGUAGE)
    return UNKNOWN_LANGUAGE if code == _NO_LANGUAGE else code
