"""``grid_random``: grid or random search, with no library beyond numpy.

- ``method: random`` (the default): each trial draws every setting independently (a list uniformly, a range
  uniformly or log-uniformly), skipping a configuration already tried while others remain.
- ``method: grid``: every combination of the lists and of ``grid_points`` evenly spaced values of each range
  (log-spaced with ``log``; an integer range keeps its distinct integers). A grid larger than ``trials`` is
  sampled: ``trials`` of its points, drawn without replacement with the seed, in grid order.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.models.tuners.base import (
    Categorical,
    FloatRange,
    IntRange,
    Objective,
    Param,
    Space,
    Trial,
    TrialLog,
    check_space,
)

__all__ = ["GridRandomConfig", "GridRandomTuner", "grid_points"]

_RANDOM_RETRIES = 50  # draws tried for a configuration not yet seen, before a repeat is accepted


class GridRandomConfig(BaseModel):
    """Settings of ``model.hyperparameter_optimization: [{provider: grid_random, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    method: Literal["random", "grid"] = Field("random", description="random: independent draws; grid: every "
                                              "combination (sampled when larger than trials)")
    grid_points: int = Field(5, ge=2, le=100, description="grid: values taken from each range")


def grid_points(p: Param, points: int) -> list[Any]:
    """The values of ``p`` on a grid: its choices, or ``points`` evenly (log-)spaced values of a range."""
    if isinstance(p, Categorical):
        return list(p.choices)
    lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
    values = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
    values = [math.exp(v) for v in values] if p.log else values
    if isinstance(p, IntRange):
        return sorted({min(max(int(round(v)), p.low), p.high) for v in values})
    return [round(v, 10) for v in values]


def _draw(p: Param, rng: Any) -> Any:
    if isinstance(p, Categorical):
        return p.choices[int(rng.integers(len(p.choices)))]
    if isinstance(p, IntRange):
        if p.log:
            return min(max(int(round(math.exp(rng.uniform(math.log(p.low), math.log(p.high + 1))) - 0.5)), p.low),
                       p.high)
        return int(rng.integers(p.low, p.high + 1))
    assert isinstance(p, FloatRange)
    if p.log:
        return float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    return float(rng.uniform(p.low, p.high))


class GridRandomTuner:
    """Grid or random search, seeded."""

    name = "grid_random"

    def __init__(self, config: GridRandomConfig | None = None) -> None:
        self.config = config or GridRandomConfig()

    def optimize(self, space: Space, objective_fn: Objective, trials: int, seed: int) -> list[Trial]:
        import numpy as np

        check_space(space, trials)
        rng = np.random.default_rng(seed)
        log = TrialLog(objective_fn)
        names = list(space)
        if self.config.method == "grid":
            grid = list(itertools.product(*(grid_points(space[n], self.config.grid_points) for n in names)))
            if len(grid) > trials:
                grid = [grid[i] for i in sorted(rng.choice(len(grid), size=trials, replace=False))]
            for values in grid:
                log(dict(zip(names, values, strict=True)))
            return log.trials
        seen: set[tuple[Any, ...]] = set()
        for _ in range(trials):
            for _attempt in range(_RANDOM_RETRIES):
                params = {n: _draw(space[n], rng) for n in names}
                key = tuple(params[n] for n in names)
                if key not in seen:
                    break
            seen.add(key)
            log(params)
        return log.trials
