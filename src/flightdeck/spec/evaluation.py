"""``evaluation.sets``, ``evaluation.gates`` and the depth of ``flightdeck eval`` (checklist phase 4).

A set is a JSONL file of questions (``{question, reference_answer?, reference_sources?|reference_chunks?,
answerable?, tags?}``), given by path (relative to the spec) or as ``{name, path}``. A gate is a metric name and
a comparison, ``"ndcg@10": ">= 0.68"``; ``flightdeck eval --gate`` exits 1 when one is missed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

__all__ = ["EVALUATION_FIELDS", "EvalSetRef", "Gate", "parse_gate", "parsed_gates", "GATE_OPERATORS"]

GATE_OPERATORS = (">=", "<=", "==", ">", "<")
_GATE = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_METRIC = re.compile(r"^[a-z][a-z0-9_]*(?:@\d+)?$")
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Gate(BaseModel):
    """One gate: ``metric operator threshold``, e.g. ``ndcg@10 >= 0.68``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str
    operator: str
    threshold: float

    def passes(self, value: float) -> bool:
        return {">=": value >= self.threshold, "<=": value <= self.threshold, "==": value == self.threshold,
                ">": value > self.threshold, "<": value < self.threshold}[self.operator]

    def __str__(self) -> str:
        return f"{self.metric} {self.operator} {self.threshold:g}"


def parse_gate(metric: str, expression: str | float) -> Gate:
    """``("ndcg@10", ">= 0.68")`` → :class:`Gate`; a bare number means ``>=``. ValueError says what is wrong."""
    if not _METRIC.match(metric):
        raise ValueError(f"gate metric {metric!r} is not a metric name; write it like ndcg@10, recall@5, "
                         "token_f1 or refusal_rate")
    if isinstance(expression, bool):
        raise ValueError(f"gate {metric!r}: {expression!r} is not a comparison; write e.g. \">= 0.68\"")
    if isinstance(expression, int | float):
        return Gate(metric=metric, operator=">=", threshold=float(expression))
    match = _GATE.match(str(expression))
    if not match:
        raise ValueError(f"gate {metric!r}: {expression!r} is not a comparison; write an operator "
                         f"({', '.join(GATE_OPERATORS)}) and a number, e.g. \">= 0.68\" or \"<= 0.05\"")
    return Gate(metric=metric, operator=match.group(1), threshold=float(match.group(2)))


def _as_set_ref(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class EvalSetRef(BaseModel):
    """An evaluation set: a JSONL file of questions, with a name (default: the file's stem)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str = Field(..., min_length=1, description="a JSONL file, relative to the spec")
    name: str | None = Field(None, description="the set's name in reports and the runs table (default: the file "
                             "name without .jsonl)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _SET_NAME.match(v):
            raise ValueError(f"set name {v!r}: use letters, digits, '_', '.' and '-' (at most 64)")
        return v

    @property
    def label(self) -> str:
        from pathlib import PurePath

        return self.name or PurePath(self.path).stem


SetValue = Annotated[EvalSetRef, BeforeValidator(_as_set_ref)]


def _checked_gates(v: dict[str, Any]) -> dict[str, Any]:
    for metric, expression in v.items():
        parse_gate(metric, expression)
    return v


def _unique_names(sets: list[EvalSetRef]) -> list[EvalSetRef]:
    labels = [s.label for s in sets]
    dupes = sorted({n for n in labels if labels.count(n) > 1})
    if dupes:
        raise ValueError(f"two evaluation sets are named {dupes[0]!r}; give each a distinct name")
    return sets


Sets = Annotated[list[SetValue], AfterValidator(_unique_names)]
Gates = Annotated[dict[str, str | float], AfterValidator(_checked_gates)]

#: The fields that the ``evaluation`` phase holds beside its checklist sections: name → (type, pydantic Field).
EVALUATION_FIELDS: dict[str, tuple[Any, Any]] = {
    "sets": (Sets, Field(default_factory=list, description="evaluation sets (JSONL files of questions, relative to "
                         "the spec, or {name, path}); `flightdeck eval` runs the first unless --set names another")),
    "gates": (Gates, Field(default_factory=dict, description="metric → comparison, e.g. {\"ndcg@10\": \">= 0.68\", "
                           "refusal_rate: \">= 0.8\"}; `flightdeck eval --gate` exits 1 when one is missed")),
    "k": (int, Field(10, ge=1, le=100, description="the depth of the retrieval metrics (recall@k, nDCG@k …); "
                     "recall and hit rate are also reported at 1, 3 and 5")),
    "support_threshold": (float, Field(0.5, ge=-1, le=1, description="an answer sentence whose best cosine "
                                       "similarity with the sentences of the chunks it cites is below this is "
                                       "flagged as unsupported (hallucination testing)")),
}


def parsed_gates(gates: dict[str, Any]) -> list[Gate]:
    """The gates of ``evaluation.gates`` as :class:`Gate` objects, in the spec's order."""
    return [parse_gate(m, e) for m, e in gates.items()]
