"""The contract every vector store passes: a test class that each store's test module inherits.

Usage (in a store's test module)::

    from flightdeck.testing.store_contract import VectorStoreContract

    class TestQdrantStore(VectorStoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: QdrantStore(QdrantConfig(path=...))

The suite checks add, upsert, delete, persist and reopen, top-k search against exact numpy search on a
fixed small collection, and metadata filters (equality, in, ranges on numbers and dates, and/or, missing
fields) against :func:`flightdeck.retrieval.filters.matches`, the reference semantics. Needs pytest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flightdeck.retrieval.filters import matches, normalise_payload, parse_filter
from flightdeck.retrieval.stores.base import StoreLocation, VectorStore

__all__ = ["VectorStoreContract", "contract_collection"]

DIM = 16
SIZE = 60
KINDS = ("faq", "guide", "note")


def contract_collection(seed: int = 7) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """A fixed collection: ids, unit vectors and normalised payloads with every kind of filterable value."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(SIZE, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"doc-{i:03d}#c{i % 3}" for i in range(SIZE)]
    payloads = []
    for i in range(SIZE):
        meta: dict[str, Any] = {"kind": KINDS[i % 3], "flag": i % 2 == 0, "title": f"Document {i}",
                                "published": (dt.date(2020, 1, 1) + dt.timedelta(days=17 * i)).isoformat(),
                                "source": {"host": "a.example" if i < 30 else "b.example"}}
        if i % 5:  # every fifth row lacks "year": a condition on it must never match that row
            meta["year"] = 2010 + i % 12
        if i % 7 == 0:
            meta["score"] = 0.5 + i / 100
        payloads.append(normalise_payload(meta))
    return ids, vectors, payloads


FILTERS: list[dict[str, Any]] = [
    {"kind": "faq"},
    {"kind": {"$eq": "guide"}},
    {"year": 2015},
    {"flag": True},
    {"flag": False},
    {"kind": {"$in": ["faq", "note"]}},
    {"year": {"$in": [2011, 2012, 2019]}},
    {"year": {"$gte": 2014, "$lt": 2018}},
    {"year": {"$gt": 2020}},
    {"year": {"$lte": 2011}},
    {"score": {"$gt": 0.8}},
    {"published": {"$gte": "2021-06-01", "$lt": "2022-06-01T00:00:00Z"}},
    {"published": {"$lt": "2020-03-01"}},
    {"source__host": "b.example"},
    {"$and": [{"kind": "faq"}, {"flag": True}]},
    {"$or": [{"kind": "guide"}, {"year": {"$gte": 2020}}]},
    {"$or": [{"$and": [{"kind": "note"}, {"flag": True}]}, {"year": 2010}]},
    {"kind": "faq", "year": {"$gte": 2015}},
    {"kind": "missing-kind"},
    {"no_such_field": "x"},
]


def _exact(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int,
           rows: list[int] | None = None) -> list[str]:
    rows = list(range(len(ids))) if rows is None else rows
    if not rows:
        return []
    scores = vectors[rows] @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [ids[rows[i]] for i in order]


