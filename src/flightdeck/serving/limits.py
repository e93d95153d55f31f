"""Per-key limits (checklist 8.3): requests per minute (a token bucket) and LLM tokens per day.

A request over a limit gets 429 with ``Retry-After``. The counts live in the server's memory: they start
afresh when the server restarts, and each ``--workers`` process counts its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from flightdeck.errors import FlightdeckError
from flightdeck.spec.server import Limits

__all__ = ["RateLimited", "KeyLimiter"]

_DAY = 86400.0


class RateLimited(FlightdeckError):
    """A key over one of its limits; ``retry_after`` is how many seconds until it may try again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class KeyLimiter:
    """The limits of each key: ``limits`` for every key, ``role_limits`` replacing them for a role."""

    def __init__(self, limits: Limits | None = None, role_limits: Mapping[str, Limits] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self.role_limits = dict(role_limits or {})
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key id → (tokens left, when counted)
        self._tokens: dict[str, tuple[int, float]] = {}  # key id → (LLM tokens used, day started)

    def limits_of(self, role: str) -> Limits:
        return self.role_limits.get(role, self.limits)

    def admit(self, key_id: str, role: str) -> None:
        """Count one request of ``key_id``; raises :class:`RateLimited` when it is over a limit."""
        limits = self.limits_of(role)
        now = self.clock()
        with self._lock:
            if limits.tokens_per_day is not None:
                used, since = self._tokens.get(key_id, (0, now))
                if now - since >= _DAY:
                    used, since = 0, now
                    self._tokens[key_id] = (0, now)
                if used >= limits.tokens_per_day:
                    raise RateLimited(f"this key used its {limits.tokens_per_day} tokens of the day",
                                      since + _DAY - now)
            rate = limits.requests_per_minute
            if rate is None:
                return
            left, when = self._buckets.get(key_id, (float(rate), now))
            left = min(float(rate), left + (now - when) * rate / 60.0)
            if left < 1.0:
                self._buckets[key_id] = (left, now)
                raise RateLimited(f"this key is over its {rate} requests a minute",
                                  (1.0 - left) * 60.0 / rate)
            self._buckets[key_id] = (left - 1.0, now)

    def spend_tokens(self, key_id: str, tokens: int) -> None:
        """Count the LLM tokens an answer for ``key_id`` used (against its daily quota)."""
        if tokens <= 0:
            return
        now = self.clock()
        with self._lock:
            used, since = self._tokens.get(key_id, (0, now))
            if now - since >= _DAY:
                used, since = 0, now
            self._tokens[key_id] = (used + tokens, since)
