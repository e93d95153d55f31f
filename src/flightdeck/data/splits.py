"""Dataset splits (checklist 1.4): ``train_validation_test``, ``k_fold`` and ``time_series_split``.

A splitter assigns each document of a dataset version to a split (``train``/``validation``/``test`` or
``fold-0``…``fold-{k-1}``); the ingest step records the assignment in ``dataset_splits`` next to the
dataset version, and :meth:`flightdeck.Project.split` reads it back.

How documents are assigned, and why
-----------------------------------
Without stratification, a document's split depends only on its id and the seed: the id is hashed
(SHA-256 of ``seed`` and id) to a number ``u`` in ``[0, 1)``, and ``u`` falls into one of the
cumulative ratio intervals (for k folds, into one of k equal intervals). This is the standard trick of
hash-based splitting (as in TFX's ExampleGen and BigQuery ``FARM_FINGERPRINT`` splits): it is
reproducible from the spec alone, and **stable under additions** — adding or removing documents never
moves another document to a different split, so a test set stays a test set as the corpus grows. The
ratios hold in expectation (binomial noise: about ``sqrt(r(1-r)/n)``).

With ``stratify_by`` set to a metadata field, the documents of each label are ordered by the same hash
and cut at the cumulative ratios of that label's count (for k folds, into k contiguous blocks): every
label gets its proportions exactly (to one document), which plain hashing cannot promise for small or
rare labels. The price is a bounded churn: adding one document of a label moves at most one document of
that label across each cut (at most ``len(ratios) - 1`` or ``k - 1`` documents), never more. Documents
without the field form their own group.

The time-series split orders documents by their timestamp field (ties by id) and gives the earliest to
``train``, the next to ``validation`` and the latest to ``test``, either by ratios or by explicit cut
points; documents sharing a timestamp always land in the same split, so nothing in ``train`` is later
than anything in ``validation`` or ``test`` (no leakage from the future). Documents whose timestamp is
missing or unreadable are left out and reported.

Timestamps are ISO 8601 strings (``2024-02-01``, ``2024-02-01T12:00:00Z``, ``20240201``), ``YYYY-MM``, dates
and datetimes, or numbers (also as strings) read by an explicit rule, never guessed: an integer from 1000 to
9999 is a year (``2023`` is 2023-01-01, not 33 minutes after 1970); from 10^8 (1973) up, seconds since 1970;
from 10^11 up, milliseconds since 1970. Any other number (``12345``, ``-5``, ``2023.5``) is refused, with
the field and the value in the reason.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import delete, insert, select

from flightdeck.core import Reporter
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import dataset_splits, documents

__all__ = ["Splitter", "SplitResult", "record_splits", "TrainValidationTestConfig", "TrainValidationTestSplitter",
           "KFoldConfig", "KFoldSplitter", "TimeSeriesConfig", "TimeSeriesSplitter", "split_unit", "parse_timestamp",
           "timestamp_problem", "NUMBER_RULE"]

_NAMES_3 = ("train", "validation", "test")
_NAMES_2 = ("train", "test")


@dataclass
class SplitResult:
    """``assignments``: document id -> split name; ``unassigned``: document id -> why it has no split."""

    strategy: str
    assignments: dict[str, str]
    unassigned: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in self.assignments.values():
            out[name] = out.get(name, 0) + 1
        return dict(sorted(out.items()))


@runtime_checkable
class Splitter(Protocol):
    """Assigns the documents of a dataset version to splits; the same input always gives the same output."""

    name: str

    def assign(self, documents: Mapping[str, Mapping[str, Any]]) -> SplitResult:
        """Split ``documents`` (document id -> metadata)."""
        ...


def split_unit(seed: int, document_id: str, salt: str = "") -> float:
    """A number in ``[0, 1)`` fixed by ``seed`` and ``document_id`` (SHA-256, first 8 bytes)."""
    digest = hashlib.sha256(f"{seed}\x00{salt}\x00{document_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _check_ratios(v: list[float]) -> list[float]:
    if len(v) not in (2, 3):
        raise ValueError("ratios are [train, validation, test] or [train, test], e.g. [0.8, 0.1, 0.1]")
    if any(r < 0 for r in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
        raise ValueError(f"ratios must be non-negative and add up to 1, got {v} (sum {sum(v):g})")
    if v[0] <= 0:
        raise ValueError("the train ratio must be above 0")
    return v


def _names(ratios: Sequence[float]) -> tuple[str, ...]:
    return _NAMES_3 if len(ratios) == 3 else _NAMES_2


def _bucket(u: float, weights: Sequence[float]) -> int:
    """Index of the interval of ``[0, 1)`` cut at the cumulative ``weights`` that ``u`` falls into."""
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return max(i for i, w in enumerate(weights) if w > 0)  # u just below 1 and rounding in the sum


def _label(metadata: Mapping[str, Any], key: str) -> str:
    value = metadata.get(key)
    return "\x00missing" if value is None else str(value)


def _assign(documents: Mapping[str, Mapping[str, Any]], weights: Sequence[float], names: Sequence[str],
            seed: int, stratify_by: str | None) -> dict[str, str]:
    if stratify_by is None:
        return {d: names[_bucket(split_unit(seed, d), weights)] for d in documents}
    groups: dict[str, list[str]] = {}
    for d, meta in documents.items():
        groups.setdefault(_label(meta, stratify_by), []).append(d)
    out: dict[str, str] = {}
    for label, ids in groups.items():
        ids.sort(key=lambda d: (split_unit(seed, d, label), d))
        n = len(ids)
        for rank, d in enumerate(ids):
            # The rank's midpoint in [0, 1): each label's documents are cut at the cumulative ratios.
            out[d] = names[_bucket((rank + 0.5) / n, weights)]
    return out


class TrainValidationTestConfig(BaseModel):
    """``train_validation_test``: ``ratios`` of [train, validation, test] (or [train, test]), seeded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratios: list[float] = Field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = 13
    stratify_by: str | None = Field(None, description="a metadata field holding each document's label")

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        return _check_ratios(v)