class VectorStoreContract:
    """Inherit and provide a ``make_store`` fixture returning a zero-argument factory of fresh stores."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], VectorStore]:  # pragma: no cover - overridden
        raise NotImplementedError("a store's test class provides make_store")

    @pytest.fixture
    def location(self, tmp_path: Path) -> StoreLocation:
        return StoreLocation(tmp_path / "store", f"fd_contract_{uuid.uuid4().hex[:12]}", DIM)

    @pytest.fixture
    def store(self, make_store: Callable[[], VectorStore], location: StoreLocation) -> Any:
        store = make_store()
        store.open(location)
        yield store
        try:
            store.drop()
        finally:
            store.close()

    @pytest.fixture
    def filled(self, store: VectorStore) -> tuple[VectorStore, list[str], np.ndarray, list[dict[str, Any]]]:
        ids, vectors, payloads = contract_collection()
        store.upsert(ids, vectors, payloads)
        store.flush()
        return store, ids, vectors, payloads

    # --- basics ---------------------------------------------------------------------------------
    def test_empty_store_returns_nothing(self, store: VectorStore) -> None:
        assert len(store) == 0
        assert store.ids() == set()
        assert store.search(np.ones(DIM, dtype=np.float32) / 4, 5) == []

    def test_add_then_search_finds_each_vector_first(self, filled: Any) -> None:
        store, ids, vectors, _ = filled
        assert len(store) == SIZE and store.ids() == set(ids)
        for row in (0, 17, 59):
            hits = store.search(vectors[row], 3)
            assert hits[0][0] == ids[row]
            assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
            assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)

    def test_top_k_equals_exact_search(self, filled: Any) -> None:
        store, ids, vectors, _ = filled
        rng = np.random.default_rng(11)
        for _ in range(5):
            q = rng.normal(size=DIM).astype(np.float32)
            q /= np.linalg.norm(q)
            got = store.search(q, 10)
            assert [cid for cid, _ in got] == _exact(vectors, ids, q, 10)
            expected_scores = sorted((vectors @ q).tolist(), reverse=True)[:10]
            assert [s for _, s in got] == pytest.approx(expected_scores, abs=1e-3)

    def test_k_larger_than_collection(self, filled: Any) -> None:
        store, ids, _, _ = filled
        q = np.ones(DIM, dtype=np.float32) / 4
        assert len(store.search(q, 500)) == SIZE

    def test_upsert_replaces_vector_and_payload(self, filled: Any) -> None:
        store, ids, vectors, payloads = filled
        target = ids[5]
        new_vec = -vectors[40]
        store.upsert([target], new_vec[None, :], [{"kind": "replaced"}])
        store.flush()
        assert len(store) == SIZE
        assert store.search(new_vec, 1)[0][0] == target
        assert [cid for cid, _ in store.search(new_vec, 5, parse_filter({"kind": "replaced"}))] == [target]
        # the old payload is gone entirely, not merged
        assert target not in {cid for cid, _ in store.search(new_vec, SIZE, parse_filter({"kind": "guide"}))}

    def test_delete_removes_vectors(self, filled: Any) -> None:
        store, ids, vectors, _ = filled
        gone = ids[:10]
        store.delete(gone + ["never-added"])
        store.flush()
        assert len(store) == SIZE - 10 and store.ids() == set(ids[10:])
        hits = store.search(vectors[3], SIZE)
        assert not set(gone) & {cid for cid, _ in hits}
        assert [cid for cid, _ in store.search(vectors[3], 10)] == _exact(vectors, ids, vectors[3], 10,
                                                                         list(range(10, SIZE)))
        store.delete([])  # a no-op, not an error

    def test_persist_and_reopen(self, filled: Any, make_store: Callable[[], VectorStore],
                                location: StoreLocation) -> None:
        store, ids, vectors, _ = filled
        before = store.search(vectors[9], 10)
        store.close()
        again = make_store()
        again.open(location)
        try:
            assert len(again) == SIZE and again.ids() == set(ids)
            after = again.search(vectors[9], 10)
            assert [c for c, _ in after] == [c for c, _ in before]
            assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-4)
            filtered = again.search(vectors[9], 10, parse_filter({"kind": "faq"}))
            assert filtered and all(int(c[4:7]) % 3 == 0 for c, _ in filtered)
            # and it accepts writes after reopening
            again.upsert(["late"], vectors[:1], [{"kind": "late"}])
            again.flush()
            assert "late" in again.ids()
        finally:
            store.open(location)  # let the fixture drop the collection through the first handle

    def test_bad_batches_are_refused(self, store: VectorStore) -> None:
        with pytest.raises(ValueError):
            store.upsert(["a", "b"], np.zeros((1, DIM), dtype=np.float32), [{}, {}])
        with pytest.raises(ValueError):
            store.upsert(["a"], np.zeros((1, DIM + 1), dtype=np.float32), [{}])

    # --- filters --------------------------------------------------------------------------------
    @pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
    def test_filter_matches_reference_semantics(self, filled: Any, raw: dict[str, Any]) -> None:
        store, ids, vectors, payloads = filled
        f = parse_filter(raw)
        allowed = [i for i, p in enumerate(payloads) if matches(f, p)]
        q = vectors[12]
        got = store.search(q, 10, f)
        assert [cid for cid, _ in got] == _exact(vectors, ids, q, 10, allowed), raw
        everything = store.search(q, SIZE, f)
        assert {cid for cid, _ in everything} == {ids[i] for i in allowed}, raw
