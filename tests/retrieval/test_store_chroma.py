"""Chroma passes the store contract embedded (PersistentClient) and against a real `chroma run` server on
127.0.0.1; Chroma specifics (merged upserts, one-type $in, empty metadata, batching, no ONNX model, no
telemetry); and one project end to end: run, search with and without a filter, change and delete files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from flightdeck import Project
from flightdeck.errors import MissingDependencyError
from flightdeck.registry import Category, registry
from flightdeck.retrieval.filters import matches, parse_filter
from flightdeck.retrieval.stores.base import StoreLocation
from flightdeck.retrieval.stores.chroma import ChromaConfig, ChromaStore, ChromaStoreError, to_chroma_where
from flightdeck.testing.store_contract import VectorStoreContract, contract_collection
from flightdeck.workspace.schema import chunks
from llm_fixtures import stop_process

httpx = pytest.importorskip("httpx")

chromadb = pytest.importorskip("chromadb")

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chroma run` (the Rust server shipped in the chromadb wheel) on 127.0.0.1; yields host:port."""
    folder = tmp_path_factory.mktemp("chroma_server")
    port = _free_port()
    log = folder / "server.log"
    code = "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()"
    cmd = [sys.executable, "-c", code, "run", "--path", str(folder / "data"), "--host", "127.0.0.1",
           "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer within 60 s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _server_config(server: str, **kw: Any) -> ChromaConfig:
    host, port = server.split(":")
    return ChromaConfig(host=host, port=int(port), **kw)


# --- the contract, embedded and server ----------------------------------------------------------------
class TestChromaEmbedded(VectorStoreContract):
    @pytest.fixture
    def make_store(self) -> Callable[[], ChromaStore]:
        return lambda: ChromaStore(ChromaConfig())


class TestChromaServer(VectorStoreContract):
    @pytest.fixture
    def make_store(self, chroma_server: str) -> Callable[[], ChromaStore]:
        return lambda: ChromaStore(_server_config(chroma_server))


# --- specifics ----------------------------------------------------------------------------------------
def _unit(n: int, dim: int, seed: int = 3) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[..., ChromaStore]]:
    stores: list[ChromaStore] = []

    def make(dim: int = 8, name: str = "specifics", **kw: Any) -> ChromaStore:
        store = ChromaStore(ChromaConfig(**kw))
        store.open(StoreLocation(tmp_path / "chroma", name, dim))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_where_translation() -> None:
    assert to_chroma_where(parse_filter({"kind": "faq"})) == {"kind": {"$eq": "faq"}}
    # Chroma's $in takes one type: a mixed list becomes one $in per type, ORed
    assert to_chroma_where(parse_filter({"v": {"$in": ["1", 1, True, 2, "1"]}})) == {
        "$or": [{"v": {"$in": ["1"]}}, {"v": {"$in": [1.0, 2.0]}}, {"v": {"$in": [True]}}]}
    assert to_chroma_where(parse_filter({"year": {"$gte": 2014, "$lt": 2018}})) == {
        "$and": [{"year": {"$gte": 2014.0}}, {"year": {"$lt": 2018.0}}]}
    # $and / $or need two parts in Chroma: a single one is unwrapped
    assert to_chroma_where(parse_filter({"$or": [{"kind": "faq"}]})) == {"kind": {"$eq": "faq"}}


def test_types_stay_apart_and_mixed_in_matches_the_reference(opened: Callable[..., ChromaStore]) -> None:
    store = opened()
    payloads: list[dict[str, Any]] = [{"v": "1"}, {"v": 1.0}, {"v": True}, {"v": 0.0}, {"v": False}, {}, {"w": 1.0}]
    ids = [f"r{i}" for i in range(len(payloads))]
    vectors = _unit(len(ids), 8)
    store.upsert(ids, vectors, payloads)
    for raw in ({"v": 1}, {"v": True}, {"v": "1"}, {"v": False}, {"v": 0}, {"v": {"$in": ["1", 1, True]}},
                {"v": {"$in": [False, 0]}}, {"v": {"$gte": 0}}, {"v": {"$lt": 1}}, {"$or": [{"v": True}, {"w": 1}]}):
        f = parse_filter(raw)
        expected = {cid for cid, p in zip(ids, payloads, strict=True) if matches(f, p)}
        assert {c for c, _ in store.search(vectors[0], 20, f)} == expected, raw