class TrainValidationTestSplitter:
    """Hash-based train/validation/test assignment, stratified by a label when asked (module docstring)."""

    name = "train_validation_test"

    def __init__(self, config: TrainValidationTestConfig | None = None) -> None:
        self.config = config or TrainValidationTestConfig()

    def assign(self, documents: Mapping[str, Mapping[str, Any]]) -> SplitResult:
        """Split ``documents`` (document id -> metadata)."""
        c = self.config
        return SplitResult(self.name, _assign(documents, c.ratios, _names(c.ratios), c.seed, c.stratify_by))


class KFoldConfig(BaseModel):
    """``k_fold``: ``k`` folds named ``fold-0`` … ``fold-{k-1}``, seeded, optionally stratified."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(5, ge=2, le=100)
    seed: int = 13
    stratify_by: str | None = Field(None, description="a metadata field holding each document's label")


class KFoldSplitter:
    """Hash-based k-fold assignment: disjoint folds that cover every document (module docstring)."""

    name = "k_fold"

    def __init__(self, config: KFoldConfig | None = None) -> None:
        self.config = config or KFoldConfig()

    def assign(self, documents: Mapping[str, Mapping[str, Any]]) -> SplitResult:
        """Split ``documents`` (document id -> metadata) into ``k`` folds."""
        c = self.config
        names = [f"fold-{i}" for i in range(c.k)]
        return SplitResult(self.name, _assign(documents, [1.0 / c.k] * c.k, names, c.seed, c.stratify_by))


_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?\Z")
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})\Z")
_EPOCH_SECONDS_FROM = 10**8  # 1973-03-03: below it (and outside 1000-9999) a number is no plausible time
_EPOCH_MILLIS_FROM = 10**11  # year 5138 in seconds: from here on, the number counts milliseconds
_EPOCH_MILLIS_TO = 10**14
#: How numbers are read, for the reasons that refuse one.
NUMBER_RULE = ("a number is a year (1000-9999), seconds since 1970 (from 100000000) or milliseconds since "
               "1970 (from 100000000000)")


def _from_number(v: float) -> float | None:
    if not math.isfinite(v):
        return None
    if v == int(v) and 1000 <= v <= 9999:
        return datetime(int(v), 1, 1, tzinfo=UTC).timestamp()
    if _EPOCH_SECONDS_FROM <= v < _EPOCH_MILLIS_FROM:
        return float(v)
    if _EPOCH_MILLIS_FROM <= v < _EPOCH_MILLIS_TO:
        return v / 1000.0
    return None


def parse_timestamp(value: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 string, a date, a datetime or a number (None if unreadable).

    Numbers follow :data:`NUMBER_RULE` (module docstring): a year, epoch seconds or epoch milliseconds, and
    nothing else. Naive times are taken as UTC, so that mixing naive and zoned values still orders them.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return _from_number(value)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        s = value.strip()
        if _NUMBER.match(s) and not (len(s) == 8 and s.isdigit()):  # 20240201 is ISO 8601's basic date
            return _from_number(float(s))
        if m := _YEAR_MONTH.match(s):
            if not 1 <= int(m.group(2)) <= 12:
                return None
            dt = datetime(int(m.group(1)), int(m.group(2)), 1)
        else:
            try:
                dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
            except ValueError:
                return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def timestamp_problem(field_name: str, value: Any) -> str:
    """Why ``value`` of metadata field ``field_name`` is not a timestamp, naming both."""
    numeric = ((isinstance(value, (int, float)) and not isinstance(value, bool))
               or (isinstance(value, str) and _NUMBER.match(value.strip()) is not None))
    why = NUMBER_RULE if numeric else "use ISO 8601 (2024-02-01 or 2024-02-01T12:00:00Z), YYYY-MM or a number"
    return f"{field_name}={value!r} is not a timestamp: {why}"


class TimeSeriesConfig(BaseModel):
    """``time_series_split``: by ``timestamp_field`` (a metadata field), earliest to train, latest to test.

    Either ``ratios`` of the documents in time order ([train, validation, test] or [train, test]), or
    ``cut_points``: one or two timestamps; a document before the first is train, before the second (if
    any) validation, the rest test.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timestamp_field: str = Field(..., min_length=1)
    ratios: list[float] | None = None
    cut_points: list[str | float] | None = None

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float] | None) -> list[float] | None:
        return None if v is None else _check_ratios(v)

    @model_validator(mode="after")
    def _one_way(self) -> TimeSeriesConfig:
        if self.ratios is not None and self.cut_points is not None:
            raise ValueError("give either ratios or cut_points, not both")
        if self.cut_points is not None:
            if len(self.cut_points) not in (1, 2):
                raise ValueError("cut_points takes one timestamp (train | test) or two (train | validation | test)")
            parsed = [parse_timestamp(p) for p in self.cut_points]
            bad = [p for p, t in zip(self.cut_points, parsed, strict=True) if t is None]
            if bad:
                raise ValueError(f"cut_points must be ISO 8601 timestamps, years or epoch seconds; "
                                 f"{timestamp_problem('cut_points', bad[0])}")
            if len(parsed) == 2 and not parsed[0] < parsed[1]:  # type: ignore[operator]
                raise ValueError("cut_points must be in increasing order")
        return self

    @property
    def effective_ratios(self) -> list[float]:
        return self.ratios if self.ratios is not None else [0.8, 0.1, 0.1]


