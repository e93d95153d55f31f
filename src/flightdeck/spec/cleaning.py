"""``data.cleaning``: the spec's settings of the ``cleaning_normalization`` preprocessor.

They live with the spec, not with the cleaning code in :mod:`flightdeck.data.cleaning`, because the spec
model and ``flightdeck validate`` need them and the spec layer sits below ``data/`` (DESIGN.md §3.1): the
spec says what to do, the data layer does it. :mod:`flightdeck.data.cleaning` re-exports both names.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CleaningSettings", "PiiTypeName", "missing_cleaning_modules"]

PiiTypeName = Literal["email", "phone", "card", "iban", "account"]


class CleaningSettings(BaseModel):
    """``data.cleaning``: what the ``cleaning_normalization`` preprocessor does besides normalising text.

    - ``language``: detect each document's language (py3langid) into metadata ``language``;
    - ``dedupe``: drop exact duplicates (same cleaned text), or exact and near duplicates (MinHash over
      word 5-shingles, LSH, estimated Jaccard ``>= near_threshold``); the first document by id wins;
    - ``pii``: ``redact`` replaces ``pii_types`` by ``[EMAIL]``, ``[PHONE]``… before anything is stored;
    - ``strip_boilerplate``: drop lines (navigation, footers) found in at least ``boilerplate_share`` of
      the documents of a source that has at least ``boilerplate_min_documents`` documents.

    ``language`` and ``dedupe: near`` need ``pip install 'flightdeck[cleaning]'``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: bool = True
    dedupe: Literal["off", "exact", "near"] = "exact"
    near_threshold: float = Field(0.9, gt=0.0, le=1.0, description="estimated Jaccard similarity of shingles")
    pii: Literal["off", "redact"] = "off"
    pii_types: list[PiiTypeName] = Field(default_factory=lambda: ["email", "phone", "card", "iban", "account"])
    strip_boilerplate: bool = True
    boilerplate_min_documents: int = Field(5, ge=2, description="a source needs this many documents")
    boilerplate_share: float = Field(0.5, gt=0.0, le=1.0, description="share of documents a line must be in")


def missing_cleaning_modules(settings: CleaningSettings) -> list[tuple[str, str, str]]:
    """``(setting, module, what it is for)`` for each library these settings need that is not installed.

    Checked with ``find_spec`` (no import), so ``flightdeck validate`` can tell before a run.
    """
    out = []
    if settings.language and find_spec("py3langid") is None:
        out.append(("language", "py3langid", "language detection"))
    if settings.dedupe == "near" and find_spec("datasketch") is None:
        out.append(("dedupe", "datasketch", "near-duplicate removal"))
    return out
