"""The Weaviate store runs the vector store contract against its test double, made to keep objects.

No Weaviate server can run here (test_store_weaviate.py says why). ``WeaviateCollections`` extends that file's
``WeaviateReplay`` (REST schema endpoints and gRPC services on 127.0.0.1, driven by the real ``weaviate-client``)
so that the gRPC services hold state: ``BatchObjects`` stores each object (uuid, named vector, properties),
``BatchDelete`` removes the ids its filter names, ``Aggregate`` counts, and ``Search`` answers a ``near_vector``
query by exact cosine distance and a plain fetch (the client's iterator) in uuid order after ``after``. Filters
are evaluated as Weaviate documents them for the operators flightdeck sends (Equal on text with ``field``
tokenization, number or boolean; ContainsAny; the four ranges on numbers; And/Or; a property an object lacks
never matches), from the gRPC ``Filters`` message the client built, not from flightdeck's filter tree. Any other
operator fails the call, so that an unexpected translation shows.

What this shows: the store's requests (typed properties, ids, filter translation, scores from distances, batch
splits, persistence across handles, drop) give the contract's answers under those semantics. What it cannot
show: that a real Weaviate server agrees with them.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("weaviate")

from test_store_weaviate import WeaviateReplay  # noqa: E402
from weaviate.proto.v1 import (  # noqa: E402
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
)

from flightdeck.retrieval.stores.weaviate import WeaviateStore  # noqa: E402
from flightdeck.testing.store_contract import VectorStoreContract  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Field weaviate.v1.Filters.value_int:DeprecationWarning")]

F = base_pb2.Filters


class Unsupported(Exception):
    """A request this double does not emulate: the call fails, and the test with it."""


def _struct_value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind in ("string_value", "number_value", "bool_value"):
        return getattr(value, kind)
    raise Unsupported(f"property value of kind {kind}")


_NUMERIC: dict[int, Callable[[float, float], bool]] = {
    F.OPERATOR_EQUAL: operator.eq, F.OPERATOR_GREATER_THAN: operator.gt, F.OPERATOR_GREATER_THAN_EQUAL: operator.ge,
    F.OPERATOR_LESS_THAN: operator.lt, F.OPERATOR_LESS_THAN_EQUAL: operator.le}


def _compare(op: int, have: Any, want: Any) -> bool:
    if have is None:
        return False  # a property the object lacks matches no condition
    if op not in _NUMERIC or (op != F.OPERATOR_EQUAL and not isinstance(want, (int, float))) or (
            op != F.OPERATOR_EQUAL and isinstance(want, bool)):
        raise Unsupported(f"operator {F.Operator.Name(op)} with {want!r}")
    if isinstance(want, bool) or isinstance(have, bool):
        return isinstance(want, bool) and isinstance(have, bool) and have is want
    if isinstance(want, str) or isinstance(have, str):  # field tokenization: the trimmed value is one token
        return isinstance(want, str) and isinstance(have, str) and have.strip() == want.strip()
    return _NUMERIC[op](have, want)


def matches(f: base_pb2.Filters, object_id: str, props: dict[str, Any]) -> bool:
    """Whether the object passes the gRPC filter ``f`` (Weaviate's documented semantics, see above)."""
    if f.operator == F.OPERATOR_AND:
        return all(matches(part, object_id, props) for part in f.filters)
    if f.operator == F.OPERATOR_OR:
        return any(matches(part, object_id, props) for part in f.filters)
    if f.target.WhichOneof("target") != "property":
        raise Unsupported("a filter on a reference or a count")
    name = f.target.property
    have = object_id if name == "_id" else props.get(name)
    kind = f.WhichOneof("test_value")
    if f.operator == F.OPERATOR_CONTAINS_ANY:
        if kind != "value_text_array":
            raise Unsupported(f"ContainsAny with {kind}")
        return have is not None and any(_compare(F.OPERATOR_EQUAL, have, v) for v in f.value_text_array.values)
    if kind not in ("value_text", "value_number", "value_boolean", "value_int"):
        raise Unsupported(f"a condition with {kind}")
    want = getattr(f, kind)
    return _compare(f.operator, have, float(want) if kind == "value_int" else want)


class WeaviateCollections(WeaviateReplay):
    """The replay of test_store_weaviate.py, keeping each collection's objects (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}  # collection -> uuid -> object

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.split("?")[0].strip("/").split("/")
        if method == "DELETE" and parts[:2] == ["v1", "schema"] and len(parts) == 3:
            self.objects.pop(parts[2], None)  # deleting a class deletes its objects
        return super().answer(method, path, body)

    def reply(self, name: str, request: Any, default: Any) -> Any:
        if self.replies[name]:  # a reply a test scripted comes first, as in the replay
            return super().reply(name, request, default)
        self.calls.append((name, request))
        return getattr(self, f"_{name}")(request)

    def _BatchObjects(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        for obj in request.objects:
            (named,) = obj.vectors
            vector = np.frombuffer(named.vector_bytes, dtype="<f4").copy()
            props = {k: _struct_value(v) for k, v in obj.properties.non_ref_properties.fields.items()}
            self.objects.setdefault(obj.collection, {})[obj.uuid] = (vector, props)  # a write replaces the object
        return batch_pb2.BatchObjectsReply()

    def _BatchDelete(self, request: Any) -> Any:  # noqa: N802
        live = self.objects.get(request.collection, {})
        gone = [oid for oid, (_, props) in live.items() if matches(request.filters, oid, props)]
        for oid in gone:
            del live[oid]
        return batch_delete_pb2.BatchDeleteReply(matches=len(gone), successful=len(gone))

    def _Aggregate(self, request: Any) -> Any:  # noqa: N802
        if not request.objects_count or request.HasField("filters"):
            raise Unsupported("an aggregation other than counting every object")
        count = len(self.objects.get(request.collection, {}))
        return aggregate_pb2.AggregateReply(single_result=aggregate_pb2.AggregateReply.Single(objects_count=count))

    def _Search(self, request: Any) -> Any:  # noqa: N802
        live = self.objects.get(request.collection, {})
        rows = [(oid, vec, props) for oid, (vec, props) in live.items()
                if not request.HasField("filters") or matches(request.filters, oid, props)]
        wanted = list(request.properties.non_ref_properties)
        if request.HasField("near_vector"):
            (sent,) = request.near_vector.vectors
            q = np.frombuffer(sent.vector_bytes, dtype="<f4")
            scored = [(1.0 - float(vec @ q / (np.linalg.norm(vec) * np.linalg.norm(q))), oid, props)
                      for oid, vec, props in rows]
            scored.sort(key=lambda t: t[0])  # stable: equal distances keep the order of writing
            top = scored[:request.limit]
        else:  # a plain fetch: the client's iterator pages through objects in uuid order
            after = request.after or ""
            top = [(None, oid, props) for oid, _, props in sorted(rows, key=lambda r: r[0]) if oid > after]
            top = top[:request.limit]
        results = []
        for distance, oid, props in top:
            fields = {}
            for key in wanted:
                if key in props:
                    fields[key] = properties_pb2.Value(text_value=props[key]) if isinstance(props[key], str) else \
                        properties_pb2.Value(number_value=props[key])
            # the 1.2x reference sends the id both as text and as 16 bytes (which the v4 client reads)
            metadata = search_get_pb2.MetadataResult(id=oid, id_as_bytes=uuid.UUID(oid).bytes)
            if distance is not None:
                metadata.distance, metadata.distance_present = distance, True
            results.append(search_get_pb2.SearchResult(
                properties=search_get_pb2.PropertiesResult(non_ref_props=properties_pb2.Properties(fields=fields)),
                metadata=metadata))
        return search_get_pb2.SearchReply(results=results)


@pytest.fixture
def collections() -> Iterator[WeaviateCollections]:
    double = WeaviateCollections()
    yield double
    double.close()


def test_the_double_evaluates_filters_as_documented() -> None:
    """The evaluator itself, on gRPC filters built by hand (so that the contract's answers rest on it)."""
    text = F(operator=F.OPERATOR_EQUAL, target=base_pb2.FilterTarget(property="s_kind"), value_text="faq")
    assert matches(text, "u", {"s_kind": " faq "}) and not matches(text, "u", {"s_kind": "faqs"})
    assert not matches(text, "u", {})
    boolean = F(operator=F.OPERATOR_EQUAL, target=base_pb2.FilterTarget(property="b_flag"), value_boolean=True)
    assert matches(boolean, "u", {"b_flag": True}) and not matches(boolean, "u", {"b_flag": 1.0})
    rng = F(operator=F.OPERATOR_GREATER_THAN_EQUAL, target=base_pb2.FilterTarget(property="n_year"), value_number=2015)
    assert matches(rng, "u", {"n_year": 2015.0}) and not matches(rng, "u", {"n_year": 2014.0})
    assert not matches(rng, "u", {"s_year": "2016"})
    anyof = F(operator=F.OPERATOR_CONTAINS_ANY, target=base_pb2.FilterTarget(property="s_kind"),
              value_text_array=base_pb2.TextArray(values=["faq", "note"]))
    assert matches(anyof, "u", {"s_kind": "note"}) and not matches(anyof, "u", {"s_kind": "guide"})
    both = F(operator=F.OPERATOR_AND, filters=[text, rng])
    either = F(operator=F.OPERATOR_OR, filters=[text, rng])
    assert not matches(both, "u", {"s_kind": "faq"}) and matches(either, "u", {"s_kind": "faq"})
    ids = F(operator=F.OPERATOR_CONTAINS_ANY, target=base_pb2.FilterTarget(property="_id"),
            value_text_array=base_pb2.TextArray(values=["u1"]))
    assert matches(ids, "u1", {}) and not matches(ids, "u2", {})
    with pytest.raises(Unsupported):
        matches(F(operator=F.OPERATOR_LIKE, target=base_pb2.FilterTarget(property="s_kind"), value_text="f*"), "u",
                {"s_kind": "faq"})


class TestWeaviateStore(VectorStoreContract):
    @pytest.fixture
    def make_store(self, collections: WeaviateCollections) -> Callable[[], WeaviateStore]:
        return lambda: WeaviateStore(collections.config(batch_size=16))
