"""Explainability (checklist 4.3): why a chunk was retrieved, and which chunk supports each sentence of an answer.

**Each retriever's part of a fused score.** Hybrid search (:mod:`flightdeck.retrieval.search`) fuses the vector
store's ranked list and the keyword index's (BM25, FTS5 or PostgreSQL) with the fusion of
``retrieval.search.fusion`` (:mod:`flightdeck.retrieval.fusion`). Both fusions are sums over the retrievers, so a
hit's fused score splits exactly into one contribution per retriever:

- ``rrf``: ``score(d) = Σ_r w_r / (rrf_k + rank_r(d))``; retriever ``r`` contributes ``w_r / (rrf_k + rank_r(d))``;
- ``weighted``: ``score(d) = Σ_r w_r · (s_r(d) − min_r) / (max_r − min_r)``, the min and max over ``r``'s own
  candidates for this query (every candidate gets 1 when they are all equal); ``r`` contributes its term.

A retriever that did not return ``d`` contributes 0. The *share* of a retriever is its contribution over the fused
score (the shares sum to 1; None when the fused score is 0). The contributions are recomputed from the two
retrievers' own lists (each searched alone, as deep as the hybrid search reads them: ``max(candidates, k)``), and
their sum is checked against the score the searcher returned (``residual``: the searcher rounds scores to six
decimals, so it is that small).

**SHAP values.** Each candidate of the query is described by four features — ``vector_score``,
``keyword_score``, ``vector_rank``, ``keyword_rank`` (a retriever that did not return it: rank 0 and its list's
lowest score, which the weighted fusion normalises to 0) — and the fused score is a function of them. The SHAP
values of a hit explain its fused score against the mean fused score of every candidate of the query (the
background: ``base_value``); by SHAP's efficiency property they sum to ``score − base_value``. They are computed
with ``shap.KernelExplainer`` over the candidates as background: with four features it enumerates all 2⁴ − 2
coalitions, so its values are the exact (interventional) Shapley values, not a sample. The weighted fusion is
linear in the scores (for a fixed query), so its SHAP values equal the linear explainer's
``w_r / (max_r − min_r) · (s_r − mean s_r)`` and its ranks get 0; RRF reads only the ranks and is not linear in
them, so its scores get 0. ``shap.explainers.Exact`` gives the same values but compiles numba code on first use
(seconds); KernelExplainer needs none.

**Which chunk supports which sentence.** :func:`explain_answer` asks the question through the system and scores
each answer sentence against the chunks the answer cites (the chunks it read when it cites none) with
:func:`flightdeck.evaluation.metrics.grounding.sentence_support`, as ``flightdeck eval`` does.

The explanation is of a hybrid search of the question itself: a query transformation (``rewrite``, HyDE…) is
left out, and a spec whose search mode is ``vector`` or ``keyword`` is explained as if it were hybrid (the notes
say so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.metrics.grounding import VectorCache, sentence_support
from flightdeck.registry.lookup import optional_import

__all__ = ["FEATURES", "FORMULAS", "HitExplanation", "SearchExplanation", "AnswerExplanation", "explain_hits",
           "explain_answer", "fusion_contributions"]

#: the features SHAP attributes a fused score to, in this order
FEATURES: tuple[str, ...] = ("vector_score", "keyword_score", "vector_rank", "keyword_rank")
RETRIEVERS: tuple[str, ...] = ("vector", "keyword")
#: the fused score of each fusion, as the searcher computes it
FORMULAS: dict[str, str] = {
    "rrf": "score = w_vector / (rrf_k + rank_vector) + w_keyword / (rrf_k + rank_keyword)",
    "weighted": "score = w_vector * (s_vector - min_vector) / (max_vector - min_vector) + w_keyword * (s_keyword - "
                "min_keyword) / (max_keyword - min_keyword)",
}


@dataclass
class HitExplanation:
    """One hit of the hybrid search: its fused score, each retriever's contribution and share, its features and
    their SHAP values."""

    rank: int
    chunk_id: str
    document_id: str
    title: str
    heading: str
    score: float  # the fused score the searcher returned
    features: dict[str, float | int | None]  # raw scores and 1-based ranks; None where a retriever missed it
    contributions: dict[str, float]  # per retriever: its term of the fusion formula
    shares: dict[str, float | None]  # contribution / score (sum to 1); None when the score is 0
    shap_values: dict[str, float] = field(default_factory=dict)
    residual: float = 0.0  # score − Σ contributions
    cited: bool | None = None  # whether the answer cites it (explain_answer), None for a bare search

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchExplanation:
    """A hybrid search explained: the fusion and its formula, and every hit."""

    query: str
    fusion: str
    formula: str
    weights: dict[str, float]
    rrf_k: int | None
    keyword_index: str
    depth: int  # how deep each retriever was read
    candidates: int  # documents in the union of both lists (SHAP's background)
    normalisation: dict[str, dict[str, float]]  # weighted: each retriever's min and max over its candidates
    base_value: float | None  # mean fused score of the candidates: where the SHAP values start from
    explainer: str
    hits: list[HitExplanation]

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "hits"}, "features": list(FEATURES),
                "hits": [h.to_dict() for h in self.hits]}


@dataclass
class AnswerExplanation:
    """An answer explained: each sentence with the chunk that supports it best, and the retrieval behind it."""

    question: str
    answer: str
    found: bool
    citations: list[dict[str, Any]]
    sentences: list[dict[str, Any]]  # sentence, support, supported, chunk_id, evidence
    retrieval: SearchExplanation
    support_threshold: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "found": self.found, "citations": self.citations,
                "support_threshold": self.support_threshold, "sentences": self.sentences,
                "retrieval": self.retrieval.to_dict(), "notes": self.notes}


class _Fusion:
    """The fusion formula as a function of the feature matrix (columns :data:`FEATURES`)."""

    def __init__(self, name: str, weights: dict[str, float], rrf_k: int,
                 lists: dict[str, list[tuple[str, float]]]) -> None:
        self.name, self.weights, self.rrf_k = name, weights, rrf_k
        self.low: dict[str, float] = {}
        self.span: dict[str, float] = {}
        for r in RETRIEVERS:
            values = [s for _, s in lists.get(r, [])]
            self.low[r] = min(values) if values else 0.0
            self.span[r] = (max(values) - min(values)) if values else 0.0

    def terms(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each retriever's contribution for each row of ``x``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        out = {}
        for i, r in enumerate(RETRIEVERS):
            score, rank = x[:, i], x[:, 2 + i]
            present = rank > 0
            if self.name == "rrf":
                term = np.where(present, 1.0 / (self.rrf_k + np.where(present, rank, 1.0)), 0.0)
            elif self.span[r] > 0:
                term = np.where(present, (score - self.low[r]) / self.span[r], 0.0)
            else:
                term = np.where(present, 1.0, 0.0)
            out[r] = self.weights[r] * term
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        terms = self.terms(x)
        return terms["vector"] + terms["keyword"]


def fusion_contributions(fusion: str, weights: dict[str, float], lists: dict[str, list[tuple[str, float]]],
                         rrf_k: int = 60) -> dict[str, dict[str, float]]:
    """Each document's contribution from each retriever (``{"vector": …, "keyword": …}``) under ``fusion``
    (``rrf`` or ``weighted``), from the retrievers' ``(id, score)`` lists, best first — the terms whose sum
    :func:`flightdeck.retrieval.fusion.reciprocal_rank_fusion` / ``weighted_score_fusion`` return."""
    ids, x = _features(lists)
    terms = _Fusion(fusion, weights, rrf_k, lists).terms(x)
    return {cid: {r: float(terms[r][i]) for r in RETRIEVERS} for i, cid in enumerate(ids)}


def _features(lists: dict[str, list[tuple[str, float]]]) -> tuple[list[str], np.ndarray]:
    """Every candidate (union of the lists, in order of first appearance) and its feature row."""
    ids = list(dict.fromkeys(cid for r in RETRIEVERS for cid, _ in lists.get(r, [])))
    x = np.zeros((len(ids), len(FEATURES)), dtype=np.float64)
    where = {cid: i for i, cid in enumerate(ids)}
    for j, r in enumerate(RETRIEVERS):
        hits = lists.get(r, [])
        low = min((s for _, s in hits), default=0.0)
        x[:, j] = low  # a retriever that missed a document: its lowest score (normalised: 0) and rank 0
        for rank, (cid, s) in enumerate(hits, 1):
            x[where[cid], j] = s
            x[where[cid], 2 + j] = rank
    return ids, x


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    # KernelExplainer warns about a background of more than 100 rows; here it is the query's candidates by design
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _shap_values(model: _Fusion, background: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, float]:
    shap = optional_import("shap", "explain", "SHAP values of the fused scores")
    with _quiet("shap"):
        explainer = shap.KernelExplainer(model, background)
        values = np.asarray(explainer.shap_values(rows, nsamples=2 ** len(FEATURES), l1_reg=False, silent=True),
                            dtype=np.float64)
    base = float(np.ravel(explainer.expected_value)[0])
    return values.reshape(len(rows), len(FEATURES)), base


def _round(value: float) -> float:
    return round(float(value), 8)


def explain_hits(searcher: Any, query: str, k: int | None = None, *, where: Any = None,
                 with_shap: bool = True) -> SearchExplanation:
    """Explain the top ``k`` hits (default ``retrieval.search.k``) of a hybrid search of ``query`` on ``searcher``
    (a :class:`~flightdeck.retrieval.search.HybridSearcher`): each retriever's contribution and share of each
    fused score, and (``with_shap``) the SHAP values of the four features. ``where`` is a metadata filter."""
    settings = searcher.settings
    fusion = str(getattr(searcher.fusion, "name", ""))
    if fusion not in FORMULAS:
        raise FlightdeckError(f"explain knows the rrf and weighted fusions; retrieval.search.fusion is {fusion!r}, "
                              "whose formula it cannot split: set fusion: weighted (or rrf) to explain a search")
    k = k or settings.k
    depth = max(settings.candidates, k)
    hybrid = searcher.search(query, k=k, mode="hybrid", where=where, transform=False)
    lists: dict[str, list[tuple[str, float]]] = {}
    for r in RETRIEVERS:
        alone = searcher.search(query, k=depth, mode=r, where=where, transform=False)
        lists[r] = [(h.chunk_id, float(h.score)) for h in alone.hits]
    weights = {"vector": float(settings.vector_weight), "keyword": float(settings.keyword_weight)}
    model = _Fusion(fusion, weights, settings.rrf_k, lists)
    ids, x = _features(lists)
    row_of = {cid: i for i, cid in enumerate(ids)}
    rows = np.array([x[row_of[h.chunk_id]] if h.chunk_id in row_of else np.zeros(len(FEATURES))
                     for h in hybrid.hits]).reshape(len(hybrid.hits), len(FEATURES))
    values, base = (_shap_values(model, x, rows) if with_shap and len(ids) and len(rows)
                    else (np.zeros_like(rows), None))
    terms = model.terms(rows) if len(rows) else {r: np.zeros(0) for r in RETRIEVERS}
    explained = []
    for i, hit in enumerate(hybrid.hits):
        contributions = {r: _round(terms[r][i]) for r in RETRIEVERS}
        total = sum(float(terms[r][i]) for r in RETRIEVERS)
        features: dict[str, float | int | None] = {}
        for j, r in enumerate(RETRIEVERS):
            present = rows[i, 2 + j] > 0
            features[f"{r}_score"] = _round(rows[i, j]) if present else None
            features[f"{r}_rank"] = int(rows[i, 2 + j]) if present else None
        explained.append(HitExplanation(
            i + 1, hit.chunk_id, hit.document_id, hit.title, hit.heading, float(hit.score),
            {name: features[name] for name in FEATURES}, contributions,
            {r: (_round(float(terms[r][i]) / total) if total > 0 else None) for r in RETRIEVERS},
            {name: _round(values[i, j]) for j, name in enumerate(FEATURES)} if base is not None else {},
            _round(float(hit.score) - total)))
    normalisation = ({r: {"min": _round(model.low[r]), "max": _round(model.low[r] + model.span[r])}
                      for r in RETRIEVERS if lists[r]} if fusion == "weighted" else {})
    return SearchExplanation(query, fusion, FORMULAS[fusion], weights, settings.rrf_k if fusion == "rrf" else None,
                             hybrid.keyword_index, depth, len(ids), normalisation,
                             None if base is None else _round(base),
                             "shap.KernelExplainer (all 14 coalitions of 4 features: exact Shapley values)"
                             if base is not None else "", explained)


def explain_answer(system: Any, searcher: Any, question: str, *, embed: Callable[[list[str]], Any],
                   threshold: float = 0.5, with_shap: bool = True) -> AnswerExplanation:
    """Ask ``question`` through ``system`` (``ask_stream``, as a user asks), then say which chunk supports each
    sentence of the answer (support ≥ ``threshold`` is *supported*; ``embed`` is the project's embedder) and
    explain the hits the answer was written from (:func:`explain_hits`, as deep as that search)."""
    context, answer = None, None
    for item in system.ask_stream(question):
        if context is None and hasattr(item, "hits"):
            context = item
        elif hasattr(item, "found") and hasattr(item, "citations"):
            answer = item
    if answer is None:
        raise FlightdeckError(f"the system gave no answer to {question!r}")
    read = list(context.hits) if context is not None else []
    sentences: list[dict[str, Any]] = []
    if answer.found:
        by_id = {h.chunk_id: h for h in read}
        cited = [(c.chunk_id, by_id[c.chunk_id].text) for c in answer.citations if c.chunk_id in by_id]
        evidence = cited or [(h.chunk_id, h.text) for h in read]
        sentences = [s.to_dict() for s in sentence_support(answer.answer, evidence, VectorCache(embed), threshold)]
    retrieval = explain_hits(searcher, question, k=len(read) or None, with_shap=with_shap)
    cited_ids = {c.chunk_id for c in answer.citations}
    for hit in retrieval.hits:
        hit.cited = hit.chunk_id in cited_ids
    notes = []
    mode = getattr(searcher.settings, "mode", "hybrid")
    if mode != "hybrid":
        notes.append(f"retrieval.search.mode is {mode}: the retrieval explained is a hybrid search of the question")
    if getattr(searcher, "transform", None) is not None:
        notes.append("the query transformation is left out: the retrieval explained is of the question as written")
    if read and [h.chunk_id for h in read] != [h.chunk_id for h in retrieval.hits]:
        notes.append("the hits explained differ from those the answer was written from (see the notes above)")
    citations = [{"number": c.number, "chunk_id": c.chunk_id, "document_id": c.document_id, "title": c.title,
                  "heading": c.heading} for c in answer.citations]
    return AnswerExplanation(question, answer.answer, bool(answer.found), citations, sentences, retrieval,
                             threshold, notes)
