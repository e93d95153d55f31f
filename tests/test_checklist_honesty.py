"""`flightdeck checklist` marks `ready` exactly the options that tests exercise.

Every test that exercises a checklist option says so with ``@pytest.mark.exercises("phase.section.option")``.
This test reads those marks from the source of the whole suite (so it holds whatever subset of tests is
run) and compares them with the statuses the registry computes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flightdeck.spec.catalog import catalog
from flightdeck.spec.status import option_status

pytestmark = pytest.mark.unit

TESTS = Path(__file__).parent


def _exercised_options() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "exercises" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.setdefault(node.args[0].value, []).append(str(path.relative_to(TESTS)))
    return found


def test_every_exercises_mark_names_a_real_option() -> None:
    keys = {o.key for o in catalog().options}
    unknown = sorted(set(_exercised_options()) - keys)
    assert not unknown, f"marks naming no checklist option: {unknown}"


def test_ready_options_are_exactly_the_exercised_ones() -> None:
    exercised = set(_exercised_options())
    ready = {o.key for o in catalog().options if option_status(o.key).state == "ready"}
    assert ready, "nothing is ready: the registry is empty?"
    assert sorted(ready - exercised) == [], "ready options that no test exercises"
    assert sorted(exercised - ready) == [], "options exercised by tests but not reported ready"
