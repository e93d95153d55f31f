"""Chroma: one live collection, embedded (``PersistentClient`` in the workspace) or on a Chroma server.

Without ``host`` the store keeps its collection in ``location.folder`` through chromadb's embedded
``PersistentClient``; with ``host`` it talks to a Chroma server (``chroma run``, Docker or Chroma Cloud)
through ``HttpClient``. The collection uses cosine space, so a hit's score is ``1 - cosine distance``.

Chroma never embeds anything here: vectors always come from flightdeck's embedder and every collection is
opened with ``embedding_function=None``, so chromadb's default ONNX model is never downloaded. Product
telemetry is switched off (``anonymized_telemetry=False``).

Metadata filters are translated into Chroma's ``where`` and evaluated by Chroma during the search.
Chroma keeps booleans, numbers and strings apart the way :func:`flightdeck.retrieval.filters.matches`
does (``True`` does not equal ``1.0``, ranges only match numbers, a record lacking a key never matches);
its ``$in`` needs values of one type, so a mixed ``$in`` becomes an ``$or`` of one ``$in`` per type.

Chroma's ``upsert`` *merges* the new metadata into the old; to replace a payload whole, the store reads
the old keys of the ids it overwrites and sends the keys that are gone as ``None`` (Chroma's way of
deleting a key). Chroma refuses empty metadata dicts: an empty payload is sent as ``None``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import AllOf, Condition, Filter, normalise_payload
from flightdeck.retrieval.stores.base import StoreLocation, check_batch

__all__ = ["ChromaConfig", "ChromaStore", "ChromaStoreError", "to_chroma_where"]

# Chroma's rule for collection names (chromadb/api/types.py: validate_collection_name / the Rust frontend).
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
# Collection metadata key that records the embedder's dimension, to refuse a mismatch on open.
DIMENSION_KEY = "flightdeck_dimension"
_PAGE = 10_000  # ids read per request by ids()


def _chromadb() -> Any:
    return optional_import("chromadb", "chroma", "vector_store 'chroma'")


class ChromaStoreError(FlightdeckError):
    """The Chroma collection cannot be used as configured; the message says what to change."""


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name) or ".." in name or _IPV4.match(name):
        raise ValueError(f"{where}: {name!r} is not a valid Chroma collection name (3-512 characters from "
                         "a-z A-Z 0-9 . _ -, starting and ending with a letter or digit, no '..', not an IP address)")
    return name


class ChromaConfig(BaseModel):
    """Settings of ``vector_database: {provider: chroma, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    host: str | None = Field(None, description="a Chroma server's host name; unset: an embedded PersistentClient "
                                               "keeps the collection in the workspace")
    port: int = Field(8000, ge=1, le=65535, description="the Chroma server's HTTP port")
    ssl: bool = Field(False, description="talk to the server over HTTPS")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="HTTP headers sent to the server, e.g. an auth token: "
                                          "{Authorization: 'Bearer ${CHROMA_TOKEN}'}")
    tenant: str = Field("default_tenant", min_length=1, description="the Chroma tenant (must exist)")
    database: str = Field("default_database", min_length=1, description="the Chroma database; created when missing")
    collection: str | None = Field(None, description="collection name; default: one derived from the workspace, "
                                                     "embedding model and store settings")
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW: links per node (Chroma's max_neighbors); fixed when "
                                                      "the collection is created")
    hnsw_ef_construction: int = Field(200, ge=8, description="HNSW: candidate list while building; fixed when the "
                                                             "collection is created")
    hnsw_ef_search: int = Field(128, ge=8, description="HNSW: candidate list while searching (recall vs speed); "
                                                       "applied to an existing collection on open")
    batch_size: int = Field(1000, ge=1, description="records per request; capped at the client's max batch size")

    @field_validator("collection")
    @classmethod
    def _valid_collection(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "collection")


