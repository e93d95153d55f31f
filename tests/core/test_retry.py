"""The one retry policy (flightdeck.core.retry): attempts, backoff, Retry-After, what is retried and what is not."""

from __future__ import annotations

import asyncio

import pytest

from flightdeck.core import RetryPolicy

pytestmark = pytest.mark.unit


class Flaky(Exception):
    """A transient error, with the delay a server asked for (None: it asked for none)."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("try again")
        self.retry_after = retry_after


class Broken(Exception):
    """An error that retrying cannot help."""


def _calls(*outcomes: object) -> tuple[list[int], object]:
    """A callable that raises or returns ``outcomes`` in turn, and the list of its call numbers."""
    calls: list[int] = []

    def call() -> object:
        calls.append(len(calls) + 1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return calls, call


def test_retries_then_succeeds_waiting_the_backoff() -> None:
    calls, call = _calls(Flaky(), Flaky(), "ok")
    sleeps: list[float] = []
    assert RetryPolicy(attempts=4, base_delay=0.5).run(call, transient=(Flaky,), sleep=sleeps.append) == "ok"
    assert calls == [1, 2, 3] and sleeps == [0.5, 1.0]


def test_gives_up_after_the_attempts_raising_the_last_error() -> None:
    last = Flaky()
    calls, call = _calls(Flaky(), Flaky(), last, "never reached")
    sleeps: list[float] = []
    with pytest.raises(Flaky) as info:
        RetryPolicy(attempts=3, base_delay=1).run(call, transient=(Flaky,), sleep=sleeps.append)
    assert info.value is last  # the caller wraps it in its own words
    assert calls == [1, 2, 3] and sleeps == [1, 2]  # no wait after the last attempt


def test_one_attempt_means_no_retry() -> None:
    calls, call = _calls(Flaky(), "ok")
    with pytest.raises(Flaky):
        RetryPolicy(attempts=1, base_delay=1).run(call, transient=(Flaky,), sleep=lambda s: None)
    assert calls == [1]


def test_an_error_that_is_not_transient_is_raised_at_once() -> None:
    calls, call = _calls(Flaky(), Broken(), "ok")
    sleeps: list[float] = []
    with pytest.raises(Broken):
        RetryPolicy(attempts=5, base_delay=1).run(call, transient=lambda e: isinstance(e, Flaky),
                                                  sleep=sleeps.append)
    assert calls == [1, 2] and sleeps == [1]


def test_the_delay_doubles_and_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=3)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 3, 3, 3]
    assert [RetryPolicy(attempts=10, base_delay=1).delay(n) for n in (1, 5)] == [1, 16]  # no cap
    calls, call = _calls(*[Flaky()] * 5, "ok")
    sleeps: list[float] = []
    policy.run(call, transient=(Flaky,), sleep=sleeps.append)
    assert sleeps == [0.5, 1, 2, 3, 3]


def test_a_servers_retry_after_replaces_the_backoff_capped_at_max_delay() -> None:
    calls, call = _calls(Flaky(retry_after=7), Flaky(retry_after=0.1), Flaky(), Flaky(retry_after=600), "ok")
    sleeps: list[float] = []
    RetryPolicy(attempts=5, base_delay=1, max_delay=60).run(
        call, transient=(Flaky,), retry_after=lambda e: getattr(e, "retry_after", None), sleep=sleeps.append)
    assert sleeps == [7, 0.1, 4, 60]  # believed when it asks for less, the backoff without one, never over the cap


def test_at_least_mode_lets_retry_after_only_lengthen_the_wait() -> None:
    policy = RetryPolicy(attempts=5, base_delay=2, retry_after_mode="at_least")
    assert policy.delay(1, retry_after=0.5) == 2 and policy.delay(1, retry_after=9) == 9
    assert policy.delay(3, retry_after=None) == 8


def test_run_async_retries_with_an_awaited_sleep() -> None:
    calls, call = _calls(Flaky(retry_after=3), Flaky(), "ok")
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async def attempt() -> object:
        return call()

    policy = RetryPolicy(attempts=3, base_delay=1, retry_after_mode="at_least")
    result = asyncio.run(policy.run_async(attempt, transient=(Flaky,), retry_after=lambda e: e.retry_after,
                                          sleep=record))
    assert result == "ok" and calls == [1, 2, 3] and sleeps == [3, 2]


def test_the_default_sleep_is_time_sleep_looked_up_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)  # what a provider test patching time.sleep relies on
    calls, call = _calls(Flaky(), "ok")
    assert RetryPolicy(attempts=2, base_delay=0.25).run(call, transient=(Flaky,)) == "ok"
    assert slept == [0.25]


@pytest.mark.parametrize("kwargs", [{"attempts": 0, "base_delay": 1}, {"attempts": 1, "base_delay": -1},
                                    {"attempts": 1, "base_delay": 1, "max_delay": -1},
                                    {"attempts": 1, "base_delay": 1, "retry_after_mode": "sometimes"}])
def test_a_policy_that_cannot_work_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
