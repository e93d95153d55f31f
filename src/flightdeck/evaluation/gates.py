"""Gates: ``evaluation.gates`` checked against a run's metrics. A gate on a metric that no evaluation knows is
a spec error (said before any work is done); a gate on a metric this run did not measure is missed, with the
reason, so that a build is never promoted on a number nobody measured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.metrics import FAIRNESS_METRICS, FAMILIES, LATER_METRICS, SAFETY_METRICS, known_metric
from flightdeck.spec.evaluation import Gate

__all__ = ["GateResult", "check_gates", "unknown_gate_metrics"]


@dataclass(frozen=True)
class GateResult:
    """One gate, the value measured, and whether it passed (``reason`` says why not, when it did not)."""

    gate: str
    metric: str
    operator: str
    threshold: float
    value: float | None
    passed: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unknown_gate_metrics(gates: list[Gate]) -> list[str]:
    """Gate metrics that no evaluation measures (typos, usually)."""
    return [g.metric for g in gates if not known_metric(g.metric)]


def check_gates(gates: list[Gate], metrics: Mapping[str, float | None]) -> list[GateResult]:
    """Each gate against ``metrics``; a metric that is missing, or None (nothing to measure it on), misses."""
    unknown = unknown_gate_metrics(gates)
    if unknown:
        raise FlightdeckError(f"evaluation.gates: no evaluation measures {', '.join(map(repr, unknown))}; "
                              f"gates can name: {', '.join(sorted(m for m in metrics if metrics[m] is not None))}")
    results = []
    for gate in gates:
        value = metrics.get(gate.metric)
        if value is None:
            family = next((f for f, names in FAMILIES.items() if gate.metric in names), None)
            suite = ("safety_prompt_injection" if gate.metric in SAFETY_METRICS else
                     "bias_fairness" if gate.metric in FAIRNESS_METRICS else None)
            needs = LATER_METRICS.get(gate.metric) or (f"{family} in evaluation.metrics" if family else None) or (
                f"{suite} in evaluation.validations" if suite else None)
            reason = (f"not measured: it needs {needs}" if needs and gate.metric not in metrics else
                      "not measured: no question of the set could measure it" if gate.metric in metrics else
                      "not measured by this run: add its family to evaluation.metrics")
            results.append(GateResult(str(gate), gate.metric, gate.operator, gate.threshold, None, False, reason))
            continue
        passed = gate.passes(float(value))
        results.append(GateResult(str(gate), gate.metric, gate.operator, gate.threshold, float(value), passed,
                                  "" if passed else f"measured {value:g}"))
    return results
