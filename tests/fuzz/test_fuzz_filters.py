"""Fuzz the metadata filter language and ``--where``: a parsed filter or a ``FilterError`` naming the path.

Properties: any JSON-like value parses or raises :class:`FilterError` whose message starts with the path
of the offending part; a parsed filter evaluated against any metadata never raises, and the three
evaluations the stores use agree row by row (``matches``, the numpy ``PayloadColumns`` of FAISS and BM25,
and the SQL of ``to_sql`` on SQLite's JSON); ``parse_where_option`` turns any bad string into a
``typer.BadParameter``. See ``fuzzing.py`` for running them longer.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
import typer
from fuzzing import fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from flightdeck.cli.run_cmds import parse_where_option
from flightdeck.retrieval.filters import (
    MAX_FILTER_DEPTH,
    FilterError,
    PayloadColumns,
    matches,
    normalise_payload,
    parse_filter,
    to_sql,
)

pytestmark = pytest.mark.unit

FIELDS = ["lang", "year", "kind", "published", "meta__page", "x"]
OPS = ["$eq", "$in", "$gt", "$gte", "$lt", "$lte"]
_strings = st.sampled_from(["en", "de", "faq", "2024-01-01", "2019-06-30T12:00:00Z", "", "1", "true"]) | st.text(
    max_size=8)
_scalars = st.one_of(
    _strings,
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(FIELDS + OPS + ["$and", "$or", "$not", "1x", "a-b"]) | st.text(max_size=6), inner, max_size=3),
    max_leaves=10)


@st.composite
def _filters(draw: st.DrawFn, depth: int = 0) -> dict:
    """Mostly valid filters (so that evaluation is exercised), with a wrong part now and then."""
    out: dict = {}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["eq", "ops", "logic", "junk"] if depth < 3 else ["eq", "ops"]))
        field = draw(st.sampled_from(FIELDS))
        if kind == "eq":
            out[field] = draw(_scalars.filter(lambda v: v is not None))
        elif kind == "ops":
            ops = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=2, unique=True))
            out[field] = {op: (draw(st.lists(_scalars, min_size=1, max_size=3)) if op == "$in" else draw(_scalars))
                          for op in ops}
        elif kind == "logic":
            out[draw(st.sampled_from(["$and", "$or"]))] = draw(st.lists(_filters(depth + 1), min_size=1, max_size=3))
        else:
            out[draw(st.text(max_size=4))] = draw(_json)
    return out


_metadata = st.dictionaries(
    st.sampled_from(FIELDS + ["meta", "a b", "1x", ""]) | st.text(max_size=5),
    st.recursive(_scalars, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.sampled_from(["page", "lang"]) | st.text(max_size=3), inner, max_size=2), max_leaves=6),
    max_size=6,
)


def _parse(raw: object) -> object:
    try:
        return parse_filter(raw)
    except FilterError as e:
        assert str(e).startswith("filter"), str(e)
        return e


def _nested(depth: int) -> dict:
    f: dict = {"lang": "en"}
    for _ in range(depth):
        f = {"$and": [f]}
    return f


@pytest.mark.parametrize("raw,message", [
    ({"year": 10**400}, "filter.year: an integer of 1329 bits is too large"),  # OverflowError in float()
    ({"year": {"$gte": 10**400}}, "filter.year.$gte: an integer of"),
    ({"kind": {"$in": ["faq", -(10**400)]}}, "filter.kind.$in[1]: an integer of"),
    ({1: "en"}, "filter.1: a field name is a string, not int"),  # AttributeError: 'int' has no startswith
    ({"lang": "\ud800"}, "filter.lang: '\\ud800' is not valid Unicode text"),  # no store can bind it
])
def test_filters_that_crashed_are_filter_errors(raw, message):
    with pytest.raises(FilterError) as err:
        parse_filter(raw)
    assert message in str(err.value)


def test_nesting_is_bounded():
    # RecursionError at 3000 levels; a depth of 32 is far beyond any real filter
    with pytest.raises(FilterError, match=f"nested more than {MAX_FILTER_DEPTH} levels deep"):
        parse_filter(_nested(3000))
    assert parse_filter(_nested(MAX_FILTER_DEPTH)) is not None


def test_payload_with_huge_numbers_and_deep_nesting_is_normalised():
    # OverflowError (an int beyond float's range, which JSON records may hold) and RecursionError
    deep: dict = {"lang": "en"}
    for _ in range(5000):
        deep = {"": deep}
    assert normalise_payload({"n": 10**400, "lang": "en", "deep": deep}) == {"lang": "en"}
    assert normalise_payload(deep) == {}


@given(_json)
@fuzz_settings(150)
@example({"$and": []})
@example({"$or": [{}]})
@example({"lang": {}})
@example({"year": {"$gt": True}})
@example({"published": "2024-02-30"})
@example({"published": "0001-01-01T00:00+23:59"})
def test_any_json_parses_or_names_the_bad_part(raw):
    _parse(raw)


def _sqlite_rows(f, payloads: list[dict]) -> list[bool]:
    params: dict = {}
    where = to_sql(f, "payload", params)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (i INTEGER, payload TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, json.dumps(p)) for i, p in enumerate(payloads)])
    hits = {r[0] for r in db.execute(f"SELECT i FROM t WHERE {where}", params)}
    db.close()
    return [i in hits for i in range(len(payloads))]


@given(_filters(), st.lists(_metadata, max_size=6))
@fuzz_settings(150)
@example({"year": {"$gte": 2019}}, [{"year": 2020}, {"year": "2020"}, {"year": True}, {}])
@example({"x": True}, [{"x": 1}, {"x": True}, {"x": "true"}])
@example({"published": {"$lt": "2024-01-01"}}, [{"published": "2023-12-31T23:59:59Z"}, {"published": 10**400}])
def test_parsed_filters_evaluate_alike_everywhere_and_never_raise(raw, metadata):
    f = _parse(raw)
    if f is None or isinstance(f, FilterError):
        return
    payloads = [normalise_payload(m) for m in metadata]
    expected = [matches(f, p) for p in payloads]
    assert list(PayloadColumns(payloads).mask(f)) == expected
    assert _sqlite_rows(f, payloads) == expected


@given(st.text(max_size=60))
@fuzz_settings(100)
@example("")
@example("{")
@example("[" * 100_000)  # RecursionError in json.loads
@example('{"year": 1' + "0" * 5000 + "}")  # ValueError: more than 4300 digits
@example('{"lang": NaN}')
@example('{"lang": "\\ud800"}')
def test_where_option_gives_a_usage_error_for_any_bad_string(raw):
    try:
        value = parse_where_option(raw)
    except typer.BadParameter as e:
        assert e.param_hint == "--where"
        assert str(e.message).strip()
    else:
        assert value is None or isinstance(value, dict)
        parse_filter(value)


@given(_filters() | _json)
@fuzz_settings(100)
def test_where_option_accepts_exactly_what_parse_filter_accepts(raw):
    text = json.dumps(raw)
    try:
        parse_filter(json.loads(text))
        ok = True
    except FilterError:
        ok = False
    if ok:
        assert parse_where_option(text) == json.loads(text)
    else:
        with pytest.raises(typer.BadParameter):
            parse_where_option(text)
