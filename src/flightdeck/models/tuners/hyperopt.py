"""``hyperopt``: Hyperopt's ``fmin`` with TPE (or random search, or simulated annealing), minimising the negated
objective.

Lists become ``hp.choice``, float ranges ``hp.uniform`` / ``hp.loguniform``, integer ranges ``hp.uniformint`` (or a
rounded ``hp.qloguniform`` with ``log``). A failing trial is reported as ``STATUS_FAIL``, which the algorithms skip.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.models.tuners.base import (
    Categorical,
    FloatRange,
    IntRange,
    Objective,
    Space,
    Trial,
    TrialLog,
    check_space,
)
from flightdeck.registry.lookup import optional_import

__all__ = ["HyperoptConfig", "HyperoptTuner"]


class HyperoptConfig(BaseModel):
    """Settings of ``model.hyperparameter_optimization: [{provider: hyperopt, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    algo: Literal["tpe", "random", "anneal"] = Field("tpe", description="tpe, random or anneal")


def _value(p: Any, value: Any) -> Any:
    # hp.uniformint and the rounded log range give floats such as 3.0
    return int(round(value)) if isinstance(p, IntRange) else float(value) if isinstance(p, FloatRange) else value


class HyperoptTuner:
    """Hyperopt proposes each trial (``fmin`` with ``max_evals = trials``, seeded)."""

    name = "hyperopt"

    def __init__(self, config: HyperoptConfig | None = None) -> None:
        self.config = config or HyperoptConfig()

    def optimize(self, space: Space, objective_fn: Objective, trials: int, seed: int) -> list[Trial]:
        check_space(space, trials)
        hyperopt = optional_import("hyperopt", "hyperopt", "tuner 'hyperopt'")
        import numpy as np
        from hyperopt import hp
        from hyperopt.pyll import scope

        hspace: dict[str, Any] = {}
        for name, p in space.items():
            if isinstance(p, Categorical):
                hspace[name] = hp.choice(name, list(p.choices))
            elif isinstance(p, IntRange):
                hspace[name] = (scope.int(hp.qloguniform(name, math.log(p.low), math.log(p.high), 1)) if p.log
                                else hp.uniformint(name, p.low, p.high))
            elif isinstance(p, FloatRange):
                hspace[name] = (hp.loguniform(name, math.log(p.low), math.log(p.high)) if p.log
                                else hp.uniform(name, p.low, p.high))
        log = TrialLog(objective_fn)

        def objective(sample: dict[str, Any]) -> dict[str, Any]:
            params = {name: _value(space[name], sample[name]) for name in space}
            for name, p in space.items():  # a rounded log range can land just outside
                if isinstance(p, IntRange):
                    params[name] = min(max(params[name], p.low), p.high)
            value = log(params)
            if value is None:
                return {"status": hyperopt.STATUS_FAIL}
            return {"status": hyperopt.STATUS_OK, "loss": -value}

        algo = {"tpe": hyperopt.tpe.suggest, "random": hyperopt.rand.suggest,
                "anneal": hyperopt.anneal.suggest}[self.config.algo]
        hyperopt.fmin(objective, hspace, algo=algo, max_evals=trials, trials=hyperopt.Trials(),
                      rstate=np.random.default_rng(seed), show_progressbar=False)
        return log.trials