class TimeSeriesSplitter:
    """Time-ordered split with no leakage from the future (module docstring)."""

    name = "time_series_split"

    def __init__(self, config: TimeSeriesConfig) -> None:
        self.config = config

    def assign(self, documents: Mapping[str, Mapping[str, Any]]) -> SplitResult:
        """Split ``documents`` (document id -> metadata) by their timestamp field."""
        c = self.config
        timed: list[tuple[float, str]] = []
        unassigned: dict[str, str] = {}
        for d, meta in documents.items():
            raw = meta.get(c.timestamp_field)
            ts = parse_timestamp(raw)
            if ts is None:
                unassigned[d] = (f"no metadata field {c.timestamp_field!r}" if raw is None
                                 else timestamp_problem(c.timestamp_field, raw))
            else:
                timed.append((ts, d))
        timed.sort()
        if c.cut_points is not None:
            cuts = [parse_timestamp(p) for p in c.cut_points]
            names = _NAMES_2 if len(cuts) == 1 else _NAMES_3
            out = {d: names[sum(ts >= cut for cut in cuts)] for ts, d in timed}  # type: ignore[operator]
            return SplitResult(self.name, out, unassigned)
        ratios = c.effective_ratios
        names = _names(ratios)
        n = len(timed)
        # Cut in time order at the cumulative ratios, then move each cut past any run of equal timestamps
        # so that one instant never straddles two splits.
        bounds, acc = [], 0.0
        for r in ratios[:-1]:
            acc += r
            b = round(acc * n)
            while 0 < b < n and timed[b][0] == timed[b - 1][0]:
                b += 1
            bounds.append(b)
        out = {}
        for i, (_, d) in enumerate(timed):
            out[d] = names[sum(i >= b for b in bounds)]
        return SplitResult(self.name, out, unassigned)


def record_splits(ws: Workspace, dataset_id: str, splitter: Splitter | None,
                  reporter: Reporter) -> dict[str, Any] | None:
    """Assign the documents of dataset version ``dataset_id`` to splits and record them (``data.splits``);
    returns the counts for the run summary, or None without a splitter.

    Written in its own transaction, after the version: the rows of the version are replaced as a whole, so
    re-running gives the same rows, and a changed split setting replaces the old assignment.
    """
    with ws.engine.begin() as conn:
        conn.execute(delete(dataset_splits).where(dataset_splits.c.dataset_version == dataset_id))
        if splitter is None:
            return None
        docs = {r.id: (r.metadata or {}) for r in conn.execute(select(documents.c.id, documents.c.metadata))}
        result = splitter.assign(docs)
        if result.assignments:
            conn.execute(insert(dataset_splits).prefix_with("OR IGNORE"), [
                {"dataset_version": dataset_id, "document_id": d, "split": s, "strategy": result.strategy}
                for d, s in sorted(result.assignments.items())])
    for doc_id, reason in sorted(result.unassigned.items()):
        reporter.event("split_skipped", uri=doc_id, reason=reason)
    out: dict[str, Any] = {"strategy": result.strategy, **result.counts()}
    if result.unassigned:
        out["unassigned"] = [{"uri": d, "reason": r} for d, r in sorted(result.unassigned.items())]
    return out

