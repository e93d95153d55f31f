"""The Pinecone store, tested without Pinecone (no Pinecone server or emulator runs here: Pinecone is a cloud
service, and Pinecone Local is a container image, not on PyPI; there is no container daemon).

What is real: the official ``pinecone`` SDK (v10, REST transport) and everything the store does with it —
filter translation, id mapping, typed metadata, batch splitting, the freshness wait, and the HTTP requests the
SDK actually sends. What is not: the server. ``PineconeReplay`` is an ``http.server`` on 127.0.0.1 that answers
the control-plane (``/indexes``) and data-plane (``/vectors/upsert``, ``/query``, ``/vectors/delete``,
``/vectors/list``, ``/vectors/fetch``, ``/describe_index_stats``) endpoints with bodies and ``x-pinecone-*``
headers written by hand from Pinecone's API reference (2026-07, as the SDK's models describe it). It records
every request; it keeps the indexes it was asked to create, and answers each data-plane call with the reply a
test scripts (an empty one otherwise). It never evaluates a filter or a query: nothing here shows that
Pinecone returns the right rows — that needs the contract suite against a real index. The gRPC transport
(``grpc: true``) is not exercised at all.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

pytest.importorskip("pinecone")

from flightdeck.errors import MissingDependencyError  # noqa: E402
from flightdeck.retrieval.filters import parse_filter  # noqa: E402
from flightdeck.retrieval.stores.base import (
    CHUNK_NAMESPACE,
    StoreLocation,  # noqa: E402
)
from flightdeck.retrieval.stores.pinecone import (  # noqa: E402
    CHUNK_ID_KEY,
    PineconeConfig,
    PineconeStore,
    PineconeStoreError,
    index_name,
    metadata_key,
    pinecone_metadata,
    to_pinecone_filter,
    vector_id,
)

DIM = 4
KEY = "pc-test-key-0123"


class PineconeReplay:
    """Control and data plane of Pinecone's REST API on 127.0.0.1, answering from the reference (see above)."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.indexes: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, collections.deque[tuple[int, Any, dict[str, str]]]] = \
            collections.defaultdict(collections.deque)
        self.lsn = 100
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                size = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(size) if size else b""
                parts = urlsplit(self.path)
                request = {"method": method, "path": parts.path, "query": parse_qs(parts.query),
                           "body": json.loads(raw) if raw else None, "headers": dict(self.headers)}
                replay.log.append(request)
                status, body, headers = replay.answer(request)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._answer("DELETE")

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def config(self, **settings: Any) -> PineconeConfig:
        return PineconeConfig(api_key=KEY, controller_host=self.url, **settings)

    def script(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.scripts[path].append((status, body, headers or {}))

    def sent(self, path: str, method: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.log if r["path"] == path and (method is None or r["method"] == method)]

    def index_json(self, name: str, dimension: int = DIM, metric: str = "cosine") -> dict[str, Any]:
        # The reference's IndexModel. A real describe returns the host without a scheme (https is implied);
        # this one names http:// because the replay speaks plain HTTP.
        return {"name": name, "status": {"ready": True, "state": "Ready"},
                "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": dimension,
                                                  "metric": metric}}},
                "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
                "deletion_protection": "disabled", "host": self.url, "tags": None}

    def answer(self, r: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        path, method, body = r["path"], r["method"], r["body"]
        if self.scripts[path]:
            return self.scripts[path].popleft()
        not_found = (404, {"error": {"code": "NOT_FOUND", "message": f"Resource {path} not found"},
                           "status": 404}, {})
        if path.startswith("/indexes"):
            name = path.split("/")[2] if path.count("/") >= 2 else ""
            if method == "POST" and path == "/indexes":
                model = self.index_json(body["name"])
                model.update(schema=body["schema"], deployment=body["deployment"],
                             deletion_protection=body.get("deletion_protection", "disabled"),
                             tags=body.get("tags"))
                self.indexes[body["name"]] = model
                return 201, model, {}
            if method == "GET":
                return (200, self.indexes[name], {}) if name in self.indexes else not_found
            if method == "DELETE":
                return (202, None, {}) if self.indexes.pop(name, None) else not_found
        namespace = (body or {}).get("namespace", r["query"].get("namespace", [""])[0])
        if path == "/vectors/upsert":
            self.lsn += 1
            return 200, {"upsertedCount": len(body["vectors"])}, {"x-pinecone-lsn-committed": str(self.lsn)}
        if path == "/vectors/delete":
            self.lsn += 1
            return 200, {}, {"x-pinecone-lsn-committed": str(self.lsn)}
        if path == "/query":
            return 200, {"matches": [], "namespace": namespace, "usage": {"readUnits": 1}}, \
                {"x-pinecone-lsn-reconciled": str(self.lsn)}
        if path == "/vectors/list":
            return 200, {"vectors": [], "namespace": namespace, "usage": {"readUnits": 1}}, {}
        if path == "/vectors/fetch":
            return 200, {"vectors": {}, "namespace": namespace, "usage": {"readUnits": 1}}, {}
        if path == "/describe_index_stats":
            return 200, {"namespaces": {}, "dimension": DIM, "indexFullness": 0.0, "totalVectorCount": 0,
                         "metric": "cosine", "vectorType": "dense"}, {}
        return not_found

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def replay() -> Iterator[PineconeReplay]:
    r = PineconeReplay()
    yield r
    r.close()


@pytest.fixture
def location(tmp_path: Path) -> StoreLocation:
    return StoreLocation(tmp_path / "store", "flightdeck_0123abcd", DIM)


@pytest.fixture
def opened(replay: PineconeReplay, location: StoreLocation) -> Iterator[PineconeStore]:
    store = PineconeStore(replay.config(batch_size=2))
    store.open(location)
    yield store
    store.close()


# --- pure parts ------------------------------------------------------------------------------------------
TRANSLATIONS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"kind": "faq"}, {"s_kind": {"$eq": "faq"}}),
    ({"flag": True}, {"b_flag": {"$eq": True}}),
    ({"year": 2015}, {"n_year": {"$eq": 2015.0}}),
    ({"kind": {"$in": ["faq", "note"]}}, {"s_kind": {"$in": ["faq", "note"]}}),
    ({"year": {"$in": [2011, 2019]}}, {"n_year": {"$in": [2011.0, 2019.0]}}),
    ({"x": {"$in": ["a", 1, True, False, True]}},
     {"$or": [{"s_x": {"$in": ["a"]}}, {"n_x": {"$in": [1.0]}}, {"b_x": {"$eq": True}}, {"b_x": {"$eq": False}}]}),
    ({"year": {"$gte": 2014, "$lt": 2018}}, {"$and": [{"n_year": {"$gte": 2014.0}}, {"n_year": {"$lt": 2018.0}}]}),
    ({"year": {"$gt": 2020}}, {"n_year": {"$gt": 2020.0}}),
    ({"year": {"$lte": 2011}}, {"n_year": {"$lte": 2011.0}}),
    ({"published": {"$lt": "2020-03-01"}}, {"n_published": {"$lt": 1583020800.0}}),
    ({"source__host": "b.example"}, {"s_source__host": {"$eq": "b.example"}}),
    ({"$or": [{"$and": [{"kind": "note"}, {"flag": False}]}, {"year": 2010}]},
     {"$or": [{"$and": [{"s_kind": {"$eq": "note"}}, {"b_flag": {"$eq": False}}]}, {"n_year": {"$eq": 2010.0}}]}),
    ({"$and": [{"kind": "faq"}]}, {"s_kind": {"$eq": "faq"}}),
    # a boolean condition never reads the number key, nor a number condition the boolean key
    ({"flag": 1}, {"n_flag": {"$eq": 1.0}}),
    ({"no_such_field": "x"}, {"s_no_such_field": {"$eq": "x"}}),
]


