"""Retrieval metrics of one evaluation run with pytrec_eval (the trec_eval implementation): nDCG@k, recall@k,
precision@k, MRR@k and hit rate@k, per question and as means over the questions that have references."""

from __future__ import annotations

from typing import Any

from flightdeck.registry.lookup import optional_import

__all__ = ["retrieval_scores", "HIT_KS"]

HIT_KS = (1, 3, 5)


def retrieval_scores(qrels: dict[str, dict[str, int]], ranking: dict[str, list[str]],
                     k: int) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """``qrels``: question → {relevant id: grade}; ``ranking``: question → retrieved ids in rank order.

    Returns the means and each question's scores. A question with no retrieved id scores 0 on everything.
    """
    pytrec_eval = optional_import("pytrec_eval", "eval", "retrieval metrics")
    ks = sorted({*HIT_KS, k})
    cut = ",".join(map(str, ks))
    # pytrec_eval orders by score: a strictly decreasing score keeps the rank order
    run = {q: {doc: float(len(ids) - i) for i, doc in enumerate(dict.fromkeys(ids))} for q, ids in ranking.items()}
    top_k = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:k]) for q, docs in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}", f"recall.{cut}", f"P.{k}", f"success.{cut}"}
                                          ).evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_k)
    per: dict[str, dict[str, float]] = {}
    for q in qrels:
        got: dict[str, Any] = full.get(q, {})
        scores = {f"ndcg@{k}": got.get(f"ndcg_cut_{k}", 0.0), f"precision@{k}": got.get(f"P_{k}", 0.0),
                  f"mrr@{k}": rr.get(q, {}).get("recip_rank", 0.0)}
        for n in ks:
            scores[f"recall@{n}"] = got.get(f"recall_{n}", 0.0)
            scores[f"hit_rate@{n}"] = got.get(f"success_{n}", 0.0)
        per[q] = {name: round(float(v), 5) for name, v in scores.items()}
    names = list(next(iter(per.values()), {}))
    means = {name: round(sum(s[name] for s in per.values()) / len(per), 5) for name in names} if per else {}
    return means, per