# filters ------------------------------------------------------------------------------------------
def _type_key(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "str" if isinstance(value, str) else "num"


def _condition(c: Condition) -> dict[str, Any]:
    if c.op == "$in":
        groups: dict[str, list[Any]] = {}
        for v in c.value:
            group = groups.setdefault(_type_key(v), [])
            if not any(type(v) is type(x) and v == x for x in group):
                group.append(v)
        # Chroma's $in takes values of one type only: one $in per type, ORed
        parts = [{c.key: {"$in": values}} for values in groups.values()]
        return parts[0] if len(parts) == 1 else {"$or": parts}
    return {c.key: {c.op: c.value}}


def to_chroma_where(f: Filter) -> dict[str, Any]:
    """The Chroma ``where`` of a parsed filter (``$and``/``$or`` need two parts or more: one is unwrapped)."""
    if isinstance(f, Condition):
        return _condition(f)
    parts = [to_chroma_where(p) for p in f.parts]
    if len(parts) == 1:
        return parts[0]
    return {"$and" if isinstance(f, AllOf) else "$or": parts}


def _metadata(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload as Chroma metadata: only str, bool and finite float values under plain keys (what Chroma
    accepts); a no-op on the normalised payloads the index step sends, a guard for other callers."""
    return dict(normalise_payload(payload))


# the store ----------------------------------------------------------------------------------------
class ChromaStore:
    """A Chroma collection holding one record per chunk id (the chunk id is the Chroma id)."""

    versioned = False

    def __init__(self, config: ChromaConfig | None = None) -> None:
        self.config = config or ChromaConfig()
        self._client: Any = None
        self._collection: Any = None
        self._location: StoreLocation | None = None
        self._name = ""
        self._dim = 0
        self._max_batch = self.config.batch_size

    # lifecycle ------------------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """Where the collection lives, for messages."""
        if self.config.host:
            scheme = "https" if self.config.ssl else "http"
            return f"Chroma server {scheme}://{self.config.host}:{self.config.port} collection {self._name!r}"
        folder = self._location.folder if self._location else "?"
        return f"Chroma collection {self._name!r} in {folder}"

    def _connect(self, folder: Path) -> Any:
        chromadb = _chromadb()
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        cfg = self.config

        def client() -> Any:
            if cfg.host:
                headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
                return chromadb.HttpClient(host=cfg.host, port=cfg.port, ssl=cfg.ssl, headers=headers or None,
                                           settings=settings, tenant=cfg.tenant, database=cfg.database)
            folder.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(folder.resolve()), settings=settings, tenant=cfg.tenant,
                                             database=cfg.database)

        try:
            try:
                return client()
            except Exception as exc:
                if not re.search(r"database \S+ not found", str(exc), re.IGNORECASE):
                    raise
                # a named database that does not exist yet is created, as the collection is
                # (the client factory filled `settings` in: the admin client reaches the same place)
                chromadb.AdminClient(settings).create_database(cfg.database, cfg.tenant)
                return client()
        except Exception as exc:
            raise ChromaStoreError(f"cannot connect to {self.where}: {exc}; "
                                   + ("check that the server runs and host/port/ssl/headers in "
                                      "retrieval.vector_database" if cfg.host else
                                      "check that the folder is writable and not used by another Chroma version")
                                   ) from exc

    def open(self, location: StoreLocation) -> None:
        self.close()
        self._location, self._dim = location, location.dimension
        self._name = self.config.collection or _check_name(location.collection, "StoreLocation.collection")
        self._client = self._connect(location.folder)
        try:
            self._max_batch = max(1, min(self.config.batch_size, int(self._client.get_max_batch_size())))
        except Exception:  # an older server without the endpoint: keep the configured size
            self._max_batch = self.config.batch_size
        self._collection = self._get_or_create()

    def _get_or_create(self) -> Any:
        cfg = self.config
        hnsw = {"space": "cosine", "ef_construction": cfg.hnsw_ef_construction, "ef_search": cfg.hnsw_ef_search,
                "max_neighbors": cfg.hnsw_m}
        try:
            collection = self._client.get_or_create_collection(
                self._name, configuration={"hnsw": hnsw}, metadata={DIMENSION_KEY: self._dim},
                embedding_function=None)
        except Exception as exc:
            raise ChromaStoreError(f"cannot open or create {self.where}: {exc}") from exc
        self._check_existing(collection)
        return collection

    def _check_existing(self, collection: Any) -> None:
        meta = collection.metadata or {}
        have = meta.get(DIMENSION_KEY)
        if have is not None and int(have) != self._dim:
            raise ChromaStoreError(
                f"{self.where} holds vectors of dimension {int(have)}, but the embedder makes {self._dim}; set "
                "another `collection` in retrieval.vector_database or drop this one")
        hnsw = (getattr(collection, "configuration_json", None) or {}).get("hnsw") or {}
        if hnsw.get("space", "cosine") != "cosine":
            raise ChromaStoreError(f"{self.where} uses the {hnsw['space']!r} space, flightdeck needs 'cosine'; set "
                                   "another `collection` in retrieval.vector_database or drop this one")
        if hnsw and hnsw.get("ef_search") != self.config.hnsw_ef_search:
            # ef_search is the one HNSW setting Chroma lets an existing collection change
            with warnings.catch_warnings():  # chromadb warns that embedding_function=None is a "legacy" config
                warnings.simplefilter("ignore", DeprecationWarning)
                collection.modify(configuration={"hnsw": {"ef_search": self.config.hnsw_ef_search}})

    def _require(self, create: bool = False) -> Any:
        if self._client is None or self._location is None:
            raise RuntimeError("open the Chroma store before using it")
        if self._collection is None and create:
            self._collection = self._get_or_create()
        return self._collection

    def flush(self) -> None:
        # Chroma persists every write before it returns (its write-ahead log); nothing to do
        self._require()

    def close(self) -> None:
        client, self._client, self._collection = self._client, None, None
        if client is not None and hasattr(client, "close"):
            try:
                client.close()
            except Exception:  # closing a client whose server has gone: nothing left to release
                pass

    def drop(self) -> None:
        self._require()
        try:
            self._client.delete_collection(self._name)
        except Exception as exc:
            if type(exc).__name__ != "NotFoundError":
                raise ChromaStoreError(f"cannot delete {self.where}: {exc}") from exc
        self._collection = None

    # writes ---------------------------------------------------------------------------------------
    def _batches(self, n: int) -> range:
        return range(0, n, self._max_batch)

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        matrix = check_batch(ids, vectors, payloads, self._dim)
        if not ids:
            return
        if any(not isinstance(cid, str) or not cid for cid in ids):
            raise ValueError("chunk ids must be non-empty strings")
        collection = self._require(create=True)
        metas = [_metadata(p) for p in payloads]
        for start in self._batches(len(ids)):
            batch_ids = ids[start:start + self._max_batch]
            batch_metas = metas[start:start + self._max_batch]
            # Chroma's upsert merges metadata: send the keys that the new payload no longer has as None
            old = collection.get(ids=batch_ids, include=["metadatas"])
            previous = {cid: m or {} for cid, m in zip(old["ids"], old["metadatas"] or [], strict=False)}
            sent: list[dict[str, Any] | None] = []
            for cid, meta in zip(batch_ids, batch_metas, strict=True):
                full: dict[str, Any] = {**{k: None for k in previous.get(cid, {}) if k not in meta}, **meta}
                sent.append(full or None)
            try:
                collection.upsert(ids=batch_ids, embeddings=matrix[start:start + self._max_batch],
                                  metadatas=sent)
            except Exception as exc:
                raise ChromaStoreError(f"upsert of {len(batch_ids)} records into {self.where} failed: {exc}") \
                    from exc

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        collection = self._require()
        if collection is None:
            return
        for start in self._batches(len(ids)):
            collection.delete(ids=list(ids[start:start + self._max_batch]))

    # reads ----------------------------------------------------------------------------------------
    def ids(self) -> set[str]:
        collection = self._require()
        if collection is None:
            return set()
        out: set[str] = set()
        offset = 0
        while True:
            page = collection.get(include=[], limit=_PAGE, offset=offset)["ids"]
            out.update(page)
            if len(page) < _PAGE:
                return out
            offset += len(page)

    def __len__(self) -> int:
        collection = self._require()
        return 0 if collection is None else int(collection.count())

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def collection_name(self) -> str:
        """The name of the Chroma collection in use."""
        return self._name

    def search(self, query: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        collection = self._require()
        if collection is None or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self._dim:
            raise ValueError(f"query of dimension {q.shape[1]} for a collection of dimension {self._dim}")
        try:
            result = collection.query(query_embeddings=q, n_results=int(k),
                                      where=to_chroma_where(where) if where is not None else None,
                                      include=["distances"])
        except Exception as exc:
            raise ChromaStoreError(f"search in {self.where} failed: {exc}") from exc
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result.get("distances") else []
        return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances, strict=True)]