@pytest.mark.parametrize(("raw", "expected"), TRANSLATIONS, ids=[json.dumps(r) for r, _ in TRANSLATIONS])
def test_filter_translation_is_exact(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    got = to_pinecone_filter(parse_filter(raw))
    assert got == expected
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)  # same JSON types too


def test_id_mapping_keeps_chunk_ids_pinecone_accepts() -> None:
    for plain in ("corpus/a.md#3", "x" * 512, "doc-001#c1"):
        assert vector_id(plain) == plain
    for odd in ("corpus/ünïcode.md#1", "y" * 513, "tab\there", "fd:looks-reserved", ""):
        vid = vector_id(odd)
        assert vid == "fd:" + str(uuid.uuid5(CHUNK_NAMESPACE, odd)) and len(vid) <= 512 and vid.isascii()
    assert vector_id("é") != vector_id("è")


def test_typed_metadata_and_index_names() -> None:
    meta = pinecone_metadata("c#1", {"kind": "faq", "year": 2015.0, "flag": False, "fd_chunk_id": "spoof"})
    assert meta == {CHUNK_ID_KEY: "c#1", "s_kind": "faq", "n_year": 2015.0, "b_flag": False,
                    "s_fd_chunk_id": "spoof"}
    assert [metadata_key("k", v) for v in ("s", 1.5, 3, True)] == ["s_k", "n_k", "n_k", "b_k"]
    assert index_name("flightdeck_0123abcd") == "flightdeck-0123abcd"
    assert index_name("fd_contract_" + "a" * 60) == ("fd-contract-" + "a" * 60)[:45]


