"""The Pinecone store runs the vector store contract against its test double, made to keep vectors.

No Pinecone server or emulator can run here (test_store_pinecone.py says why). ``PineconeIndexes`` extends that
file's ``PineconeReplay`` (Pinecone's REST control and data plane on 127.0.0.1, driven by the real ``pinecone``
SDK) so that the data plane holds state per namespace: ``/vectors/upsert`` stores (and replaces) vectors with
their metadata, ``/vectors/delete`` removes ids or empties a namespace, ``/vectors/list`` pages through ids,
``/vectors/fetch`` returns vectors, ``/describe_index_stats`` counts, and ``/query`` ranks by exact cosine
similarity after the metadata filter, evaluated as Pinecone documents it for the operators flightdeck sends
(``$eq``, ``$in``, ``$gt``/``$gte``/``$lt``/``$lte`` on numbers, ``$and``/``$or``; a vector without the field
never matches; a boolean never equals a number) from the JSON the SDK sent, not from flightdeck's filter tree.
Any other operator fails the request, so that an unexpected translation shows. Deleting the index deletes its
vectors. Every read answers with the log position of the last write, so ``flush`` returns at once.

What this shows: the store's requests give the contract's answers under those semantics. What it cannot show:
that Pinecone agrees with them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pinecone")

from test_store_pinecone import PineconeReplay  # noqa: E402

from flightdeck.retrieval.stores.pinecone import PineconeStore  # noqa: E402
from flightdeck.testing.store_contract import VectorStoreContract  # noqa: E402

pytestmark = pytest.mark.integration

_RANGES: dict[str, Callable[[float, float], bool]] = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt,
                                                     "$lte": operator.le}


class Unsupported(Exception):
    """A filter this double does not emulate: the request fails, and the test with it."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(have: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return isinstance(want, bool) and isinstance(have, bool) and have is want
    if _number(want):
        return _number(have) and float(have) == float(want)
    return isinstance(want, str) and isinstance(have, str) and have == want


def _condition(have: Any, op: str, want: Any) -> bool:
    if op == "$eq":
        return _equal(have, want)
    if op == "$in":
        if not isinstance(want, list) or not all(isinstance(v, str) or _number(v) for v in want):
            raise Unsupported(f"$in takes a list of strings and numbers, got {want!r}")
        return any(_equal(have, v) for v in want)
    if op in _RANGES:
        if not _number(want):
            raise Unsupported(f"{op} takes a number, got {want!r}")
        return _number(have) and _RANGES[op](float(have), float(want))
    raise Unsupported(f"operator {op}")


