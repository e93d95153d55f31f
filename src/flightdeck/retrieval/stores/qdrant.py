"""Qdrant: a live collection in Qdrant's own engine in this process (Edge, the default), in qdrant-client's
embedded local mode, or on a Qdrant server (``url``).

``mode`` chooses:

- ``edge`` (the default without ``url``): Qdrant Edge, from the ``qdrant-edge-py`` package — the Rust engine
  of the Qdrant server (segments, WAL, payload filtering, HNSW) run in-process, one *shard* per collection
  in ``<folder>/edge/<collection>`` (``folder``: ``path`` or the workspace's ``stores/qdrant``). Edge has no
  background optimizer, so :meth:`QdrantStore.flush` runs Qdrant's optimizers (vacuum, merge, and the HNSW
  index once a segment passes Qdrant's default indexing threshold); smaller segments are searched exactly.
  One process at a time: the shard locks its WAL.
- ``local``: qdrant-client's local mode, a Python re-implementation of Qdrant's API that keeps collections in
  ``<folder>/collection/<name>`` (SQLite) and searches them by brute force; meant for small collections
  (qdrant-client warns above 20,000 points), one process at a time (a lock on the folder).
- ``server``: a Qdrant server via qdrant-client (``url``, optional ``api_key``, ``prefer_grpc``); several
  readers and writers.

``hnsw_ef`` and ``exact`` tune the HNSW search of Edge and of a server. Without ``mode``, a folder where local
mode already keeps the collection (and Edge does not) stays in local mode, so a workspace made before Edge
keeps the vectors it has: the index step is skipped when nothing changed and would never fill a new shard.

Point ids: Qdrant accepts only unsigned integers and UUIDs, so a chunk id becomes the UUIDv5 of that id,
and the chunk id itself is kept in the payload under ``fd-chunk-id``. That key contains ``-``, which no
normalised payload key and no filter field name can contain, so user metadata and filters can never reach it.

Filters are translated into Qdrant's own ``Filter(must=..., should=...)`` and evaluated by Qdrant during the
search (qdrant-client's models for local and server mode, ``qdrant_edge``'s classes of the same names for
Edge). Payload numbers are floats, and Qdrant's exact match (``MatchValue``/``MatchAny``) takes only
booleans, integers and strings — an integer never matches a stored float on the server — so equality on a
number is a closed range ``[v, v]``; ranges never match booleans or strings, and ``MatchValue(True)``
matches only booleans, which keeps ``True`` apart from ``1.0`` as :func:`flightdeck.retrieval.filters.matches`
requires. (qdrant-edge-py 0.9 reads a Python ``True`` given to ``MatchValue`` as the integer 1, since
``bool`` is an ``int``; a ``numpy.bool_`` is not, and reaches the engine as a boolean.)
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from flightdeck.errors import FlightdeckError, IndexMismatchError, WorkspaceError
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import AllOf, AnyOf, Filter, FilterError
from flightdeck.retrieval.stores.base import StoreLocation, check_batch, chunk_uuid

__all__ = ["QdrantConfig", "QdrantStore", "to_qdrant_filter", "to_edge_filter", "point_id", "ID_KEY",
           "EDGE_FOLDER"]

# The payload key that holds the chunk id: "-" keeps it out of reach of normalised keys and filter names.
ID_KEY = "fd-chunk-id"
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COLLECTION = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def _qdrant() -> Any:
    return optional_import("qdrant_client", "qdrant", "vector_store 'qdrant'")


def _models() -> Any:
    _qdrant()
    from qdrant_client import models

    return models


def _edge() -> Any:
    return optional_import("qdrant_edge", "qdrant",
                           "vector_store 'qdrant' (mode: edge, the default without `url`, runs on qdrant-edge-py)",
                           alternative="set `mode: local` for qdrant-client's local mode")


def point_id(chunk_id: str) -> str:
    """The Qdrant point id of a chunk id: its UUIDv5, as a string."""
    return chunk_uuid(chunk_id)


class QdrantConfig(BaseModel):
    """Settings of ``vector_database: {provider: qdrant, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: Literal["edge", "local", "server"] | None = Field(
        None, description="edge: Qdrant's Rust engine in this process (qdrant-edge-py); local: qdrant-client's "
                          "embedded Python mode; server: a Qdrant server at `url`. Default: server with `url`, "
                          "else edge (a folder where local mode already holds the collection stays local)")
    url: str | None = Field(None, description="a Qdrant server, e.g. http://localhost:6333; unset: an embedded "
                                              "mode in `path`")
    api_key: SecretStr | None = Field(None, description="the server's API key; write it as ${QDRANT_API_KEY}")
    path_settings: ClassVar[tuple[str, ...]] = ("path",)  # resolved from the spec's folder
    path: str | None = Field(None, description="edge and local mode: the folder of the embedded collections; "
                                               "default: the workspace's stores/qdrant folder")
    collection: str | None = Field(None, description="the collection's name; default: one derived from the "
                                                     "workspace, embedding model and store settings")
    prefer_grpc: bool = Field(False, description="server: talk gRPC (port 6334) instead of REST")
    hnsw_ef: int | None = Field(None, ge=1, description="edge and server: HNSW candidate list while searching "
                                                        "(recall vs speed); default: the collection's")
    exact: bool = Field(False, description="edge and server: search every vector instead of the HNSW graph")
    timeout: int | None = Field(None, ge=1, description="server: seconds to wait for each request")

    @model_validator(mode="after")
    def _check(self) -> QdrantConfig:
        if self.url is not None and self.path is not None:
            raise ValueError("set either `url` (a Qdrant server) or `path` (an embedded local folder), not both")
        if self.url is not None and not re.match(r"^https?://[^/\s]+", self.url):
            raise ValueError(f"url {self.url!r} is not an http(s) URL; write e.g. http://localhost:6333")
        if self.mode == "server" and self.url is None:
            raise ValueError("mode: server needs the server's `url` (e.g. http://localhost:6333)")
        if self.mode in ("edge", "local") and self.url is not None:
            raise ValueError(f"mode: {self.mode} runs Qdrant in this process and talks to no server: remove `url`, "
                             "or set `mode: server`")
        if self.url is None:
            server_only = [name for name, on in (("api_key", self.api_key is not None),
                                                 ("prefer_grpc", self.prefer_grpc)) if on]
            if server_only:
                raise ValueError(f"{', '.join(server_only)} only apply to a Qdrant server: set `url` too, or "
                                 "remove them (an embedded mode has no server to talk to)")
        if self.collection is not None and not _COLLECTION.match(self.collection):
            raise ValueError(f"collection {self.collection!r}: use letters, digits, _ and - (at most 255)")
        return self


# --- one client per local folder in this process ------------------------------------------------------
@dataclass
class _Local:
    client: Any
    refs: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)