def test_config_validation() -> None:
    config = PineconeConfig(api_key="sekret-value", index="team-docs", host="https://x.svc.pinecone.io/")
    assert config.host == "https://x.svc.pinecone.io" and "sekret" not in repr(config)
    for bad in ({"index": "Team_Docs"}, {"index": "-lead"}, {"index": "a" * 46}, {"batch_size": 0},
                {"batch_size": 1001}, {"cloud": "ibm"}, {"grpc_scheme": "tcp"}, {"host": "has space"},
                {"freshness_timeout": -1}, {"surprise": True}):
        with pytest.raises(ValueError):
            PineconeConfig(**bad)


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch, location: StoreLocation) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pinecone", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[pinecone\]'"):
        PineconeStore(PineconeConfig(api_key="k")).open(location)


def test_missing_api_key_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch, location: StoreLocation) -> None:
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    with pytest.raises(PineconeStoreError, match=r"api_key: \$\{PINECONE_API_KEY\}"):
        PineconeStore().open(location)


def test_unreachable_pinecone_says_where_and_what_to_do(location: StoreLocation) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    store = PineconeStore(PineconeConfig(api_key=KEY, controller_host=f"http://127.0.0.1:{port}", timeout=2))
    with pytest.raises(PineconeStoreError) as info:
        store.open(location)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message and "'flightdeck-0123abcd'" in message
    assert "nothing answered there" in message and "controller_host" in message


# --- the requests the SDK sends (replayed endpoints) -------------------------------------------------------
def test_open_creates_a_cosine_index_and_finds_its_host(replay: PineconeReplay, opened: PineconeStore) -> None:
    (create,) = replay.sent("/indexes", "POST")
    assert create["headers"]["Api-Key"] == KEY
    assert create["body"]["name"] == "flightdeck-0123abcd"
    assert create["body"]["schema"] == {"fields": {"_values": {"type": "dense_vector", "dimension": DIM,
                                                               "metric": "cosine"}}}
    assert create["body"]["deployment"] == {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}
    assert create["body"]["deletion_protection"] == "disabled"
    assert replay.sent("/indexes/flightdeck-0123abcd", "GET")  # describe: exists? then host
    opened.upsert(["a"], np.ones((1, DIM), dtype=np.float32), [{}])
    (upsert,) = replay.sent("/vectors/upsert")
    assert upsert["headers"]["Api-Key"] == KEY and "namespace" not in upsert["body"]  # the default namespace


def test_existing_index_of_other_shape_is_refused(replay: PineconeReplay, location: StoreLocation) -> None:
    replay.indexes["flightdeck-0123abcd"] = replay.index_json("flightdeck-0123abcd", dimension=768)
    with pytest.raises(PineconeStoreError, match=r"dimension 768, but the embedding model gives 4"):
        PineconeStore(replay.config()).open(location)
    replay.indexes["flightdeck-0123abcd"] = replay.index_json("flightdeck-0123abcd", metric="dotproduct")
    with pytest.raises(PineconeStoreError, match=r"ranks by dotproduct, not cosine"):
        PineconeStore(replay.config()).open(location)
    assert replay.sent("/indexes", "POST") == []


def test_create_false_refuses_a_missing_index(replay: PineconeReplay, location: StoreLocation) -> None:
    with pytest.raises(PineconeStoreError, match=r"no Pinecone index 'flightdeck-0123abcd'.*create: false"):
        PineconeStore(replay.config(create=False)).open(location)


