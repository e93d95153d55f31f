"""FAISS passes the store contract as flat, HNSW and IVF; auto picks the kind by collection size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flightdeck.retrieval.filters import parse_filter
from flightdeck.retrieval.stores.base import StoreLocation
from flightdeck.retrieval.stores.faiss import FaissConfig, FaissStore
from flightdeck.testing.store_contract import VectorStoreContract


class TestFaissFlat(VectorStoreContract):
    @pytest.fixture
    def make_store(self) -> Callable[[], FaissStore]:
        return lambda: FaissStore(FaissConfig(index="flat"))


class TestFaissHnsw(VectorStoreContract):
    # ef_search above the collection size makes HNSW exhaustive on the 60-vector contract collection, and
    # exact_filter_below=0 sends filtered searches through FAISS's own ID selector.
    @pytest.fixture
    def make_store(self) -> Callable[[], FaissStore]:
        return lambda: FaissStore(FaissConfig(index="hnsw", hnsw_ef_search=128, exact_filter_below=0))


class TestFaissIvf(VectorStoreContract):
    @pytest.fixture
    def make_store(self) -> Callable[[], FaissStore]:
        return lambda: FaissStore(FaissConfig(index="ivf", ivf_nlist=4, ivf_nprobe=4, exact_filter_below=0))


def _unit(n: int, dim: int, seed: int = 3) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_auto_is_exact_below_the_threshold_and_hnsw_above(tmp_path: Path) -> None:
    vectors = _unit(300, 8)
    ids = [f"c{i}" for i in range(300)]
    small = FaissStore(FaissConfig(exact_below=1000))
    small.open(StoreLocation(tmp_path / "a", "a", 8))
    small.upsert(ids, vectors, [{} for _ in ids])
    assert small.kind == "flat"
    big = FaissStore(FaissConfig(exact_below=100))
    big.open(StoreLocation(tmp_path / "b", "b", 8))
    big.upsert(ids, vectors, [{} for _ in ids])
    assert big.kind == "hnsw"
    big.flush()
    reopened = FaissStore(FaissConfig(exact_below=100))
    reopened.open(StoreLocation(tmp_path / "b", "b", 8))
    assert reopened.kind == "hnsw"
    # HNSW at this size with ef_search 128 finds the true nearest neighbour of every stored vector
    assert all(reopened.search(vectors[i], 1)[0][0] == ids[i] for i in range(0, 300, 7))


def test_hnsw_recall_at_10_on_a_larger_collection(tmp_path: Path) -> None:
    vectors = _unit(5000, 32, seed=5)
    ids = [f"c{i}" for i in range(5000)]
    store = FaissStore(FaissConfig(index="hnsw"))
    store.open(StoreLocation(tmp_path / "h", "h", 32))
    store.upsert(ids, vectors, [{} for _ in ids])
    queries = _unit(50, 32, seed=9)
    recalls = []
    for q in queries:
        exact = set(np.argsort(-(vectors @ q))[:10].tolist())
        got = {int(cid[1:]) for cid, _ in store.search(q, 10)}
        recalls.append(len(exact & got) / 10)
    assert np.mean(recalls) >= 0.95


def test_selective_filter_on_hnsw_still_returns_k_hits(tmp_path: Path) -> None:
    vectors = _unit(3000, 16, seed=1)
    ids = [f"c{i}" for i in range(3000)]
    payloads = [{"tenant": "rare" if i % 300 == 0 else "common"} for i in range(3000)]
    store = FaissStore(FaissConfig(index="hnsw"))
    store.open(StoreLocation(tmp_path / "s", "s", 16))
    store.upsert(ids, vectors, payloads)
    hits = store.search(vectors[1], 10, parse_filter({"tenant": "rare"}))
    assert len(hits) == 10 and all(int(c[1:]) % 300 == 0 for c, _ in hits)


def test_query_of_wrong_dimension_is_refused(tmp_path: Path) -> None:
    store = FaissStore()
    store.open(StoreLocation(tmp_path / "d", "d", 8))
    store.upsert(["a"], _unit(1, 8), [{}])
    with pytest.raises(ValueError, match="dimension"):
        store.search(np.ones(9, dtype=np.float32), 1)


def test_a_search_leaves_the_process_thread_count_as_it_found_it(tmp_path: Path) -> None:
    # FAISS and torch share one OpenMP runtime: a search that left it at one thread would slow every later
    # embedding batch in the process (found by benchmarks/retrieval_peers.py)
    import faiss

    store = FaissStore(FaissConfig(search_threads=1))
    store.open(StoreLocation(tmp_path / "t", "t", 8))
    store.upsert(["a", "b"], _unit(2, 8), [{"k": "x"}, {"k": "y"}])
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        store.search(_unit(1, 8)[0], 1)
        store.search(_unit(1, 8)[0], 1, parse_filter({"k": "x"}))
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
