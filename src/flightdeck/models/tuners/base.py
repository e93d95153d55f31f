"""What every tuner does: propose ``trials`` settings from a space, score each with an objective, maximise it.

A space maps names to :class:`Categorical` (one of some values), :class:`FloatRange` or :class:`IntRange` (a value
between ``low`` and ``high``, both included, log-uniform with ``log``). The objective takes one configuration
(``{name: value}``) and returns the number to maximise. A tuner calls it one configuration at a time, in the
calling process: the objective holds the index and the model, which no tuner needs to copy anywhere.

An objective that raises makes a *failed* trial (its error kept); the study goes on. Every tuner records its trials
through one :class:`TrialLog`, so trials are numbered, timed and shaped alike whichever library proposed them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from flightdeck.errors import FlightdeckError

__all__ = ["Categorical", "FloatRange", "IntRange", "Param", "Space", "Trial", "Tuner", "TrialLog", "TrialFailed",
           "best_trial", "check_space", "space_from_settings", "Objective"]


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (numbers, strings or booleans)."""

    choices: tuple[Any, ...]


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``; sampled log-uniformly when ``log``."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]`` (both included); sampled log-uniformly when ``log``."""

    low: int
    high: int
    log: bool = False


Param = Categorical | FloatRange | IntRange
Space = dict[str, Param]
Objective = Callable[[dict[str, Any]], float]


@dataclass
class Trial:
    """One configuration tried: ``state`` is ``complete`` (``value`` set) or ``failed`` (``error`` set)."""

    number: int
    params: dict[str, Any]
    value: float | None = None
    state: str = "complete"
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrialFailed(Exception):
    """Raised into a tuning library for a trial whose objective failed (the failure is already recorded)."""


@runtime_checkable
class Tuner(Protocol):
    """A provider of the ``tuner`` category (``model.hyperparameter_optimization``)."""

    name: str

    def optimize(self, space: Space, objective_fn: Objective, trials: int, seed: int) -> list[Trial]:
        """Try ``trials`` configurations of ``space`` (the same ``seed``, the same configurations), maximising
        ``objective_fn``; return every trial in the order it ran."""
        ...


@dataclass
class TrialLog:
    """The objective as a tuner calls it: numbers, times and keeps every trial, failed ones included."""

    objective_fn: Objective
    trials: list[Trial] = field(default_factory=list)

    def __call__(self, params: Mapping[str, Any]) -> float | None:
        """The objective's value for ``params``; None when it failed (recorded as a failed trial)."""
        trial = Trial(len(self.trials), dict(params))
        t0 = time.perf_counter()
        try:
            value = float(self.objective_fn(dict(params)))
            if math.isnan(value):
                raise ValueError("the objective returned NaN")
            trial.value = value
        except Exception as exc:  # noqa: BLE001 - a failing configuration is a result of the study, not its end
            trial.state, trial.error = "failed", f"{type(exc).__name__}: {exc}"
        trial.seconds = round(time.perf_counter() - t0, 4)
        self.trials.append(trial)
        return trial.value

    def value_or_raise(self, params: Mapping[str, Any]) -> float:
        """As calling it, but a failed trial raises :class:`TrialFailed` (for libraries that catch exceptions)."""
        value = self(params)
        if value is None:
            raise TrialFailed(self.trials[-1].error)
        return value


def best_trial(trials: list[Trial]) -> Trial | None:
    """The complete trial with the highest value (the first of equals), or None when none completed."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def check_space(space: Mapping[str, Param], trials: int) -> None:
    """Refuse what no tuner can search: an empty space, no trials, an empty or inverted parameter."""
    if not space:
        raise FlightdeckError("the search space is empty; give model.tuning.space at least one setting, e.g. "
                              "{fusion: [rrf, weighted]}")
    if trials < 1:
        raise FlightdeckError(f"trials must be at least 1, got {trials}")
    for name, param in space.items():
        if isinstance(param, Categorical) and not param.choices:
            raise FlightdeckError(f"{name}: no values to choose from")
        if isinstance(param, FloatRange | IntRange) and not param.low <= param.high:
            raise FlightdeckError(f"{name}: low {param.low} is above high {param.high}")


def space_from_settings(space: Mapping[str, Any], types: Mapping[str, type] | None = None) -> Space:
    """The tuner's space from ``model.tuning.space`` (lists and ``{low, high, log}`` ranges): a list is
    :class:`Categorical`; a range is an :class:`IntRange` for an integer setting (``types``), else a
    :class:`FloatRange`."""
    types = types or {}
    out: Space = {}
    for name, value in space.items():
        if isinstance(value, list | tuple):
            out[name] = Categorical(tuple(value))
            continue
        low, high, log = ((value["low"], value["high"], value.get("log", False)) if isinstance(value, Mapping)
                          else (value.low, value.high, value.log))
        out[name] = (IntRange(int(low), int(high), bool(log)) if types.get(name) is int
                     else FloatRange(float(low), float(high), bool(log)))
    return out
