"""Qdrant passes the store contract in both embedded modes; Qdrant specifics; a project end to end in each.

Edge mode (qdrant-edge-py) runs Qdrant's own Rust engine in this process; local mode is qdrant-client's
Python re-implementation, which evaluates the same ``models.Filter`` objects that a server receives. No Qdrant
server runs here: server mode is reached only by the refused-connection test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from flightdeck.errors import FlightdeckError, IndexMismatchError, MissingDependencyError, WorkspaceError
from flightdeck.retrieval.filters import Condition, FilterError, matches, parse_filter
from flightdeck.retrieval.stores.base import StoreLocation
from flightdeck.retrieval.stores.qdrant import (
    EDGE_FOLDER,
    ID_KEY,
    QdrantConfig,
    QdrantStore,
    point_id,
    to_edge_filter,
    to_qdrant_filter,
)
from flightdeck.testing.store_contract import VectorStoreContract

qdrant_client = pytest.importorskip("qdrant_client")
qdrant_edge = pytest.importorskip("qdrant_edge")
from qdrant_client import models  # noqa: E402

# qdrant-client checks a server's version in a background thread; with no server it warns, maybe after the
# test that made the client has ended
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning")


class TestQdrantEdge(VectorStoreContract):
    """Default settings: Edge (Qdrant's engine in-process) in the location's folder, shard named by the location."""

    @pytest.fixture
    def make_store(self) -> Callable[[], QdrantStore]:
        return lambda: QdrantStore(QdrantConfig())


class TestQdrantLocal(VectorStoreContract):
    """qdrant-client's local mode in the location's folder, collection named by the location."""

    @pytest.fixture
    def make_store(self) -> Callable[[], QdrantStore]:
        return lambda: QdrantStore(QdrantConfig(mode="local"))


def _unit(n: int, dim: int, seed: int = 3) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=["edge", "local"])
def opened(tmp_path: Path, request: pytest.FixtureRequest):
    """Opens stores in the mode of the test's parameter (both embedded modes) unless given a config."""
    stores: list[QdrantStore] = []

    def open_store(config: QdrantConfig | None = None, collection: str = "specifics", dim: int = 8,
                   folder: Path | None = None) -> QdrantStore:
        store = QdrantStore(config or QdrantConfig(mode=request.param))
        store.open(StoreLocation(folder or tmp_path / "q", collection, dim))
        stores.append(store)
        return store

    yield open_store
    for store in stores:
        store.close()


# --- ids ----------------------------------------------------------------------------------------------
def test_any_chunk_id_round_trips_through_uuid_point_ids(opened) -> None:
    store = opened()
    ids = ["corpus/a.md#3", "docs/ünïcödé page.html#0", "x" * 300, "1", "records.jsonl#row-17?q=a&b=c"]
    vectors = _unit(len(ids), 8)
    store.upsert(ids, vectors, [{} for _ in ids])
    assert store.ids() == set(ids) and len(store) == len(ids)
    for i, cid in enumerate(ids):
        assert store.search(vectors[i], 1) == [(cid, pytest.approx(1.0, abs=1e-4))]
    # the point id is the UUIDv5 of the chunk id, and the chunk id is in the payload
    client = store._client
    record = (client.retrieve([point_id(ids[2])], with_payload=True, with_vector=False) if store.mode == "edge"
              else client.retrieve(store.collection, [point_id(ids[2])], with_payload=True))[0]
    assert str(record.id) == point_id(ids[2]) and record.payload[ID_KEY] == ids[2]
    assert point_id("a") == point_id("a") != point_id("b")


def test_ids_pages_through_more_than_one_scroll_page(opened) -> None:
    store = opened()
    store.SCROLL_PAGE = 7  # type: ignore[misc]
    ids = [f"c{i}" for i in range(30)]
    store.upsert(ids, _unit(30, 8), [{"n": float(i)} for i in range(30)])
    assert store.ids() == set(ids)


# --- the reserved key ---------------------------------------------------------------------------------
def test_the_reserved_payload_key_cannot_be_written_or_filtered(opened) -> None:
    store = opened()
    with pytest.raises(ValueError, match="reserved"):
        store.upsert(["a"], _unit(1, 8), [{ID_KEY: "b"}])
    assert len(store) == 0
    # filter field names never contain "-", so the language itself cannot name the key...
    with pytest.raises(FilterError):
        parse_filter({ID_KEY: "a"})
    # ...and a hand-built condition is refused before it reaches Qdrant
    store.upsert(["a"], _unit(1, 8), [{"k": "v"}])
    with pytest.raises(FilterError, match="not a field name"):
        store.search(_unit(1, 8)[0], 3, Condition(ID_KEY, "$eq", "a"))
    # a user field that looks like an internal name is just metadata
    store.upsert(["b"], _unit(1, 8, seed=4), [{"_fd_id": "user value", "fd_chunk_id": "x"}])
    assert store.search(_unit(1, 8, seed=4)[0], 5, parse_filter({"_fd_id": "user value"}))[0][0] == "b"
    assert store.ids() == {"a", "b"}


# --- filter translation -------------------------------------------------------------------------------
def test_filter_translation_uses_native_conditions() -> None:
    eq_num = to_qdrant_filter(parse_filter({"year": 2015}))
    assert eq_num == models.Filter(must=[models.FieldCondition(key="year", range=models.Range(gte=2015.0,
                                                                                                lte=2015.0))])
    eq_bool = to_qdrant_filter(parse_filter({"flag": True}))
    assert eq_bool.must[0].match == models.MatchValue(value=True)
    in_str = to_qdrant_filter(parse_filter({"kind": {"$in": ["faq", "note"]}}))
    assert in_str.must[0].match == models.MatchAny(any=["faq", "note"])
    mixed = to_qdrant_filter(parse_filter({"v": {"$in": ["a", True, 3]}}))
    inner = mixed.must[0]
    assert isinstance(inner, models.Filter) and len(inner.should) == 3
    assert inner.should[0].match == models.MatchAny(any=["a"])
    assert inner.should[1].match == models.MatchValue(value=True)
    assert inner.should[2].range == models.Range(gte=3.0, lte=3.0)
    either = to_qdrant_filter(parse_filter({"$or": [{"kind": "guide"}, {"year": {"$gte": 2020}}]}))
    assert either.must is None and either.should[1].range == models.Range(gte=2020.0)
    both = to_qdrant_filter(parse_filter({"kind": "faq", "$or": [{"a": 1}, {"$and": [{"b": "x"}, {"c": False}]}]}))
    assert both.must[0].match == models.MatchValue(value="faq")
    assert isinstance(both.must[1], models.Filter) and isinstance(both.must[1].should[1], models.Filter)
    assert len(both.must[1].should[1].must) == 2
    dates = to_qdrant_filter(parse_filter({"published": {"$lt": "2020-03-01"}}))
    assert dates.must[0].range.lt == pytest.approx(1583020800.0)


def test_edge_filter_translation_uses_edge_classes_and_real_booleans() -> None:
    both = to_edge_filter(parse_filter({"kind": "faq", "$or": [{"year": 2015}, {"flag": True}, {"n": {"$gt": 2}}]}))
    assert isinstance(both, qdrant_edge.Filter) and both.should is None
    assert both.must[0].key == "kind" and both.must[0].match.value == "faq"
    either = both.must[1]
    assert isinstance(either, qdrant_edge.Filter) and either.must is None
    year, flag, n = either.should
    assert isinstance(year.range, qdrant_edge.RangeFloat) and (year.range.gte, year.range.lte) == (2015.0, 2015.0)
    # a Python True would reach the engine as the integer 1 and match no boolean payload
    assert flag.match.value is True
    assert n.range.gt == 2.0 and n.range.lt is None
    in_mixed = to_edge_filter(parse_filter({"v": {"$in": ["a", False]}})).must[0]
    assert in_mixed.should[0].match.value == ["a"] and in_mixed.should[1].match.value is False


TYPED = [("bool", True), ("one", 1.0), ("str1", "1"), ("zero", 0.0), ("false", False), ("strtrue", "True")]


@pytest.mark.parametrize("raw", [
    {"v": True}, {"v": 1}, {"v": 1.0}, {"v": "1"}, {"v": False}, {"v": 0}, {"v": "True"},
    {"v": {"$in": [True, "1"]}}, {"v": {"$in": [1, 0]}}, {"v": {"$in": [False, 0, "x"]}},
    {"v": {"$gte": 0}}, {"v": {"$gt": 0.5}}, {"v": {"$lte": 1}},
], ids=str)
def test_booleans_numbers_and_strings_stay_apart(opened, raw) -> None:
    store = opened(collection="typed")
    ids = [name for name, _ in TYPED] + ["no_v"]
    payloads = [{"v": value} for _, value in TYPED] + [{"w": 1.0}]
    store.upsert(ids, _unit(len(ids), 8), payloads)
    f = parse_filter(raw)
    expected = {ids[i] for i, p in enumerate(payloads) if matches(f, p)}
    assert expected, raw  # every case selects something: the test would notice a filter that matches nothing
    assert {cid for cid, _ in store.search(_unit(1, 8, seed=9)[0], 20, f)} == expected


LOCAL = QdrantConfig(mode="local")


# --- local mode: one client per folder, the folder lock -----------------------------------------------
def test_two_stores_on_one_folder_share_the_client_and_release_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    location = StoreLocation(folder, "shared", 8)
    reader, writer = QdrantStore(LOCAL), QdrantStore(LOCAL)
    reader.open(location)
    writer.open(location)  # a second client on a locked folder would raise: the store shares one
    vectors = _unit(5, 8)
    writer.upsert([f"c{i}" for i in range(5)], vectors, [{} for _ in range(5)])
    writer.flush()
    writer.close()
    assert reader.search(vectors[2], 1)[0][0] == "c2"  # the reader sees the writes and outlives the writer
    reader.close()
    # the last close released the folder's lock: a plain client can open it now, and sees the points
    client = qdrant_client.QdrantClient(path=str(folder))
    try:
        assert client.count("shared", exact=True).count == 5
    finally:
        client.close()
    again = QdrantStore(LOCAL)
    again.open(location)
    assert len(again) == 5
    again.close()
    again.close()  # closing twice is harmless


def test_a_store_that_is_never_closed_releases_the_folder_when_collected(tmp_path: Path) -> None:
    import gc

    location = StoreLocation(tmp_path / "gc", "gc", 8)
    store = QdrantStore(LOCAL)
    store.open(location)
    del store
    gc.collect()
    client = qdrant_client.QdrantClient(path=str(tmp_path / "gc"))
    client.close()


def _hold_in_another_process(tmp_path: Path, code: str) -> subprocess.Popen:
    """Run ``code`` (which takes a lock) in a child process, and wait until it wrote the file ``ready``."""
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code) + textwrap.dedent(f"""
        import pathlib, time
        pathlib.Path({str(ready)!r}).write_text("ok")
        time.sleep(120)
        """)])
    deadline = time.monotonic() + 60
    while not ready.exists():
        if holder.poll() is not None or time.monotonic() > deadline:
            holder.kill()
            pytest.fail("the lock-holding process failed")
        time.sleep(0.1)
    return holder