def test_refused_key_says_so(replay: PineconeReplay, location: StoreLocation) -> None:
    replay.script("/indexes/flightdeck-0123abcd", {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"},
                                                   "status": 401}, status=401)
    with pytest.raises(PineconeStoreError, match=r"API key was refused"):
        PineconeStore(replay.config()).open(location)


def test_upsert_splits_batches_with_typed_metadata(replay: PineconeReplay, opened: PineconeStore) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(5, DIM)).astype(np.float32)
    ids = ["a.md#0", "b.md#1", "ü.md#2", "d.md#3", "e.md#4"]
    payloads = [{"kind": "faq", "year": 2015.0 + i, "flag": i % 2 == 0} for i in range(5)]
    opened.upsert(ids, vectors, payloads)
    requests = replay.sent("/vectors/upsert")
    assert [len(r["body"]["vectors"]) for r in requests] == [2, 2, 1]
    sent = [v for r in requests for v in r["body"]["vectors"]]
    for row, cid, vec, payload in zip(sent, ids, vectors, payloads, strict=True):
        assert row["id"] == vector_id(cid)
        assert row["values"] == pytest.approx(vec.tolist())
        assert row["metadata"] == pinecone_metadata(cid, payload)
    assert sent[2]["id"].startswith("fd:") and sent[2]["metadata"][CHUNK_ID_KEY] == "ü.md#2"


def test_refused_batches_never_reach_the_server(replay: PineconeReplay, opened: PineconeStore) -> None:
    with pytest.raises(ValueError):
        opened.upsert(["a", "b"], np.zeros((1, DIM), dtype=np.float32), [{}, {}])
    with pytest.raises(ValueError):
        opened.upsert(["a", "a"], np.zeros((2, DIM), dtype=np.float32), [{}, {}])
    assert replay.sent("/vectors/upsert") == []


def test_flush_waits_until_queries_see_the_last_write(replay: PineconeReplay, opened: PineconeStore) -> None:
    opened.flush()
    assert replay.sent("/query") == []  # nothing written: nothing to wait for
    opened.upsert(["a", "b", "c"], np.eye(DIM, dtype=np.float32)[:3], [{}, {}, {}])  # two requests: lsn 101, 102
    replay.script("/query", {"matches": [], "namespace": ""}, headers={"x-pinecone-lsn-reconciled": "101"})
    replay.script("/query", {"matches": [], "namespace": ""}, headers={"x-pinecone-lsn-reconciled": "102"})
    opened.flush()
    probes = replay.sent("/query")
    assert len(probes) == 2 and probes[0]["body"]["topK"] == 1
    opened.flush()
    assert len(replay.sent("/query")) == 2  # already seen: no new probe


def test_flush_gives_up_after_freshness_timeout(replay: PineconeReplay, location: StoreLocation,
                                                caplog: pytest.LogCaptureFixture) -> None:
    store = PineconeStore(replay.config(freshness_timeout=0.2))
    store.open(location)
    store.upsert(["a"], np.ones((1, DIM), dtype=np.float32), [{}])
    for _ in range(5):
        replay.script("/query", {"matches": []}, headers={"x-pinecone-lsn-reconciled": "1"})
    store.flush()
    assert "had not caught up" in caplog.text
    store.close()


def test_search_sends_filter_and_maps_ids_back(replay: PineconeReplay, opened: PineconeStore) -> None:
    hidden = "corpus/ñ.md#1"  # an fd: id this handle never wrote: looked up by fetch
    replay.script("/query", {"matches": [{"id": "plain.md#0", "score": 0.9},
                                         {"id": vector_id(hidden), "score": 0.5}], "namespace": ""})
    replay.script("/vectors/fetch", {"vectors": {vector_id(hidden): {
        "id": vector_id(hidden), "values": [0.0] * DIM, "metadata": {CHUNK_ID_KEY: hidden}}}, "namespace": ""})
    where = parse_filter({"kind": {"$in": ["faq", "note"]}, "year": {"$gte": 2015}})
    hits = opened.search(np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32), 7, where)
    assert hits == [("plain.md#0", pytest.approx(0.9)), (hidden, pytest.approx(0.5))]
    (query,) = replay.sent("/query")
    assert query["body"] == {"topK": 7, "includeValues": False, "includeMetadata": False,
                             "vector": [0.5, 0.5, 0.5, 0.5],
                             "filter": {"$and": [{"s_kind": {"$in": ["faq", "note"]}}, {"n_year": {"$gte": 2015.0}}]}}
    (fetch,) = replay.sent("/vectors/fetch")
    assert fetch["query"]["ids"] == [vector_id(hidden)]
    # known now: a second search needs no fetch
    replay.script("/query", {"matches": [{"id": vector_id(hidden), "score": 0.4}]})
    assert opened.search(np.ones(DIM), 600_000) == [(hidden, pytest.approx(0.4))]
    assert replay.sent("/query")[-1]["body"]["topK"] == 10_000 and len(replay.sent("/vectors/fetch")) == 1