def test_upsert_replaces_the_payload_whole_even_with_an_empty_one(opened: Callable[..., ChromaStore]) -> None:
    store = opened()
    vectors = _unit(3, 8)
    # Chroma refuses empty metadata dicts: an empty payload is stored as no metadata
    store.upsert(["a", "b", "c"], vectors, [{"kind": "x", "n": 1.0}, {}, {"kind": "x"}])
    store.upsert(["a", "b"], vectors[:2], [{}, {"kind": "y"}])
    assert {c for c, _ in store.search(vectors[0], 5, parse_filter({"kind": "x"}))} == {"c"}
    assert {c for c, _ in store.search(vectors[0], 5, parse_filter({"n": 1}))} == set()
    assert {c for c, _ in store.search(vectors[0], 5, parse_filter({"kind": "y"}))} == {"b"}
    got = store._collection.get(ids=["a", "b"], include=["metadatas"])
    assert dict(zip(got["ids"], got["metadatas"], strict=True)) == {"a": None, "b": {"kind": "y"}}


def test_long_and_odd_chunk_ids_are_kept_as_they_are(opened: Callable[..., ChromaStore]) -> None:
    store = opened()
    ids = ["corpus/über ß/" + "x" * 300 + "#3", "a.md#0", "ünïcødé/path with spaces.md#12", "?&=%20#"]
    vectors = _unit(len(ids), 8)
    store.upsert(ids, vectors, [{"i": float(i)} for i in range(len(ids))])
    assert store.ids() == set(ids)
    for row, cid in enumerate(ids):
        assert store.search(vectors[row], 1)[0][0] == cid
    store.delete(ids[:1])
    assert store.ids() == set(ids[1:])
    with pytest.raises(ValueError, match="non-empty"):
        store.upsert([""], vectors[:1], [{}])


def test_writes_go_in_batches_within_the_client_limit(opened: Callable[..., ChromaStore]) -> None:
    store = opened(batch_size=7)
    limit = store._client.get_max_batch_size()
    assert store._max_batch == min(7, limit)
    big = opened(name="bigbatch", batch_size=10**9)
    assert big._max_batch == limit  # capped at what the client accepts
    ids, vectors, payloads = contract_collection()
    dim_store = opened(dim=vectors.shape[1], name="batched", batch_size=7)
    dim_store.upsert(ids, vectors, payloads)
    assert len(dim_store) == len(ids) and dim_store.ids() == set(ids)
    dim_store.delete(ids[:23])
    assert dim_store.ids() == set(ids[23:])


