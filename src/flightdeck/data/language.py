"""Language detection (``data.cleaning.language``): an ISO 639-1 code stored as document metadata.

Uses ``langdetect`` (a port of Google's language-detection library) with its random seed fixed, so the
same text always gets the same answer. Texts too short to tell (a title, a table of numbers) get
``"unknown"`` rather than a guess.
"""

from __future__ import annotations

import re
from typing import Any

from flightdeck.errors import MissingDependencyError

__all__ = ["detect_language", "UNKNOWN_LANGUAGE", "CLEANING_INSTALL_HINT"]

UNKNOWN_LANGUAGE = "unknown"
CLEANING_INSTALL_HINT = "pip install 'flightdeck[cleaning]'"
# Fewer letters than this and the n-gram statistics are noise.
MIN_LETTERS = 20
# The head of a long document says which language it is in; langdetect's time grows with the text.
MAX_CHARS = 1000

_LETTER = re.compile(r"[^\W\d_]")
_factory: Any = None


def _detector_factory() -> Any:
    global _factory
    if _factory is None:
        try:
            from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
        except ImportError as e:
            raise MissingDependencyError(
                f"language detection (data.cleaning.language) needs langdetect: {CLEANING_INSTALL_HINT},"
                " or set data.cleaning.language: false") from e
        # A factory of our own (not langdetect's global one, which other code may re-seed); langdetect samples
        # n-grams at random, and the fixed seed (DetectorFactory.seed = 0) makes every answer repeatable.
        factory = DetectorFactory()
        factory.load_profile(PROFILES_DIRECTORY)
        factory.set_seed(0)
        _factory = factory
    return _factory


def detect_language(text: str) -> str:
    """The language of ``text`` as an ISO 639-1 code (``"en"``, ``"de"``…) or ``"unknown"``."""
    factory = _detector_factory()
    head = text[:MAX_CHARS]
    if len(_LETTER.findall(head)) < MIN_LETTERS:
        return UNKNOWN_LANGUAGE
    from langdetect.lang_detect_exception import LangDetectException

    try:
        detector = factory.create()
        detector.append(head)
        return str(detector.detect())
    except LangDetectException:
        return UNKNOWN_LANGUAGE
