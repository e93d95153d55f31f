"""``model.tuning`` (checklist 3.5): what ``flightdeck tune`` optimises, over which settings, for how many trials.

```yaml
model:
  hyperparameter_optimization: [optuna]        # the tuner (optuna, hyperopt, ray_tune, grid_random)
  tuning:
    objective: ndcg@10                         # ndcg@10, recall@100 or mrr@10, maximised
    trials: 30
    seed: 0
    holdout: 0.2                               # share of the judged queries kept out of the trials
    space:
      chunk_size: [128, 256]                   # a list: one of these values
      chunk_overlap: [0, 32]
      candidates: [50, 100, 200]
      fusion: [rrf, weighted]
      keyword_weight: {low: 0.2, high: 2.0}    # a range: any value between (log: true samples log-uniformly)
```

A space key names a setting the retrieval objective can vary: the chunking's ``size`` and ``overlap`` (each value
builds its own index, sharing the embeddings cache) and the query-time settings of ``retrieval.search`` (one index,
searched with other settings). Values are checked here as the spec would check them there.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["TuningSettings", "Range", "TUNABLE", "CHUNKING_PARAMS", "NOT_TUNABLE", "OBJECTIVES",
           "tunable_message"]

# name -> (type, where the value goes in the spec); the type is the value's type in a trial's params
TUNABLE: dict[str, tuple[type, str]] = {
    "chunk_size": (int, "data.chunking.size"),
    "chunk_overlap": (int, "data.chunking.overlap"),
    "k": (int, "retrieval.search.k"),
    "candidates": (int, "retrieval.search.candidates"),
    "mode": (str, "retrieval.search.mode"),
    "fusion": (str, "retrieval.search.fusion"),
    "rrf_k": (int, "retrieval.search.rrf_k"),
    "keyword_weight": (float, "retrieval.search.keyword_weight"),
    "vector_weight": (float, "retrieval.search.vector_weight"),
}
# space name -> the chunker setting it sets
CHUNKING_PARAMS: dict[str, str] = {"chunk_size": "size", "chunk_overlap": "overlap"}
_CHUNK_MIN = {"chunk_size": 16, "chunk_overlap": 0}  # ChunkerConfig's bounds (data/chunkers/base.py)
# Names a user may expect to tune, and why this build does not: refused with the reason, never ignored.
NOT_TUNABLE: dict[str, str] = {
    "chunker": "each chunker has its own settings; tune one chunker's chunk_size and chunk_overlap, and compare "
               "chunkers with one `flightdeck tune` per data.chunking",
    "query_transformation": "a transformation calls the LLM generator for every query of every trial; compare "
                            "them with `flightdeck eval retrieval` per setting",
    "prompt_template": "the objective scores retrieval (nDCG, recall, MRR on judged documents), which the prompt "
                       "does not change; answer quality is `flightdeck eval`'s",
    "temperature": "the objective scores retrieval (nDCG, recall, MRR on judged documents), which generation does "
                   "not change; answer quality is `flightdeck eval`'s",
    "keyword_index": "each keyword index is built by `flightdeck run`; compare them with `flightdeck eval "
                     "retrieval` after setting retrieval.search.keyword_index",
}
OBJECTIVES = ("ndcg@10", "recall@100", "mrr@10")


def tunable_message() -> str:
    return "Tunable: " + ", ".join(sorted(TUNABLE)) + "."


class Range(BaseModel):
    """A numeric range: ``{low, high}``, sampled uniformly, or log-uniformly with ``log: true``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"a range needs low < high; got low {self.low:g}, high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0; got low {self.low:g}")
        return self


