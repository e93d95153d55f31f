"""Tuners (checklist 3.5): Optuna, Hyperopt, Ray Tune and grid/random search pass one contract (:class:`TunerContract`)
on a cheap synthetic objective — they find its optimum within a budget of trials, stay inside the space, repeat
themselves for a seed, and go on past a failing trial. The end-to-end tests (each tuner through ``flightdeck tune`` on
a small BEIR folder) are in tests/evaluation/test_tune_beir.py."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from flightdeck.errors import FlightdeckError, MissingDependencyError
from flightdeck.models.tuners.base import (
    Categorical,
    FloatRange,
    IntRange,
    Space,
    Trial,
    TrialLog,
    Tuner,
    best_trial,
    space_from_settings,
)
from flightdeck.models.tuners.grid_random import GridRandomConfig, GridRandomTuner, grid_points
from flightdeck.registry import Category, registry
from needs import needs

pytestmark = pytest.mark.unit

# Maximum 2.0 at colour "green", n 6, x 0.7; the categorical and the integer carry most of the value, so a tuner
# that explores finds the region, and one that models the objective gets close to the peak.
SPACE: Space = {"colour": Categorical(("red", "green", "blue")), "n": IntRange(1, 8),
                "x": FloatRange(0.0, 1.0)}
OPTIMUM = 2.0


def synthetic(params: dict[str, Any]) -> float:
    return ((params["colour"] == "green") * 1.0 + (1.0 - abs(params["n"] - 6) / 7) * 0.6
            + (1.0 - (params["x"] - 0.7) ** 2) * 0.4)


class TunerContract:
    """What every tuner does; a subclass gives ``tuner`` and may set the trial budget."""

    budget = 40  # trials within which the optimum must be nearly reached
    tolerance = 0.1  # how close to OPTIMUM the best trial must come

    @pytest.fixture
    def tuner(self) -> Tuner:
        raise NotImplementedError

    def test_is_a_tuner_registered_under_its_name(self, tuner: Tuner) -> None:
        assert isinstance(tuner, Tuner)
        assert tuner.name in registry().names(Category.TUNER)

    def test_finds_the_optimum_of_a_cheap_objective(self, tuner: Tuner) -> None:
        trials = tuner.optimize(SPACE, synthetic, self.budget, 0)
        assert len(trials) == self.budget
        best = best_trial(trials)
        assert best is not None and best.value == pytest.approx(synthetic(best.params))
        assert best.value >= OPTIMUM - self.tolerance, [(t.params, t.value) for t in trials]
        assert best.params["colour"] == "green"

    def test_trials_stay_in_the_space_and_repeat_for_a_seed(self, tuner: Tuner) -> None:
        first = tuner.optimize(SPACE, synthetic, 8, 3)
        assert [t.number for t in first] == list(range(8))
        for t in first:
            assert t.state == "complete" and t.value is not None and t.seconds >= 0
            assert t.params["colour"] in ("red", "green", "blue")
            assert isinstance(t.params["n"], int) and 1 <= t.params["n"] <= 8
            assert isinstance(t.params["x"], float) and 0.0 <= t.params["x"] <= 1.0
        again = tuner.optimize(SPACE, synthetic, 8, 3)
        assert [t.params for t in again] == [t.params for t in first]

    def test_a_failing_trial_is_recorded_and_the_study_goes_on(self, tuner: Tuner) -> None:
        def fragile(params: dict[str, Any]) -> float:
            if params["colour"] == "red":
                raise ValueError("red is broken")
            return synthetic(params)

        trials = tuner.optimize(SPACE, fragile, 12, 1)
        assert len(trials) == 12
        failed = [t for t in trials if t.state == "failed"]
        assert failed and all(t.value is None and t.error == "ValueError: red is broken" for t in failed)
        assert all(t.params["colour"] != "red" for t in trials if t.state == "complete")
        assert best_trial(trials) is not None

    def test_log_ranges_and_an_empty_space(self, tuner: Tuner) -> None:
        space: Space = {"lr": FloatRange(1e-4, 1e-1, log=True), "depth": IntRange(2, 64, log=True)}
        trials = tuner.optimize(space, lambda p: -abs(math.log10(p["lr"]) + 2.5) - abs(p["depth"] - 16) / 64, 6, 0)
        assert all(1e-4 <= t.params["lr"] <= 1e-1 and 2 <= t.params["depth"] <= 64 for t in trials)
        assert all(isinstance(t.params["depth"], int) for t in trials)
        with pytest.raises(FlightdeckError, match="search space is empty"):
            tuner.optimize({}, synthetic, 3, 0)


# --- the providers ----------------------------------------------------------------------------------------------
@needs("optuna", "optuna")
class TestOptunaTuner(TunerContract):
    budget = 40

    @pytest.fixture
    def tuner(self) -> Tuner:
        return registry().create(Category.TUNER, "optuna", {})

    def test_the_random_sampler(self) -> None:
        tuner = registry().create(Category.TUNER, "optuna", {"sampler": "random"})
        assert best_trial(tuner.optimize(SPACE, synthetic, 40, 0)).value >= OPTIMUM - 0.25  # type: ignore[union-attr]


@needs("hyperopt", "hyperopt")
class TestHyperoptTuner(TunerContract):
    budget = 40

    @pytest.fixture
    def tuner(self) -> Tuner:
        return registry().create(Category.TUNER, "hyperopt", {})


class TestGridRandomTuner(TunerContract):
    budget = 60  # random search: no model of the objective

    tolerance = 0.15

    @pytest.fixture
    def tuner(self) -> Tuner:
        return registry().create(Category.TUNER, "grid_random", {})

    def test_a_grid_covers_every_combination(self) -> None:
        tuner = GridRandomTuner(GridRandomConfig(method="grid", grid_points=3))
        trials = tuner.optimize(SPACE, synthetic, 500, 0)
        # 3 colours x 3 integers (1, 4.5 -> 4 or 5, 8) x 3 floats (0, 0.5, 1)
        assert len(trials) == 27 and len({tuple(t.params.values()) for t in trials}) == 27
        assert best_trial(trials).params == {"colour": "green", "n": 4, "x": 0.5}  # type: ignore[union-attr]

    def test_a_grid_larger_than_the_trials_is_sampled_in_grid_order(self) -> None:
        tuner = GridRandomTuner(GridRandomConfig(method="grid", grid_points=3))
        trials = tuner.optimize(SPACE, synthetic, 5, 0)
        grid = [(c, n, x) for c in ("red", "green", "blue") for n in (1, 4, 8) for x in (0.0, 0.5, 1.0)]
        picked = [tuple(t.params.values()) for t in trials]
        assert len(picked) == 5 and picked == sorted(picked, key=grid.index)

    def test_grid_points_of_ranges(self) -> None:
        assert grid_points(IntRange(1, 3), 5) == [1, 2, 3]
        assert grid_points(FloatRange(1.0, 100.0, log=True), 3) == pytest.approx([1.0, 10.0, 100.0])
        assert grid_points(Categorical(("a", "b")), 9) == ["a", "b"]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the contract's tests (the tuner leaves a Ray it did not start running); the end-to-end test
    has the tuner start and stop its own."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.slow  # a local Ray takes 10-35 s to start on two busy cores
@needs("ray_tune", "ray")
class TestRayTuneTuner(TunerContract):
    budget = 40
    tolerance = 0.25  # Tune's BasicVariantGenerator is random search

    @pytest.fixture
    def tuner(self, local_ray: None) -> Tuner:
        return registry().create(Category.TUNER, "ray_tune", {})

    @needs("optuna", "optuna")
    def test_optuna_search_through_tune(self, local_ray: None) -> None:
        tuner = registry().create(Category.TUNER, "ray_tune", {"search_alg": "optuna"})
        trials = tuner.optimize(SPACE, synthetic, 20, 0)
        assert len(trials) == 20 and best_trial(trials).value >= OPTIMUM - 0.25  # type: ignore[union-attr]


# --- the pieces every tuner shares ------------------------------------------------------------------------------
def test_the_trial_log_numbers_times_and_keeps_failures() -> None:
    log = TrialLog(lambda p: 1 / p["x"])
    assert log({"x": 2}) == 0.5 and log({"x": 0}) is None
    assert [t.state for t in log.trials] == ["complete", "failed"]
    assert log.trials[1].error == "ZeroDivisionError: division by zero" and log.trials[1].number == 1
    nan = TrialLog(lambda p: float("nan"))
    assert nan({}) is None and "NaN" in (nan.trials[0].error or "")


def test_best_trial_skips_failures_and_keeps_the_first_of_equals() -> None:
    trials = [Trial(0, {}, 0.5), Trial(1, {}, None, "failed", "x"), Trial(2, {}, 0.7), Trial(3, {}, 0.7)]
    assert best_trial(trials).number == 2  # type: ignore[union-attr]
    assert best_trial([Trial(0, {}, None, "failed")]) is None


def test_the_space_from_the_spec() -> None:
    space = space_from_settings({"k": [5, 10], "candidates": {"low": 50, "high": 200},
                                 "keyword_weight": {"low": 0.2, "high": 2.0, "log": True}},
                                {"k": int, "candidates": int, "keyword_weight": float})
    assert space == {"k": Categorical((5, 10)), "candidates": IntRange(50, 200),
                     "keyword_weight": FloatRange(0.2, 2.0, log=True)}


def test_an_uninstalled_tuner_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for module in ("optuna", "hyperopt", "ray"):
        monkeypatch.setitem(sys.modules, module, None)  # what an install without the extra looks like
    for name, extra in (("optuna", "optuna"), ("hyperopt", "hyperopt"), ("ray_tune", "ray_tune")):
        tuner = registry().create(Category.TUNER, name, {})
        with pytest.raises(MissingDependencyError, match=rf"tuner '{name}' needs: pip install 'flightdeck\[{extra}\]'"):
            tuner.optimize(SPACE, synthetic, 2, 0)