_LOCAL: dict[str, _Local] = {}
_LOCAL_GUARD = threading.RLock()  # re-entrant: a finalizer may release a store while it is held


def _acquire_local(folder: Path) -> tuple[str, _Local]:
    """The process's client of a local folder (opened on first use): local mode locks the folder, so a
    second client in the same process would be refused; the index step and the searcher share this one."""
    key = str(folder.expanduser().resolve())
    with _LOCAL_GUARD:
        shared = _LOCAL.get(key)
        if shared is None:
            qdrant = _qdrant()
            Path(key).mkdir(parents=True, exist_ok=True)
            try:
                client = qdrant.QdrantClient(path=key)
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise WorkspaceError(
                    f"the Qdrant local folder {key} is open in another process (a running search, server or "
                    "run?); local mode allows one process at a time: stop that process, or run a Qdrant server "
                    "and set `url:` under retrieval.vector_database") from exc
            shared = _LOCAL[key] = _Local(client)
        shared.refs += 1
        return key, shared


def _release_local(key: str) -> None:
    with _LOCAL_GUARD:
        shared = _LOCAL.get(key)
        if shared is None:
            return
        shared.refs -= 1
        if shared.refs <= 0:
            del _LOCAL[key]
            with shared.lock:
                shared.client.close()  # releases the folder's file lock


