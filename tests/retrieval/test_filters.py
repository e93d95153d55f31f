"""The metadata filter language: validation messages, normalisation, and SQL that agrees with the reference."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from flightdeck.retrieval.filters import (
    AllOf,
    AnyOf,
    Condition,
    FilterError,
    filter_keys,
    matches,
    normalise_payload,
    parse_filter,
    to_sql,
)
from flightdeck.testing.store_contract import FILTERS, contract_collection


def test_shorthand_and_operators_parse_to_a_tree() -> None:
    f = parse_filter({"kind": "faq", "year": {"$gte": 2020, "$lt": 2024}})
    assert f == AllOf((Condition("kind", "$eq", "faq"), Condition("year", "$gte", 2020.0),
                       Condition("year", "$lt", 2024.0)))
    assert parse_filter({"$or": [{"a": 1}, {"b": {"$in": ["x", "y"]}}]}) == AnyOf(
        (Condition("a", "$eq", 1.0), Condition("b", "$in", ("x", "y"))))
    assert parse_filter(None) is None and parse_filter({}) is None
    assert filter_keys(parse_filter({"$and": [{"a": 1}, {"$or": [{"b": 2}, {"c": 3}]}]})) == {"a", "b", "c"}


def test_dates_become_epoch_seconds_in_filters_and_payloads() -> None:
    f = parse_filter({"published": {"$gte": "2024-01-01"}})
    epoch = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    assert f == Condition("published", "$gte", epoch)
    payload = normalise_payload({"published": "2024-01-01T00:00:00Z", "when": dt.date(2024, 1, 1)})
    assert payload == {"published": epoch, "when": epoch}
    assert matches(f, payload)
    assert not matches(parse_filter({"published": {"$gt": "2024-01-01T00:00:01+00:00"}}), payload)


def test_payload_normalisation_flattens_and_drops_what_cannot_be_filtered() -> None:
    payload = normalise_payload({"a": 1, "b": "x", "c": True, "nested": {"d": 2, "e": {"f": "g"}},
                                 "content-type": "text/html", "tags": ["x", "y"], "none": None, "inf": float("inf")})
    assert payload == {"a": 1.0, "b": "x", "c": True, "nested__d": 2.0, "nested__e__f": "g",
                       "content_type": "text/html"}


@pytest.mark.parametrize(("raw", "message"), [
    ([1], "a filter is an object"),
    ({"$nor": []}, "unknown operator '$nor'"),
    ({"a": {"$regex": "x"}}, "unknown operator '$regex'"),
    ({"a": {"$in": []}}, "non-empty list"),
    ({"a": {"$in": "x"}}, "non-empty list"),
    ({"a": {"$gt": "abc"}}, "a range needs a number or an ISO-8601 date"),
    ({"a": {"$gt": True}}, "a range needs a number"),
    ({"a": None}, "expects a string, number, boolean or date"),
    ({"a": {}}, "an empty condition"),
    ({"$and": []}, "non-empty list of filters"),
    ({"$or": [{}]}, "every filter in the list is empty"),
    ({"bad key": 1}, "is not a field name"),
    ({"x'); drop table t; --": 1}, "is not a field name"),
    ({"a": {"$eq": [1]}}, "expects a string"),
])
def test_bad_filters_say_where_and_what(raw: object, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_filter(raw, "where")


def test_error_names_the_path_of_the_bad_part() -> None:
    with pytest.raises(FilterError, match=r"where\.\$or\[1\]\.year\.\$gte"):
        parse_filter({"$or": [{"a": 1}, {"year": {"$gte": "soon"}}]}, "where")


def test_booleans_are_not_numbers() -> None:
    assert matches(parse_filter({"flag": True}), {"flag": True})
    assert not matches(parse_filter({"flag": True}), {"flag": 1.0})
    assert not matches(parse_filter({"n": 1}), {"n": True})
    assert not matches(parse_filter({"n": {"$gte": 0}}), {"n": True})
    assert not matches(parse_filter({"n": "1"}), {"n": 1.0})


@pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
def test_sql_translation_agrees_with_the_reference(raw: dict) -> None:
    ids, _, payloads = contract_collection()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE p (id TEXT, payload JSON)")
    db.executemany("INSERT INTO p VALUES (?, ?)", [(i, json.dumps(p)) for i, p in zip(ids, payloads, strict=True)])
    f = parse_filter(raw)
    params: dict = {}
    where = to_sql(f, "payload", params)
    got = {r[0] for r in db.execute(f"SELECT id FROM p WHERE {where}", params)}
    assert got == {i for i, p in zip(ids, payloads, strict=True) if matches(f, p)}, raw