def test_a_folder_locked_by_another_process_gives_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    holder = _hold_in_another_process(tmp_path, f"""
        from qdrant_client import QdrantClient
        client = QdrantClient(path={str(folder)!r})
        """)
    try:
        store = QdrantStore(LOCAL)
        with pytest.raises(WorkspaceError, match="open in another process.*set `url:`"):
            store.open(StoreLocation(folder, "locked", 8))
    finally:
        holder.kill()
        holder.wait(timeout=10)


# --- edge mode: the default, one shard per collection and process, the WAL lock --------------------------
def test_edge_is_the_default_and_a_local_mode_collection_stays_local(tmp_path: Path) -> None:
    assert QdrantStore().mode == "edge" and QdrantStore(QdrantConfig(path="x")).mode == "edge"
    assert QdrantStore(QdrantConfig(url="http://localhost:6333")).mode == "server"
    folder = tmp_path / "stores"
    new = QdrantStore()
    new.open(StoreLocation(folder, "fresh", 8))
    new.upsert(["a"], _unit(1, 8), [{}])
    assert new.mode == "edge" and (folder / EDGE_FOLDER / "fresh" / "edge_config.json").is_file()
    new.close()
    assert not (folder / "collection").exists()

    # a collection that local mode wrote (a workspace from before Edge) keeps being read in local mode
    old = StoreLocation(folder, "older", 8)
    writer = QdrantStore(LOCAL)
    writer.open(old)
    writer.upsert(["x", "y", "z"], _unit(3, 8), [{}, {}, {}])
    writer.close()
    kept = QdrantStore()
    kept.open(old)
    assert kept.mode == "local" and len(kept) == 3
    kept.close()
    # asking for Edge starts an Edge shard beside it, which the default then prefers
    moved = QdrantStore(QdrantConfig(mode="edge"))
    moved.open(old)
    assert moved.mode == "edge" and len(moved) == 0
    moved.close()
    again = QdrantStore()
    again.open(old)
    assert again.mode == "edge"
    again.close()


