"""Durations as people write them in specs and on the command line: ``45s``, ``90m``, ``12h``, ``7d``, ``2w``.

One reading for every place that takes one (API key expiry, the audit log's ``--since`` and retention, drift
windows, the automation's watch interval and bias window); each caller adds its own bounds and its own words for
an error."""

from __future__ import annotations

import re

__all__ = ["duration_seconds", "DURATION_UNITS"]

#: seconds in each unit
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])?\s*$", re.IGNORECASE)


def duration_seconds(text: str | float | None, *, bare_seconds: bool = False) -> float | None:
    """Seconds in ``text`` (a number and a unit: s, m, h, d, w), or None when it is not such a duration. With
    ``bare_seconds`` a plain number (``90``, or an int or float) counts as seconds."""
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, int | float):
        return float(text) if bare_seconds else None
    found = _DURATION.match(text)
    if found is None or (found.group(2) is None and not bare_seconds):
        return None
    return float(found.group(1)) * DURATION_UNITS[(found.group(2) or "s").lower()]