def test_ids_pages_through_a_collection_larger_than_one_page(opened: Callable[..., ChromaStore],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import flightdeck.retrieval.stores.chroma as module

    monkeypatch.setattr(module, "_PAGE", 16)
    store = opened()
    ids = [f"c{i}" for i in range(50)]
    store.upsert(ids, _unit(50, 8), [{} for _ in ids])
    assert store.ids() == set(ids)


def test_never_embeds_and_sends_no_telemetry(opened: Callable[..., ChromaStore],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("chromadb tried to load or download its default ONNX model")

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__call__", refuse)
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "_download_model_if_not_exists", refuse)
    store = opened()
    store.upsert(["a"], _unit(1, 8), [{"k": "v"}])
    assert store.search(_unit(1, 8)[0], 1)[0][0] == "a"
    assert store._collection._embedding_function is None
    assert store._client.get_settings().anonymized_telemetry is False


def test_hnsw_settings_are_applied_and_ef_search_follows_the_config(opened: Callable[..., ChromaStore]) -> None:
    store = opened(hnsw_m=24, hnsw_ef_construction=150, hnsw_ef_search=64)
    hnsw = store._collection.configuration_json["hnsw"]
    assert (hnsw["space"], hnsw["max_neighbors"], hnsw["ef_construction"], hnsw["ef_search"]) == \
        ("cosine", 24, 150, 64)
    store.upsert(["a"], _unit(1, 8), [{}])
    store.close()
    again = opened(hnsw_m=24, hnsw_ef_construction=150, hnsw_ef_search=300)
    assert again._collection.configuration_json["hnsw"]["ef_search"] == 300 and len(again) == 1


def test_the_hnsw_settings_reach_the_index(tmp_path: Path) -> None:
    # the contract collection is searched through Chroma's HNSW graph, not brute force: a starved graph
    # (4 links, ef 8) misses true neighbours, the defaults find exactly the top 10 every time
    ids, vectors, payloads = contract_collection()
    queries = _unit(60, vectors.shape[1], seed=21)
    mismatches = {}
    for name, config in (("starved", ChromaConfig(hnsw_m=4, hnsw_ef_construction=8, hnsw_ef_search=8)),
                         ("default", ChromaConfig())):
        store = ChromaStore(config)
        store.open(StoreLocation(tmp_path / name, name, vectors.shape[1]))
        store.upsert(ids, vectors, payloads)
        mismatches[name] = sum([c for c, _ in store.search(q, 10)] != [ids[i] for i in np.argsort(-(vectors @ q))[:10]]
                               for q in queries)
        store.close()
    assert mismatches["default"] == 0 and mismatches["starved"] > 0, mismatches


def test_a_missing_database_is_created_and_keeps_its_collections_apart(opened: Callable[..., ChromaStore]) -> None:
    team = opened(database="team-a")
    team.upsert(["a"], _unit(1, 8), [{}])
    default = opened()  # same folder and collection name, default database
    assert len(team) == 1 and len(default) == 0


def test_a_collection_of_another_dimension_is_refused(opened: Callable[..., ChromaStore]) -> None:
    store = opened(dim=8)
    store.upsert(["a"], _unit(1, 8), [{}])
    store.close()
    with pytest.raises(ChromaStoreError, match="dimension 8, but the embedder makes 16"):
        opened(dim=16)


def test_query_of_wrong_dimension_is_refused(opened: Callable[..., ChromaStore]) -> None:
    store = opened()
    store.upsert(["a"], _unit(1, 8), [{}])
    with pytest.raises(ValueError, match="dimension"):
        store.search(np.ones(9, dtype=np.float32), 1)


def test_drop_deletes_the_collection(opened: Callable[..., ChromaStore], tmp_path: Path) -> None:
    store = opened()
    store.upsert(["a"], _unit(1, 8), [{}])
    store.drop()
    assert len(store) == 0 and store.search(_unit(1, 8)[0], 3) == []
    client = chromadb.PersistentClient(path=str((tmp_path / "chroma").resolve()),
                                       settings=chromadb.config.Settings(anonymized_telemetry=False))
    assert "specifics" not in [c.name for c in client.list_collections()]
    store.upsert(["b"], _unit(1, 8), [{}])  # writes after a drop create the collection again
    assert store.ids() == {"b"}


def test_hnsw_recall_and_selective_filters_on_a_larger_collection(opened: Callable[..., ChromaStore]) -> None:
    vectors = _unit(3000, 32, seed=5)
    ids = [f"c{i}" for i in range(3000)]
    store = opened(dim=32, name="larger")
    store.upsert(ids, vectors, [{"tenant": "rare" if i % 300 == 0 else "common"} for i in range(3000)])
    recalls = []
    for q in _unit(30, 32, seed=9):
        exact = set(np.argsort(-(vectors @ q))[:10].tolist())
        got = store.search(q, 10)
        recalls.append(len(exact & {int(c[1:]) for c, _ in got}) / 10)
        assert [s for _, s in got] == pytest.approx([float(vectors[int(c[1:])] @ q) for c, _ in got], abs=1e-3)
    assert np.mean(recalls) >= 0.95
    hits = store.search(vectors[1], 10, parse_filter({"tenant": "rare"}))
    assert len(hits) == 10 and all(int(c[1:]) % 300 == 0 for c, _ in hits)


def test_config_checks_and_secret_headers() -> None:
    with pytest.raises(ValidationError, match="not a valid Chroma collection name"):
        ChromaConfig(collection="a")
    with pytest.raises(ValidationError):
        ChromaConfig(hnsw_ef_search=2)
    with pytest.raises(ValidationError):
        ChromaConfig(shards=2)
    config = ChromaConfig(host="chroma.internal", headers={"Authorization": "Bearer s3cr3t"})
    assert "s3cr3t" not in repr(config)
    store = registry().create(Category.VECTOR_STORE, "chroma", {"collection": "my-docs", "hnsw_ef_search": 200})
    assert isinstance(store, ChromaStore) and store.config.collection == "my-docs" and not store.versioned


def test_user_collection_setting_wins(opened: Callable[..., ChromaStore]) -> None:
    store = opened(collection="team-docs.v1")
    assert store.collection_name == "team-docs.v1"
    assert "team-docs.v1" in [c.name for c in store._client.list_collections()]


def test_missing_chromadb_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "chromadb", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[chroma\]'"):
        ChromaStore().open(StoreLocation(tmp_path, "nodeps", 4))


def test_an_unreachable_server_is_reported_with_its_address(tmp_path: Path) -> None:
    port = _free_port()
    store = ChromaStore(ChromaConfig(host="127.0.0.1", port=port))
    with pytest.raises(ChromaStoreError, match=f"127.0.0.1:{port}"):
        store.open(StoreLocation(tmp_path, "unreachable", 4))


def test_server_mode_sends_headers_and_creates_the_database(chroma_server: str, tmp_path: Path) -> None:
    store = ChromaStore(_server_config(chroma_server, headers={"X-Team": "search"}, collection="with-headers",
                                       database="created-on-the-server"))
    store.open(StoreLocation(tmp_path, "unused", 4))
    try:
        assert store._client._server._session.headers["X-Team"] == "search"
        assert store._client.get_settings().anonymized_telemetry is False
        store.upsert(["a"], _unit(1, 4), [{"k": "v"}])
        assert store.search(_unit(1, 4)[0], 1, parse_filter({"k": "v"}))[0][0] == "a"
        store.drop()
    finally:
        store.close()


# --- end to end through a project ---------------------------------------------------------------------
SPEC = """\
project: chroma-e2e
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - {{provider: files, path: ./docs}}
  chunking: {{provider: recursive, size: 64, overlap: 8}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: {{provider: chroma{settings}}}
  system: [hybrid_search, metadata_filtering]
  search: {{mode: hybrid, k: 5}}
"""

DOCS = {
    "install.md": "# Installing Widgets\n\nRun `widget install` in a terminal. If the installer stops with error "
                  "W42, the sprockets are not aligned. Align them and run it again.\n",
    "care.md": "# Caring for widgets\n\nClean a widget with a soft cloth once a week. Store widgets in a dry "
               "place between 5 and 25 degrees Celsius.\n",
    "colours.md": "# Colours\n\nWidgets come in red, blue and green. Green widgets are the most popular in spring.\n",
    "pricing.md": "# Pricing\n\nA basic widget costs 40 euros; the deluxe widget with golden sprockets costs 95 "
                  "euros.\n",
    "history.md": "# History\n\nThe first widget was built in 1923 by a clockmaker in Geneva.\n",
}


def _chunk_ids(project: Project, document_id: str) -> set[str]:
    with project.workspace.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(chunks.c.id).where(chunks.c.document_id == document_id))}


