"""FAISS: inner-product search over normalised vectors (cosine), exact or approximate by collection size.

``index: auto`` (the default) keeps search exact (``IndexFlatIP``) below ``exact_below`` vectors (50k) and builds
an HNSW graph above it; ``flat``, ``hnsw`` and ``ivf`` force one kind, each with its parameters in the spec.
Each index version is its own folder (``versioned``): the index step builds it whole from the cached vectors
and switches the workspace's current index to it, so a running reader is never disturbed.

Metadata filters are pushed into FAISS as an ID selector over the rows whose payload matches (evaluated on
columnar numpy arrays); when few rows match, an approximate index would return fewer than ``k`` of them, so
the store scores those rows exactly instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import Filter, PayloadColumns
from flightdeck.retrieval.stores.base import StoreLocation, check_batch

__all__ = ["FaissConfig", "FaissStore"]


def _faiss() -> Any:
    return optional_import("faiss", "faiss", "vector_store 'faiss'")


@contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` OpenMP threads, then restore the count. FAISS and torch share one OpenMP
    runtime: a count left at 1 after a search would slow every later embedding batch in the process."""
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    if before == n:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class FaissConfig(BaseModel):
    """Settings of ``vector_database: {provider: faiss, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    index: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto", description="auto: exact below exact_below vectors, HNSW above; or force one kind")
    exact_below: int = Field(
        50_000, ge=0, description="auto mode: collections smaller than this stay exact (a flat scan of 50k "
        "384-d vectors takes a few ms on one core; beyond that HNSW answers in under a millisecond)")
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW: links per node (memory vs recall)")
    hnsw_ef_construction: int = Field(200, ge=8, description="HNSW: candidate list while building")
    hnsw_ef_search: int = Field(128, ge=8, description="HNSW: candidate list while searching (recall vs speed)")
    ivf_nlist: int | None = Field(None, ge=1, description="IVF: number of clusters; default 4·√n")
    ivf_nprobe: int = Field(16, ge=1, description="IVF: clusters visited per query")
    exact_filter_below: int = Field(
        5_000, ge=0, description="HNSW/IVF: a filter matching fewer rows than this is scored exactly over them")
    search_threads: int = Field(
        1, ge=1, le=256, description="OpenMP threads per query: one query is fastest on one thread, and more "
        "threads contend badly on a loaded machine (measured: 4x slower p50 at 100k on 2 busy cores)")


class FaissStore:
    """A FAISS index, the chunk id of each row and the rows' payloads, saved as files in one folder."""

    versioned = True
    INDEX_FILE = "index.faiss"
    IDS_FILE = "ids.json"
    PAYLOADS_FILE = "payloads.jsonl"
    META_FILE = "store.json"

    def __init__(self, config: FaissConfig | None = None) -> None:
        self.config = config or FaissConfig()
        self._folder: Path | None = None
        self._dim = 0
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._payloads: list[dict[str, Any]] = []
        self._vectors: np.ndarray | None = None  # held only while the collection is being changed
        self._index: Any = None
        self._kind = "flat"
        self._columns: PayloadColumns | None = None
        self._dirty = False

    # lifecycle ------------------------------------------------------------------------------------
    def open(self, location: StoreLocation) -> None:
        self._folder, self._dim = location.folder, location.dimension
        if (location.folder / self.IDS_FILE).is_file():
            self._load(location.folder)
        else:
            self._ids, self._row, self._payloads = [], {}, []
            self._vectors = np.zeros((0, self._dim), dtype=np.float32)
            self._index, self._dirty = None, True

    def _load(self, folder: Path) -> None:
        faiss = _faiss()
        self._index = faiss.read_index(str(folder / self.INDEX_FILE))
        self._ids = json.loads((folder / self.IDS_FILE).read_text())
        self._row = {cid: i for i, cid in enumerate(self._ids)}
        payload_file = folder / self.PAYLOADS_FILE
        self._payloads = [json.loads(line) for line in payload_file.read_text().splitlines()] \
            if payload_file.is_file() else [{} for _ in self._ids]
        meta = json.loads((folder / self.META_FILE).read_text()) if (folder / self.META_FILE).is_file() else {}
        self._kind = meta.get("kind", "flat")
        self._dim = int(self._index.d)
        if self._kind == "ivf":
            faiss.extract_index_ivf(self._index).nprobe = self.config.ivf_nprobe
        elif self._kind == "hnsw":
            self._index.hnsw.efSearch = self.config.hnsw_ef_search
        self._vectors, self._columns, self._dirty = None, None, False

    def flush(self) -> None:
        if self._folder is None:
            raise RuntimeError("open the store before flushing it")
        self._ensure_index()
        self._folder.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self._index, str(self._folder / self.INDEX_FILE))
        (self._folder / self.IDS_FILE).write_text(json.dumps(self._ids))
        (self._folder / self.PAYLOADS_FILE).write_text(
            "".join(json.dumps(p, sort_keys=True) + "\n" for p in self._payloads))
        (self._folder / self.META_FILE).write_text(json.dumps({"kind": self._kind, "dimension": self._dim,
                                                               "count": len(self._ids)}))

    def close(self) -> None:
        self._vectors = None

    def drop(self) -> None:
        if self._folder is not None:
            for name in (self.INDEX_FILE, self.IDS_FILE, self.PAYLOADS_FILE, self.META_FILE):
                (self._folder / name).unlink(missing_ok=True)
        self._ids, self._row, self._payloads, self._index = [], {}, [], None
        self._vectors = np.zeros((0, self._dim), dtype=np.float32)
        self._columns, self._dirty = None, True

    # writes ---------------------------------------------------------------------------------------
    def _materialise(self) -> np.ndarray:
        if self._vectors is None:
            n = len(self._ids)
            if n == 0:
                self._vectors = np.zeros((0, self._dim), dtype=np.float32)
            else:
                if self._kind == "ivf":
                    _faiss().extract_index_ivf(self._index).make_direct_map()
                self._vectors = self._index.reconstruct_n(0, n).astype(np.float32)
        return self._vectors

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        matrix = check_batch(ids, vectors, payloads, self._dim)
        current = self._materialise()
        new_rows: list[np.ndarray] = []
        for cid, vec, payload in zip(ids, matrix, payloads, strict=True):
            row = self._row.get(cid)
            if row is None:
                self._row[cid] = len(self._ids)
                self._ids.append(cid)
                self._payloads.append(dict(payload))
                new_rows.append(vec)
            else:
                current[row] = vec
                self._payloads[row] = dict(payload)
        if new_rows:
            current = np.vstack([current, np.asarray(new_rows, dtype=np.float32)])
        self._vectors, self._dirty, self._columns = current, True, None

    def delete(self, ids: list[str]) -> None:
        gone = {self._row[cid] for cid in ids if cid in self._row}
        if not gone:
            return
        current = self._materialise()
        keep = np.array([i for i in range(len(self._ids)) if i not in gone], dtype=np.int64)
        self._vectors = current[keep] if len(keep) else np.zeros((0, self._dim), dtype=np.float32)
        self._ids = [self._ids[i] for i in keep]
        self._payloads = [self._payloads[i] for i in keep]
        self._row = {cid: i for i, cid in enumerate(self._ids)}
        self._dirty, self._columns = True, None

    def ids(self) -> set[str]:
        return set(self._ids)

    def _choose_kind(self, n: int) -> str:
        kind = self.config.index
        if kind == "auto":
            return "flat" if n < self.config.exact_below else "hnsw"
        return kind

    def _ensure_index(self) -> None:
        if not self._dirty and self._index is not None:
            return
        faiss = _faiss()
        vectors = self._materialise()
        n, dim = len(vectors), self._dim or 1
        kind = self._choose_kind(n)
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.config.hnsw_ef_construction
            index.hnsw.efSearch = self.config.hnsw_ef_search
        elif kind == "ivf" and n > 0:
            nlist = self.config.ivf_nlist or max(1, int(4 * math.sqrt(n)))
            nlist = min(nlist, n)
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
            index.nprobe = self.config.ivf_nprobe
        else:
            kind, index = ("ivf" if kind == "ivf" else "flat"), faiss.IndexFlatIP(dim)
            if n == 0:
                kind = "flat"
        if n:
            index.add(vectors)
        self._index, self._kind, self._dirty = index, kind, False

    # reads ----------------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def kind(self) -> str:
        """The index kind in use: flat, hnsw or ivf."""
        self._ensure_index()
        return self._kind

    def search(self, query: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        self._ensure_index()
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self._dim:
            raise ValueError(f"query of dimension {q.shape[1]} for an index of dimension {self._dim}")
        with _omp_threads(self.config.search_threads):
            return self._search(q, n, k, where)

    def _search(self, q: np.ndarray, n: int, k: int, where: Filter | None) -> list[tuple[str, float]]:
        if where is None:
            scores, rows = self._index.search(q, min(k, n))
            return self._pairs(rows[0], scores[0])
        allowed_mask = self._mask(where)
        allowed = np.flatnonzero(allowed_mask)
        if len(allowed) == 0:
            return []
        if self._kind != "flat" and len(allowed) < self.config.exact_filter_below:
            # few rows pass: an approximate index would find fewer than k of them, so score them exactly
            vectors = self._vectors[allowed] if self._vectors is not None else self._index.reconstruct_batch(allowed)
            scores = vectors @ q[0]
            top = np.argsort(-scores, kind="stable")[:k]
            return self._pairs(allowed[top], scores[top])
        faiss = _faiss()
        bitmap = np.packbits(allowed_mask, bitorder="little")  # must outlive the search call below
        selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
        if self._kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.config.hnsw_ef_search, k))
        elif self._kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.config.ivf_nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, rows = self._index.search(q, min(k, len(allowed)), params=params)
        return self._pairs(rows[0], scores[0])

    def _mask(self, where: Filter) -> np.ndarray:
        if self._columns is None:
            self._columns = PayloadColumns(self._payloads)
        return self._columns.mask(where)

    def _pairs(self, rows: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
        return [(self._ids[int(r)], float(s)) for r, s in zip(rows, scores, strict=True) if r >= 0]

    def __len__(self) -> int:
        return len(self._ids)
