"""The contracts of the pipeline: a step, its result and record, and the hooks that observe a run.

Providers (versioning hooks, lineage emitters) and the runner both use these; neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from flightdeck.core.reporting import Reporter

__all__ = ["Step", "StepResult", "StepRecord", "RunHook"]


@dataclass
class StepResult:
    output_hash: str
    counts: dict[str, Any] = field(default_factory=dict)


class Step(Protocol):
    """A unit of the pipeline. ``plan`` computes the hashes (cheap); ``run`` does the work."""

    name: str

    def plan(self) -> tuple[str, str]:
        """``(input_hash, config_hash)``."""
        ...

    def run(self, run_id: str, reporter: Reporter) -> StepResult: ...


@dataclass
class StepRecord:
    step: str
    status: str  # succeeded | skipped | failed
    seconds: float
    input_hash: str
    config_hash: str
    output_hash: str | None
    counts: dict[str, Any]
    error: str | None = None


class RunHook:
    """Observes a run: versioning providers (DVC) and lineage emitters (OpenLineage) plug in here.

    Subclasses override what they need. Only ``step_started`` may stop the pipeline: it runs right before
    a step does its work (never for a skipped step), so an exception there fails the step before it has
    written anything. Exceptions from the other methods, which report what already happened, are turned
    into a ``hook_failed`` event and do not change the run's outcome.
    """

    def run_started(self, run_id: str, reporter: Reporter) -> None:
        """The run ``run_id`` begins."""

    def step_started(self, step: Step, run_id: str, reporter: Reporter) -> None:
        """``step`` is about to run (its inputs or config changed)."""

    def step_skipped(self, step: Step, run_id: str, record: StepRecord, reporter: Reporter) -> None:
        """``step`` was skipped: its inputs and config are those of its last successful run."""

    def step_finished(self, step: Step, run_id: str, record: StepRecord, reporter: Reporter) -> None:
        """``step`` succeeded."""

    def step_failed(self, step: Step, run_id: str, error: BaseException, reporter: Reporter) -> None:
        """``step`` raised ``error`` (the run fails with it)."""

    def run_finished(self, run_id: str, status: str, reporter: Reporter) -> None:
        """The run ended with ``status`` (succeeded | failed)."""

    def run_warnings(self) -> list[str]:
        """What this hook could not do in the run, read after ``run_finished`` (e.g. a lineage emitter that
        stopped sending); each line becomes a warning of the run summary."""
        return []