def test_two_edge_stores_on_one_folder_share_the_shard_and_release_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    location = StoreLocation(folder, "shared", 8)
    reader, writer = QdrantStore(), QdrantStore()
    reader.open(location)
    writer.open(location)  # a second shard on the same folder would be refused its WAL: the stores share one
    vectors = _unit(5, 8)
    writer.upsert([f"c{i}" for i in range(5)], vectors, [{} for _ in range(5)])
    writer.flush()
    writer.close()
    assert reader.search(vectors[2], 1)[0][0] == "c2"  # the reader sees the writes and outlives the writer
    reader.close()
    # the last close released the WAL lock: Qdrant Edge itself can load the shard now, and sees the points
    shard = qdrant_edge.EdgeShard.load(str(folder / EDGE_FOLDER / "shared"))
    try:
        assert shard.count(qdrant_edge.CountRequest(exact=True)) == 5
    finally:
        shard.close()
    again = QdrantStore()
    again.open(location)
    assert len(again) == 5 and again.ids() == {f"c{i}" for i in range(5)}
    again.close()
    again.close()  # closing twice is harmless


def test_an_edge_store_that_is_never_closed_releases_the_shard_when_collected(tmp_path: Path) -> None:
    import gc

    store = QdrantStore()
    store.open(StoreLocation(tmp_path / "gc", "gc", 8))
    store.upsert(["a"], _unit(1, 8), [{}])
    del store
    gc.collect()
    shard = qdrant_edge.EdgeShard.load(str(tmp_path / "gc" / EDGE_FOLDER / "gc"))
    assert shard.count(qdrant_edge.CountRequest(exact=True)) == 1
    shard.close()


