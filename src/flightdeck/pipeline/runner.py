"""Runs steps in order, skipping those whose inputs and config are unchanged, recording every step run."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update

from flightdeck.core import NullReporter, Reporter, RunHook, Step, StepRecord, StepResult, stable_hash
from flightdeck.errors import FlightdeckError
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX, Workspace
from flightdeck.workspace.audit import AuditLog, local_actor
from flightdeck.workspace.schema import runs, step_runs

# Step, StepResult, StepRecord, RunHook and stable_hash live in flightdeck.core (the ground floor that
# providers import); they are re-exported here for the pipeline's callers.
__all__ = ["Step", "StepResult", "StepRecord", "RunSummary", "RunHook", "Runner", "StepFailedError", "stable_hash"]

_log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did: its steps (a failed step included, with its counts), its error and its warnings.

    ``warnings`` are run-level (``{"source": "hook" | "plugin", "message": ...}``): a hook that failed after
    the fact, a hook that could not do its job (a lineage emitter that stopped sending), a plugin that could
    not load.
    What an item delivered only in part is in its step's ``counts["warnings"]``.
    """

    run_id: str
    status: str
    seconds: float
    steps: list[StepRecord]
    error: str | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "seconds": round(self.seconds, 3),
                "steps": [s.__dict__ for s in self.steps], "error": self.error, "warnings": list(self.warnings)}


