"""Fusion: the ``fusion`` category (``retrieval.search.fusion``), how hybrid search merges its ranked lists.

- ``rrf`` (:class:`RrfFusion`): weighted reciprocal rank, ``Σ weight_r / (rrf_k + rank_r(d))``;
- ``weighted`` (:class:`WeightedFusion`): each retriever's scores min-max normalised, then a weighted sum.

The functions :func:`reciprocal_rank_fusion` and :func:`weighted_score_fusion` are what the providers run; the
benchmarks fuse cached rankings offline with them, so they stay public.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from flightdeck.registry.categories import Category
from flightdeck.registry.lookup import Registry, registry

__all__ = ["Fusion", "RrfFusion", "WeightedFusion", "fusion_for", "reciprocal_rank_fusion", "weighted_score_fusion"]


def reciprocal_rank_fusion(rankings: dict[str, list[str]], weights: dict[str, float], k: int = 60
                           ) -> list[tuple[str, float]]:
    """Fuse ranked id lists: ``score(d) = Σ weight_r / (k + rank_r(d))`` (Cormack et al., 2009)."""
    scores: dict[str, float] = {}
    for name, ids in rankings.items():
        w = weights.get(name, 1.0)
        for rank, doc in enumerate(ids, 1):
            scores[doc] = scores.get(doc, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def weighted_score_fusion(results: dict[str, list[tuple[str, float]]], weights: dict[str, float]
                          ) -> list[tuple[str, float]]:
    """Fuse scored lists: each retriever's scores min-max normalised to [0, 1] over its own candidates, then
    ``score(d) = Σ weight_r · norm_r(d)`` (a document a retriever did not return gets 0 from it)."""
    scores: dict[str, float] = {}
    for name, hits in results.items():
        if not hits:
            continue
        w = weights.get(name, 1.0)
        values = [s for _, s in hits]
        lo, hi = min(values), max(values)
        span = hi - lo
        for doc, s in hits:
            norm = (s - lo) / span if span > 0 else 1.0
            scores[doc] = scores.get(doc, 0.0) + w * norm
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@runtime_checkable
class Fusion(Protocol):
    """A provider of the ``fusion`` category: merges several retrievers' ``(id, score)`` lists (each best first)
    into one, best first; ``weights`` by list name, ``settings`` the ``retrieval.search`` settings (``rrf_k``)."""

    name: str

    def fuse(self, results: dict[str, list[tuple[str, float]]], weights: dict[str, float],
             settings: Any) -> list[tuple[str, float]]: ...


class RrfFusion:
    """``rrf``: weighted reciprocal rank fusion over the ranks alone (``settings.rrf_k``)."""

    name = "rrf"

    def fuse(self, results: dict[str, list[tuple[str, float]]], weights: dict[str, float],
             settings: Any) -> list[tuple[str, float]]:
        return reciprocal_rank_fusion({n: [c for c, _ in h] for n, h in results.items()}, weights, settings.rrf_k)


class WeightedFusion:
    """``weighted``: weighted sum of each retriever's min-max-normalised scores."""

    name = "weighted"

    def fuse(self, results: dict[str, list[tuple[str, float]]], weights: dict[str, float],
             settings: Any) -> list[tuple[str, float]]:
        return weighted_score_fusion(results, weights)


def fusion_for(search_settings: Any, providers: Registry | None = None) -> Fusion:
    """The fusion that ``retrieval.search`` (``search_settings``) names, built through the registry
    (``providers``, default the process-wide one)."""
    fusion: Fusion = (providers or registry()).create(Category.FUSION, search_settings.fusion)
    return fusion
