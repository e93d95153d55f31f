"""Pinecone: one live namespace of a Pinecone index, through the official ``pinecone`` SDK (v10).

How flightdeck's model maps onto Pinecone:

- by default each collection is its own serverless index, named after ``location.collection`` (``_`` becomes
  ``-``), created on first use with the embedder's dimension and the cosine metric, in ``cloud``/``region``;
  ``drop()`` deletes that index. Name an existing index with ``index`` (or address it directly with ``host``)
  to share one index between projects instead: each collection then lives in its own namespace (named after
  the collection, unless ``namespace`` says otherwise) and ``drop()`` empties only that namespace — flightdeck
  never deletes an index it did not name;
- Pinecone vector ids are ASCII, without NUL, at most 512 characters. A chunk id that fits (and does not
  start with ``fd:``) is used as is, so that ``ids()`` needs only the list endpoint; any other chunk id
  becomes ``fd:<uuid5 of the chunk id>``. The chunk id is always kept in the metadata key ``fd_chunk_id``;
- each payload key is stored under a name that carries its type: ``s_<key>`` (string), ``n_<key>`` (number),
  ``b_<key>`` (boolean). Pinecone's reference does not say whether ``{"$eq": 1}`` matches a stored ``true``
  or how ``$gt`` treats a string, so the types are kept apart by construction instead: ``{"flag": True}``
  reads ``b_flag`` only, ranges read ``n_<key>`` only, and a vector without the key has no value there and
  never matches (Pinecone's documented behaviour for a missing field). User keys cannot collide with
  ``fd_chunk_id``, since each gets a one-letter type prefix;
- filters are translated into Pinecone's filter language (``$eq``, ``$in``, ``$gt``..., ``$and``, ``$or``)
  and sent with the query; the score Pinecone returns for the cosine metric is the cosine similarity.

Pinecone's serverless indexes are eventually consistent: a write is visible to queries a little later.
Writes return the log position they landed at and queries return how far the index has caught up, so
``flush()`` waits (up to ``freshness_timeout`` seconds) until a query reports the last write's position.
Counts (``len``) and listings (``ids``) may still lag behind for a moment after that.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import AllOf, AnyOf, Condition, Filter
from flightdeck.retrieval.stores.base import StoreLocation, check_batch, chunk_uuid, typed_key, typed_payload

__all__ = ["PineconeConfig", "PineconeStore", "PineconeStoreError", "CHUNK_ID_KEY", "ID_PREFIX",
           "vector_id", "metadata_key", "pinecone_metadata", "to_pinecone_filter", "index_name"]

log = logging.getLogger(__name__)

CHUNK_ID_KEY = "fd_chunk_id"
ID_PREFIX = "fd:"
MAX_ID = 512
TOP_K_MAX = 10_000
LIST_PAGE = 100
FETCH_BATCH = 100
_INDEX_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")
_VECTOR_FIELD = "_values"  # the field name the vectors API addresses (a dimension/metric index)


def _pinecone() -> Any:
    pinecone = optional_import("pinecone", "pinecone", "vector_store 'pinecone'")
    optional_import("pinecone.errors", "pinecone", "vector_store 'pinecone'")  # read as pinecone.errors.X
    return pinecone


class PineconeStoreError(FlightdeckError):
    """Pinecone could not be reached or refused a request; the message says which and what to do."""


class PineconeConfig(BaseModel):
    """Settings of ``vector_database: {provider: pinecone, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    api_key: SecretStr | None = Field(None, description="write it as ${PINECONE_API_KEY}; default: that variable")
    index: str | None = Field(
        None, description="an index to share: each collection becomes a namespace in it; default: one index "
                          "per collection, named after it")
    namespace: str | None = Field(
        None, description="namespace to use; default: the collection name when `index` or `host` is set, else "
                          "the index's default namespace")
    host: str | None = Field(
        None, description="data-plane host of an existing index (skips the lookup), e.g. "
                          "https://docs-abc123.svc.aped-4627-b74a.pinecone.io or http://localhost:5081")
    controller_host: str | None = Field(
        None, description="control-plane URL; default https://api.pinecone.io (or PINECONE_CONTROLLER_HOST)")
    create: bool = Field(True, description="create the index when it does not exist")
    cloud: Literal["aws", "gcp", "azure"] = Field("aws", description="where a created serverless index runs")
    region: str = Field("us-east-1", description="region of a created serverless index")
    deletion_protection: bool = Field(False, description="create the index with deletion protection")
    grpc: bool = Field(False, description="data plane over gRPC (faster bulk writes) instead of REST")
    grpc_scheme: Literal["http", "https"] | None = Field(
        None, description="scheme the gRPC client dials (http for a plaintext local endpoint)")
    batch_size: int = Field(100, ge=1, le=1000, description="vectors per upsert or delete request")
    timeout: float = Field(30.0, gt=0, description="seconds for one request")
    ready_timeout: int = Field(300, ge=1, description="seconds to wait for a created index to become ready")
    freshness_timeout: float = Field(
        30.0, ge=0, description="flush(): seconds to wait until queries see the last write (0: do not wait)")

    @field_validator("index")
    @classmethod
    def _index_name(cls, value: str | None) -> str | None:
        if value is not None and not _INDEX_NAME.match(value):
            raise ValueError(f"{value!r} is not a Pinecone index name: 1-45 lowercase letters, digits and "
                             "hyphens, starting and ending with a letter or digit")
        return value

    @field_validator("host", "controller_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or " " in value):
            raise ValueError(f"{value!r} is not a host; write e.g. https://name-abc.svc.pinecone.io")
        return value.rstrip("/") if value else value


def index_name(collection: str) -> str:
    """The index flightdeck names after a collection (lowercase letters, digits and hyphens, ≤ 45)."""
    name = re.sub(r"[^a-z0-9-]", "-", collection.lower())[:45].strip("-")
    return name or "flightdeck"


def vector_id(chunk_id: str) -> str:
    """The Pinecone id of a chunk id: the chunk id itself when Pinecone accepts it, else ``fd:<uuid5>``."""
    if (0 < len(chunk_id) <= MAX_ID and chunk_id.isascii() and chunk_id.isprintable()
            and not chunk_id.startswith(ID_PREFIX)):
        return chunk_id
    return ID_PREFIX + chunk_uuid(chunk_id)


metadata_key = typed_key  # the typed metadata key that stores a value under a payload key


def pinecone_metadata(chunk_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A vector's metadata: the chunk id plus each payload value under its typed key."""
    return {CHUNK_ID_KEY: chunk_id, **typed_payload(payload)}


def to_pinecone_filter(f: Filter) -> dict[str, Any]:
    """Translate a filter tree into Pinecone's metadata filter (a JSON object)."""
    if isinstance(f, (AllOf, AnyOf)):
        parts = [to_pinecone_filter(p) for p in f.parts]
        return parts[0] if len(parts) == 1 else {"$and" if isinstance(f, AllOf) else "$or": parts}
    return _condition(f)


def _condition(c: Condition) -> dict[str, Any]:
    if c.op == "$eq":
        return {metadata_key(c.key, c.value): {"$eq": c.value}}
    if c.op == "$in":
        strings = [v for v in c.value if isinstance(v, str)]
        numbers = [v for v in c.value if isinstance(v, float) and not isinstance(v, bool)]
        booleans = list(dict.fromkeys(v for v in c.value if isinstance(v, bool)))
        parts: list[dict[str, Any]] = []
        if strings:
            parts.append({f"s_{c.key}": {"$in": strings}})
        if numbers:
            parts.append({f"n_{c.key}": {"$in": numbers}})
        parts.extend({f"b_{c.key}": {"$eq": v}} for v in booleans)  # Pinecone's $in takes strings and numbers
        return parts[0] if len(parts) == 1 else {"$or": parts}
    return {f"n_{c.key}": {c.op: c.value}}


class PineconeStore:
    """A Pinecone index namespace synced incrementally by the index step (``versioned = False``)."""

    versioned = False

    def __init__(self, config: PineconeConfig | None = None) -> None:
        self.config = config or PineconeConfig()
        self._pc: Any = None
        self._index: Any = None
        self._name = ""
        self._namespace = ""
        self._owned = False
        self._dim = 0
        self._chunk_of: dict[str, str] = {}  # fd:<uuid> vector ids -> chunk ids seen by this handle
        self._committed: int | None = None  # log position of the last write not yet known to be visible

    # connection -------------------------------------------------------------------------------------
    def _where(self) -> str:
        if self.config.host:
            return f"Pinecone index host {self.config.host}"
        return f"Pinecone index {self._name!r} via {self.config.controller_host or 'https://api.pinecone.io'}"

    def _fail(self, action: str, exc: Exception) -> PineconeStoreError:
        pinecone = _pinecone()
        hint = "check the api_key, the index name and that the host is reachable"
        if isinstance(exc, pinecone.errors.PineconeConnectionError) or isinstance(exc, OSError):
            hint = ("nothing answered there: check host / controller_host (for Pinecone Local, e.g. "
                    "host: http://localhost:5081) and the network")
        elif isinstance(exc, pinecone.errors.UnauthorizedError):
            hint = "the API key was refused: set api_key: ${PINECONE_API_KEY} to a key of this project"
        return PineconeStoreError(f"{action} on {self._where()} (namespace {self._namespace or '__default__'!r}) "
                                  f"failed: {exc}. What to do: {hint}")

    def _client(self) -> Any:
        if self._pc is None:
            pinecone = _pinecone()
            key = self.config.api_key.get_secret_value() if self.config.api_key else \
                os.environ.get("PINECONE_API_KEY", "")
            if not key:
                raise PineconeStoreError("no Pinecone API key: set `api_key: ${PINECONE_API_KEY}` in "
                                         "retrieval.vector_database, or export PINECONE_API_KEY")
            self._pc = pinecone.Pinecone(api_key=key, host=self.config.controller_host, timeout=self.config.timeout,
                                         grpc_scheme=self.config.grpc_scheme, source_tag="flightdeck")
        return self._pc

    # lifecycle --------------------------------------------------------------------------------------
    def open(self, location: StoreLocation) -> None:
        self._dim = location.dimension
        shared = bool(self.config.index or self.config.host)
        self._name = self.config.index or index_name(location.collection)
        self._owned = not shared
        self._namespace = self.config.namespace if self.config.namespace is not None else \
            (location.collection if shared else "")
        pc = self._client()
        try:
            if self.config.host:
                self._index = pc.index(host=self.config.host, grpc=self.config.grpc)
                stats = self._index.describe_index_stats()
                self._check_shape(stats.dimension, stats.metric)
            else:
                self._ensure_index(pc)
                self._index = pc.index(name=self._name, grpc=self.config.grpc)
        except PineconeStoreError:
            raise
        except Exception as exc:
            raise self._fail("opening", exc) from exc

    def _ensure_index(self, pc: Any) -> None:
        pinecone = _pinecone()
        try:
            model = pc.indexes.describe(self._name)
        except pinecone.errors.NotFoundError:
            if not self.config.create:
                raise PineconeStoreError(
                    f"there is no Pinecone index {self._name!r} and `create: false` forbids making it: create it "
                    f"(dimension {self._dim}, metric cosine) or allow create") from None
            pc.indexes.create(
                name=self._name,
                schema={"fields": {_VECTOR_FIELD: {"type": "dense_vector", "dimension": self._dim,
                                                   "metric": "cosine"}}},
                deployment={"deployment_type": "managed", "cloud": self.config.cloud, "region": self.config.region},
                deletion_protection="enabled" if self.config.deletion_protection else "disabled",
                tags={"created_by": "flightdeck"}, timeout=self.config.ready_timeout)
            return
        try:
            dimension, metric = model.dimension, model.metric
        except (AttributeError, KeyError) as exc:
            raise PineconeStoreError(
                f"Pinecone index {self._name!r} is not a dense vector index with one dimension and metric "
                f"(a document or hybrid index?): {exc}; use another index") from exc
        self._check_shape(dimension, metric)

    def _check_shape(self, dimension: int | None, metric: str | None) -> None:
        if dimension is not None and dimension != self._dim:
            raise PineconeStoreError(
                f"{self._where()} holds vectors of dimension {dimension}, but the embedding model gives "
                f"{self._dim}: use another index (or drop this one)")
        if metric is not None and metric != "cosine":
            raise PineconeStoreError(f"{self._where()} ranks by {metric}, not cosine: flightdeck's scores are "
                                     "cosine similarities; use an index created with metric cosine")

    def flush(self) -> None:
        """Wait until a query sees the last write (Pinecone serverless is eventually consistent)."""
        target, self._committed = self._committed, None
        if target is None or self.config.freshness_timeout <= 0 or self._index is None:
            return
        deadline = time.monotonic() + self.config.freshness_timeout
        probe = [1.0] + [0.0] * (self._dim - 1)
        while True:
            info = self._index.query(vector=probe, top_k=1, namespace=self._namespace).response_info
            if info is None or info.lsn_reconciled is None or info.is_reconciled(target):
                return
            if time.monotonic() >= deadline:
                log.warning("Pinecone %s had not caught up with the last write after %.0f s (log position %s < %s);"
                            " searches may miss it for a moment", self._name, self.config.freshness_timeout,
                            info.lsn_reconciled, target)
                return
            time.sleep(0.5)

    def close(self) -> None:
        for handle in (self._index, self._pc):
            if handle is not None and hasattr(handle, "close"):
                handle.close()
        self._index, self._pc = None, None

    def drop(self) -> None:
        if not self._name:
            return
        pinecone = _pinecone()
        try:
            if self._owned:
                self._client().indexes.delete(self._name)
            elif self._index is not None:
                self._index.delete(delete_all=True, namespace=self._namespace)
        except pinecone.errors.NotFoundError:
            pass
        except Exception as exc:
            raise self._fail("dropping", exc) from exc
        if self._owned:
            self._index = None
        self._chunk_of.clear()

    def _live(self) -> Any:
        if self._index is None:
            raise RuntimeError("open the store before using it (or it was dropped: open it again)")
        return self._index

    def _wrote(self, response: Any) -> None:
        info = getattr(response, "response_info", None)
        lsn = info.lsn_committed if info is not None else None
        if lsn is not None:
            self._committed = max(lsn, self._committed or 0)

    # writes -----------------------------------------------------------------------------------------
    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        matrix = check_batch(ids, vectors, payloads, self._dim)
        index = self._live()
        rows = []
        for cid, vec, payload in zip(ids, matrix, payloads, strict=True):
            vid = vector_id(cid)
            if vid != cid:
                self._chunk_of[vid] = cid
            rows.append({"id": vid, "values": vec.tolist(), "metadata": pinecone_metadata(cid, payload)})
        try:
            for start in range(0, len(rows), self.config.batch_size):
                batch = rows[start:start + self.config.batch_size]
                response = index.upsert(vectors=batch, namespace=self._namespace)
                if response.upserted_count != len(batch):
                    raise PineconeStoreError(f"Pinecone accepted {response.upserted_count} of {len(batch)} vectors "
                                             f"(first chunk {ids[start]!r}) in {self._where()}")
                self._wrote(response)
        except PineconeStoreError:
            raise
        except Exception as exc:
            raise self._fail("writing vectors", exc) from exc

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        index = self._live()
        try:
            for start in range(0, len(ids), self.config.batch_size):
                response = index.delete(ids=[vector_id(c) for c in ids[start:start + self.config.batch_size]],
                                        namespace=self._namespace)
                self._wrote(response)
        except Exception as exc:
            raise self._fail("deleting vectors", exc) from exc

    # reads ------------------------------------------------------------------------------------------
    def _chunk_ids(self, vids: list[str]) -> dict[str, str]:
        """Chunk ids of vector ids; ``fd:`` ids not seen by this handle are fetched for their metadata."""
        out = {v: v for v in vids if not v.startswith(ID_PREFIX)}
        unknown = []
        for v in vids:
            if v.startswith(ID_PREFIX):
                if v in self._chunk_of:
                    out[v] = self._chunk_of[v]
                else:
                    unknown.append(v)
        for start in range(0, len(unknown), FETCH_BATCH):
            fetched = self._live().fetch(ids=unknown[start:start + FETCH_BATCH], namespace=self._namespace)
            for vid, vec in fetched.vectors.items():
                cid = (vec.metadata or {}).get(CHUNK_ID_KEY)
                if cid is not None:
                    self._chunk_of[vid] = out[vid] = cid
        return out

    def ids(self) -> set[str]:
        index = self._live()
        try:
            vids: list[str] = []
            token = None
            while True:
                page = index.list_paginated(namespace=self._namespace, limit=LIST_PAGE, pagination_token=token)
                vids.extend(item.id for item in page.vectors if item.id)
                token = page.pagination.next if page.pagination else None
                if not token:
                    break
            return set(self._chunk_ids(vids).values())
        except Exception as exc:
            raise self._fail("listing vectors", exc) from exc

    def __len__(self) -> int:
        index = self._live()
        try:
            stats = index.describe_index_stats()
        except Exception as exc:
            raise self._fail("counting vectors", exc) from exc
        names = [self._namespace] if self._namespace else ["", "__default__"]
        return sum(stats.namespaces[n].vector_count for n in names if n in stats.namespaces)

    def native_filter(self, where: Filter) -> dict[str, Any]:
        """The Pinecone filter sent for ``where``."""
        return to_pinecone_filter(where)

    def search(self, query: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self._dim:
            raise ValueError(f"query of dimension {q.shape[0]} for a collection of dimension {self._dim}")
        index = self._live()
        try:
            result = index.query(vector=q.tolist(), top_k=min(k, TOP_K_MAX), namespace=self._namespace,
                                 filter=self.native_filter(where) if where is not None else None,
                                 include_metadata=False, include_values=False)
            matches = [(m.id, float(m.score)) for m in result.matches]
            chunk_of = self._chunk_ids([vid for vid, _ in matches])
        except Exception as exc:
            raise self._fail("searching", exc) from exc
        return [(chunk_of[vid], score) for vid, score in matches if vid in chunk_of]
