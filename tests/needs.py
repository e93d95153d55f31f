"""Skips for tests that need an optional library, saying which extra brings it.

The suite runs on the dev install (``make test``: every extra, where nothing here skips) and on smaller ones, such
as ``pip install -e '.[embedded]'`` plus pytest and hypothesis: there a test of a missing extra skips and names what
is missing, rather than failing on an ``ImportError`` or a ``MissingDependencyError``. Checking uses
:func:`flightdeck.registry.lookup.installed` (``find_spec``): nothing is imported, so nothing is recorded as a
requirement of the product (tests/checklist_verification.py).
"""

from __future__ import annotations

import pytest

from flightdeck.registry import BUILTIN_FLAVORS, Category
from flightdeck.registry.lookup import installed

__all__ = ["missing", "needs", "need", "needs_provider", "provider_missing"]


def missing(*modules: str) -> list[str]:
    """The ``modules`` (dotted names allowed) that this install cannot import."""
    return [m for m in modules if not installed(m)]


def _reason(extra: str, gone: list[str]) -> str:
    return f"needs flightdeck[{extra}] (missing: {', '.join(gone)})"


def needs(extra: str, *modules: str) -> pytest.MarkDecorator:
    """Mark a test (or a ``pytest.param``) to skip unless ``modules`` are installed; ``extra`` brings them.

    ``extra`` is the pip extra of pyproject.toml: the provider's own for what the product imports, ``dev`` for
    what only the tests use (fpdf2 writing PDFs, moto serving S3).
    """
    gone = missing(*modules)
    return pytest.mark.skipif(bool(gone), reason=_reason(extra, gone))


def need(extra: str, *modules: str) -> None:
    """Skip the running test (or fixture) unless ``modules`` are installed; ``extra`` brings them."""
    gone = missing(*modules)
    if gone:
        pytest.skip(_reason(extra, gone))


def provider_missing(category: Category, name: str) -> tuple[str, list[str]]:
    """The built-in provider's pip extra and the modules it requires that this install lacks."""
    flavor = next(f for f in BUILTIN_FLAVORS if f.category == category and f.name == name)
    return flavor.extra or flavor.name, missing(*flavor.requires)


def needs_provider(category: Category, name: str) -> pytest.MarkDecorator:
    """Mark a test to skip unless the built-in provider ``name`` has its modules here (what a spec choosing it,
    validated, needs)."""
    extra, gone = provider_missing(category, name)
    return pytest.mark.skipif(bool(gone), reason=_reason(extra, gone))