# --- one Edge shard per folder in this process ----------------------------------------------------------
# The sub-folder of an embedded folder that holds the Edge shards, one per collection; local mode's
# collections live beside it in "collection/", so both modes can share a folder.
EDGE_FOLDER = "edge"


@dataclass
class _Shard:
    shard: Any
    folder: Path
    dim: int
    refs: int = 0
    dropped: bool = False


_EDGE: dict[str, _Shard] = {}
_EDGE_GUARD = threading.RLock()


def _stored_vectors(folder: Path) -> str | None:
    """What an existing shard's ``edge_config.json`` says it holds, when that is not one unnamed vector per
    point (``None``: it is, or the file cannot be read, which the engine then reports)."""
    import json

    try:
        vectors = json.loads((folder / "edge_config.json").read_text(encoding="utf-8"))["vectors"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(vectors, dict) or set(vectors) != {""}:
        return f"the named vectors {sorted(vectors)}" if isinstance(vectors, dict) else None
    params = vectors[""]
    return f"{params.get('distance')} vectors of dimension {params.get('size')}"


def _open_shard(folder: Path, dim: int) -> Any:
    """Create or load the Edge shard in ``folder``, checked against cosine vectors of ``dim``."""
    edge = _edge()
    config = edge.EdgeConfig(vectors=edge.EdgeVectorParams(size=dim, distance=edge.Distance.Cosine))
    wanted = f"Cosine vectors of dimension {dim}"
    exists = (folder / "edge_config.json").exists() or (folder / "segments").is_dir()
    stored = _stored_vectors(folder) if exists else None
    if stored is not None and stored != wanted:
        raise IndexMismatchError(f"the Qdrant Edge shard {folder} holds {stored}, but the embedder makes cosine "
                                 f"vectors of dimension {dim}: set another `collection:` or delete that folder")
    try:
        # load() with the config checks it against the segments; create() refuses a folder with segments
        return edge.EdgeShard.load(str(folder), config) if exists else edge.EdgeShard.create(str(folder), config)
    except Exception as exc:  # the engine raises plain Exceptions: tell them apart by their text
        text = str(exc)
        if "WouldBlock" in text:
            raise WorkspaceError(
                f"the Qdrant Edge shard {folder} is open in another process (a running search, server or run?); "
                "Edge allows one process at a time: stop that process, or run a Qdrant server and set `url:` "
                "under retrieval.vector_database") from exc
        if "incompatible" in text.lower():
            raise IndexMismatchError(f"the Qdrant Edge shard {folder} does not hold {wanted} ({text}): set another "
                                     "`collection:` or delete that folder") from exc
        raise WorkspaceError(f"the Qdrant Edge shard {folder} cannot be opened ({text}): it is damaged or not an "
                             "Edge shard; restore it from a backup, or move it away and index again") from exc


def _acquire_edge(folder: Path, dim: int) -> _Shard:
    """The process's shard of ``folder`` (opened on first use): a shard locks its WAL, so a second one in the
    same process would be refused; the index step and the searcher share this one."""
    key = str(folder.expanduser().resolve())
    with _EDGE_GUARD:
        shared = _EDGE.get(key)
        if shared is None:
            shared = _EDGE[key] = _Shard(_open_shard(Path(key), dim), Path(key), dim)
        elif shared.dim != dim:
            raise IndexMismatchError(f"the Qdrant Edge shard {key} is open here with vectors of dimension "
                                     f"{shared.dim}, not {dim}: set another `collection:`")
        shared.refs += 1
        return shared


def _release_edge(shared: _Shard) -> None:
    with _EDGE_GUARD:
        shared.refs -= 1
        if shared.refs > 0 or shared.dropped:
            return
        if _EDGE.get(str(shared.folder)) is shared:
            del _EDGE[str(shared.folder)]
        try:
            shared.shard.flush()
        finally:
            shared.shard.close()  # releases the WAL lock


def _drop_edge(shared: _Shard) -> None:
    """Close the shard for every store that shares it and delete its folder."""
    import shutil

    with _EDGE_GUARD:
        if shared.dropped:
            return
        shared.dropped = True
        if _EDGE.get(str(shared.folder)) is shared:
            del _EDGE[str(shared.folder)]
        shared.shard.close()
        shutil.rmtree(shared.folder)


# --- filters ----------------------------------------------------------------------------------------------
def to_qdrant_filter(f: Filter) -> Any:
    """The ``qdrant_client.models.Filter`` that keeps exactly the points :func:`matches` accepts."""
    return _translate(f, _models(), edge=False)


def to_edge_filter(f: Filter) -> Any:
    """The same filter built from ``qdrant_edge``'s classes, which Edge mode's engine evaluates."""
    return _translate(f, _edge(), edge=True)


def _translate(f: Filter, models: Any, edge: bool) -> Any:
    if isinstance(f, AllOf):
        return models.Filter(must=[_condition(p, models, edge) for p in f.parts])
    if isinstance(f, AnyOf):
        return models.Filter(should=[_condition(p, models, edge) for p in f.parts])
    return models.Filter(must=[_condition(f, models, edge)])


def _condition(f: Filter, models: Any, edge: bool) -> Any:
    if isinstance(f, (AllOf, AnyOf)):
        return _translate(f, models, edge)
    if not _FIELD.match(f.key):
        raise FilterError(f"filter field {f.key!r} is not a field name (letters, digits and _)")
    if f.op == "$eq":
        return _equals(f.key, f.value, models, edge)
    if f.op == "$in":
        strings = [v for v in f.value if isinstance(v, str)]
        others = [_equals(f.key, v, models, edge) for v in f.value if not isinstance(v, str)]
        parts = ([models.FieldCondition(key=f.key, match=models.MatchAny(any=strings))] if strings else []) + others
        return parts[0] if len(parts) == 1 else models.Filter(should=parts)
    bound = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}.get(f.op)
    if bound is None:
        raise FilterError(f"filter operator {f.op!r} on {f.key!r} is not supported by the qdrant store")
    return models.FieldCondition(key=f.key, range=_range(models, edge, **{bound: float(f.value)}))


def _equals(key: str, value: Any, models: Any, edge: bool) -> Any:
    if isinstance(value, bool):
        # qdrant-edge-py reads a Python bool as the integer 1 or 0 (bool is an int), which matches no boolean
        # payload; numpy's bool_ is no int and reaches the engine as a boolean
        return models.FieldCondition(key=key, match=models.MatchValue(value=np.bool_(value) if edge else value))
    if isinstance(value, str):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    # a number: a closed range, which matches int and float payloads alike and never a boolean
    return models.FieldCondition(key=key, range=_range(models, edge, gte=float(value), lte=float(value)))


def _range(models: Any, edge: bool, **bounds: float) -> Any:
    # Edge names the numeric range RangeFloat (beside RangeDateTime); qdrant-client calls it Range
    return models.RangeFloat(**bounds) if edge else models.Range(**bounds)


# --- the store ----------------------------------------------------------------------------------------------
class QdrantStore:
    """One Qdrant collection (cosine distance) holding a vector and a payload per chunk id."""

    versioned = False
    UPSERT_BATCH = 256
    SCROLL_PAGE = 1024

    def __init__(self, config: QdrantConfig | None = None) -> None:
        self.config = config or QdrantConfig()
        self._client: Any = None
        self._local: _Local | None = None
        self._edge: _Shard | None = None
        self._release: weakref.finalize | None = None
        self._mode: str | None = None
        self._collection = ""
        self._dim = 0

    # lifecycle ------------------------------------------------------------------------------------
    @property
    def collection(self) -> str:
        """The collection in use: the ``collection`` setting if set, else the location's."""
        return self._collection

    @property
    def mode(self) -> str:
        """``edge``, ``local`` or ``server``: the one in use once open, else the one the settings ask for."""
        return self._mode or self.config.mode or ("server" if self.config.url else "edge")

    def _resolve_mode(self, root: Path) -> str:
        if self.config.mode or self.config.url:
            return self.mode
        # a workspace made before Edge: its vectors are in local mode, and an index step with unchanged inputs
        # and settings is skipped, so a new Edge shard would stay empty
        local = (root / "collection" / self._collection).is_dir()
        return "local" if local and not (root / EDGE_FOLDER / self._collection).exists() else "edge"

    def open(self, location: StoreLocation) -> None:
        self.close()
        self._collection = self.config.collection or location.collection
        self._dim = location.dimension
        root = Path(self.config.path) if self.config.path else location.folder
        self._mode = self._resolve_mode(root)
        if self._mode == "edge":
            try:
                self._edge = _acquire_edge(root / EDGE_FOLDER / self._collection, self._dim)
            except BaseException:
                self._mode = None
                raise
            self._client = self._edge.shard
            self._release = weakref.finalize(self, _release_edge, self._edge)
            return
        if self._mode == "server":
            cfg = self.config
            self._client = _qdrant().QdrantClient(
                url=cfg.url, api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
                prefer_grpc=cfg.prefer_grpc, timeout=cfg.timeout)
        else:
            key, self._local = _acquire_local(root)
            self._client = self._local.client
            self._release = weakref.finalize(self, _release_local, key)
        try:
            self._ensure_collection()
        except BaseException:
            self.close()
            raise

    def _guard(self) -> Any:
        # local mode is plain Python over shared dicts and SQLite: one call at a time per folder
        return self._local.lock if self._local is not None else nullcontext()

    @contextmanager
    def _calls(self, what: str) -> Iterator[Any]:
        if self._client is None:
            raise RuntimeError(f"open the qdrant store before {what}")
        if self._edge is not None and self._edge.dropped:
            raise RuntimeError(f"the Qdrant Edge collection {self._collection!r} was dropped: open the store again "
                               f"before {what}")
        with self._guard():
            try:
                yield self._client
            except FlightdeckError:
                raise
            except Exception as exc:
                if self._local is not None or isinstance(exc, (ValueError, KeyError)):
                    raise
                if self._edge is not None:
                    raise FlightdeckError(f"Qdrant Edge failed while {what} (shard {self._edge.folder}): "
                                          f"{exc}") from exc
                raise FlightdeckError(f"Qdrant at {self.config.url} failed while {what} (collection "
                                      f"{self._collection!r}): {exc}; check that the server runs and the url and "
                                      "api_key are right") from exc

    def _ensure_collection(self) -> None:
        models = _models()
        with self._calls("opening the collection") as client:
            if not client.collection_exists(self._collection):
                try:
                    client.create_collection(self._collection, vectors_config=models.VectorParams(
                        size=self._dim, distance=models.Distance.COSINE))
                except Exception:
                    if not client.collection_exists(self._collection):  # not a concurrent creation: a failure
                        raise
            params = client.get_collection(self._collection).config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise IndexMismatchError(f"Qdrant collection {self._collection!r} has named vectors; flightdeck needs "
                                     "one unnamed vector per point: set another `collection:`")
        if params.size != self._dim or params.distance != models.Distance.COSINE:
            raise IndexMismatchError(
                f"Qdrant collection {self._collection!r} holds {params.distance.value} vectors of dimension "
                f"{params.size}, but the embedder makes cosine vectors of dimension {self._dim}: set another "
                "`collection:` or delete that collection")

    def flush(self) -> None:
        """Edge: run Qdrant's optimizers, which Edge never runs by itself (vacuum deleted points, merge small
        segments, build the HNSW index of a segment past the indexing threshold), then write the segments to
        disk. Local and server mode: a no-op, every write waited for Qdrant's acknowledgement."""
        if self._edge is not None:
            with self._calls("optimizing and flushing the shard") as shard:
                shard.optimize()
                shard.flush()
        elif self._client is None:
            raise RuntimeError("open the qdrant store before flushing it")

    def close(self) -> None:
        if self._release is not None:
            self._release()  # drops this store's share of the folder's client or shard; the last one closes it
        elif self._client is not None:
            self._client.close()
        self._client, self._local, self._edge, self._release, self._mode = None, None, None, None, None

    def drop(self) -> None:
        if self._edge is not None:
            if not self._edge.dropped:
                with self._calls("dropping the collection"):
                    _drop_edge(self._edge)
            return
        with self._calls("dropping the collection") as client:
            if client.collection_exists(self._collection):
                client.delete_collection(self._collection)

    # writes ---------------------------------------------------------------------------------------
    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        matrix = check_batch(ids, vectors, payloads, self._dim)
        for payload in payloads:
            if ID_KEY in payload:
                raise ValueError(f"payload key {ID_KEY!r} is reserved by the qdrant store for the chunk id; "
                                 "rename that metadata field")
        if self._edge is not None:
            edge = _edge()
            with self._calls("upserting points") as shard:
                for start in range(0, len(ids), self.UPSERT_BATCH):
                    shard.update(edge.UpdateOperation.upsert_points([
                        edge.Point(point_id(cid), matrix[start + i], {**payloads[start + i], ID_KEY: cid})
                        for i, cid in enumerate(ids[start:start + self.UPSERT_BATCH])]))
            return
        models = _models()
        with self._calls("upserting points") as client:
            for start in range(0, len(ids), self.UPSERT_BATCH):
                chunk_ids = ids[start:start + self.UPSERT_BATCH]
                batch = models.Batch(
                    ids=[point_id(cid) for cid in chunk_ids],
                    vectors=matrix[start:start + self.UPSERT_BATCH].tolist(),
                    payloads=[{**payloads[start + i], ID_KEY: cid} for i, cid in enumerate(chunk_ids)])
                client.upsert(self._collection, points=batch, wait=True)

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        if self._edge is not None:
            edge = _edge()
            with self._calls("deleting points") as shard:
                for start in range(0, len(ids), self.UPSERT_BATCH):
                    shard.update(edge.UpdateOperation.delete_points(
                        [point_id(c) for c in ids[start:start + self.UPSERT_BATCH]]))
            return
        models = _models()
        with self._calls("deleting points") as client:
            for start in range(0, len(ids), self.UPSERT_BATCH):
                selector = models.PointIdsList(points=[point_id(c) for c in ids[start:start + self.UPSERT_BATCH]])
                client.delete(self._collection, points_selector=selector, wait=True)

    # reads ----------------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return self._dim

    def ids(self) -> set[str]:
        out: set[str] = set()
        offset = None
        edge = _edge() if self._edge is not None else None
        with self._calls("listing point ids") as client:
            while True:
                if edge is not None:
                    records, offset = client.scroll(edge.ScrollRequest(
                        offset=offset, limit=self.SCROLL_PAGE, with_payload=[ID_KEY], with_vector=False))
                else:
                    records, offset = client.scroll(self._collection, limit=self.SCROLL_PAGE, offset=offset,
                                                    with_payload=[ID_KEY], with_vectors=False)
                out.update(r.payload[ID_KEY] for r in records if r.payload and ID_KEY in r.payload)
                if offset is None:
                    return out

    def search(self, query: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self._dim:
            raise ValueError(f"query of dimension {q.shape[0]} for a collection of dimension {self._dim}")
        if self._edge is not None:
            edge = _edge()
            request = edge.QueryRequest(
                limit=k, query=edge.Query.Nearest(q), filter=to_edge_filter(where) if where is not None else None,
                params=edge.SearchParams(hnsw_ef=self.config.hnsw_ef, exact=self.config.exact),
                with_payload=[ID_KEY], with_vector=False)
            with self._calls("searching") as shard:
                points = shard.query(request)
            return [(p.payload[ID_KEY], float(p.score)) for p in points if p.payload and ID_KEY in p.payload]
        models = _models()
        query_filter = to_qdrant_filter(where) if where is not None else None
        params = models.SearchParams(hnsw_ef=self.config.hnsw_ef, exact=self.config.exact) \
            if self.config.url else None
        with self._calls("searching") as client:
            points = client.query_points(self._collection, query=q.tolist(), limit=k, query_filter=query_filter,
                                         search_params=params, with_payload=[ID_KEY], with_vectors=False).points
        # Cosine distance: Qdrant returns the cosine similarity itself, higher is better
        return [(p.payload[ID_KEY], float(p.score)) for p in points if p.payload and ID_KEY in p.payload]

    def __len__(self) -> int:
        with self._calls("counting points") as client:
            if self._edge is not None:
                return int(client.count(_edge().CountRequest(exact=True)))
            return int(client.count(self._collection, exact=True).count)
