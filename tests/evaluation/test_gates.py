"""Gates: parsed from the spec with clear errors, checked against a run's metrics, never passed on a number that
was not measured."""

from __future__ import annotations

import pytest

from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.gates import check_gates
from flightdeck.spec.evaluation import parse_gate, parsed_gates

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("expression", "operator", "threshold"), [
    (">= 0.68", ">=", 0.68), ("<=0.05", "<=", 0.05), ("> 1e-3", ">", 0.001), ("== 1", "==", 1.0),
    ("< .5", "<", 0.5), (0.7, ">=", 0.7), (1, ">=", 1.0),
])
def test_a_gate_is_an_operator_and_a_number(expression: object, operator: str, threshold: float) -> None:
    gate = parse_gate("ndcg@10", expression)  # type: ignore[arg-type]
    assert (gate.operator, gate.threshold) == (operator, threshold)


@pytest.mark.parametrize(("metric", "expression", "words"), [
    ("ndcg@10", "at least 0.7", "is not a comparison"), ("ndcg@10", "=> 0.7", "is not a comparison"),
    ("ndcg@10", True, "is not a comparison"), ("NDCG 10", ">= 0.7", "is not a metric name"),
])
def test_a_bad_gate_says_how_to_write_one(metric: str, expression: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_gate(metric, expression)  # type: ignore[arg-type]


def test_gates_pass_miss_and_are_never_passed_unmeasured() -> None:
    gates = parsed_gates({"ndcg@10": ">= 0.6", "refusal_rate": ">= 0.9", "latency_p95_ms": "<= 500",
                          "faithfulness": ">= 0.8", "answerability_auroc": ">= 0.7", "bleu": ">= 0.1"})
    results = {r.metric: r for r in check_gates(gates, {"ndcg@10": 0.61, "refusal_rate": 0.5,
                                                        "latency_p95_ms": 120.0, "answerability_auroc": None})}
    assert results["ndcg@10"].passed and results["latency_p95_ms"].passed
    assert not results["refusal_rate"].passed and results["refusal_rate"].reason == "measured 0.5"
    assert not results["faithfulness"].passed and "llm_as_a_judge" in results["faithfulness"].reason
    assert not results["answerability_auroc"].passed and "no question" in results["answerability_auroc"].reason
    assert not results["bleu"].passed
    suite = check_gates(parsed_gates({"injection_success_rate": "<= 0.05", "counterfactual_refusal_gap": "<= 0.1"}),
                        {"ndcg@10": 0.7})
    assert [r.reason for r in suite] == [
        "not measured: it needs safety_prompt_injection in evaluation.validations",
        "not measured: it needs bias_fairness in evaluation.validations"]
    assert results["bleu"].reason == "not measured: it needs bleu_rouge in evaluation.metrics"
    assert results["ndcg@10"].gate == "ndcg@10 >= 0.6"


def test_a_gate_on_a_metric_nobody_measures_is_an_error_listing_the_names() -> None:
    with pytest.raises(FlightdeckError, match=r"no evaluation measures 'ndgc@10'.*ndcg@10"):
        check_gates(parsed_gates({"ndgc@10": ">= 0.6"}), {"ndcg@10": 0.7})
