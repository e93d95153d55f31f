"""Classification metrics with scikit-learn, used here for refusals: is a question answerable (the set says)
and did the system answer it (the prediction), with a score for how sure it was (its groundedness, 0 when it
refused). AUROC needs both kinds of question; RMSE/MAE of the score against the 0/1 truth measure calibration."""

from __future__ import annotations

import math

from flightdeck.registry.lookup import optional_import

__all__ = ["answerability_scores"]


def answerability_scores(truth: list[bool], predicted: list[bool], scores: list[float],
                         families: set[str]) -> dict[str, float]:
    """The metrics of the chosen families (accuracy_precision_recall, f1, auroc, rmse_mae); positive = answered."""
    if not truth:
        return {}
    metrics = optional_import("sklearn.metrics", "eval", "classification metrics")
    y, p = [int(t) for t in truth], [int(x) for x in predicted]
    out: dict[str, float] = {}
    if "accuracy_precision_recall" in families:
        out["answerability_accuracy"] = metrics.accuracy_score(y, p)
        out["answerability_precision"] = metrics.precision_score(y, p, zero_division=0)
        out["answerability_recall"] = metrics.recall_score(y, p, zero_division=0)
    if "f1" in families:
        out["answerability_f1"] = metrics.f1_score(y, p, zero_division=0)
    if "auroc" in families and len(set(y)) == 2:
        out["answerability_auroc"] = metrics.roc_auc_score(y, scores)
    if "rmse_mae" in families:
        out["answerability_rmse"] = math.sqrt(metrics.mean_squared_error(y, scores))
        out["answerability_mae"] = metrics.mean_absolute_error(y, scores)
    return {k: round(float(v), 5) for k, v in out.items()}