def _check_value(name: str, value: Any) -> Any:
    """``value`` of space key ``name``, of the setting's type; ValueError says what is wrong. The bounds of the
    ``retrieval.search`` settings are checked by ``flightdeck tune`` before its first trial, against the spec's
    own settings (this module sits below the spec's models)."""
    kind, where = TUNABLE[name]
    accepted = {int: int, float: int | float, str: str}[kind]
    if isinstance(value, bool) or not isinstance(value, accepted):
        expected = {int: "an integer", float: "a number", str: "a name"}[kind]
        raise ValueError(f"{name}: {value!r} is not {expected} ({where})")
    value = kind(value)
    if name in _CHUNK_MIN and value < _CHUNK_MIN[name]:
        raise ValueError(f"{name}: {value} is below {_CHUNK_MIN[name]} ({where})")
    if name == "fusion":  # a provider name: the registry's message lists the valid ones
        from flightdeck.errors import UnknownProviderError
        from flightdeck.registry.categories import Category
        from flightdeck.registry.lookup import registry

        try:
            registry().get(Category.FUSION, value)
        except UnknownProviderError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return value


class TuningSettings(BaseModel):
    """``model.tuning``: the objective, the number of trials, the seed, the holdout share and the search space."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    objective: str = Field("ndcg@10", description="the metric maximised: " + ", ".join(OBJECTIVES))
    trials: int = Field(30, ge=1, le=10000, description="how many configurations the tuner tries")
    seed: int = Field(0, ge=0, description="the tuner's and the bootstrap's seed: the same seed, the same study")
    holdout: float = Field(0.2, gt=0.0, lt=1.0, description="share of the judged queries (chosen by hashed query "
                           "id) scored only once, on the best configuration beside the baseline")
    space: dict[str, Range | list[bool | int | float | str]] = Field(
        default_factory=dict, description="setting -> a list of values, or {low, high[, log]}; " + tunable_message())

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise ValueError(f"unknown objective {v!r}; choose one of {', '.join(OBJECTIVES)}")
        return v

    @field_validator("space", mode="before")
    @classmethod
    def _known_names(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for name, value in v.items():
            if name in NOT_TUNABLE:
                raise ValueError(f"'{name}' cannot be tuned in this build: {NOT_TUNABLE[name]}. {tunable_message()}")
            if name not in TUNABLE:
                close = difflib.get_close_matches(str(name), list(TUNABLE), n=1, cutoff=0.6)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"unknown tuning parameter '{name}'. {tunable_message()}{hint}")
            if isinstance(value, list) and not value:
                raise ValueError(f"{name}: an empty list; give the values to try, e.g. {name}: [a, b]")
            if not isinstance(value, list | dict | Range):
                raise ValueError(f"{name}: give a list of values ([a, b]) or a range ({{low: 1, high: 2}}), "
                                 f"not {value!r}")
        return v

    @field_validator("space")
    @classmethod
    def _valid_values(cls, v: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in v.items():
            kind = TUNABLE[name][0]
            if isinstance(value, Range):
                if kind is str:
                    raise ValueError(f"{name} takes a list of choices, not a range")
                if kind is int and not (value.low.is_integer() and value.high.is_integer()):
                    raise ValueError(f"{name}: an integer range needs integer bounds; got {value.low:g}, "
                                     f"{value.high:g}")
                for bound in (value.low, value.high):
                    _check_value(name, kind(bound))
                out[name] = value
                continue
            checked = [_check_value(name, x) for x in value]
            if len(set(checked)) != len(checked):
                raise ValueError(f"{name}: a value is listed twice in {value!r}")
            out[name] = checked
        sizes, overlaps = out.get("chunk_size"), out.get("chunk_overlap")
        if sizes is not None and overlaps is not None:
            smallest = sizes.low if isinstance(sizes, Range) else min(sizes)
            largest = overlaps.high if isinstance(overlaps, Range) else max(overlaps)
            if largest * 2 >= smallest:
                raise ValueError(f"chunk_overlap up to {largest:g} needs every chunk_size above {largest * 2:g} "
                                 f"(overlap must stay below half of size); the smallest chunk_size is {smallest:g}")
        return out