def matches(f: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Whether a vector's metadata passes Pinecone's filter ``f`` (the documented semantics, see above)."""
    results = []
    for key, cond in f.items():
        if key in ("$and", "$or"):
            parts = [matches(part, metadata) for part in cond]
            results.append(all(parts) if key == "$and" else any(parts))
        elif key.startswith("$"):
            raise Unsupported(f"top-level operator {key}")
        else:
            conds = cond if isinstance(cond, dict) else {"$eq": cond}
            results.append(key in metadata and all(_condition(metadata[key], op, v) for op, v in conds.items()))
    return all(results)


class PineconeIndexes(PineconeReplay):
    """The replay of test_store_pinecone.py, keeping each namespace's vectors (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}

    def _space(self, name: str) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        return self.namespaces.setdefault("" if name == "__default__" else name, {})

    def answer(self, r: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        try:
            return self._stateful(r)
        except Unsupported as exc:  # Pinecone's answer to a request it cannot read: the SDK raises at once
            return 400, {"error": {"code": "INVALID_ARGUMENT", "message": f"the test double: {exc}"},
                         "status": 400}, {}

    def _stateful(self, r: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        path, method, body = r["path"], r["method"], r["body"] or {}
        if self.scripts[path]:
            return super().answer(r)  # a reply a test scripted comes first, as in the replay
        if path.startswith("/indexes/") and method == "DELETE" and path.split("/")[2] in self.indexes:
            self.namespaces.clear()  # every index here shares the one data-plane host: only one lives at a time
        namespace = body.get("namespace", r["query"].get("namespace", [""])[0])
        space = self._space(namespace)
        reconciled = {"x-pinecone-lsn-reconciled": str(self.lsn)}
        if path == "/vectors/upsert":
            for row in body["vectors"]:
                space[row["id"]] = (np.asarray(row["values"], dtype=np.float32), dict(row.get("metadata") or {}))
            self.lsn += 1
            return 200, {"upsertedCount": len(body["vectors"])}, {"x-pinecone-lsn-committed": str(self.lsn)}
        if path == "/vectors/delete":
            if body.get("deleteAll"):
                space.clear()
            elif "filter" in body:
                raise Unsupported("delete by filter")
            else:
                for vid in body.get("ids", []):
                    space.pop(vid, None)
            self.lsn += 1
            return 200, {}, {"x-pinecone-lsn-committed": str(self.lsn)}
        if path == "/query":
            if "id" in body or "sparseVector" in body:
                raise Unsupported("a query by id or with a sparse vector")
            q = np.asarray(body["vector"], dtype=np.float32)
            where = body.get("filter")
            scored = [(float(vec @ q / (np.linalg.norm(vec) * np.linalg.norm(q))), vid)
                      for vid, (vec, meta) in space.items() if where is None or matches(where, meta)]
            scored.sort(key=lambda t: -t[0])  # stable: equal scores keep the order of writing
            found = [{"id": vid, "score": score} for score, vid in scored[:body["topK"]]]
            return 200, {"matches": found, "namespace": namespace, "usage": {"readUnits": 1}}, reconciled
        if path == "/vectors/list":
            limit = int(r["query"].get("limit", ["100"])[0])
            start = int(r["query"].get("paginationToken", ["0"])[0])
            prefix = r["query"].get("prefix", [""])[0]
            vids = sorted(v for v in space if v.startswith(prefix))
            page: dict[str, Any] = {"vectors": [{"id": v} for v in vids[start:start + limit]], "namespace": namespace,
                                    "usage": {"readUnits": 1}}
            if start + limit < len(vids):
                page["pagination"] = {"next": str(start + limit)}
            return 200, page, reconciled
        if path == "/vectors/fetch":
            found = {vid: {"id": vid, "values": space[vid][0].tolist(), "metadata": space[vid][1]}
                     for vid in r["query"].get("ids", []) if vid in space}
            return 200, {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}, reconciled
        if path == "/describe_index_stats":
            counts = {name or "__default__": {"vectorCount": len(vecs)} for name, vecs in self.namespaces.items()
                      if vecs}
            dims = {len(vec) for vecs in self.namespaces.values() for vec, _ in vecs.values()}
            return 200, {"namespaces": counts, "dimension": dims.pop() if len(dims) == 1 else 0,
                         "indexFullness": 0.0, "totalVectorCount": sum(c["vectorCount"] for c in counts.values()),
                         "metric": "cosine", "vectorType": "dense"}, {}
        return super().answer(r)


@pytest.fixture
def indexes() -> Iterator[PineconeIndexes]:
    double = PineconeIndexes()
    yield double
    double.close()


def test_the_double_evaluates_filters_as_documented() -> None:
    """The evaluator itself, on Pinecone filters written by hand (so that the contract's answers rest on it)."""
    meta = {"s_kind": "faq", "n_year": 2015.0, "b_flag": True}
    assert matches({"s_kind": {"$eq": "faq"}}, meta) and not matches({"s_kind": {"$eq": "guide"}}, meta)
    assert matches({"s_kind": "faq"}, meta)  # a bare value is $eq
    assert matches({"n_year": {"$in": [2011.0, 2015.0]}}, meta) and not matches({"s_kind": {"$in": ["x"]}}, meta)
    assert matches({"n_year": {"$gte": 2015, "$lt": 2016}}, meta) and not matches({"n_year": {"$gt": 2015}}, meta)
    assert not matches({"b_flag": {"$eq": 1.0}}, meta) and not matches({"n_year": {"$eq": True}}, meta)
    assert not matches({"n_missing": {"$lt": 5}}, meta)
    assert matches({"$or": [{"s_kind": "x"}, {"b_flag": True}]}, meta)
    assert not matches({"$and": [{"s_kind": "faq"}, {"b_flag": False}]}, meta)
    assert matches({"s_kind": "faq", "n_year": {"$gt": 2000}}, meta)  # several keys: all must hold
    for unsupported in ({"s_kind": {"$ne": "x"}}, {"s_kind": {"$exists": True}}, {"$not": {}}):
        with pytest.raises(Unsupported):
            matches(unsupported, meta)


class TestPineconeStore(VectorStoreContract):
    @pytest.fixture
    def make_store(self, indexes: PineconeIndexes) -> Callable[[], PineconeStore]:
        return lambda: PineconeStore(indexes.config(batch_size=16))