def test_ids_follow_pagination_and_len_reads_the_namespace(replay: PineconeReplay, opened: PineconeStore) -> None:
    odd = "ünïcode#9"
    replay.script("/vectors/list", {"vectors": [{"id": "a#1"}, {"id": vector_id(odd)}],
                                    "pagination": {"next": "tok-2"}, "namespace": ""})
    replay.script("/vectors/list", {"vectors": [{"id": "b#2"}], "namespace": ""})
    replay.script("/vectors/fetch", {"vectors": {vector_id(odd): {"id": vector_id(odd), "values": [1, 0, 0, 0],
                                                                  "metadata": {CHUNK_ID_KEY: odd}}}})
    assert opened.ids() == {"a#1", odd, "b#2"}
    pages = replay.sent("/vectors/list")
    assert [p["query"].get("paginationToken") for p in pages] == [None, ["tok-2"]]
    assert all(p["query"]["limit"] == ["100"] for p in pages)
    replay.script("/describe_index_stats", {"namespaces": {"__default__": {"vectorCount": 3},
                                                           "other": {"vectorCount": 9}},
                                            "dimension": DIM, "totalVectorCount": 12, "metric": "cosine"})
    assert len(opened) == 3


def test_delete_in_batches_and_owned_index_is_dropped(replay: PineconeReplay, opened: PineconeStore) -> None:
    opened.delete([])
    assert replay.sent("/vectors/delete") == []
    opened.delete(["a", "b", "é"])
    bodies = [r["body"] for r in replay.sent("/vectors/delete")]
    assert bodies == [{"namespace": "", "ids": ["a", "b"]}, {"namespace": "", "ids": [vector_id("é")]}]
    opened.drop()
    assert replay.sent("/indexes/flightdeck-0123abcd", "DELETE") and replay.indexes == {}
    with pytest.raises(RuntimeError, match="open the store"):
        opened.search(np.ones(DIM), 1)


def test_shared_index_uses_a_namespace_and_drop_only_empties_it(replay: PineconeReplay,
                                                                 location: StoreLocation) -> None:
    replay.indexes["team-docs"] = replay.index_json("team-docs")
    store = PineconeStore(replay.config(index="team-docs"))
    store.open(location)
    store.upsert(["a"], np.ones((1, DIM), dtype=np.float32), [{"kind": "faq"}])
    assert replay.sent("/vectors/upsert")[0]["body"]["namespace"] == "flightdeck_0123abcd"
    replay.script("/describe_index_stats", {"namespaces": {"flightdeck_0123abcd": {"vectorCount": 1},
                                                           "__default__": {"vectorCount": 50}}, "dimension": DIM})
    assert len(store) == 1
    store.drop()
    assert replay.sent("/vectors/delete")[-1]["body"] == {"namespace": "flightdeck_0123abcd", "deleteAll": True}
    assert replay.sent("/indexes/team-docs", "DELETE") == [] and "team-docs" in replay.indexes
    assert replay.sent("/indexes", "POST") == []
    store.close()


def test_host_skips_the_control_plane(replay: PineconeReplay, location: StoreLocation) -> None:
    store = PineconeStore(PineconeConfig(api_key=KEY, controller_host="http://127.0.0.1:9", host=replay.url,
                                         namespace="docs"))
    store.open(location)  # the controller host is never asked: it is a dead port
    assert [r["path"] for r in replay.log] == ["/describe_index_stats"]
    store.upsert(["a"], np.ones((1, DIM), dtype=np.float32), [{}])
    assert replay.sent("/vectors/upsert")[0]["body"]["namespace"] == "docs"
    replay.script("/describe_index_stats", {"namespaces": {}, "dimension": 8, "metric": "cosine"})
    with pytest.raises(PineconeStoreError, match="dimension 8"):
        PineconeStore(PineconeConfig(api_key=KEY, host=replay.url)).open(location)
    store.close()
