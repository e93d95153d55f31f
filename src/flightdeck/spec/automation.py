"""``improvement.automation``: when the lifecycle runs by itself (checklist 9.3, automatic re-training pipelines and
model lifecycle automation).

```yaml
improvement:
  automation:
    cron: "0 3 * * *"        # a five-field cron schedule, in UTC (03:00 every day); @daily, @hourly… too
    watch: true              # also re-run when what the sources list changes…
    watch_interval: 5m       # …polled this often (30s, 5m, 1h)
    evaluate: true           # score each build on evaluation.sets and check evaluation.gates
    release: true            # record each build as a candidate release
    promote_to: staging      # staging | production | null: promote the candidate when the policy allows it
    monitor_bias: 7d         # bias monitoring of live traffic: the bias suite on the questions served this window
    name: nightly-box        # the actor is automation:<name> (default: automation:<host name>)
```

One **cycle** (``flightdeck schedule --once``, or each firing of ``flightdeck schedule``) ingests and indexes,
evaluates, creates a candidate and promotes it through ``governance.approvals`` like anyone else: a stage that
needs approvals waits for them, a missed gate is never promoted. With ``monitor_bias``, each cycle then swaps the
people in the questions served in that window and asks them of the release in production (else staging): a gate of
``evaluation.gates`` on a bias metric that they miss makes the cycle ``bias_flagged``.

The cron schedule has the five fields of crontab(5) (minute hour day-of-month month day-of-week; ``*``, lists,
ranges, ``*/step``, ``a-b/step``, month and day names, 0 or 7 for Sunday) and crontab's rule that when both days
are restricted either one matching is enough. It is evaluated here, in UTC, so that ``flightdeck schedule`` fires
exactly when the crontab line or the GitHub Actions workflow that ``--export`` writes would.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flightdeck.core.durations import duration_seconds

__all__ = ["AutomationSettings", "CronExpression", "parse_cron", "parse_interval", "CronError"]

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_MONTHS = {name: n for n, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                                "nov", "dec"), start=1)}
_DAYS = {name: n for n, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_HELP = ("the five fields are minute hour day-of-month month day-of-week, in UTC, e.g. '0 3 * * *' (03:00 every day), "
         "'*/15 * * * *' (every 15 minutes), '0 6 * * mon-fri'")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # the most each month can have
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class CronError(ValueError):
    """A cron schedule that cannot be read; the message says which field and how to write it."""


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{field} {text!r} is not a number{hint}")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field} {number} is out of range {low}-{high}")
    return number


def _field(text: str, field: str, low: int, high: int) -> frozenset[int]:
    names = _MONTHS if field == "month" else _DAYS if field == "day of week" else {}
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field} {text!r} has an empty item between commas")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{field} {part!r}: the step after / must be a whole number of at least 1")
            step = int(step_text)
        if base == "*":
            first, last = low, high if field != "day of week" else 6
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, field, low, high, names), _value(b, field, low, high, names)
            if first > last:
                hint = " (Sunday ends a range as 7: 6-7, or write sat,sun)" if field == "day of week" else ""
                raise CronError(f"{field} {part!r}: a range runs from low to high{hint}")
        else:
            if slash:
                raise CronError(f"{field} {part!r}: a step needs a range or *: write {base}-{high}/{step} or "
                                f"*/{step}")
            first = last = _value(base, field, low, high, names)
        values.update(range(first, last + 1, step))
    if field == "day of week" and 7 in values:  # 7 is Sunday too
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron schedule (UTC): the values each field allows, and crontab's day rule."""

    text: str  # the five fields (a macro such as @daily expanded)
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 Sunday … 6 Saturday
    days_restricted: bool  # the day-of-month field does not start with *
    weekdays_restricted: bool

    def _day_matches(self, moment: datetime) -> bool:
        day = moment.day in self.days
        weekday = (moment.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day or weekday  # crontab(5): when both are restricted, either one matching is enough
        return day and weekday

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires at ``moment`` (UTC, to the minute)."""
        moment = moment.astimezone(UTC)
        return (moment.minute in self.minutes and moment.hour in self.hours and moment.month in self.months
                and self._day_matches(moment))

    def next_after(self, ts: float) -> float | None:
        """The first time after the unix time ``ts`` at which the schedule fires (a whole minute), or None when it
        never does within five years."""
        moment = datetime.fromtimestamp(ts, UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + timedelta(days=5 * 366)
        while moment < limit:
            if moment.month not in self.months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
                moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self._day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
            elif moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
            elif moment.minute not in self.minutes:
                later = [m for m in self.minutes if m > moment.minute]
                moment = (moment.replace(minute=min(later)) if later
                          else moment.replace(minute=0) + timedelta(hours=1))
            else:
                return moment.timestamp()
        return None

    def fires_like(self, other: CronExpression) -> bool:
        """Whether ``other`` fires at the same times however it is written (``*/1 * * * *`` and ``* * * * *``)."""
        return (self.minutes, self.hours, self.days, self.months, self.weekdays, self.days_restricted,
                self.weekdays_restricted) == (other.minutes, other.hours, other.days, other.months, other.weekdays,
                                              other.days_restricted, other.weekdays_restricted)


@lru_cache(maxsize=256)
def parse_cron(text: str) -> CronExpression:
    """Read a cron schedule (five fields, or a macro such as ``@daily``); :class:`CronError` says what is wrong."""
    raw = " ".join(str(text).split())
    if not raw:
        raise CronError(f"the cron schedule is empty; {_HELP}")
    if raw.startswith("@"):
        if raw.lower() not in _MACROS:
            raise CronError(f"{raw!r} is not a cron macro; use one of {', '.join(_MACROS)} or five fields: {_HELP}")
        raw = _MACROS[raw.lower()]
    parts = raw.split(" ")
    if len(parts) != 5:
        extra = " (a seconds or year field is not cron's)" if len(parts) in (6, 7) else ""
        raise CronError(f"{text!r} has {len(parts)} field(s), not 5{extra}; {_HELP}")
    try:
        sets = [_field(p, name, low, high) for p, (name, low, high) in zip(parts, _FIELDS, strict=True)]
    except CronError as exc:
        raise CronError(f"{text!r}: {exc}; {_HELP}") from None
    expr = CronExpression(raw, *sets, days_restricted=not parts[2].startswith("*"),
                          weekdays_restricted=not parts[4].startswith("*"))
    # a date that no month has (30 2 *, 31 4 *) never fires unless the day of week lets it
    if not (expr.days_restricted and expr.weekdays_restricted) and not any(
            d <= _DAYS_IN_MONTH[m - 1] for m in expr.months for d in expr.days):
        raise CronError(f"{text!r} never fires: no month it names has day {', '.join(map(str, sorted(expr.days)))}; "
                        f"{_HELP}")
    return expr


def parse_interval(value: str | int) -> int:
    """Seconds in ``30s``, ``5m``, ``1h``, ``1d`` or a plain number of seconds."""
    seconds = duration_seconds(str(value), bare_seconds=True)
    if seconds is None or seconds != int(seconds):
        raise ValueError(f"watch_interval {value!r}: write a number with a unit, e.g. 30s, 5m, 1h")
    seconds = int(seconds)
    if seconds < 1:
        raise ValueError(f"watch_interval {value!r}: at least 1s")
    if seconds > 7 * 86400:
        raise ValueError(f"watch_interval {value!r}: at most 7d; use cron for rarer runs")
    return seconds


def _host_name() -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:63].strip("-.")
    return name or "localhost"


class AutomationSettings(BaseModel):
    """``improvement.automation``: when a cycle runs (``cron``, ``watch``) and what it does (``evaluate``,
    ``release``, ``promote_to``); unset, nothing is scheduled and ``flightdeck schedule --once`` builds and
    evaluates."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cron: str | None = Field(None, description="a five-field cron schedule in UTC (minute hour day-of-month month "
                                               "day-of-week), e.g. '0 3 * * *', or @hourly, @daily, @weekly")
    watch: bool = Field(False, description="re-run when what the sources list (or the spec) changes, polled every "
                                           "watch_interval")
    watch_interval: str = Field("5m", description="how often watch lists the sources: 30s, 5m, 1h")
    evaluate: bool = Field(True, description="score each build on evaluation.sets and check evaluation.gates")
    release: bool = Field(False, description="record each build as a candidate release")
    promote_to: Literal["staging", "production"] | None = Field(
        None, description="promote the candidate to this stage when governance.approvals allows it (gates passed, "
                          "no approvals needed for that stage); never by override")
    monitor_bias: str | None = Field(
        None, description="bias monitoring of live traffic: each cycle runs the counterfactual bias suite on the "
                          "questions served in this window (24h, 7d) against the release in production (else "
                          "staging), judged by evaluation.gates on bias metrics; null: off")
    name: str | None = Field(None, description="the actor is automation:<name> (default: the host name)")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value)  # CronError is a ValueError: reported at improvement.automation.cron
            return " ".join(value.split())
        return value

    @field_validator("watch_interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"watch_interval {value!r}: write a duration such as 30s, 5m, 1h")
        parse_interval(value)
        return str(value).strip()

    @field_validator("monitor_bias", mode="before")
    @classmethod
    def _window(cls, value: object) -> str | None:
        if value is None:
            return None
        seconds = duration_seconds(value) if isinstance(value, str) else None
        if not seconds:
            raise ValueError(f"monitor_bias {value!r}: the window of served questions to monitor, a duration such as "
                             "24h or 7d (or null: off)")
        return value.strip()  # type: ignore[union-attr]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"name {value!r}: letters, digits, '.', '_' and '-' (at most 63), e.g. nightly-box")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AutomationSettings:
        if self.promote_to is not None and not self.release:
            raise ValueError(f"promote_to: {self.promote_to} promotes the candidate release each cycle creates; set "
                             "release: true as well (or remove promote_to)")
        if "watch_interval" in self.model_fields_set and not self.watch:
            raise ValueError("watch_interval is set but watch is false: set watch: true to re-run when the sources "
                             "change (or remove watch_interval)")
        return self

    @property
    def schedule(self) -> CronExpression | None:
        """The parsed ``cron``, or None."""
        return parse_cron(self.cron) if self.cron else None

    @property
    def watch_seconds(self) -> int:
        return parse_interval(self.watch_interval)

    @property
    def scheduled(self) -> bool:
        """Whether ``flightdeck schedule`` has anything to wait for."""
        return self.cron is not None or self.watch

    def actor_name(self) -> str:
        """``automation:<name>``: who the cycles act as in the audit log and the releases' events."""
        return f"automation:{self.name or _host_name()}"