def _run_and_check(root: Path, settings: str) -> None:
    docs = root / "docs"
    docs.mkdir(parents=True)
    for name, body in DOCS.items():
        (docs / name).write_text(body, encoding="utf-8")
    (root / "flightdeck.yaml").write_text(SPEC.format(settings=settings), encoding="utf-8")
    project = Project.load(root)
    summary = project.run()
    assert summary.status == "succeeded"
    index = {s.step: s for s in summary.steps}["index"]
    total = sum(len(_chunk_ids(project, f"docs/{n}")) for n in DOCS)
    assert index.counts["upserted"] == total and index.counts["deleted"] == 0 and total >= len(DOCS)

    hits = project.search("how much does the deluxe widget cost", mode="vector", k=3).hits
    assert hits[0].document_id == "docs/pricing.md"
    assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0
    filtered = project.search("how much does the deluxe widget cost", mode="vector", k=5,
                              where={"document_id": {"$in": ["docs/care.md", "docs/history.md"]}}).hits
    assert filtered and {h.document_id for h in filtered} <= {"docs/care.md", "docs/history.md"}
    hybrid = project.search("sprockets", where={"document_id": "docs/install.md"}).hits
    assert hybrid and {h.document_id for h in hybrid} == {"docs/install.md"}

    # change one file, delete another, run again: only those chunks move
    gone_ids = _chunk_ids(project, "docs/history.md")
    care_before = _chunk_ids(project, "docs/care.md")
    (docs / "care.md").write_text(DOCS["care.md"] + "\nNever put a widget in the dishwasher.\n", encoding="utf-8")
    (docs / "history.md").unlink()
    again = Project.load(root)
    summary = again.run()
    assert summary.status == "succeeded"
    index = {s.step: s for s in summary.steps}["index"]
    # chunk ids hash the text: the changed file's edited chunks are new ids, its old ones are stale
    care_after = _chunk_ids(again, "docs/care.md")
    assert care_after - care_before
    assert index.counts["upserted"] == len(care_after - care_before)
    assert index.counts["deleted"] == len(gone_ids) + len(care_before - care_after)
    assert not _chunk_ids(again, "docs/history.md")
    hits = again.search("who built the first widget in 1923 in Geneva", mode="vector", k=50).hits
    assert hits and not {h.chunk_id for h in hits} & gone_ids
    assert again.search("clockmaker", mode="vector", where={"document_id": "docs/history.md"}).hits == []
    care = again.search("can a widget go in the dishwasher", mode="vector", k=1).hits
    assert care[0].document_id == "docs/care.md" and "dishwasher" in care[0].text


@pytest.mark.slow
@pytest.mark.exercises("retrieval.vector_database.chroma")
def test_project_end_to_end_embedded(tmp_path: Path) -> None:
    _run_and_check(tmp_path / "embedded", "")
    # the collection lives in the workspace, next to the spec
    folder = tmp_path / "embedded" / ".flightdeck" / "stores" / "chroma"
    assert folder.is_dir() and any(folder.iterdir())


@pytest.mark.slow
@pytest.mark.exercises("retrieval.vector_database.chroma")
def test_project_end_to_end_on_a_chroma_server(chroma_server: str, tmp_path: Path) -> None:
    host, port = chroma_server.split(":")
    _run_and_check(tmp_path / "server", f", host: {host}, port: {port}")
    assert not (tmp_path / "server" / ".flightdeck" / "stores" / "chroma").exists()
