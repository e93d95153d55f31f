"""One retry policy for the calls that cross a network: a few attempts, exponential backoff, Retry-After.

Sources, versioning back ends and API embedders all retry what may work a moment later (a refused
connection, a timeout, HTTP 429 or 5xx) and stop at once on what cannot (a wrong key, a missing file).
Which errors are which, and what to say when the attempts run out, differ per provider and stay there;
how many attempts, how long to wait between them and how to combine that with a server's Retry-After are
this one :class:`RetryPolicy`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = ["RetryPolicy"]

_T = TypeVar("_T")

Transient = Callable[[Exception], bool] | tuple[type[Exception], ...]
# The delay a server asked for (Retry-After), in seconds, read from the error; None when it asked for none.
RetryAfter = Callable[[Exception], float | None]


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; after the n-th failed one, wait ``base_delay * 2 ** (n - 1)`` seconds.

    ``max_delay`` caps every wait (None: no cap). A server's Retry-After, when the caller reads one from the
    error, either replaces the backoff (``retry_after_mode="replace"``: an API that asks for less is believed)
    or only lengthens it (``"at_least"``: a crawler stays polite however soon a server says it may come back).
    """

    attempts: int
    base_delay: float
    max_delay: float | None = None
    retry_after_mode: Literal["replace", "at_least"] = "replace"

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or (self.max_delay is not None and self.max_delay < 0):
            raise ValueError("RetryPolicy delays must not be negative")
        if self.retry_after_mode not in ("replace", "at_least"):
            raise ValueError(f"RetryPolicy.retry_after_mode is 'replace' or 'at_least', not {self.retry_after_mode!r}")

    def delay(self, failed: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failed`` attempts (1 = the first one failed) before the next one."""
        wait = self.base_delay * 2 ** (failed - 1)
        if retry_after is not None:
            wait = retry_after if self.retry_after_mode == "replace" else max(wait, retry_after)
        if self.max_delay is not None:
            wait = min(wait, self.max_delay)
        return max(0.0, wait)

    def _next_wait(self, exc: Exception, failed: int, transient: Transient, retry_after: RetryAfter | None
                   ) -> float | None:
        """The wait before another attempt, or None when ``exc`` must go to the caller now."""
        retryable = isinstance(exc, transient) if isinstance(transient, tuple) else transient(exc)
        if not retryable or failed >= self.attempts:
            return None
        return self.delay(failed, retry_after(exc) if retry_after is not None else None)

    def run(self, call: Callable[[], _T], *, transient: Transient, retry_after: RetryAfter | None = None,
            sleep: Callable[[float], object] | None = None) -> _T:
        """Call ``call`` until it returns, retrying the errors ``transient`` accepts (a predicate or types).

        An error that is not transient, and the transient error of the last attempt, are raised as they are:
        the caller says what failed, and after how many attempts, in its own words. ``sleep`` defaults to
        :func:`time.sleep` (looked up at each call, so that a test may patch it).
        """
        failed = 0
        while True:
            try:
                return call()
            except Exception as exc:
                failed += 1
                wait = self._next_wait(exc, failed, transient, retry_after)
                if wait is None:
                    raise
            (sleep or time.sleep)(wait)

    async def run_async(self, call: Callable[[], Awaitable[_T]], *, transient: Transient,
                        retry_after: RetryAfter | None = None,
                        sleep: Callable[[float], Awaitable[object]] | None = None) -> _T:
        """:meth:`run` for a coroutine function; waits with :func:`asyncio.sleep` unless ``sleep`` is given."""
        failed = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                failed += 1
                wait = self._next_wait(exc, failed, transient, retry_after)
                if wait is None:
                    raise
            await (sleep or asyncio.sleep)(wait)
