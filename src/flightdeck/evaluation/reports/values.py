"""Reading a report's JSON defensively: the reports render what a run wrote, and a field may be missing or odd."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_number", "as_text", "as_dict", "as_list"]


def finite_number(value: Any) -> float | None:
    """A finite float, or None (missing, None, NaN, a string…)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []
