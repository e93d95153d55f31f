"""The built-in runs table: every evaluation and tuning run in the workspace's ``experiment_runs`` table.

A run is written when it starts (status ``running``) and again when it ends (``succeeded`` or ``failed``,
with its metrics and gates), so a killed run stays visible as one that never finished.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import desc, select

from flightdeck.errors import FlightdeckError
from flightdeck.models.trackers.base import RunRecord
from flightdeck.workspace.audit import local_actor
from flightdeck.workspace.schema import experiment_runs

__all__ = ["ExperimentRuns", "git_commit"]

_PREFIX = {"eval": "ev_", "tune": "tu_", "trial": "tr_"}


def git_commit(folder: Path) -> str | None:
    """HEAD of the git repository holding ``folder`` (with ``+dirty`` left out: the params say so), or None."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def _record(row: Any) -> RunRecord:
    m = row._mapping
    return RunRecord(m["id"], m["kind"], m["name"], m["started_at"], m["spec_hash"], m["status"], m["finished_at"],
                     m["git_commit"], m["index_version"], m["dataset_version"], m["eval_set"], dict(m["params"]),
                     dict(m["metrics"]), list(m["gates"]), None if m["passed"] is None else bool(m["passed"]),
                     dict(m["artifacts"]), m["error"], dict(m["tracked"] or {}))


class ExperimentRuns:
    """The runs of one workspace. With ``audit`` (a :class:`~flightdeck.workspace.audit.AuditLog`), the end of an
    evaluation run or a tuning study is an entry (``eval.finished``, ``tune.finished``) by ``actor`` (default: the OS
    user), committed with the run's outcome; a study's trials are not entries of their own (the study's stands for
    them)."""

    def __init__(self, workspace: Any, *, audit: Any = None, actor: str | None = None) -> None:
        self._ws = workspace
        self._audit = audit
        self._actor = actor
        self._audited: set[str] = set()  # runs already recorded (finish is called again once trackers have it)

    def start(self, kind: str, name: str, *, spec_hash: str, params: dict[str, Any], git_commit: str | None = None,
              index_version: str | None = None, dataset_version: str | None = None,
              eval_set: str | None = None) -> RunRecord:
        run = RunRecord(_PREFIX.get(kind, "run_") + secrets.token_hex(8), kind, name, time.time(), spec_hash,
                        git_commit=git_commit, index_version=index_version, dataset_version=dataset_version,
                        eval_set=eval_set, params=params)
        with self._ws.engine.begin() as conn:
            conn.execute(experiment_runs.insert().values(
                id=run.id, kind=kind, name=name, started_at=run.started_at, status=run.status, spec_hash=spec_hash,
                git_commit=git_commit, index_version=index_version, dataset_version=dataset_version,
                eval_set=eval_set, params=params, metrics={}, gates=[], artifacts={}, tracked={}))
        return run

    def finish(self, run: RunRecord) -> RunRecord:
        """Write the run's outcome (status, metrics, gates, artifacts, error) as it is now."""
        run.finished_at = run.finished_at or time.time()
        with (self._ws.engine.begin() if self._audit is None else self._audit.transaction()) as conn:
            conn.execute(experiment_runs.update().where(experiment_runs.c.id == run.id).values(
                finished_at=run.finished_at, status=run.status, metrics=run.metrics, gates=run.gates,
                passed=None if run.passed is None else int(run.passed), artifacts=run.artifacts, error=run.error,
                index_version=run.index_version, params=run.params, tracked=run.tracked))
            if self._audit is not None and run.kind in ("eval", "tune") and run.id not in self._audited:
                self._audit.append(self._actor or local_actor(), f"{run.kind}.finished", run.id, {
                    "name": run.name, "status": run.status, "passed": run.passed, "eval_set": run.eval_set,
                    "index_version": run.index_version, "dataset_version": run.dataset_version,
                    "spec_hash": run.spec_hash, "error": run.error}, conn=conn)
                self._audited.add(run.id)
        return run

    def get(self, run_id: str) -> RunRecord:
        """A run by id or unique prefix."""
        with self._ws.engine.connect() as conn:
            rows = conn.execute(select(experiment_runs).where(experiment_runs.c.id.startswith(run_id, autoescape=True))
                                .limit(2)).all()
        if len(rows) != 1:
            raise FlightdeckError(f"no run {run_id!r}" if not rows else f"run id {run_id!r} is ambiguous; give more "
                                  "of it" + "; `flightdeck eval runs` lists them")
        return _record(rows[0])

    def list(self, kind: str | None = None, name: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The newest runs first."""
        query = select(experiment_runs).order_by(desc(experiment_runs.c.started_at)).limit(limit)
        if kind:
            query = query.where(experiment_runs.c.kind == kind)
        if name:
            query = query.where(experiment_runs.c.name == name)
        with self._ws.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).all()]

    def previous(self, run: RunRecord) -> RunRecord | None:
        """The last finished run of the same kind and name before ``run`` (what a report compares against)."""
        query = (select(experiment_runs).where(experiment_runs.c.kind == run.kind, experiment_runs.c.name == run.name,
                                               experiment_runs.c.status == "succeeded",
                                               experiment_runs.c.started_at < run.started_at,
                                               experiment_runs.c.id != run.id)
                 .order_by(desc(experiment_runs.c.started_at)).limit(1))
        with self._ws.engine.connect() as conn:
            row = conn.execute(query).first()
        return _record(row) if row else None
