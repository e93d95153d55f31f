"""Weaviate: one live collection on a Weaviate server (1.24 or newer), through the official v4 client.

The client talks REST for the schema and gRPC for writes, searches and counts, so both ports must be
reachable (``url``, default ``http://127.0.0.1:8080``, and ``grpc_url``, default the same host on port 50051).

How flightdeck's model maps onto Weaviate:

- the collection is ``location.collection`` with its first letter upper-cased (Weaviate's rule), unless the
  spec names one with ``collection``; it holds one self-provided named vector, ``default``, in an HNSW (or
  flat) index with the cosine distance; a hit's score is ``1 - distance``, the cosine similarity;
- object ids are ``uuid5`` of the chunk id (Weaviate needs UUIDs); the chunk id itself is kept in the
  reserved property ``fd_chunk_id``;
- a Weaviate property has one data type, while flightdeck payloads may hold a string under a key in one chunk
  and a number in another. So each payload key is stored under a name that carries its type: ``s_<key>``
  (text), ``n_<key>`` (number) and ``b_<key>`` (boolean). This also keeps the filter semantics of
  :func:`flightdeck.retrieval.filters.matches`: ``{"flag": True}`` reads ``b_flag`` only, so a boolean never
  equals a number; ranges read ``n_<key>`` only; a chunk without the key has no value there and never matches.
  User keys can never collide with ``fd_chunk_id``, since every user key gets a one-letter type prefix;
- text properties are created with ``field`` tokenization (the whole value is one token) and no BM25 index,
  so ``equal`` is an exact comparison. Divergence from the reference: Weaviate's ``field`` tokenization trims
  leading and trailing whitespace, so ``" faq "`` equals ``"faq"`` here;
- filters are translated into Weaviate ``Filter`` objects and sent with the search (never applied afterwards in
  Python). A condition on a property that the collection does not have cannot be sent (Weaviate rejects
  unknown properties); it matches nothing, so the translation folds it to *false* before the query.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import AllOf, AnyOf, Condition, Filter
from flightdeck.retrieval.stores.base import StoreLocation, check_batch, chunk_uuid, typed_key, typed_payload

__all__ = ["WeaviateConfig", "WeaviateStore", "WeaviateStoreError", "CHUNK_ID_PROPERTY", "VECTOR_NAME",
           "object_uuid", "property_name", "to_weaviate_filter", "weaviate_properties"]

CHUNK_ID_PROPERTY = "fd_chunk_id"
VECTOR_NAME = "default"
_COLLECTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,230}$")


def _weaviate() -> Any:
    return optional_import("weaviate", "weaviate", "vector_store 'weaviate'")


class WeaviateStoreError(FlightdeckError):
    """The Weaviate server could not be reached or refused a request; the message says which and what to do."""


class WeaviateConfig(BaseModel):
    """Settings of ``vector_database: {provider: weaviate, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field("http://127.0.0.1:8080", description="REST endpoint of the Weaviate server (http or https)")
    grpc_url: str | None = Field(
        None, description="gRPC endpoint, e.g. http://weaviate:50051 (https for TLS); default: url's host, port "
                          "50051, TLS when url is https")
    api_key: SecretStr | None = Field(None, description="write it as ${WEAVIATE_API_KEY}; none for an open server")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers sent with every request")
    collection: str | None = Field(
        None, description="use this collection instead of the one flightdeck names per workspace and model "
                          "(first letter upper-cased, as Weaviate requires)")
    vector_index: Literal["hnsw", "flat"] = Field(
        "hnsw", description="hnsw (approximate, scales) or flat (exact, for small collections)")
    hnsw_ef: int = Field(-1, ge=-1, description="HNSW: candidate list while searching; -1 lets Weaviate choose")
    hnsw_ef_construction: int = Field(128, ge=4, description="HNSW: candidate list while building")
    hnsw_max_connections: int = Field(32, ge=4, le=256, description="HNSW: links per node")
    batch_size: int = Field(200, ge=1, le=10_000, description="objects per gRPC batch write")
    timeout_init: float = Field(10.0, gt=0, description="seconds to connect")
    timeout_query: float = Field(60.0, gt=0, description="seconds for one search or read")
    timeout_insert: float = Field(120.0, gt=0, description="seconds for one batch write or delete")

    @field_validator("url", "grpc_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8080")
        return value.rstrip("/")

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str | None) -> str | None:
        if value is not None and not _COLLECTION.match(value):
            raise ValueError(f"{value!r} is not a Weaviate collection name: letters, digits and _, starting "
                             "with a letter")
        return value

    def endpoints(self) -> tuple[tuple[str, int, bool], tuple[str, int, bool]]:
        """``((http_host, http_port, https), (grpc_host, grpc_port, tls))``."""
        rest = urlsplit(self.url)
        https = rest.scheme == "https"
        http = (rest.hostname or "", rest.port or (443 if https else 80), https)
        if self.grpc_url:
            g = urlsplit(self.grpc_url)
            tls = g.scheme == "https"
            return http, (g.hostname or "", g.port or (443 if tls else 50051), tls)
        return http, (http[0], 50051, https)

    def grpc_display(self) -> str:
        host, port, tls = self.endpoints()[1]
        return f"{'https' if tls else 'http'}://{host}:{port}"


