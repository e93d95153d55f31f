"""Search over the current index: BM25, vectors, or both fused by weighted reciprocal rank."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from flightdeck.errors import IndexMismatchError, WorkspaceError
from flightdeck.retrieval.keyword import KeywordIndex
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import chunks, documents, index_versions

__all__ = ["SearchHit", "SearchResult", "HybridSearcher", "reciprocal_rank_fusion"]


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

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "mode": self.mode, "index_version": self.index_version,
                "timings_ms": self.timings_ms, "hits": [h.to_dict() for h in self.hits]}


def reciprocal_rank_fusion(rankings: dict[str, list[str]], weights: dict[str, float], k: int = 60
                           ) -> list[tuple[str, float]]:
    """Fuse ranked id lists: ``score(d) = Σ weight_r / (k + rank_r(d))`` (Cormack et al., 2009)."""
    scores: dict[str, float] = {}
    for name, ids in rankings.items():
        w = weights.get(name, 1.0)
        for rank, doc in enumerate(ids, 1):
            scores[doc] = scores.get(doc, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class HybridSearcher:
    """Reads the workspace's current index version; checks it was built with the configured embedder."""

    def __init__(self, ws: Workspace, embedder: Any, store_factory: Any, settings: Any) -> None:
        self.ws = ws
        self.embedder = embedder
        self.store_factory = store_factory
        self.settings = settings
        self.keyword = KeywordIndex(ws.engine)
        self._store: Any = None
        self._store_version: str | None = None

    def index_version(self) -> str:
        version = self.ws.get_state("current_index")
        if version is None:
            raise WorkspaceError(f"{self.ws.root}: no index yet; run `flightdeck run` first")
        return version

    def _vector_store(self, version: str) -> Any:
        if self._store is not None and self._store_version == version:
            return self._store
        with self.ws.engine.connect() as conn:
            row = conn.execute(select(index_versions).where(index_versions.c.id == version)).mappings().first()
        if row is None:
            raise WorkspaceError(f"index version {version} is recorded as current but missing; run again")
        if row["embedder"] != self.embedder.model_id:
            raise IndexMismatchError(
                f"the index ({version[:12]}) was built with {row['embedder']} (dimension {row['dim']}), but the "
                f"spec configures {self.embedder.model_id}; run `flightdeck run` to rebuild the vectors")
        store = self.store_factory()
        store.load(self.ws.root / "indexes" / version)
        self._store, self._store_version = store, version
        return store

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> SearchResult:
        s = self.settings
        k = k or s.k
        mode = mode or s.mode
        if mode not in ("hybrid", "vector", "keyword"):
            raise ValueError(f"unknown search mode {mode!r}; use hybrid, vector or keyword")
        version = self.index_version()
        timings: dict[str, float] = {}
        rankings: dict[str, list[str]] = {}
        ranks: dict[str, dict[str, int]] = {}
        depth = max(s.candidates, k)
        if mode in ("vector", "hybrid"):
            store = self._vector_store(version)
            t = time.perf_counter()
            qv = self.embedder.embed_query(query)
            timings["embed_query"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            vec_hits = store.search(qv, depth)
            timings["vector"] = (time.perf_counter() - t) * 1000
            rankings["vector"] = [cid for cid, _ in vec_hits]
        if mode in ("keyword", "hybrid"):
            t = time.perf_counter()
            kw_hits = self.keyword.search(query, depth)
            timings["keyword"] = (time.perf_counter() - t) * 1000
            rankings["keyword"] = [cid for cid, _ in kw_hits]
        for name, ids in rankings.items():
            for rank, cid in enumerate(ids, 1):
                ranks.setdefault(cid, {})[name] = rank
        t = time.perf_counter()
        if mode == "hybrid":
            fused = reciprocal_rank_fusion(rankings, {"keyword": s.keyword_weight, "vector": s.vector_weight},
                                           s.rrf_k)[:k]
        elif mode == "vector":
            fused = vec_hits[:k]
        else:
            fused = kw_hits[:k]
        hits = self._hydrate(fused, ranks)
        timings["fuse_fetch"] = (time.perf_counter() - t) * 1000
        return SearchResult(query, mode, hits, version, {n: round(v, 3) for n, v in timings.items()})

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
        hits = []
        for cid, score in scored:
            r = rows.get(cid)
            if r is None:  # the keyword index moved ahead of the vector index mid-run: skip, never crash
                continue
            hits.append(SearchHit(cid, r["document_id"], r["source_uri"], r["title"], r["heading"],
                                  round(float(score), 6), r["text"], dict(r["metadata"] or {}), ranks.get(cid, {})))
        return hits
