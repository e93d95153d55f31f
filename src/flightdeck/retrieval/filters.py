"""Metadata filters: one small language that every vector store and the keyword index translate natively.

The language is the JSON-shaped one that Chroma, Pinecone and MongoDB use, restricted to what every store
can evaluate the same way::

    {"lang": "en"}                                   # equality (shorthand for {"lang": {"$eq": "en"}})
    {"year": {"$gte": 2019, "$lt": 2024}}            # range: $gt $gte $lt $lte, on numbers or dates
    {"published": {"$gte": "2024-01-01"}}            # dates: ISO-8601 strings, compared as instants
    {"kind": {"$in": ["faq", "guide"]}}              # membership
    {"$and": [{...}, {...}]}  {"$or": [{...}, {...}]}  # several keys in one object are ANDed

A document that lacks a field never matches a condition on that field. Values are strings, numbers or
booleans; ISO-8601 date strings are stored and compared as epoch seconds (UTC), in the filter and in the
payload alike (``normalise_payload``), so that ranges on dates work the same in every store.

``parse_filter`` validates a filter and says exactly what is wrong; ``matches`` is the reference semantics
that the contract suite checks every store against.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from flightdeck.errors import FlightdeckError

__all__ = ["FilterError", "Filter", "Condition", "AllOf", "AnyOf", "parse_filter", "matches",
           "normalise_payload", "normalise_value", "RANGE_OPS", "filter_keys", "to_sql", "PayloadColumns"]

Scalar = str | float | bool
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
_OPS = ("$eq", "$in", *RANGE_OPS)
_KEY_MAX_LEN = 128
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_NOT_KEY_CHAR = re.compile(r"[^A-Za-z0-9_]")
#: ``$and``/``$or`` nested deeper than this is refused: no real filter needs it, and every store's translation
#: (``matches``, ``to_sql``, the stores' own) walks the tree recursively.
MAX_FILTER_DEPTH = 32
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


class FilterError(FlightdeckError, ValueError):
    """A metadata filter that cannot be evaluated; the message names the offending part."""


@dataclass(frozen=True)
class Condition:
    """``key <op> value``; ``op`` is ``$eq``, ``$in`` (value is a tuple) or a range operator."""

    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Filter, ...]


Filter = Condition | AllOf | AnyOf


def normalise_value(value: Any, where: str = "value") -> Scalar:
    """A stored or compared value: ISO dates become epoch seconds, ints become floats, the rest is kept."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float's range (JSON allows 4300 digits)
            raise FilterError(f"{where}: an integer of {value.bit_length()} bits is too large for a number "
                              "(beyond ±1.8e308)") from None
        if not math.isfinite(number):
            raise FilterError(f"{where}: {value!r} is not a finite number")
        return number
    if isinstance(value, dt.datetime):
        return _epoch(value)
    if isinstance(value, dt.date):
        return _epoch(dt.datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        if _ISO_DATE.match(value):
            try:
                return _epoch(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                return value
        return value
    raise FilterError(f"{where}: {value!r} is a {type(value).__name__}; use a string, number, boolean or date")


def _epoch(moment: dt.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def normalise_payload(metadata: dict[str, Any]) -> dict[str, Scalar]:
    """The filterable view of a chunk's metadata: nested objects flattened as ``parent__child``, other
    characters than letters, digits and ``_`` in keys replaced by ``_`` (every store accepts such names,
    Weaviate's GraphQL included), dates as epoch seconds; lists, nulls and values that are not scalars are
    left out (they cannot be filtered alike in every store)."""
    out: dict[str, Scalar] = {}

    def walk(prefix: str, value: Any, depth: int) -> None:
        # Nothing below an invalid prefix can get a valid key (keys only get longer), which also bounds the
        # recursion (128 characters); the depth bound covers chains of empty keys.
        if (prefix and not _KEY.match(prefix)) or depth > _KEY_MAX_LEN:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                name = _NOT_KEY_CHAR.sub("_", str(k))
                walk(f"{prefix}__{name}" if prefix else name, v, depth + 1)
            return
        if value is None or isinstance(value, (list, tuple, set, bytes)) or not _KEY.match(prefix):
            return
        try:
            out[prefix] = normalise_value(value)
        except FilterError:
            return

    walk("", metadata, 0)
    return out


def parse_filter(raw: Any, where: str = "filter") -> Filter | None:
    """Validate a filter given as a dict (or None) and return its tree."""
    return _parse_filter(raw, where, 0)


def _parse_filter(raw: Any, where: str, depth: int) -> Filter | None:
    if raw is None or (isinstance(raw, dict) and not raw):
        return None
    if not isinstance(raw, dict):
        raise FilterError(f"{where}: a filter is an object like {{\"lang\": \"en\"}}, not {type(raw).__name__}")
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"{where}: $and/$or nested more than {MAX_FILTER_DEPTH} levels deep; flatten the filter")
    parts: list[Filter] = []
    for key, value in raw.items():
        here = f"{where}.{key}"
        if not isinstance(key, str):
            raise FilterError(f"{here}: a field name is a string, not {type(key).__name__} {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{here}: expects a non-empty list of filters")
            subs = [_parse_filter(v, f"{here}[{i}]", depth + 1) for i, v in enumerate(value)]
            subs_t = tuple(s for s in subs if s is not None)
            if not subs_t:
                raise FilterError(f"{here}: every filter in the list is empty")
            parts.append(AllOf(subs_t) if key == "$and" else AnyOf(subs_t))
        elif key.startswith("$"):
            raise FilterError(f"{here}: unknown operator {key!r}; at the top level use a field name, $and or $or")
        else:
            if not _KEY.match(key):
                raise FilterError(f"{here}: {key!r} is not a field name (letters, digits and _, not starting"
                                  " with a digit; nested fields are written parent__child)")
            parts.extend(_field_conditions(key, value, here))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _field_conditions(key: str, value: Any, where: str) -> list[Condition]:
    if not isinstance(value, dict):
        return [Condition(key, "$eq", _scalar(value, where))]
    if not value:
        raise FilterError(f"{where}: an empty condition; use e.g. {{\"$eq\": ...}}")
    out = []
    for op, operand in value.items():
        here = f"{where}.{op}"
        if op not in _OPS:
            raise FilterError(f"{here}: unknown operator {op!r}; use one of {', '.join(_OPS)}")
        if op == "$in":
            if not isinstance(operand, list) or not operand:
                raise FilterError(f"{here}: expects a non-empty list of values")
            out.append(Condition(key, op, tuple(_scalar(v, f"{here}[{i}]") for i, v in enumerate(operand))))
        elif op == "$eq":
            out.append(Condition(key, op, _scalar(operand, here)))
        else:
            bound = _scalar(operand, here)
            if isinstance(bound, bool) or not isinstance(bound, float):
                raise FilterError(f"{here}: a range needs a number or an ISO-8601 date, not {operand!r}")
            out.append(Condition(key, op, bound))
    return out


def _scalar(value: Any, where: str) -> Scalar:
    if value is None or isinstance(value, (list, dict)):
        raise FilterError(f"{where}: expects a string, number, boolean or date, not {value!r}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # JSON's "\ud800": no store can bind or compare it
            raise FilterError(f"{where}: {ascii(value)} is not valid Unicode text (a lone surrogate)") from None
    return normalise_value(value, where)


def filter_keys(f: Filter | None) -> set[str]:
    """Every field name a filter reads."""
    if f is None:
        return set()
    if isinstance(f, Condition):
        return {f.key}
    return set().union(*(filter_keys(p) for p in f.parts))


def _equal(a: Scalar, b: Scalar) -> bool:
    # booleans are not numbers here (True != 1.0), as in every store's payload index
    return type(a) is type(b) and a == b


def matches(f: Filter | None, payload: dict[str, Scalar]) -> bool:
    """The reference semantics: does a normalised payload satisfy the filter?"""
    if f is None:
        return True
    if isinstance(f, AllOf):
        return all(matches(p, payload) for p in f.parts)
    if isinstance(f, AnyOf):
        return any(matches(p, payload) for p in f.parts)
    if f.key not in payload:
        return False
    value = payload[f.key]
    if f.op == "$eq":
        return _equal(value, f.value)
    if f.op == "$in":
        return any(_equal(value, v) for v in f.value)
    if isinstance(value, bool) or not isinstance(value, float):
        return False
    return {"$gt": value > f.value, "$gte": value >= f.value, "$lt": value < f.value,
            "$lte": value <= f.value}[f.op]


def to_sql(f: Filter, column: str, params: dict[str, Any]) -> str:
    """A SQLite boolean expression over a JSON payload column (``json_extract``), with bound parameters.

    JSON numbers come back as REAL or INTEGER, strings as TEXT, booleans as 0/1 — so a boolean
    condition also checks ``json_type`` to keep ``True`` apart from ``1``.
    """
    if isinstance(f, (AllOf, AnyOf)):
        glue = " AND " if isinstance(f, AllOf) else " OR "
        return "(" + glue.join(to_sql(p, column, params) for p in f.parts) + ")"
    path = _json_path(f.key)
    extract = f"json_extract({column}, '{path}')"
    jtype = f"json_type({column}, '{path}')"

    def bind(v: Scalar) -> str:
        name = f"f{len(params)}"
        params[name] = int(v) if isinstance(v, bool) else v
        return f":{name}"

    def typed(v: Scalar) -> str:
        if isinstance(v, bool):
            return f"({jtype} IN ('true', 'false') AND {extract} = {bind(v)})"
        if isinstance(v, float):
            return f"({jtype} IN ('integer', 'real') AND {extract} = {bind(v)})"
        return f"({jtype} = 'text' AND {extract} = {bind(v)})"

    if f.op == "$eq":
        return typed(f.value)
    if f.op == "$in":
        return "(" + " OR ".join(typed(v) for v in f.value) + ")"
    sym = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[f.op]
    return f"({jtype} IN ('integer', 'real') AND {extract} {sym} {bind(f.value)})"


def _json_path(key: str) -> str:
    # keys were validated by _KEY: letters, digits and _ only, so quoting cannot be escaped
    return f'$."{key}"'


class PayloadColumns:
    """Payloads as numpy columns, so that a filter is evaluated over a million rows in milliseconds; used by
    the stores and indexes that evaluate filters themselves (FAISS, the BM25 index). ``mask(f)`` agrees
    with :func:`matches` row by row."""

    def __init__(self, payloads: list[dict[str, Any]]) -> None:
        self.n = len(payloads)
        self._cache: dict[Filter, np.ndarray] = {}
        keys = sorted({k for p in payloads for k in p})
        self.num: dict[str, np.ndarray] = {}
        self.obj: dict[str, np.ndarray] = {}
        for key in keys:
            num = np.full(self.n, np.nan)
            obj = np.empty(self.n, dtype=object)
            for row, payload in enumerate(payloads):
                value = payload.get(key)
                if isinstance(value, bool) or isinstance(value, str):
                    obj[row] = value
                elif isinstance(value, (int, float)):
                    num[row] = float(value)
            self.num[key], self.obj[key] = num, obj

    def mask(self, f: Filter) -> np.ndarray:
        """Rows whose payload matches ``f``; the last 16 filters' masks are kept (a service sees the same
        ones again and again: a tenant, a language)."""
        cached = self._cache.get(f)
        if cached is None:
            cached = self._evaluate(f)
            if len(self._cache) >= 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[f] = cached
        return cached

    def _evaluate(self, f: Filter) -> np.ndarray:
        if isinstance(f, AllOf):
            out = np.ones(self.n, dtype=bool)
            for part in f.parts:
                out &= self._evaluate(part)
            return out
        if isinstance(f, AnyOf):
            out = np.zeros(self.n, dtype=bool)
            for part in f.parts:
                out |= self._evaluate(part)
            return out
        return self._condition(f)

    def _condition(self, c: Condition) -> np.ndarray:
        if c.key not in self.num:
            return np.zeros(self.n, dtype=bool)
        values = c.value if c.op == "$in" else (c.value,)
        if c.op in ("$eq", "$in"):
            out = np.zeros(self.n, dtype=bool)
            for v in values:
                if isinstance(v, (bool, str)):
                    col = self.obj[c.key]
                    hit = np.fromiter((type(x) is type(v) and x == v for x in col), dtype=bool, count=self.n) \
                        if isinstance(v, bool) else (col == v)
                    out |= np.asarray(hit, dtype=bool)
                else:
                    out |= self.num[c.key] == v
            return out
        num = self.num[c.key]
        with np.errstate(invalid="ignore"):
            return {"$gt": num > c.value, "$gte": num >= c.value, "$lt": num < c.value,
                    "$lte": num <= c.value}[c.op]