def object_uuid(chunk_id: str) -> str:
    """The Weaviate object id of a chunk id (uuid5, stable across runs and machines)."""
    return chunk_uuid(chunk_id)


property_name = typed_key  # the typed property that stores a value under a payload key


def weaviate_properties(chunk_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The object's properties: the chunk id plus each payload value under its typed name."""
    return {CHUNK_ID_PROPERTY: chunk_id, **typed_payload(payload)}


def _data_type(prop: str) -> str:
    return {"s": "text", "n": "number", "b": "boolean"}[prop[0]]


def to_weaviate_filter(f: Filter, properties: set[str]) -> Any:
    """Translate a filter tree into a Weaviate ``Filter`` (``_Filters``), or ``False`` when it cannot match.

    ``properties`` are the collection's property names: a condition on a typed property that the collection
    lacks matches nothing (Weaviate would reject the name), and is folded away here.
    """
    from weaviate.classes.query import Filter as WFilter

    if isinstance(f, AllOf):
        parts = [to_weaviate_filter(p, properties) for p in f.parts]
        if any(p is False for p in parts):
            return False
        return WFilter.all_of(parts)
    if isinstance(f, AnyOf):
        kept = [p for p in (to_weaviate_filter(p, properties) for p in f.parts) if p is not False]
        return WFilter.any_of(kept) if kept else False
    return _condition(f, properties, WFilter)


def _condition(c: Condition, properties: set[str], WFilter: Any) -> Any:  # noqa: N803 - the client's class
    if c.op == "$eq":
        prop = property_name(c.key, c.value)
        return WFilter.by_property(prop).equal(c.value) if prop in properties else False
    if c.op == "$in":
        strings = [v for v in c.value if isinstance(v, str)]
        others = [v for v in c.value if not isinstance(v, str)]
        parts = []
        if strings and f"s_{c.key}" in properties:
            parts.append(WFilter.by_property(f"s_{c.key}").contains_any(strings))
        for v in others:
            prop = property_name(c.key, v)
            if prop in properties:
                parts.append(WFilter.by_property(prop).equal(v))
        return WFilter.any_of(parts) if parts else False
    prop = f"n_{c.key}"
    if prop not in properties:
        return False
    target = WFilter.by_property(prop)
    return {"$gt": target.greater_than, "$gte": target.greater_or_equal, "$lt": target.less_than,
            "$lte": target.less_or_equal}[c.op](c.value)


def _typed_properties(f: Filter) -> set[str]:
    """Every typed property name a filter may read."""
    if isinstance(f, (AllOf, AnyOf)):
        return set().union(*(_typed_properties(p) for p in f.parts))
    if f.op == "$in":
        return {property_name(f.key, v) for v in f.value}
    if f.op == "$eq":
        return {property_name(f.key, f.value)}
    return {f"n_{f.key}"}


class WeaviateStore:
    """A Weaviate collection synced incrementally by the index step (``versioned = False``)."""

    versioned = False

    def __init__(self, config: WeaviateConfig | None = None) -> None:
        self.config = config or WeaviateConfig()
        self._client: Any = None
        self._collection: Any = None
        self._name = ""
        self._dim = 0
        self._properties: set[str] = set()

    # connection -------------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"Weaviate at {self.config.url} (gRPC {self.config.grpc_display()})"

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        weaviate = _weaviate()
        from weaviate.classes.init import AdditionalConfig, Auth, Timeout

        (http_host, http_port, https), (grpc_host, grpc_port, grpc_tls) = self.config.endpoints()
        auth = Auth.api_key(self.config.api_key.get_secret_value()) if self.config.api_key else None
        try:
            # skip_init_checks: the client's own checks also ask pypi.org for its latest version, which an
            # offline deployment must not do; the first request below checks the server instead.
            self._client = weaviate.connect_to_custom(
                http_host=http_host, http_port=http_port, http_secure=https,
                grpc_host=grpc_host, grpc_port=grpc_port, grpc_secure=grpc_tls,
                headers=dict(self.config.headers) or None, auth_credentials=auth, skip_init_checks=True,
                additional_config=AdditionalConfig(timeout=Timeout(
                    init=self.config.timeout_init, query=self.config.timeout_query,
                    insert=self.config.timeout_insert)))
        except Exception as exc:
            raise WeaviateStoreError(
                f"could not reach {self._where()}: {exc}. Start a Weaviate server there (e.g. the "
                "cr.weaviate.io/semitechnologies/weaviate image with ports 8080 and 50051 published) or set "
                "retrieval.vector_database.url / grpc_url to where it runs") from exc
        try:
            self._check_grpc(grpc_host, grpc_port, grpc_tls)
        except Exception:
            self._client.close()
            self._client = None
            raise
        return self._client

    def _check_grpc(self, host: str, port: int, tls: bool) -> None:
        """Fail fast when the gRPC port is wrong: the client would only notice at the first search, after
        retrying with backoff for about a minute."""
        import grpc

        target = f"{host}:{port}"
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if tls else \
            grpc.insecure_channel(target)
        try:
            grpc.channel_ready_future(channel).result(timeout=self.config.timeout_init)
        except grpc.FutureTimeoutError as exc:
            raise WeaviateStoreError(
                f"{self._where()}: the REST endpoint answers but no gRPC connection could be made to "
                f"{self.config.grpc_display()} within {self.config.timeout_init:g} s. The v4 client needs both: "
                "publish Weaviate's gRPC port (50051 by default) or set retrieval.vector_database.grpc_url") from exc
        finally:
            channel.close()

    def _fail(self, action: str, exc: Exception) -> WeaviateStoreError:
        return WeaviateStoreError(f"{action} in collection {self._name!r} on {self._where()} failed: {exc}. "
                                  "Check that the server is up and that both its REST and gRPC ports are "
                                  "reachable (grpc_url)")

    # lifecycle --------------------------------------------------------------------------------------
    def open(self, location: StoreLocation) -> None:
        name = self.config.collection or location.collection
        self._name = name[0].upper() + name[1:]
        self._dim = location.dimension
        client = self._connect()
        try:
            if client.collections.exists(self._name):
                self._collection = client.collections.get(self._name)
                self._refresh_properties()
            else:
                self._collection = self._create(client)
                self._properties = {CHUNK_ID_PROPERTY}
        except WeaviateStoreError:
            raise
        except Exception as exc:
            raise self._fail("opening", exc) from exc

    def _create(self, client: Any) -> Any:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

        if self.config.vector_index == "flat":
            index = Configure.VectorIndex.flat(distance_metric=VectorDistances.COSINE)
        else:
            index = Configure.VectorIndex.hnsw(
                distance_metric=VectorDistances.COSINE, ef=self.config.hnsw_ef,
                ef_construction=self.config.hnsw_ef_construction, max_connections=self.config.hnsw_max_connections)
        return client.collections.create(
            self._name,
            description="flightdeck chunks (chunk id in fd_chunk_id; payload keys typed as s_/n_/b_<key>)",
            vector_config=Configure.Vectors.self_provided(name=VECTOR_NAME, vector_index_config=index),
            properties=[Property(name=CHUNK_ID_PROPERTY, data_type=DataType.TEXT, tokenization=Tokenization.FIELD,
                                 index_filterable=True, index_searchable=False)])

    def _refresh_properties(self) -> None:
        config = self._collection.config.get()
        self._properties = {p.name for p in config.properties}

    def flush(self) -> None:
        """Nothing to do: a batch write returns once Weaviate has written it to its log."""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client, self._collection = None, None

    def drop(self) -> None:
        if not self._name:
            return
        try:
            self._connect().collections.delete(self._name)
        except WeaviateStoreError:
            raise
        except Exception as exc:
            raise self._fail("deleting the collection", exc) from exc
        self._collection, self._properties = None, set()

    def _live(self) -> Any:
        if self._collection is None:
            raise RuntimeError("open the store before using it (or it was dropped: open it again)")
        return self._collection

    # writes -----------------------------------------------------------------------------------------
    def _ensure_properties(self, names: set[str]) -> None:
        from weaviate.classes.config import DataType, Property, Tokenization

        kinds = {"text": DataType.TEXT, "number": DataType.NUMBER, "boolean": DataType.BOOL}
        for name in sorted(names - self._properties):
            kind = _data_type(name)
            prop = Property(name=name, data_type=kinds[kind], index_filterable=True,
                            **({"tokenization": Tokenization.FIELD, "index_searchable": False}
                               if kind == "text" else {}))
            try:
                self._live().config.add_property(prop)
            except Exception:
                self._refresh_properties()  # another writer may have added it meanwhile
                if name not in self._properties:
                    raise
            self._properties.add(name)

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        matrix = check_batch(ids, vectors, payloads, self._dim)
        if not ids:
            return
        from weaviate.classes.data import DataObject

        props = [weaviate_properties(cid, p) for cid, p in zip(ids, payloads, strict=True)]
        collection = self._live()
        try:
            self._ensure_properties(set().union(*(p.keys() for p in props)))
            for start in range(0, len(ids), self.config.batch_size):
                stop = start + self.config.batch_size
                objects = [DataObject(properties=p, uuid=object_uuid(cid), vector={VECTOR_NAME: v.tolist()})
                           for cid, p, v in zip(ids[start:stop], props[start:stop], matrix[start:stop], strict=True)]
                result = collection.data.insert_many(objects)
                if result.errors:
                    index, error = next(iter(sorted(result.errors.items())))
                    raise WeaviateStoreError(
                        f"Weaviate refused {len(result.errors)} of {len(objects)} objects in collection "
                        f"{self._name!r}; the first, chunk {ids[start + index]!r}: {error.message}")
        except (WeaviateStoreError, ValueError):
            raise
        except Exception as exc:
            raise self._fail("writing objects", exc) from exc

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        from weaviate.classes.query import Filter as WFilter

        collection = self._live()
        try:
            for start in range(0, len(ids), self.config.batch_size):
                uuids = [object_uuid(cid) for cid in ids[start:start + self.config.batch_size]]
                collection.data.delete_many(where=WFilter.by_id().contains_any(uuids))
        except Exception as exc:
            raise self._fail("deleting objects", exc) from exc

    # reads ------------------------------------------------------------------------------------------
    def ids(self) -> set[str]:
        collection = self._live()
        try:
            return {obj.properties[CHUNK_ID_PROPERTY] for obj in collection.iterator(
                return_properties=[CHUNK_ID_PROPERTY], cache_size=1000)}
        except Exception as exc:
            raise self._fail("listing objects", exc) from exc

    def __len__(self) -> int:
        collection = self._live()
        try:
            return int(collection.aggregate.over_all(total_count=True).total_count or 0)
        except Exception as exc:
            raise self._fail("counting objects", exc) from exc

    def native_filter(self, where: Filter) -> Any:
        """The Weaviate filter sent for ``where`` (``False``: matches nothing, so no query is sent)."""
        if _typed_properties(where) - self._properties:
            self._refresh_properties()  # a property added by another writer since open()
        return to_weaviate_filter(where, self._properties)

    def search(self, query: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self._dim:
            raise ValueError(f"query of dimension {q.shape[0]} for a collection of dimension {self._dim}")
        from weaviate.classes.query import MetadataQuery

        collection = self._live()
        try:
            native = self.native_filter(where) if where is not None else None
            if native is False:
                return []
            result = collection.query.near_vector(
                near_vector=q.tolist(), target_vector=VECTOR_NAME, limit=k, filters=native,
                return_metadata=MetadataQuery(distance=True), return_properties=[CHUNK_ID_PROPERTY])
        except Exception as exc:
            raise self._fail("searching", exc) from exc
        return [(obj.properties[CHUNK_ID_PROPERTY], 1.0 - float(obj.metadata.distance)) for obj in result.objects]
