"""Search over the current index: keywords, vectors, or both fused — by weighted reciprocal rank (``rrf``) or by
weighted min-max-normalised scores (``weighted``) — with metadata filters pushed into both retrievers.

The keyword retriever is the keyword index (:mod:`flightdeck.retrieval.keyword`) the searcher was given, the one
``retrieval.search.keyword_index`` names: the index version's BM25 index (``bm25``), the workspace's SQLite FTS5
table (``fts5``) or PostgreSQL full-text search (``postgres``); the fusion is the one ``retrieval.search.fusion``
names (:mod:`flightdeck.retrieval.fusion`)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from flightdeck.errors import IndexMismatchError, WorkspaceError
from flightdeck.retrieval.filters import Filter, parse_filter
from flightdeck.retrieval.fusion import Fusion, reciprocal_rank_fusion, weighted_score_fusion
from flightdeck.retrieval.keyword import Fts5Index, KeywordIndex, KeywordSearch
from flightdeck.retrieval.query_transform import QueryTransformation, QueryVariant
from flightdeck.retrieval.stores.base import StoreLocation
from flightdeck.workspace import CURRENT_INDEX, Workspace
from flightdeck.workspace.index_versions import get_index_version
from flightdeck.workspace.schema import chunks, dataset_version_documents, documents

__all__ = ["SearchHit", "SearchResult", "HybridSearcher", "reciprocal_rank_fusion", "weighted_score_fusion"]


@dataclass
class SearchHit:
    """One retrieved chunk and where it came from."""

    chunk_id: str
    document_id: str
    source_uri: str
    title: str
    heading: str
    score: float
    text: str
    metadata: dict[str, Any]
    ranks: dict[str, int] = field(default_factory=dict)  # 1-based rank in each retriever

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    query: str
    mode: str
    hits: list[SearchHit]
    index_version: str
    timings_ms: dict[str, float]
    keyword_index: str = ""  # which keyword index answered: "bm25", "fts5", "postgres", or "" when none was asked
    queries: list[dict[str, Any]] = field(default_factory=list)  # the searches a query transformation made

    def to_dict(self) -> dict[str, Any]:
        out = {"query": self.query, "mode": self.mode, "index_version": self.index_version,
               "keyword_index": self.keyword_index, "timings_ms": self.timings_ms,
               "hits": [h.to_dict() for h in self.hits]}
        if self.queries:
            out["queries"] = self.queries
        return out


class HybridSearcher:
    """Reads the workspace's current index version; checks it was built with the configured embedder.

    ``keyword_index`` is the keyword index to search (:func:`flightdeck.retrieval.keyword.keyword_index_for`) and
    ``fusion`` how ranked lists are merged (:func:`flightdeck.retrieval.fusion.fusion_for`); ``settings`` are
    ``retrieval.search``'s (mode, k, candidates, weights, rrf_k)."""

    def __init__(self, ws: Workspace, embedder: Any, store_factory: Any, settings: Any,
                 keyword_index: KeywordIndex, fusion: Fusion, transform: QueryTransformation | None = None,
                 pinned_version: str | None = None) -> None:
        self.ws = ws
        self.embedder = embedder
        self.store_factory = store_factory
        self.settings = settings
        self.keyword_index = keyword_index
        self.fusion = fusion
        self.fts5 = Fts5Index(ws.engine)  # searched when the keyword index has nothing for an index version
        self._store: Any = None
        self._store_version: str | None = None
        self._keyword: KeywordSearch | None = None
        self._keyword_version: str | None = None
        self.transform = transform  # the query transformation (retrieval.query_transformation), or None
        # an index version searched whatever the workspace's current one is (a release's), or None: the current
        self.pinned_version = pinned_version
        self._archived: dict[str, dict[str, Any]] | None = None  # a pinned older version's chunks, from its records

    def index_version(self) -> str:
        if self.pinned_version is not None:
            return self.pinned_version
        version = self.ws.get_state(CURRENT_INDEX)
        if version is None:
            raise WorkspaceError(f"{self.ws.root}: no index yet; run `flightdeck run` first")
        return version

    def _vector_store(self, version: str) -> Any:
        if self._store is not None and self._store_version == version:
            return self._store
        row = get_index_version(self.ws, version)
        if row is None:
            raise WorkspaceError(f"index version {version} is recorded as current but missing; run again")
        if row.embedder != self.embedder.model_id:
            raise IndexMismatchError(
                f"the index ({version[:12]}) was built with {row.embedder} (dimension {row.dim}), but the "
                f"spec configures {self.embedder.model_id}; run `flightdeck run` to rebuild the vectors")
        store = self.store_factory()
        versioned = bool(getattr(store, "versioned", False))
        if not versioned and not row.collection:
            raise IndexMismatchError(
                f"the index ({version[:12]}) was built with the {row.store} store, not with the one the spec "
                "configures now; run `flightdeck run` to rebuild it")
        folder = self.ws.store_folder(row.store, version if versioned else None)
        store.open(StoreLocation(folder, row.collection or version[:20], row.dim))
        if self._store is not None:
            self._store.close()
        self._store, self._store_version = store, version
        return store

    def _keyword_search(self, version: str) -> tuple[KeywordSearch, str]:
        """What to search for keywords in index version ``version``, and its name for
        ``SearchResult.keyword_index``: the keyword index's own, or the FTS5 table when it has none there (an
        index built before the BM25 index existed)."""
        if self._keyword_version != version:
            self._keyword = self.keyword_index.open(self.ws, version)
            self._keyword_version = version
        if self._keyword is None:
            return self.fts5, "fts5"
        return self._keyword, self.keyword_index.name

    def search(self, query: str, k: int | None = None, mode: str | None = None,
               where: dict[str, Any] | Filter | None = None, transform: bool = True) -> SearchResult:
        """The top ``k`` chunks for ``query``; ``where`` is a metadata filter (see :mod:`..filters`).

        With a query transformation configured (``self.transform``) and ``transform`` true, every variant it
        returns is searched and all the ranked lists are fused; ``SearchResult.queries`` lists the variants.
        """
        s = self.settings
        k = k or s.k
        mode = mode or s.mode
        if mode not in ("hybrid", "vector", "keyword"):
            raise ValueError(f"unknown search mode {mode!r}; use hybrid, vector or keyword")
        condition = parse_filter(where, "where") if isinstance(where, dict) or where is None else where
        version = self.index_version()
        timings: dict[str, float] = {}
        variants = [QueryVariant("original", query, query)]
        if transform and self.transform is not None:
            t = time.perf_counter()
            variants = self.transform.variants(query)
            timings["transform"] = (time.perf_counter() - t) * 1000
        results: dict[str, list[tuple[str, float]]] = {}
        kinds: dict[str, str] = {}
        keyword_index = ""
        depth = max(s.candidates, k)
        for variant in variants:
            suffix = "" if len(variants) == 1 else f":{variant.label}"
            if mode in ("vector", "hybrid") and (variant.vector_query or variant.passages):
                store = self._vector_store(version)
                t = time.perf_counter()
                qv = self._query_vector(variant)
                timings["embed_query"] = timings.get("embed_query", 0.0) + (time.perf_counter() - t) * 1000
                t = time.perf_counter()
                results["vector" + suffix] = store.search(qv, depth, condition)
                kinds["vector" + suffix] = "vector"
                timings["vector"] = timings.get("vector", 0.0) + (time.perf_counter() - t) * 1000
            if mode in ("keyword", "hybrid") and variant.keyword:
                t = time.perf_counter()
                index, keyword_index = self._keyword_search(version)
                results["keyword" + suffix] = index.search(variant.keyword, depth, condition)
                kinds["keyword" + suffix] = "keyword"
                timings["keyword"] = timings.get("keyword", 0.0) + (time.perf_counter() - t) * 1000
        ranks: dict[str, dict[str, int]] = {}
        for name, hits in results.items():
            for rank, (cid, _) in enumerate(hits, 1):
                ranks.setdefault(cid, {})[name] = rank
        t = time.perf_counter()
        by_kind = {"keyword": s.keyword_weight, "vector": s.vector_weight}
        weights = {name: by_kind[kind] for name, kind in kinds.items()}
        if len(results) <= 1:
            fused = next(iter(results.values()), [])[:k]
        else:
            fused = self.fusion.fuse(results, weights, s)[:k]
        hits = self._hydrate(fused, ranks)
        timings["fuse_fetch"] = (time.perf_counter() - t) * 1000
        shown = [] if self.transform is None or not transform else [v.to_dict() for v in variants]
        return SearchResult(query, mode, hits, version, {n: round(v, 3) for n, v in timings.items()},
                            keyword_index, shown)

    def _query_vector(self, variant: QueryVariant) -> Any:
        """The variant's query vector: its query embedded as a query, averaged with its passages embedded as
        documents (HyDE), renormalised."""
        import numpy as np

        parts = []
        if variant.vector_query:
            parts.append(np.asarray(self.embedder.embed_query(variant.vector_query), dtype=np.float32)[None, :])
        if variant.passages:
            parts.append(np.asarray(self.embedder.embed_documents(list(variant.passages)), dtype=np.float32))
        if len(parts) == 1 and parts[0].shape[0] == 1:
            return parts[0][0]
        mean = np.concatenate(parts).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else mean

    def _archived_chunks(self) -> dict[str, dict[str, Any]]:
        """The chunks of the pinned index version's dataset version, read from its document records: a release
        built before the workspace's documents changed still answers with its own chunks (read once)."""
        if self._archived is not None:
            return self._archived
        import json

        found: dict[str, dict[str, Any]] = {}
        row = get_index_version(self.ws, self.pinned_version or "")
        if row is not None:
            with self.ws.engine.connect() as conn:
                digests = [r[0] for r in conn.execute(
                    select(dataset_version_documents.c.chunks_artifact)
                    .where(dataset_version_documents.c.dataset_version == row.dataset_version))]
            for digest in digests:
                if not digest:
                    continue
                try:
                    record = json.loads(self.ws.artifacts.get_bytes(digest))
                except (FileNotFoundError, ValueError):
                    continue  # a missing record: `flightdeck release show` reports it; its chunks are skipped
                doc = record["document"]
                for c in record.get("chunks", []):
                    found[c["id"]] = {"id": c["id"], "document_id": doc["id"], "text": c["text"],
                                      "heading": c["heading"], "metadata": c.get("metadata") or {},
                                      "source_uri": doc["source_uri"], "title": doc["title"]}
        self._archived = found
        return found

    def _hydrate(self, scored: list[tuple[str, float]], ranks: dict[str, dict[str, int]]) -> list[SearchHit]:
        if not scored:
            return []
        ids = [cid for cid, _ in scored]
        with self.ws.engine.connect() as conn:
            rows = {r["id"]: r for r in conn.execute(
                select(chunks.c.id, chunks.c.document_id, chunks.c.text, chunks.c.heading, chunks.c.metadata,
                       documents.c.source_uri, documents.c.title)
                .join(documents, documents.c.id == chunks.c.document_id)
                .where(chunks.c.id.in_(ids))).mappings()}
        if self.pinned_version is not None and len(rows) < len(ids):
            archived = self._archived_chunks()
            rows.update({cid: archived[cid] for cid in ids if cid not in rows and cid in archived})
        hits = []
        for cid, score in scored:
            r = rows.get(cid)
            if r is None:  # the keyword index moved ahead of the vector index mid-run: skip, never crash
                continue
            hits.append(SearchHit(cid, r["document_id"], r["source_uri"], r["title"], r["heading"],
                                  round(float(score), 6), r["text"], dict(r["metadata"] or {}), ranks.get(cid, {})))
        return hits