def test_an_edge_shard_locked_by_another_process_gives_a_clear_error(tmp_path: Path) -> None:
    shard = tmp_path / "locked" / EDGE_FOLDER / "locked"
    holder = _hold_in_another_process(tmp_path, f"""
        import qdrant_edge as qe
        shard = qe.EdgeShard.create({str(shard)!r}, qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=8, distance=qe.Distance.Cosine)))
        """)
    try:
        store = QdrantStore()
        with pytest.raises(WorkspaceError, match=f"Qdrant Edge shard {shard} is open in another process.*`url:`"):
            store.open(StoreLocation(tmp_path / "locked", "locked", 8))
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.mark.parametrize("damage", ["segments", "config"])
def test_a_damaged_edge_shard_is_reported_with_its_folder(tmp_path: Path, damage: str) -> None:
    location = StoreLocation(tmp_path / "q", "hurt", 8)
    store = QdrantStore()
    store.open(location)
    store.upsert(["a", "b"], _unit(2, 8), [{}, {}])
    store.flush()
    store.close()
    shard = tmp_path / "q" / EDGE_FOLDER / "hurt"
    targets = list((shard / "segments").rglob("version.info")) if damage == "segments" else [
        shard / "edge_config.json"]
    assert targets
    for target in targets:
        target.write_bytes(b"\x00not what Qdrant wrote")
    with pytest.raises(WorkspaceError, match=f"Qdrant Edge shard {shard} cannot be opened .* damaged"):
        QdrantStore().open(location)


def test_flush_runs_qdrants_optimizers_which_build_the_hnsw_index(tmp_path: Path) -> None:
    # Edge never optimizes by itself: without flush's optimize() the shard stays one plain segment, searched
    # by brute force, with deleted points kept. 650 vectors of 4096 floats pass the 10 MB indexing threshold.
    n, dim = 650, 4096
    store = QdrantStore(QdrantConfig(hnsw_ef=64))
    store.open(StoreLocation(tmp_path / "q", "big", dim))
    vectors = _unit(n, dim)
    store.upsert([f"c{i}" for i in range(n)], vectors, [{"i": float(i)} for i in range(n)])
    assert store._client.info().indexed_vectors_count == 0
    store.flush()
    assert store._client.info().indexed_vectors_count == n
    assert store.search(vectors[7], 3)[0] == ("c7", pytest.approx(1.0, abs=1e-3))
    assert [c for c, _ in store.search(vectors[7], 3, parse_filter({"i": {"$gte": 600}}))][0] in {
        f"c{i}" for i in range(600, n)}
    store.close()


# --- both embedded modes ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["edge", "local"])
def test_explicit_path_and_collection_override_the_location(tmp_path: Path, mode: str) -> None:
    store = QdrantStore(QdrantConfig(mode=mode, path=str(tmp_path / "mine"), collection="team_docs"))
    store.open(StoreLocation(tmp_path / "q", "ignored", 8))
    store.upsert(["a"], _unit(1, 8), [{}])
    assert store.collection == "team_docs"
    store.close()
    if mode == "edge":
        assert [p.name for p in (tmp_path / "mine" / EDGE_FOLDER).iterdir()] == ["team_docs"]
    else:
        client = qdrant_client.QdrantClient(path=str(tmp_path / "mine"))
        try:
            assert [c.name for c in client.get_collections().collections] == ["team_docs"]
        finally:
            client.close()
    assert not (tmp_path / "q").exists()


def test_reopening_with_another_dimension_is_refused(opened) -> None:
    first = opened(collection="dims", dim=8)
    with pytest.raises(IndexMismatchError, match="dimension 8.*12"):  # while the first store has it open
        opened(collection="dims", dim=12)
    first.close()
    with pytest.raises(IndexMismatchError, match="dimension 8.*dimension 12"):
        opened(collection="dims", dim=12)


def test_drop_deletes_the_collection(opened, tmp_path: Path) -> None:
    store = opened(collection="gone")
    other = opened(collection="gone")  # shares the folder's client or shard
    store.upsert(["a", "b"], _unit(2, 8), [{}, {}])
    store.drop()
    store.drop()  # dropping twice is harmless
    store.close()
    if other.mode == "edge":
        assert not (tmp_path / "q" / EDGE_FOLDER / "gone").exists()
        with pytest.raises(RuntimeError, match="was dropped: open the store again"):
            other.search(_unit(1, 8)[0], 1)
        other.close()
        reopened = opened(collection="gone")
        assert len(reopened) == 0
        return
    other.close()
    client = qdrant_client.QdrantClient(path=str(tmp_path / "q"))
    try:
        assert not client.collection_exists("gone")
    finally:
        client.close()


def test_query_of_wrong_dimension_is_refused(opened) -> None:
    store = opened()
    store.upsert(["a"], _unit(1, 8), [{}])
    with pytest.raises(ValueError, match="dimension"):
        store.search(np.ones(9, dtype=np.float32), 1)
    assert store.search(np.ones(8, dtype=np.float32), 0) == []


# --- settings and server mode ---------------------------------------------------------------------------
@pytest.mark.parametrize("settings, message", [
    ({"url": "http://localhost:6333", "path": "x"}, "not both"),
    ({"api_key": "k"}, "only apply to a Qdrant server"),
    ({"prefer_grpc": True}, "only apply to a Qdrant server"),
    ({"url": "localhost:6333"}, "not an http"),
    ({"collection": "has space"}, "letters, digits"),
    ({"hnsw_ef": 0}, "greater than or equal"),
    ({"batch": 3}, "Extra inputs"),
    ({"mode": "server"}, "needs the server's `url`"),
    ({"mode": "edge", "url": "http://localhost:6333"}, "remove `url`, or set `mode: server`"),
    ({"mode": "local", "url": "http://localhost:6333"}, "remove `url`"),
    ({"mode": "embedded"}, "'edge', 'local' or 'server'"),
])
def test_settings_are_checked(settings, message) -> None:
    with pytest.raises(ValidationError, match=message):
        QdrantConfig(**settings)


def test_the_api_key_is_kept_out_of_reprs() -> None:
    config = QdrantConfig(url="https://qdrant.example:6333", api_key="s3cret")
    assert "s3cret" not in repr(config) and config.api_key.get_secret_value() == "s3cret"


def test_an_unreachable_server_is_reported_with_its_url() -> None:
    with socket.socket() as s:  # a port nothing listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = QdrantStore(QdrantConfig(url=f"http://127.0.0.1:{port}", timeout=2))
    with pytest.raises(FlightdeckError, match=f"Qdrant at http://127.0.0.1:{port} failed while opening"):
        store.open(StoreLocation(Path("unused"), "c", 8))


@pytest.mark.parametrize("module, config", [
    ("qdrant_client", QdrantConfig(mode="local")),
    ("qdrant_client", QdrantConfig(url="http://127.0.0.1:9")),
    ("qdrant_edge", QdrantConfig()),
])
def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str,
                                         config: QdrantConfig) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    store = QdrantStore(config)
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[qdrant\]'") as info:
        store.open(StoreLocation(tmp_path / "none", "c", 8))
    assert isinstance(info.value.__cause__, ImportError)
    if module == "qdrant_edge":
        assert "qdrant-edge-py" in str(info.value) and "or set `mode: local`" in str(info.value)


