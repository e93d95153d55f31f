"""Runs steps in order, skipping those whose inputs and config are unchanged, recording every step run."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import insert, select, update

from flightdeck.pipeline.progress import NullReporter, Reporter
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import runs, step_runs

__all__ = ["Step", "StepResult", "StepRecord", "RunSummary", "Runner", "stable_hash"]


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


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


@dataclass
class RunSummary:
    run_id: str
    status: str
    seconds: float
    steps: list[StepRecord]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "seconds": round(self.seconds, 3),
                "steps": [s.__dict__ for s in self.steps]}


class Runner:
    """Executes steps against one workspace (holding its writer lock)."""

    def __init__(self, workspace: Workspace, reporter: Reporter | None = None) -> None:
        self.ws = workspace
        self.reporter = reporter or NullReporter()

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

    def run(self, steps: list[Step], spec_hash: str) -> RunSummary:
        run_id = uuid.uuid4().hex
        started = time.time()
        with self.ws.engine.begin() as conn:
            conn.execute(insert(runs).values(id=run_id, started_at=started, status="running",
                                             spec_hash=spec_hash))
        self.reporter.event("run_start", run_id=run_id)
        records: list[StepRecord] = []
        status = "succeeded"
        try:
            for step in steps:
                records.append(self._run_step(step, run_id))
        except BaseException:
            status = "failed"
            raise
        finally:
            finished = time.time()
            summary = RunSummary(run_id, status, finished - started, records)
            with self.ws.engine.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == run_id).values(
                    finished_at=finished, status=status, summary=summary.to_dict()))
            self.reporter.event("run_end", run_id=run_id, status=status, seconds=round(finished - started, 3))
        return summary

    def _run_step(self, step: Step, run_id: str) -> StepRecord:
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
            return rec
        with self.ws.engine.begin() as conn:
            step_run_id = conn.execute(insert(step_runs).values(
                run_id=run_id, step=step.name, status="running", started_at=t0, input_hash=input_hash,
                config_hash=config_hash)).inserted_primary_key[0]
        try:
            result = step.run(run_id, self.reporter)
        except BaseException as exc:
            with self.ws.engine.begin() as conn:
                conn.execute(update(step_runs).where(step_runs.c.id == step_run_id).values(
                    status="failed", finished_at=time.time(), error=f"{type(exc).__name__}: {exc}"))
            self.reporter.event("step_end", step=step.name, status="failed", error=str(exc))
            raise
        seconds = time.time() - t0
        with self.ws.engine.begin() as conn:
            conn.execute(update(step_runs).where(step_runs.c.id == step_run_id).values(
                status="succeeded", finished_at=time.time(), output_hash=result.output_hash,
                counts=result.counts))
        self.reporter.event("step_end", step=step.name, status="succeeded", seconds=round(seconds, 3),
                            counts=result.counts)
        return StepRecord(step.name, "succeeded", seconds, input_hash, config_hash, result.output_hash,
                          result.counts)