class StepFailedError(FlightdeckError):
    """A step kept the work it could do, then failed the run (e.g. too many documents could not be ingested).

    ``counts`` are the step's counts, recorded with the failed step; the runner sets ``summary`` to the
    run's :class:`RunSummary` before the error leaves :meth:`Runner.run`, so that a caller (the CLI) can
    print what the run did and why it failed.
    """

    def __init__(self, message: str, counts: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.counts: dict[str, Any] = dict(counts or {})
        self.summary: RunSummary | None = None


class Runner:
    """Executes steps against one workspace (holding its writer lock).

    ``lineage`` (an OpenLineage emitter) and ``hooks`` are :class:`RunHook` objects told about every step. With
    ``audit``, a run whose spec hash differs from the last recorded one is a ``spec.changed`` entry and every run's
    end a ``run.finished`` entry (committed with the run's record), by ``actor`` (default: the OS user).
    """

    def __init__(self, workspace: Workspace, reporter: Reporter | None = None, *, lineage: RunHook | None = None,
                 hooks: Sequence[RunHook] = (), audit: AuditLog | None = None, actor: str = "") -> None:
        self.ws = workspace
        self.reporter = reporter or NullReporter()
        self.hooks: list[RunHook] = [*hooks, *([lineage] if lineage is not None else [])]
        self.audit = audit
        self.actor = actor or local_actor()
        self._warnings: list[dict[str, str]] = []

    def _transaction(self) -> Any:
        """A write transaction for the run's record and its audit entry (committed together)."""
        return self.ws.engine.begin() if self.audit is None else self.audit.transaction()

    def _warn(self, source: str, message: str) -> None:
        """A run-level warning: an event now, and a line of the run summary."""
        self._warnings.append({"source": source, "message": message})
        self.reporter.event("run_warning", source=source, message=message)

    def _notify(self, method: str, *args: Any) -> None:
        # After-the-fact notifications must not change a run's outcome or mask its real error; their
        # failures are warnings of the run, so that nobody believes lineage or a snapshot was recorded.
        for hook in self.hooks:
            try:
                getattr(hook, method)(*args, self.reporter)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                self.reporter.event("hook_failed", hook=type(hook).__name__, method=method, error=error)
                _log.warning("%s.%s failed: %s", type(hook).__name__, method, error)
                self._warnings.append({"source": "hook", "message": f"{type(hook).__name__}.{method} failed: {error}"})

    def _hook_warnings(self) -> None:
        for hook in self.hooks:
            try:
                lines = list(getattr(hook, "run_warnings", lambda: [])())
            except Exception as exc:  # a hook that cannot even say what went wrong is itself a warning
                lines = [f"run_warnings failed: {type(exc).__name__}: {exc}"]
            for line in lines:
                self._warn("hook", f"{type(hook).__name__}: {line}")

    def _can_skip(self, step: str, input_hash: str, config_hash: str) -> dict | None:
        # Skip only if the most recent real execution of this step succeeded with the same hashes: a
        # later failed or killed attempt may have changed the workspace since.
        with self.ws.engine.connect() as conn:
            row = conn.execute(
                select(step_runs).where(step_runs.c.step == step, step_runs.c.status != "skipped")
                .order_by(step_runs.c.id.desc()).limit(1)).mappings().first()
        if row and row["status"] == "succeeded" and row["input_hash"] == input_hash \
                and row["config_hash"] == config_hash:
            return dict(row)
        return None

    def run(self, steps: list[Step], spec_hash: str, warnings: Sequence[tuple[str, str]] = ()) -> RunSummary:
        """Run ``steps``; ``warnings`` are ``(source, message)`` pairs known before the run (broken plugins).

        A step that raises fails the run: the error is recorded in the runs table (``summary["error"]``) and
        raised again; a :class:`StepFailedError` carries the run's summary.
        """
        run_id = uuid.uuid4().hex
        started = time.time()
        self._warnings = []
        with self._transaction() as conn:
            conn.execute(insert(runs).values(id=run_id, started_at=started, status="running",
                                             spec_hash=spec_hash))
            if self.audit is not None:
                previous = self.audit.last("spec.changed")
                old = previous.details.get("new") if previous is not None else None
                if old != spec_hash:
                    self.audit.append(self.actor, "spec.changed", run_id, {"old": old, "new": spec_hash}, conn=conn)
        self.reporter.event("run_start", run_id=run_id)
        for source, message in warnings:
            self._warn(source, message)
        self._notify("run_started", run_id)
        records: list[StepRecord] = []
        status = "succeeded"
        failure: BaseException | None = None
        try:
            for step in steps:
                self._run_step(step, run_id, records)
        except BaseException as exc:
            status, failure = "failed", exc
            raise
        finally:
            # Hooks hear the end first, so that what they could not do (run_finished included) is in the summary.
            self._notify("run_finished", run_id, status)
            self._hook_warnings()
            finished = time.time()
            error = None if failure is None else (str(failure) or type(failure).__name__)
            summary = RunSummary(run_id, status, finished - started, records, error, list(self._warnings))
            if isinstance(failure, StepFailedError):
                failure.summary = summary
            with self._transaction() as conn:
                conn.execute(update(runs).where(runs.c.id == run_id).values(
                    finished_at=finished, status=status, summary=summary.to_dict()))
                if self.audit is not None:
                    self.audit.append(self.actor, "run.finished", run_id, {
                        "status": status, "spec_hash": spec_hash, "seconds": round(finished - started, 3),
                        "dataset_version": self.ws.get_state(CURRENT_DATASET),
                        "index_version": self.ws.get_state(CURRENT_INDEX), "error": error}, conn=conn)
            self.reporter.event("run_end", run_id=run_id, status=status, seconds=round(finished - started, 3),
                                warnings=len(summary.warnings))
        return summary

    def _run_step(self, step: Step, run_id: str, records: list[StepRecord]) -> None:
        """Run (or skip) ``step`` and append its record to ``records``, a failed step's too, then raise."""
        t0 = time.time()
        self.reporter.event("step_start", step=step.name)
        input_hash, config_hash = step.plan()
        previous = self._can_skip(step.name, input_hash, config_hash)
        if previous is not None:
            rec = StepRecord(step.name, "skipped", time.time() - t0, input_hash, config_hash,
                             previous["output_hash"], {})
            with self.ws.engine.begin() as conn:
                conn.execute(insert(step_runs).values(
                    run_id=run_id, step=step.name, status="skipped", started_at=t0, finished_at=time.time(),
                    input_hash=input_hash, config_hash=config_hash, output_hash=previous["output_hash"],
                    counts={}))
            self.reporter.event("step_end", step=step.name, status="skipped", seconds=rec.seconds, counts={})
            records.append(rec)
            self._notify("step_skipped", step, run_id, rec)
            return
        with self.ws.engine.begin() as conn:
            step_run_id = conn.execute(insert(step_runs).values(
                run_id=run_id, step=step.name, status="running", started_at=t0, input_hash=input_hash,
                config_hash=config_hash)).inserted_primary_key[0]
        try:
            for hook in self.hooks:
                hook.step_started(step, run_id, self.reporter)
            result = step.run(run_id, self.reporter)
        except BaseException as exc:
            # A StepFailedError says what the step did before it failed: keep its counts with the record.
            counts = exc.counts if isinstance(exc, StepFailedError) else {}
            error = f"{type(exc).__name__}: {exc}"
            with self.ws.engine.begin() as conn:
                conn.execute(update(step_runs).where(step_runs.c.id == step_run_id).values(
                    status="failed", finished_at=time.time(), error=error, counts=counts))
            self.reporter.event("step_end", step=step.name, status="failed", error=str(exc), counts=counts)
            records.append(StepRecord(step.name, "failed", time.time() - t0, input_hash, config_hash, None, counts,
                                      error))
            self._notify("step_failed", step, run_id, exc)
            raise
        seconds = time.time() - t0
        with self.ws.engine.begin() as conn:
            conn.execute(update(step_runs).where(step_runs.c.id == step_run_id).values(
                status="succeeded", finished_at=time.time(), output_hash=result.output_hash,
                counts=result.counts))
        self.reporter.event("step_end", step=step.name, status="succeeded", seconds=round(seconds, 3),
                            counts=result.counts)
        record = StepRecord(step.name, "succeeded", seconds, input_hash, config_hash, result.output_hash,
                            result.counts)
        records.append(record)
        self._notify("step_finished", step, run_id, record)
