"""``ray_tune``: Ray Tune runs the study — its search algorithm proposes, its trial runner tracks each trial — on a
local Ray started for the study (``num_cpus``, no dashboard, shut down after), or on the Ray at ``address``.

The objective stays in this process: it holds the index, the workspaces and the embedding model, which a Ray worker
could not share. Each Tune trial is a small function that hands its configuration to this process through a Ray
queue and reports the value it gets back, so trials run one at a time (``max_concurrent_trials=1``) in one reused
worker. ``search_alg: random`` is Tune's seeded ``BasicVariantGenerator``; ``optuna`` is Tune's ``OptunaSearch``
(TPE, seeded; needs the optuna extra too). A failed trial reports ``-inf`` to the search algorithm.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.errors import FlightdeckError
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

__all__ = ["RayTuneConfig", "RayTuneTuner"]

_POLL_S = 0.2


class RayTuneConfig(BaseModel):
    """Settings of ``model.hyperparameter_optimization: [{provider: ray_tune, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    search_alg: Literal["random", "optuna"] = Field(
        "random", description="random: Tune's BasicVariantGenerator; optuna: Tune's OptunaSearch (TPE)")
    address: str | None = Field(None, description="a running Ray cluster (ray://host:10001 or host:6379); "
                                                  "unset: a local Ray is started for the study and shut down")
    num_cpus: int = Field(1, ge=1, description="CPUs of the local Ray (the objective runs in this process)")


def _tune_space(tune: Any, space: Space) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, Categorical):
            out[name] = tune.choice(list(p.choices))
        elif isinstance(p, IntRange):  # Tune's integer ranges exclude the upper bound
            out[name] = tune.lograndint(p.low, p.high + 1) if p.log else tune.randint(p.low, p.high + 1)
        elif isinstance(p, FloatRange):
            out[name] = tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high)
    return out


def _cast(p: Any, value: Any) -> Any:
    if isinstance(p, IntRange):
        return min(max(int(value), p.low), p.high)
    if isinstance(p, FloatRange):
        return float(value)
    return value


class RayTuneTuner:
    """Ray Tune proposes and tracks the trials; this process scores each one."""

    name = "ray_tune"

    def __init__(self, config: RayTuneConfig | None = None) -> None:
        self.config = config or RayTuneConfig()

    def _search_alg(self, seed: int) -> Any:
        if self.config.search_alg == "optuna":
            optional_import("optuna", "optuna", "tuner 'ray_tune' with search_alg optuna")
            from ray.tune.search.optuna import OptunaSearch

            return OptunaSearch(metric="objective", mode="max", seed=seed)
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed)

    def _start(self, ray: Any) -> None:
        """Start the local Ray (or join ``address``); a node that does not come up is tried once more (Ray waits
        30 s for its raylet, which a busy machine can miss)."""
        local = {"num_cpus": self.config.num_cpus} if self.config.address is None else {}
        where = f"the Ray at {self.config.address}" if self.config.address else "a local Ray"
        for attempt in (1, 2):
            try:
                ray.init(address=self.config.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING, **local)
                return
            except Exception as exc:  # noqa: BLE001 - Ray raises bare Exceptions for a node that did not start
                ray.shutdown()
                if attempt == 2:
                    raise FlightdeckError(
                        f"tuner 'ray_tune' could not start {where}: {exc}; try again on a less busy machine, give "
                        "the address of a running Ray (model.hyperparameter_optimization: [{provider: ray_tune, "
                        "address: ...}]), or use optuna or grid_random, which need no Ray") from exc

    def optimize(self, space: Space, objective_fn: Objective, trials: int, seed: int) -> list[Trial]:
        check_space(space, trials)
        ray = optional_import("ray", "ray_tune", "tuner 'ray_tune'")
        tune = optional_import("ray.tune", "ray_tune", "tuner 'ray_tune'")
        started = not ray.is_initialized()
        if started:
            self._start(ray)
        storage = tempfile.mkdtemp(prefix="flightdeck-ray-tune-")
        try:
            return self._study(ray, tune, space, objective_fn, trials, seed, storage)
        finally:
            shutil.rmtree(storage, ignore_errors=True)
            if started:
                ray.shutdown()

    def _study(self, ray: Any, tune: Any, space: Space, objective_fn: Objective, trials: int, seed: int,
               storage: str) -> list[Trial]:
        from ray.util.queue import Empty, Queue

        requests, replies = Queue(), Queue()

        def relay(config: dict[str, Any]) -> None:  # runs in the Ray worker
            from ray import tune as worker_tune

            requests.put(config)
            value = replies.get()
            worker_tune.report({"objective": float("-inf") if value is None else value, "failed": value is None})

        tuner = tune.Tuner(
            relay, param_space=_tune_space(tune, space),
            tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=1, reuse_actors=True,
                                        search_alg=self._search_alg(seed), metric="objective", mode="max"),
            run_config=tune.RunConfig(storage_path=storage, name="flightdeck", verbose=0))
        log = TrialLog(objective_fn)
        outcome: dict[str, Any] = {}

        def fit() -> None:
            try:
                outcome["results"] = tuner.fit()
            except BaseException as exc:  # noqa: BLE001 - told to the caller's thread below
                outcome["error"] = exc

        # Tune's progress goes to stderr: stdout may be a --json answer
        with contextlib.redirect_stdout(sys.stderr):
            runner = threading.Thread(target=fit, name="flightdeck-ray-tune", daemon=True)
            runner.start()
            while True:
                try:
                    config = requests.get(timeout=_POLL_S)
                except Empty:
                    if not runner.is_alive():
                        break
                    continue
                replies.put(log({name: _cast(p, config[name]) for name, p in space.items()}))
            runner.join()
        if "error" in outcome:
            exc = outcome["error"]
            raise FlightdeckError(f"Ray Tune stopped after {len(log.trials)} of {trials} trials: "
                                  f"{type(exc).__name__}: {exc}") from exc
        return log.trials
