"""``optuna`` (the default tuner): Optuna's TPE sampler, or its random sampler, over an in-memory study.

Lists become ``suggest_categorical``, ranges ``suggest_float`` / ``suggest_int`` (``log`` kept). A failing trial
is caught by Optuna (state FAIL) and the study goes on; Optuna's own log is kept to warnings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.models.tuners.base import (
    Categorical,
    FloatRange,
    IntRange,
    Objective,
    Space,
    Trial,
    TrialFailed,
    TrialLog,
    check_space,
)
from flightdeck.registry.lookup import optional_import

__all__ = ["OptunaConfig", "OptunaTuner"]


class OptunaConfig(BaseModel):
    """Settings of ``model.hyperparameter_optimization: [{provider: optuna, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    sampler: Literal["tpe", "random"] = Field("tpe", description="tpe: Tree-structured Parzen Estimator; random")
    n_startup_trials: int = Field(10, ge=0, description="tpe: random trials before the model proposes")


class OptunaTuner:
    """Optuna's sampler proposes each trial; the study maximises the objective."""

    name = "optuna"

    def __init__(self, config: OptunaConfig | None = None) -> None:
        self.config = config or OptunaConfig()

    def optimize(self, space: Space, objective_fn: Objective, trials: int, seed: int) -> list[Trial]:
        check_space(space, trials)
        optuna = optional_import("optuna", "optuna", "tuner 'optuna'")
        log = TrialLog(objective_fn)

        def objective(trial: Any) -> float:
            params: dict[str, Any] = {}
            for name, p in space.items():
                if isinstance(p, Categorical):
                    params[name] = trial.suggest_categorical(name, list(p.choices))
                elif isinstance(p, IntRange):
                    params[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
                elif isinstance(p, FloatRange):
                    params[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
            return log.value_or_raise(params)

        sampler = (optuna.samplers.RandomSampler(seed=seed) if self.config.sampler == "random" else
                   optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.config.n_startup_trials))
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # a line per trial is flightdeck's to print
        try:
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=trials, catch=(TrialFailed,))
        finally:
            optuna.logging.set_verbosity(verbosity)
        return log.trials