# --- a project end to end --------------------------------------------------------------------------------
PROJECT_SPEC = """\
project: qdrant-project
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources:
    - {provider: files, path: ./docs}
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval:
  embedding_model: sentence_transformers
  vector_database: {provider: qdrant, VECTOR_SETTINGS}
  system: [hybrid_search, metadata_filtering]
  search: {mode: hybrid, k: 5}
"""

PROJECT_DOCS = {
    "sprockets.md": "# Sprockets\n\nAlign the sprockets before you run the widget installer again.\n",
    "storage.md": "# Storage\n\nKeep widgets in a dry room between 5 and 25 degrees Celsius.\n",
    "colours.md": "# Colours\n\nWidgets come in red, blue and green; green sells best in spring.\n",
    "warranty.md": "# Warranty\n\nThe warranty covers two years of normal use, not water damage.\n",
}


# edge: the default (no `mode`), so the spec that most users write runs Qdrant's engine; local: asked for
@pytest.mark.integration
@pytest.mark.exercises("retrieval.vector_database.qdrant")
@pytest.mark.parametrize("mode, settings", [("edge", "hnsw_ef: 64"), ("local", "mode: local")], ids=["edge", "local"])
def test_a_project_indexes_searches_and_syncs_a_qdrant_collection(tmp_path: Path, mode: str, settings: str) -> None:
    from flightdeck import Project

    docs = tmp_path / "docs"
    docs.mkdir()
    for name, body in PROJECT_DOCS.items():
        (docs / name).write_text(body, encoding="utf-8")
    (tmp_path / "flightdeck.yaml").write_text(PROJECT_SPEC.replace("VECTOR_SETTINGS", settings), encoding="utf-8")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    project = Project.load(tmp_path)
    first = project.run()
    assert first.status == "succeeded"
    index = {s.step: s for s in first.steps}["index"]
    assert index.counts["upserted"] == 4 and index.counts["deleted"] == 0  # one chunk per document
    # the collection lives inside the workspace, in the files of the mode's engine
    folder = project.workspace.root / "stores" / "qdrant"
    collection = index.counts["collection"]
    if mode == "edge":
        assert (folder / EDGE_FOLDER / collection / "edge_config.json").is_file()
        assert not (folder / "collection").exists()
    else:
        assert (folder / "collection" / collection).is_dir() and not (folder / EDGE_FOLDER).exists()

    # the paraphrase shares no word with the answer: the Qdrant vectors do the work
    hits = project.search("how warm or cold may the place be where I keep them", mode="vector", k=2).hits
    assert hits[0].document_id.endswith("storage.md")
    filtered = project.search("how warm or cold may the place be where I keep them", mode="vector", k=4,
                              where={"document_id": {"$in": ["docs/colours.md", "docs/warranty.md"]}}).hits
    assert filtered and {h.document_id for h in filtered} <= {"docs/colours.md", "docs/warranty.md"}
    assert project.search("sprockets", where={"title": "no such title"}).hits == []
    storage_chunks = {h.chunk_id for h in hits if h.document_id.endswith("storage.md")}

    # change one file, delete another; the searcher above keeps its store open meanwhile (same process)
    (docs / "sprockets.md").write_text("# Sprockets\n\nSprockets are made of brass and last ten years.\n",
                                       encoding="utf-8")
    (docs / "storage.md").unlink()
    second = project.run()
    assert second.status == "succeeded"
    index = {s.step: s for s in second.steps}["index"]
    # only what changed is written: the changed document's new chunk in, its old chunk and the deleted
    # document's chunk out (a chunk's id carries its text); the two untouched documents are left alone
    assert (index.counts["upserted"], index.counts["deleted"]) == (1, 2)

    again = project.search("how warm or cold may the place be where I keep them", mode="vector", k=10).hits
    assert again and not {h.document_id for h in again} & {"docs/storage.md"}
    assert not storage_chunks & {h.chunk_id for h in again}
    brass = project.search("what metal are sprockets made of", mode="vector", k=1).hits
    assert brass[0].document_id == "docs/sprockets.md" and "brass" in brass[0].text

    assert project.searcher._store.mode == mode
    # a second Project in this process opens the same folder (the stores share its one client or shard)
    fresh = Project.load(tmp_path)
    assert {h.document_id for h in fresh.search("warranty water damage", mode="vector", k=10).hits} == {
        "docs/sprockets.md", "docs/colours.md", "docs/warranty.md"}
    fresh.searcher._store.close()
    project.searcher._store.close()
