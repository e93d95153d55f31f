"""Hypothesis settings shared by the fuzz tests: fixed-seed and small in ``make test``, longer on request.

``make test`` runs every fuzz test derandomized (the same examples on every run and machine), with
``max_examples`` kept small so that the fuzz tests together add well under a minute, no example database
(no ``.hypothesis/`` state changes what runs) and no per-example deadline (a loaded CI machine must not
turn a slow example into a failure). To fuzz longer locally::

    FLIGHTDECK_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest -q tests/fuzz              # more examples
    FLIGHTDECK_FUZZ_EXAMPLES=2000 FLIGHTDECK_FUZZ_RANDOM=1 .venv/bin/python -m pytest -q tests/fuzz

``FLIGHTDECK_FUZZ_EXAMPLES`` sets the examples of every fuzz test; ``FLIGHTDECK_FUZZ_RANDOM=1`` draws new
random examples on each run instead of the fixed ones (Hypothesis then prints a ``@reproduce_failure``
blob and the falsifying example for anything it finds: add it to the test as an ``@example``).

Not a ``conftest.py``: the test folders have no ``__init__.py``, so a second ``conftest`` module would
shadow ``tests/conftest.py`` for the tests that ``from conftest import ...``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["fuzz_settings", "EXAMPLES_ENV"]

EXAMPLES_ENV = "FLIGHTDECK_FUZZ_EXAMPLES"
RANDOM_ENV = "FLIGHTDECK_FUZZ_RANDOM"


def fuzz_settings(max_examples: int) -> settings:
    """Settings of one fuzz test: ``max_examples`` in ``make test``, or ``$FLIGHTDECK_FUZZ_EXAMPLES``."""
    override = os.environ.get(EXAMPLES_ENV, "").strip()
    return settings(
        max_examples=int(override) if override else max_examples,
        derandomize=os.environ.get(RANDOM_ENV, "") not in ("1", "true", "yes"),
        database=None,
        deadline=None,
        # too_slow / large_base_example: documents and specs are big inputs by design, and parsing them
        # (a PDF, a tokenizer pass) takes milliseconds; the examples are few, so it is no runaway strategy.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        print_blob=True,
    )
