"""The Weaviate store, tested without a Weaviate server (none can run here: it is a Go server, not on PyPI).

What is real: the official ``weaviate-client`` v4 and everything the store does with it — filter translation,
property typing, ids, batch splitting, and the REST and gRPC requests the client actually sends. What is not:
the server. ``WeaviateReplay`` below is a REST endpoint (``http.server``) and a gRPC endpoint (grpcio, serving
the ``weaviate.v1.Weaviate`` and ``grpc.health.v1.Health`` services from the client's own bundled protos) on
127.0.0.1. It records every request and answers with replies written by hand from Weaviate's REST and gRPC
API reference: the schema endpoints keep the classes they were sent (filled with the server's documented
defaults), and each gRPC call answers with the reply a test scripts (an empty one otherwise). It never
evaluates a filter or a vector search, so nothing here shows that Weaviate returns the right rows: that needs
the contract suite against a real server.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("weaviate")

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from weaviate.classes.query import Filter as WFilter  # noqa: E402
from weaviate.collections.filters import _FilterToGRPC, _FilterToREST  # noqa: E402
from weaviate.proto.v1 import (  # noqa: E402
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

from flightdeck.errors import MissingDependencyError  # noqa: E402
from flightdeck.retrieval.filters import parse_filter  # noqa: E402
from flightdeck.retrieval.stores.base import (
    CHUNK_NAMESPACE,
    StoreLocation,  # noqa: E402
)
from flightdeck.retrieval.stores.weaviate import (  # noqa: E402
    CHUNK_ID_PROPERTY,
    WeaviateConfig,
    WeaviateStore,
    WeaviateStoreError,
    object_uuid,
    property_name,
    to_weaviate_filter,
    weaviate_properties,
)

DIM = 4

# weaviate-client 4.16 builds a boolean filter with value_int=True as well as value_boolean=True (the proto's
# oneof keeps the boolean, as test_boolean_filter_goes_over_grpc_as_a_boolean checks); protobuf 6.x warns that
# 7.34 will reject it. Known and pinned (protobuf 6.33); silenced here so it does not hide other warnings.
pytestmark = pytest.mark.filterwarnings("ignore:Field weaviate.v1.Filters.value_int:DeprecationWarning")

# What a Weaviate 1.32 server fills in for a class created without these settings (REST reference, /v1/schema).
CLASS_DEFAULTS: dict[str, Any] = {
    "invertedIndexConfig": {"bm25": {"b": 0.75, "k1": 1.2}, "cleanupIntervalSeconds": 60,
                            "stopwords": {"additions": None, "preset": "en", "removals": None}},
    "multiTenancyConfig": {"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False},
    "replicationConfig": {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"},
    "shardingConfig": {"actualCount": 1, "actualVirtualCount": 128, "desiredCount": 1, "desiredVirtualCount": 128,
                       "function": "murmur3", "key": "_id", "strategy": "hash", "virtualPerPhysical": 128},
}
HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 32, "efConstruction": 128, "ef": -1,
    "dynamicEfMin": 100, "dynamicEfMax": 500, "dynamicEfFactor": 8, "vectorCacheMaxObjects": 1000000000000,
    "flatSearchCutoff": 40000, "distance": "cosine", "filterStrategy": "sweeping",
    "pq": {"enabled": False}, "bq": {"enabled": False}, "sq": {"enabled": False}}
FLAT_DEFAULTS: dict[str, Any] = {"distance": "cosine", "vectorCacheMaxObjects": 1000000000000,
                                 "bq": {"enabled": False}}


def _property_defaults(prop: dict[str, Any]) -> dict[str, Any]:
    text = prop["dataType"] == ["text"]
    return {"indexFilterable": True, "indexSearchable": text, "indexRangeFilters": False,
            **({"tokenization": "word"} if text else {}), **prop}


class WeaviateReplay:
    """REST + gRPC endpoints on 127.0.0.1 that record requests and answer from the API reference (see above)."""

    def __init__(self) -> None:
        self.rest: list[tuple[str, str, Any]] = []
        self.calls: list[tuple[str, Any]] = []
        self.classes: dict[str, dict[str, Any]] = {}
        self.replies: dict[str, collections.deque[Any]] = collections.defaultdict(collections.deque)
        replay = self

        class Rest(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                size = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(size) if size else b""
                body = json.loads(raw) if raw else None
                replay.rest.append((method, self.path, json.loads(raw) if raw else None))
                status, out = replay.answer(method, self.path, body)
                data = json.dumps(out).encode() if out is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._answer("DELETE")

        class Grpc(weaviate_pb2_grpc.WeaviateServicer):
            def Search(self, request: Any, context: Any) -> Any:  # noqa: N802
                return replay.reply("Search", request, search_get_pb2.SearchReply())

            def BatchObjects(self, request: Any, context: Any) -> Any:  # noqa: N802
                return replay.reply("BatchObjects", request, batch_pb2.BatchObjectsReply())

            def BatchDelete(self, request: Any, context: Any) -> Any:  # noqa: N802
                return replay.reply("BatchDelete", request, batch_delete_pb2.BatchDeleteReply())

            def Aggregate(self, request: Any, context: Any) -> Any:  # noqa: N802
                return replay.reply("Aggregate", request, aggregate_pb2.AggregateReply())

        class Health(health_pb2_grpc.HealthServicer):
            def Check(self, request: Any, context: Any) -> Any:  # noqa: N802
                return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(Grpc(), self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(Health(), self.grpc)
        self.grpc_port = self.grpc.add_insecure_port("127.0.0.1:0")
        self.grpc.start()
        self.http_port = self.http.server_address[1]

    def config(self, **settings: Any) -> WeaviateConfig:
        return WeaviateConfig(url=f"http://127.0.0.1:{self.http_port}",
                              grpc_url=f"http://127.0.0.1:{self.grpc_port}", **settings)

    def reply(self, name: str, request: Any, default: Any) -> Any:
        self.calls.append((name, request))
        queue = self.replies[name]
        return queue.popleft() if queue else default

    def requests(self, name: str) -> list[Any]:
        return [r for n, r in self.calls if n == name]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.split("?")[0].strip("/").split("/")  # v1, schema, Name, properties
        if path == "/v1/meta":
            return 200, {"hostname": "http://[::]:8080", "version": "1.32.0", "modules": {},
                         "grpcMaxMessageSize": 104858000}
        if parts[:2] == ["v1", "schema"] and len(parts) == 2 and method == "POST":
            cls = {**CLASS_DEFAULTS, **body}
            for vector in cls.get("vectorConfig", {}).values():
                defaults = HNSW_DEFAULTS if vector["vectorIndexType"] == "hnsw" else FLAT_DEFAULTS
                vector["vectorIndexConfig"] = {**defaults, **vector["vectorIndexConfig"]}
            cls["properties"] = [_property_defaults(p) for p in cls.get("properties") or []]
            self.classes[cls["class"]] = cls
            return 200, cls
        if parts[:2] == ["v1", "schema"] and len(parts) == 3:
            if method == "GET":
                found = self.classes.get(parts[2])
                return (200, found) if found else (404, None)
            if method == "DELETE":
                self.classes.pop(parts[2], None)
                return 200, None
        if parts[:2] == ["v1", "schema"] and len(parts) == 4 and parts[3] == "properties" and method == "POST":
            self.classes[parts[2]]["properties"].append(_property_defaults(body))
            return 200, body
        return 404, {"error": [{"message": f"no replay for {method} {path}"}]}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.grpc.stop(0)


@pytest.fixture
def replay() -> Iterator[WeaviateReplay]:
    r = WeaviateReplay()
    yield r
    r.close()


@pytest.fixture
def location(tmp_path: Path) -> StoreLocation:
    return StoreLocation(tmp_path / "store", "flightdeck_0123abcd", DIM)


@pytest.fixture
def opened(replay: WeaviateReplay, location: StoreLocation) -> Iterator[WeaviateStore]:
    store = WeaviateStore(replay.config(batch_size=2))
    store.open(location)
    yield store
    store.close()


def _hit(chunk_id: str, distance: float) -> search_get_pb2.SearchResult:
    return search_get_pb2.SearchResult(
        properties=search_get_pb2.PropertiesResult(non_ref_props=properties_pb2.Properties(
            fields={CHUNK_ID_PROPERTY: properties_pb2.Value(text_value=chunk_id)})),
        metadata=search_get_pb2.MetadataResult(id=object_uuid(chunk_id), distance=distance, distance_present=True))


# --- pure parts: no connection ---------------------------------------------------------------------------
PROPS = {"s_kind", "n_year", "b_flag", "s_x", "n_x", "b_x", "n_published", "s_source__host"}

TRANSLATIONS: list[tuple[dict[str, Any], Any]] = [
    ({"kind": "faq"}, {"operator": "Equal", "path": ["s_kind"], "valueText": "faq"}),
    ({"flag": True}, {"operator": "Equal", "path": ["b_flag"], "valueBoolean": True}),
    ({"year": 2015}, {"operator": "Equal", "path": ["n_year"], "valueNumber": 2015.0}),
    ({"kind": {"$in": ["faq", "note"]}},
     {"operator": "ContainsAny", "path": ["s_kind"], "valueTextArray": ["faq", "note"]}),
    ({"year": {"$in": [2011, 2019]}},
     {"operator": "Or", "operands": [{"operator": "Equal", "path": ["n_year"], "valueNumber": 2011.0},
                                     {"operator": "Equal", "path": ["n_year"], "valueNumber": 2019.0}]}),
    ({"x": {"$in": ["a", 1, True]}},
     {"operator": "Or", "operands": [{"operator": "ContainsAny", "path": ["s_x"], "valueTextArray": ["a"]},
                                     {"operator": "Equal", "path": ["n_x"], "valueNumber": 1.0},
                                     {"operator": "Equal", "path": ["b_x"], "valueBoolean": True}]}),
    ({"year": {"$gte": 2014, "$lt": 2018}},
     {"operator": "And", "operands": [{"operator": "GreaterThanEqual", "path": ["n_year"], "valueNumber": 2014.0},
                                      {"operator": "LessThan", "path": ["n_year"], "valueNumber": 2018.0}]}),
    ({"year": {"$gt": 2020}}, {"operator": "GreaterThan", "path": ["n_year"], "valueNumber": 2020.0}),
    ({"year": {"$lte": 2011}}, {"operator": "LessThanEqual", "path": ["n_year"], "valueNumber": 2011.0}),
    ({"published": {"$lt": "2020-03-01"}},
     {"operator": "LessThan", "path": ["n_published"], "valueNumber": 1583020800.0}),
    ({"source__host": "b.example"}, {"operator": "Equal", "path": ["s_source__host"], "valueText": "b.example"}),
    ({"$or": [{"$and": [{"kind": "note"}, {"flag": False}]}, {"year": 2010}]},
     {"operator": "Or", "operands": [
         {"operator": "And", "operands": [{"operator": "Equal", "path": ["s_kind"], "valueText": "note"},
                                          {"operator": "Equal", "path": ["b_flag"], "valueBoolean": False}]},
         {"operator": "Equal", "path": ["n_year"], "valueNumber": 2010.0}]}),
    # a boolean is never compared with a number, nor a range with a string: those properties do not exist
    ({"flag": 1}, False),
    ({"kind": {"$gt": 3}}, False),
    ({"no_such_field": "x"}, False),
    ({"kind": "faq", "no_such_field": "x"}, False),
    ({"$or": [{"no_such_field": "x"}, {"kind": "faq"}]},
     {"operator": "Equal", "path": ["s_kind"], "valueText": "faq"}),
    ({"$or": [{"no_such_field": "x"}, {"flag": 2}]}, False),
    ({"kind": {"$in": [1, 2]}}, False),
]


@pytest.mark.parametrize(("raw", "expected"), TRANSLATIONS, ids=[json.dumps(r) for r, _ in TRANSLATIONS])
def test_filter_translation_is_exact(raw: dict[str, Any], expected: Any) -> None:
    native = to_weaviate_filter(parse_filter(raw), PROPS)
    if expected is False:
        assert native is False
    else:
        assert _FilterToREST.convert(native) == expected


def test_boolean_filter_goes_over_grpc_as_a_boolean() -> None:
    proto = _FilterToGRPC.convert(to_weaviate_filter(parse_filter({"flag": True}), PROPS))
    assert proto.WhichOneof("test_value") == "value_boolean" and proto.value_boolean is True
    proto = _FilterToGRPC.convert(to_weaviate_filter(parse_filter({"year": 2015}), PROPS))
    assert proto.WhichOneof("test_value") == "value_number" and proto.value_number == 2015.0


def test_ids_and_typed_properties() -> None:
    cid = "corpus/ünïcode file.md#3" + "x" * 280
    assert object_uuid(cid) == str(uuid.uuid5(CHUNK_NAMESPACE, cid)) == object_uuid(cid)
    assert object_uuid("a") != object_uuid("b")
    props = weaviate_properties(cid, {"kind": "faq", "year": 2015.0, "flag": True, "fd_chunk_id": "spoof"})
    assert props == {CHUNK_ID_PROPERTY: cid, "s_kind": "faq", "n_year": 2015.0, "b_flag": True,
                     "s_fd_chunk_id": "spoof"}
    assert [property_name("k", v) for v in ("s", 1.0, 2, False)] == ["s_k", "n_k", "n_k", "b_k"]


def test_config_validation_and_endpoints() -> None:
    default = WeaviateConfig()
    assert default.endpoints() == (("127.0.0.1", 8080, False), ("127.0.0.1", 50051, False))
    cloud = WeaviateConfig(url="https://abc.weaviate.cloud/", api_key="sekret-key-123")
    assert cloud.url == "https://abc.weaviate.cloud"
    assert cloud.endpoints() == (("abc.weaviate.cloud", 443, True), ("abc.weaviate.cloud", 50051, True))
    split = WeaviateConfig(url="http://rest:9000", grpc_url="https://grpc.example:7443")
    assert split.endpoints()[1] == ("grpc.example", 7443, True)
    assert "sekret" not in repr(cloud)  # the key is a SecretStr
    for bad in ({"url": "weaviate:8080"}, {"grpc_url": "grpc://x:1"}, {"collection": "9lives"},
                {"collection": "has-dash"}, {"batch_size": 0}, {"vector_index": "ivf"}, {"unknown": 1}):
        with pytest.raises(ValueError):
            WeaviateConfig(**bad)


def test_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch, location: StoreLocation) -> None:
    monkeypatch.setitem(__import__("sys").modules, "weaviate", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[weaviate\]'"):
        WeaviateStore().open(location)


def test_unreachable_server_says_where_and_what_to_do(location: StoreLocation) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    store = WeaviateStore(WeaviateConfig(url=f"http://127.0.0.1:{port}", timeout_init=2))
    with pytest.raises(WeaviateStoreError) as info:
        store.open(location)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message and "gRPC http://127.0.0.1:50051" in message
    assert "Start a Weaviate server" in message and "retrieval.vector_database.url" in message


# --- the requests the client sends (replayed endpoints) ----------------------------------------------------
def test_open_creates_a_cosine_collection(replay: WeaviateReplay, opened: WeaviateStore) -> None:
    posts = [b for m, p, b in replay.rest if m == "POST" and p == "/v1/schema"]
    assert len(posts) == 1
    body = posts[0]
    assert body["class"] == "Flightdeck_0123abcd"
    vector = body["vectorConfig"]["default"]
    assert vector["vectorizer"] == {"none": {}} and vector["vectorIndexType"] == "hnsw"
    assert vector["vectorIndexConfig"] == {"distance": "cosine", "ef": -1, "efConstruction": 128,
                                           "maxConnections": 32}
    (chunk_prop,) = body["properties"]
    assert chunk_prop["name"] == CHUNK_ID_PROPERTY and chunk_prop["dataType"] == ["text"]
    assert chunk_prop["tokenization"] == "field" and chunk_prop["indexSearchable"] is False


def test_user_collection_wins_and_existing_one_is_reused(replay: WeaviateReplay, location: StoreLocation) -> None:
    first = WeaviateStore(replay.config(collection="team_docs", vector_index="flat"))
    first.open(location)
    first.upsert(["a"], np.ones((1, DIM), dtype=np.float32), [{"kind": "faq"}])
    first.close()
    assert set(replay.classes) == {"Team_docs"}
    assert replay.classes["Team_docs"]["vectorConfig"]["default"]["vectorIndexType"] == "flat"
    again = WeaviateStore(replay.config(collection="team_docs"))
    again.open(location)
    assert sum(1 for m, p, _ in replay.rest if m == "POST" and p == "/v1/schema") == 1
    # it read the existing properties, so it searches on s_kind without adding it again
    again.search(np.ones(DIM), 3, parse_filter({"kind": "faq"}))
    assert replay.requests("Search")[-1].filters.target.property == "s_kind"
    again.close()


def test_upsert_splits_batches_and_sends_typed_objects(replay: WeaviateReplay, opened: WeaviateStore) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(5, DIM)).astype(np.float32)
    ids = [f"doc-{i}.md#{i}" for i in range(5)]
    payloads = [{"kind": "faq", "year": 2015.0 + i, "flag": i % 2 == 0} for i in range(5)]
    payloads[4] = {"kind": 7.0}  # the same key as a number: a property of its own
    opened.upsert(ids, vectors, payloads)
    batches = replay.requests("BatchObjects")
    assert [len(b.objects) for b in batches] == [2, 2, 1]
    sent = [o for b in batches for o in b.objects]
    for obj, cid, vec, payload in zip(sent, ids, vectors, payloads, strict=True):
        assert obj.collection == "Flightdeck_0123abcd" and obj.uuid == object_uuid(cid)
        (named,) = obj.vectors
        assert named.name == "default"
        assert np.frombuffer(named.vector_bytes, dtype="<f4").tolist() == pytest.approx(vec.tolist())
        fields = obj.properties.non_ref_properties.fields
        assert fields[CHUNK_ID_PROPERTY].string_value == cid
        for key, value in payload.items():
            field = fields[property_name(key, value)]
            if isinstance(value, bool):
                assert field.bool_value is value
            elif isinstance(value, float):
                assert field.number_value == value
            else:
                assert field.string_value == value
    added = [b for m, p, b in replay.rest if m == "POST" and p.endswith("/properties")]
    assert {(b["name"], b["dataType"][0], b.get("tokenization")) for b in added} == {
        ("s_kind", "text", "field"), ("n_year", "number", None), ("b_flag", "boolean", None),
        ("n_kind", "number", None)}
    # a second write with known keys adds no property
    opened.upsert(ids[:1], vectors[:1], payloads[:1])
    assert len([1 for m, p, _ in replay.rest if m == "POST" and p.endswith("/properties")]) == 4


def test_refused_objects_raise_with_the_chunk_id(replay: WeaviateReplay, opened: WeaviateStore) -> None:
    replay.replies["BatchObjects"].append(batch_pb2.BatchObjectsReply(errors=[
        batch_pb2.BatchObjectsReply.BatchError(index=1, error="vector lengths don't match")]))
    with pytest.raises(WeaviateStoreError, match=r"refused 1 of 2 objects.*'b#1'.*vector lengths"):
        opened.upsert(["a#0", "b#1"], np.ones((2, DIM), dtype=np.float32), [{}, {}])


def test_bad_batches_are_refused_before_sending(replay: WeaviateReplay, opened: WeaviateStore) -> None:
    with pytest.raises(ValueError):
        opened.upsert(["a", "b"], np.zeros((1, DIM), dtype=np.float32), [{}, {}])
    with pytest.raises(ValueError):
        opened.upsert(["a"], np.zeros((1, DIM + 1), dtype=np.float32), [{}])
    assert replay.requests("BatchObjects") == []


def test_search_sends_vector_limit_and_filter_and_reads_scores(replay: WeaviateReplay,
                                                                 opened: WeaviateStore) -> None:
    opened.upsert(["a", "b"], np.eye(DIM, dtype=np.float32)[:2], [{"kind": "faq", "flag": True}, {"year": 2.0}])
    replay.replies["Search"].append(search_get_pb2.SearchReply(results=[_hit("a", 0.1), _hit("b", 0.75)]))
    where = parse_filter({"$or": [{"kind": "faq", "flag": True}, {"year": {"$gte": 1}}]})
    query = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    hits = opened.search(query, 7, where)
    assert hits == [("a", pytest.approx(0.9)), ("b", pytest.approx(0.25))]
    request = replay.requests("Search")[-1]
    assert request.collection == "Flightdeck_0123abcd" and request.limit == 7
    assert list(request.near_vector.targets.target_vectors) == ["default"]
    (sent,) = request.near_vector.vectors
    assert np.frombuffer(sent.vector_bytes, dtype="<f4").tolist() == query.tolist()
    assert request.metadata.distance is True
    assert list(request.properties.non_ref_properties) == [CHUNK_ID_PROPERTY]
    expected = WFilter.any_of([
        WFilter.all_of([WFilter.by_property("s_kind").equal("faq"), WFilter.by_property("b_flag").equal(True)]),
        WFilter.by_property("n_year").greater_or_equal(1.0)])
    assert request.filters == _FilterToGRPC.convert(expected)
    assert isinstance(request.filters, base_pb2.Filters)


def test_filter_on_unknown_property_sends_no_query(replay: WeaviateReplay, opened: WeaviateStore) -> None:
    opened.upsert(["a"], np.ones((1, DIM), dtype=np.float32), [{"kind": "faq"}])
    schema_reads = sum(1 for m, p, _ in replay.rest if m == "GET" and p.startswith("/v1/schema/"))
    assert opened.search(np.ones(DIM), 5, parse_filter({"no_such_field": "x"})) == []
    assert opened.search(np.ones(DIM), 5, parse_filter({"kind": True})) == []
    assert replay.requests("Search") == []
    # before concluding, it re-read the schema (another writer may have added the property)
    assert sum(1 for m, p, _ in replay.rest if m == "GET" and p.startswith("/v1/schema/")) == schema_reads + 2


def test_property_added_by_another_writer_is_found(replay: WeaviateReplay, location: StoreLocation) -> None:
    reader = WeaviateStore(replay.config())
    reader.open(location)
    writer = WeaviateStore(replay.config())
    writer.open(location)
    writer.upsert(["a"], np.ones((1, DIM), dtype=np.float32), [{"lang": "en"}])
    reader.search(np.ones(DIM), 2, parse_filter({"lang": "en"}))
    assert replay.requests("Search")[-1].filters.target.property == "s_lang"
    reader.close()
    writer.close()


def test_delete_sends_uuids_in_batches(replay: WeaviateReplay, opened: WeaviateStore) -> None:
    opened.delete([])
    assert replay.requests("BatchDelete") == []
    ids = ["a", "b", "c"]
    opened.delete(ids)
    requests = replay.requests("BatchDelete")
    assert len(requests) == 2
    sent = [v for r in requests for v in r.filters.value_text_array.values]
    assert sent == [object_uuid(c) for c in ids]
    assert all(r.filters.target.property == "_id" and r.collection == "Flightdeck_0123abcd" for r in requests)
    assert all(r.filters.operator == base_pb2.Filters.OPERATOR_CONTAINS_ANY for r in requests)


def test_ids_len_and_drop(replay: WeaviateReplay, opened: WeaviateStore) -> None:
    replay.replies["Search"].append(search_get_pb2.SearchReply(results=[_hit("x#1", 0), _hit("y#2", 0)]))
    assert opened.ids() == {"x#1", "y#2"}
    assert list(replay.requests("Search")[0].properties.non_ref_properties) == [CHUNK_ID_PROPERTY]
    replay.replies["Aggregate"].append(aggregate_pb2.AggregateReply(
        single_result=aggregate_pb2.AggregateReply.Single(objects_count=42)))
    assert len(opened) == 42
    assert replay.requests("Aggregate")[-1].objects_count is True
    opened.drop()
    assert ("DELETE", "/v1/schema/Flightdeck_0123abcd", None) in replay.rest
    assert replay.classes == {}
    with pytest.raises(RuntimeError, match="open the store"):
        opened.search(np.ones(DIM), 1)


def test_closed_grpc_port_fails_at_open_naming_it(replay: WeaviateReplay, location: StoreLocation) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    store = WeaviateStore(WeaviateConfig(url=f"http://127.0.0.1:{replay.http_port}",
                                         grpc_url=f"http://127.0.0.1:{dead}", timeout_init=1))
    with pytest.raises(WeaviateStoreError) as info:
        store.open(location)
    message = str(info.value)
    assert "REST endpoint answers" in message and f"http://127.0.0.1:{dead}" in message and "grpc_url" in message
    assert replay.calls == []
