"""``model.tuning`` (checklist 3.5): what ``flightdeck tune`` optimises, over which settings, for how many trials.

```yaml
model:
  hyperparameter_optimization: [optuna]        # the tuner (optuna, hyperopt, ray_tune, grid_random)
  tuning:
    objective: ndcg@10                         # BEIR: ndcg@10, recall@100, mrr@10; a set: any per-question metric
    trials: 30
    seed: 0
    holdout: 0.2                               # share of the queries / questions kept out of the trials
    space:
      candidates: [50, 100, 200]               # a list: one of these values
      fusion: [rrf, weighted]
      keyword_weight: {low: 0.2, high: 2.0}    # a range: any value between (log: true samples log-uniformly)
      temperature: [0.0, 0.7]                  # --set only: the answer settings
      prompt_template: [null, prompts/short.j2]
      query_transformation: [none, hyde]
      chunker: [recursive, sentence]           # --beir only: the chunkings
```

A space key names a setting an objective can vary. ``flightdeck tune --beir`` scores retrieval on a BEIR split: the
chunking's ``chunker``, ``size`` and ``overlap`` (each chunking builds its own index, sharing the embeddings cache;
a chunker other than the spec's starts from its own defaults with the spec's ``size``) and the
query-time settings of ``retrieval.search`` (one index, searched with other settings). ``flightdeck tune --set``
scores the project on its own evaluation set: the query-time search settings, the generator's ``temperature`` and
``prompt_template`` and ``retrieval.query_transformation``, on the project's built index. What one mode cannot vary
is refused by ``flightdeck tune`` in that mode with the reason (:data:`NOT_TUNABLE_IN`). Values are checked here
as far as the spec's own rules can be applied without the rest of the spec; the rest before the first trial.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["TuningSettings", "Range", "TUNABLE", "CHUNKING_PARAMS", "ANSWER_PARAMS", "NOT_TUNABLE",
           "NOT_TUNABLE_IN", "OBJECTIVES", "SET_OBJECTIVES", "SET_OBJECTIVE_AT_K", "tunable_message",
           "refused_in_mode", "NO_TRANSFORMATION"]

# name -> (type, where the value goes in the spec); the type is the value's type in a trial's params
TUNABLE: dict[str, tuple[type, str]] = {
    "chunk_size": (int, "data.chunking.size"),
    "chunk_overlap": (int, "data.chunking.overlap"),
    "chunker": (str, "data.chunking.provider"),
    "k": (int, "retrieval.search.k"),
    "candidates": (int, "retrieval.search.candidates"),
    "mode": (str, "retrieval.search.mode"),
    "fusion": (str, "retrieval.search.fusion"),
    "rrf_k": (int, "retrieval.search.rrf_k"),
    "keyword_weight": (float, "retrieval.search.keyword_weight"),
    "vector_weight": (float, "retrieval.search.vector_weight"),
    "temperature": (float, "model.generator.temperature"),
    "prompt_template": (str, "model.generator.prompt_template"),
    "query_transformation": (str, "retrieval.query_transformation"),
}
# space name -> the chunker setting it sets
CHUNKING_PARAMS: dict[str, str] = {"chunk_size": "size", "chunk_overlap": "overlap", "chunker": "provider"}
_CHUNK_MIN = {"chunk_size": 16, "chunk_overlap": 0}  # ChunkerConfig's bounds (data/chunkers/base.py)
# space name -> the model.generator setting it sets (an LLM generator's answer settings)
ANSWER_PARAMS: dict[str, str] = {"temperature": "temperature", "prompt_template": "prompt_template"}
#: the query_transformation value that searches the query as written (``null`` in a list means the same)
NO_TRANSFORMATION = "none"
# Names a user may expect to tune, and why this build does not: refused with the reason, never ignored.
NOT_TUNABLE: dict[str, str] = {
    "keyword_index": "each keyword index is built by `flightdeck run`; compare them with `flightdeck eval "
                     "retrieval` after setting retrieval.search.keyword_index",
}
# What each mode of `flightdeck tune` cannot vary, and why: refused by the command in that mode, never ignored.
NOT_TUNABLE_IN: dict[str, dict[str, str]] = {
    "beir": {name: ("the BEIR objective scores retrieval (nDCG, recall, MRR on judged documents), which "
                    + why + " does not change; tune it on the project's evaluation set: flightdeck tune --set NAME")
             for name, why in (("temperature", "the generator's temperature"),
                               ("prompt_template", "the answer prompt"),
                               ("query_transformation", "a transformation calling the LLM generator per query of "
                                                        "every trial"))},
    "set": {name: ("each chunking needs its own index of the project's documents, re-ingested and re-embedded per "
                   "trial (with the sources' versioning hooks run each time); tune the chunking on a BEIR folder "
                   "(flightdeck tune --beir DIR), or compare chunkings with one `flightdeck run` + `flightdeck eval` "
                   "each") for name in ("chunk_size", "chunk_overlap", "chunker")},
}
#: the objectives of a BEIR split (maximised): pytrec_eval's scores of the documents retrieved
OBJECTIVES = ("ndcg@10", "recall@100", "mrr@10")
#: the objectives of an evaluation set besides the @k retrieval ones: metrics with a value per question (an
#: answerable question without one, refused or failed, counts 0); false_refusal_rate is minimised, the rest maximised
SET_OBJECTIVES = ("exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "answer_similarity", "citation_precision",
                  "citation_recall", "groundedness", "supported_sentence_rate", "faithfulness", "answer_relevancy",
                  "context_relevance", "correctness", "openai_match", "openai_includes", "openai_fuzzy_match",
                  "refusal_rate", "false_refusal_rate")
#: an evaluation set's retrieval objectives, at evaluation.k (recall and hit_rate also at 1, 3 and 5)
SET_OBJECTIVE_AT_K = re.compile(r"^(ndcg|recall|precision|mrr|hit_rate)@(\d+)$")
_NOT_OBJECTIVES = {"bleu": "bleu is corpus BLEU, not a mean of per-question values; tune on rougeL or token_f1",
                   "answered_rate": "answering more is not better by itself: refusal_rate and false_refusal_rate "
                                    "say whether the right questions were answered"}


def refused_in_mode(space: Any, mode: str) -> None:
    """Raise ValueError for the first space key that ``mode`` (``beir`` or ``set``) cannot vary, with the reason."""
    for name in space:
        why = NOT_TUNABLE_IN[mode].get(name)
        if why is not None:
            flag = "--beir" if mode == "beir" else "--set"
            raise ValueError(f"model.tuning.space: '{name}' cannot be tuned with {flag}: {why}")


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


# space name -> the registry category its values name
_PROVIDER_CATEGORY = {"fusion": "fusion", "query_transformation": "query_transformation", "chunker": "chunker"}


def _check_value(name: str, value: Any) -> Any:
    """``value`` of space key ``name``, of the setting's type; ValueError says what is wrong. The bounds of the
    ``retrieval.search`` settings are checked by ``flightdeck tune`` before its first trial, against the spec's
    own settings (this module sits below the spec's models)."""
    kind, where = TUNABLE[name]
    if value is None or (name == "query_transformation" and value == NO_TRANSFORMATION):
        if name not in ("prompt_template", "query_transformation"):
            raise ValueError(f"{name}: null is not a value of {where}")
        # null: the shipped template; none (or null): the query searched as written
        return NO_TRANSFORMATION if name == "query_transformation" else None
    accepted = {int: int, float: int | float, str: str}[kind]
    if isinstance(value, bool) or not isinstance(value, accepted):
        expected = {int: "an integer", float: "a number", str: "a name"}[kind]
        raise ValueError(f"{name}: {value!r} is not {expected} ({where})")
    value = kind(value)
    if name in _CHUNK_MIN and value < _CHUNK_MIN[name]:
        raise ValueError(f"{name}: {value} is below {_CHUNK_MIN[name]} ({where})")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{name}: an empty name ({where})")
    if name in _PROVIDER_CATEGORY:  # a provider name: the registry's message lists the valid ones
        from flightdeck.errors import UnknownProviderError
        from flightdeck.registry.categories import Category
        from flightdeck.registry.lookup import registry

        try:
            registry().get(Category(_PROVIDER_CATEGORY[name]), value)
        except UnknownProviderError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return value


class TuningSettings(BaseModel):
    """``model.tuning``: the objective, the number of trials, the seed, the holdout share and the search space."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    objective: str = Field("ndcg@10", description="the metric optimised: on a BEIR split " + ", ".join(OBJECTIVES)
                           + "; on an evaluation set a metric with a value per question (" + ", ".join(SET_OBJECTIVES)
                           + ", or ndcg/recall/precision/mrr/hit_rate@k); false_refusal_rate is minimised")
    trials: int = Field(30, ge=1, le=10000, description="how many configurations the tuner tries")
    seed: int = Field(0, ge=0, description="the tuner's and the bootstrap's seed: the same seed, the same study")
    holdout: float = Field(0.2, gt=0.0, lt=1.0, description="share of the judged queries (chosen by hashed query "
                           "id) scored only once, on the best configuration beside the baseline")
    space: dict[str, Range | list[bool | int | float | str | None]] = Field(
        default_factory=dict, description="setting -> a list of values, or {low, high[, log]}; " + tunable_message())

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, v: str) -> str:
        if v in OBJECTIVES or v in SET_OBJECTIVES or SET_OBJECTIVE_AT_K.match(v):
            return v
        why = _NOT_OBJECTIVES.get(v)
        close = difflib.get_close_matches(v, [*OBJECTIVES, *SET_OBJECTIVES], n=1, cutoff=0.6)
        hint = f" ({why})" if why else (f"; did you mean '{close[0]}'?" if close else "")
        raise ValueError(f"unknown objective {v!r}{hint}; a BEIR split takes {', '.join(OBJECTIVES)}; an evaluation "
                         f"set takes {', '.join(SET_OBJECTIVES)} or ndcg, recall, precision, mrr, hit_rate@k")

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
