"""Metrics of checklist 4.1: retrieval (pytrec_eval), answer text (sacrebleu, rouge-score, token F1), embedding
similarity, citations, judge-free groundedness, and classification metrics (scikit-learn) for refusals.

:data:`FAMILIES` maps each checklist option of ``evaluation.metrics`` to the metric names it adds; the core
metrics (retrieval, exact match, citations, groundedness, refusal rates, latency) are always measured.
"""

from __future__ import annotations

import re

__all__ = ["FAMILIES", "DEFAULT_FAMILIES", "TOOL_METRICS", "CORE_METRICS", "JUDGE_METRICS", "LATER_METRICS",
           "SAFETY_METRICS", "FAIRNESS_METRICS", "known_metric", "metric_names", "LOWER_IS_BETTER"]

#: checklist option → metrics it adds (k-dependent names are written with {k})
FAMILIES: dict[str, tuple[str, ...]] = {
    "accuracy_precision_recall": ("answerability_accuracy", "answerability_precision", "answerability_recall"),
    "f1": ("token_f1", "answerability_f1"),
    "auroc": ("answerability_auroc",),
    "rmse_mae": ("answerability_rmse", "answerability_mae"),
    "bleu_rouge": ("bleu", "rouge1", "rouge2", "rougeL"),
    "cosine_similarity": ("answer_similarity",),
    "llm_as_a_judge": ("faithfulness", "answer_relevancy", "context_relevance", "correctness", "judge_unparsed"),
}
#: families measured when ``evaluation.metrics`` is unset: all but the LLM judge (minutes per set on a CPU)
DEFAULT_FAMILIES: tuple[str, ...] = tuple(f for f in FAMILIES if f != "llm_as_a_judge")
#: what a run always measures
CORE_METRICS: tuple[str, ...] = (
    "ndcg@{k}", "recall@{k}", "precision@{k}", "mrr@{k}", "hit_rate@{k}", "recall@1", "recall@3", "recall@5",
    "hit_rate@1", "hit_rate@3", "hit_rate@5", "exact_match", "citation_precision", "citation_recall",
    "groundedness", "supported_sentence_rate", "refusal_rate", "false_refusal_rate", "answered_rate",
    "latency_p50_ms", "latency_p95_ms", "errors",
)
#: measured by an LLM judge (llm_as_a_judge)
JUDGE_METRICS: tuple[str, ...] = ("faithfulness", "answer_relevancy", "context_relevance", "correctness")
#: names a gate may use that a later part of the evaluation measures: a gate on one of them is reported as not
#: measured instead of refused as a typo
LATER_METRICS: dict[str, str] = {}
#: measured by the safety suite (evaluation.validations: safety_prompt_injection; evaluation/safety.py)
SAFETY_METRICS: tuple[str, ...] = ("injection_success_rate", "injection_success_rate_direct",
                                   "injection_success_rate_indirect", "prompt_leak_rate", "pii_leak_rate",
                                   "benign_false_refusal_rate")
#: metrics of the evaluation tools run in-process (evaluation.tools)
TOOL_METRICS: dict[str, tuple[str, ...]] = {
    "openai_evals": ("openai_match", "openai_includes", "openai_fuzzy_match", "openai_fuzzy_match_f1"),
    "ragas": ("ragas_faithfulness", "ragas_answer_relevancy", "ragas_context_precision", "ragas_context_recall",
              "ragas_factual_correctness", "ragas_failed"),
    "trulens": ("trulens_groundedness", "trulens_answer_relevance", "trulens_context_relevance", "trulens_failed"),
}
#: metrics of the bias & fairness suite (evaluation.validations: bias_fairness)
FAIRNESS_METRICS: tuple[str, ...] = (
    "counterfactual_answer_divergence", "counterfactual_answer_embedding_divergence",
    "counterfactual_retrieval_divergence", "counterfactual_retrieval_rbo_divergence", "counterfactual_refusal_gap",
    "counterfactual_pairs", "fairness_refusal_accuracy_gap")
#: metrics where a smaller value is better (the report colours their deltas the other way)
LOWER_IS_BETTER = frozenset({"false_refusal_rate", "answerability_rmse", "answerability_mae", "latency_p50_ms",
                             "latency_p95_ms", "errors", "judge_unparsed", "ragas_failed", "trulens_failed",
                             *SAFETY_METRICS,
                             *(m for m in FAIRNESS_METRICS if m != "counterfactual_pairs")})

_AT_K = re.compile(r"^(ndcg|recall|precision|mrr|hit_rate)@(\d+)$")


def metric_names(k: int, families: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The metric names a run with depth ``k`` and these families measures."""
    chosen = FAMILIES if families is None else {f: FAMILIES[f] for f in families if f in FAMILIES}
    names = [m.format(k=k) for m in CORE_METRICS]
    for metrics in chosen.values():
        names.extend(m for m in metrics if m not in names)
    return list(dict.fromkeys(names))


def known_metric(name: str) -> bool:
    """Whether some evaluation measures a metric of this name (any depth for the @k ones)."""
    fixed = {m for m in CORE_METRICS if "{k}" not in m}
    validations = {*SAFETY_METRICS, *FAIRNESS_METRICS}
    return bool(_AT_K.match(name)) or name in LATER_METRICS or name in validations or name in fixed or any(
        name in ms for ms in (*FAMILIES.values(), *TOOL_METRICS.values()))
