"""One `flightdeck eval` run from start to end: store the set, open a run in the runs table, score every question,
check the gates, compare with the previous run of the same set, write the reports, and close the run.

The caller (the project facade) hands in the system under test, the workspace and the settings; nothing here
reads a spec file or builds a component.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flightdeck.core.reporting import Reporter
from flightdeck.evaluation.gates import GateResult, check_gates, unknown_gate_metrics
from flightdeck.evaluation.metrics import LOWER_IS_BETTER
from flightdeck.evaluation.reports import REPORT_FORMAT, write_reports
from flightdeck.evaluation.runner import AnsweringSystem, EvalOptions, EvalResult, evaluate
from flightdeck.evaluation.sets import EvalSet, store_set
from flightdeck.models.trackers.base import RunRecord, Tracker
from flightdeck.models.trackers.builtin import ExperimentRuns
from flightdeck.spec.evaluation import Gate

__all__ = ["EvalRun", "run_evaluation", "build_report", "Validation", "ValidationResult"]


@dataclass
class ValidationResult:
    """What a validation suite (safety, bias…) measured: gateable metrics, each case it ran, a one-line summary."""

    name: str
    metrics: dict[str, float | None]
    cases: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metrics": self.metrics, "cases": self.cases, "summary": self.summary}


class Validation(Protocol):
    """A suite of checklist 4.3 run beside the question set (``evaluation.validations``): its metrics join the run's,
    so gates can name them (``injection_success_rate: "<= 0.05"``)."""

    name: str

    def run(self, reporter: Reporter | None = None) -> ValidationResult: ...


@dataclass
class EvalRun:
    """A finished evaluation: its run record, the scored result, the gates and the reports written."""

    run: RunRecord
    result: EvalResult
    gates: list[GateResult]
    previous: RunRecord | None
    report: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        """True: every gate passed; False: one was missed; None: the spec sets no gate."""
        return self.run.passed


def build_report(run: RunRecord, result: EvalResult, gates: list[GateResult], previous: RunRecord | None,
                 context: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: what every other format is written from."""
    deltas = {}
    if previous is not None:
        for name, value in result.metrics.items():
            before = previous.metrics.get(name)
            if isinstance(value, int | float) and isinstance(before, int | float):
                deltas[name] = round(value - before, 5)
    return {
        "format": REPORT_FORMAT,
        "run": {"id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
                "spec_hash": run.spec_hash, "git_commit": run.git_commit, "index_version": run.index_version,
                "dataset_version": run.dataset_version, **context},
        "set": {"name": result.set_name, "id": result.set_id, "counts": result.counts},
        "options": result.options,
        "metrics": result.metrics,
        "previous": None if previous is None else {"id": previous.id, "started_at": previous.started_at,
                                                   "metrics": previous.metrics},
        "deltas": deltas,
        "lower_is_better": sorted(LOWER_IS_BETTER),
        "gates": [g.to_dict() for g in gates],
        "passed": run.passed,
        "latencies_ms": result.latencies_ms,
        "questions": [q.to_dict() for q in result.questions],
    }


def run_evaluation(system: AnsweringSystem, workspace: Any, eval_set: EvalSet, *, embed: Callable[[list[str]], Any],
                   options: EvalOptions, gates: list[Gate], spec_hash: str, params: dict[str, Any],
                   context: dict[str, Any], git_commit: str | None = None, dataset_version: str | None = None,
                   report_dir: Path | None = None, reporter: Reporter | None = None,
                   trackers: Sequence[Tracker] = (), validations: Sequence[Validation] = (),
                   audit: Any = None) -> EvalRun:
    """Evaluate, record and report. ``context`` (project, generator, embedder…) goes into the report's run block.

    Reports go to ``report_dir`` (default ``<workspace>/reports/<run id>``) and into the artifact store, where
    the run's ``artifacts`` point. A failure after the run started marks it failed (with the error) and re-raises.
    Each of ``validations`` runs after the questions; its metrics join the run's before the gates are checked.
    Each of ``trackers`` then gets the finished run and the report files; one that fails is recorded in the
    run's ``tracked`` as ``error: …`` and does not fail the evaluation (the built-in runs table has the run).
    With ``audit`` (a :class:`~flightdeck.workspace.audit.AuditLog`), the run's end is an ``eval.finished`` entry.
    """
    unknown = unknown_gate_metrics(gates)
    if unknown:  # a typo is said before minutes of work
        check_gates(gates, {})
    set_id = store_set(workspace, eval_set)
    runs = ExperimentRuns(workspace, audit=audit)
    run = runs.start("eval", eval_set.name, spec_hash=spec_hash, params=params, git_commit=git_commit,
                     dataset_version=dataset_version, eval_set=set_id)
    try:
        result = evaluate(system, eval_set, embed, options, reporter)
        # a suite that reads the scored questions (the fairness of refusals by group) says so with takes_results
        suites = [v.run(reporter, results=result.questions) if getattr(v, "takes_results", False) else v.run(reporter)
                  for v in validations]
        for suite in suites:
            result.metrics.update(suite.metrics)
        run.index_version = result.index_version or None
        run.metrics = result.metrics
        gate_results = check_gates(gates, result.metrics)
        run.gates = [g.to_dict() for g in gate_results]
        run.passed = all(g.passed for g in gate_results) if gate_results else None
        run.status = "succeeded"
        previous = runs.previous(run)
        run.finished_at = time.time()
        report = build_report(run, result, gate_results, previous, context)
        report["validations"] = [s.to_dict() for s in suites]
        folder = report_dir or Path(workspace.root) / "reports" / run.id
        files = write_reports(report, folder)
        run.artifacts = {"report.json": workspace.artifacts.put_bytes(json.dumps(report, sort_keys=True).encode()),
                         **{p.name: workspace.artifacts.put_bytes(p.read_bytes())
                   for name, p in files.items() if name != "json"}}
        runs.finish(run)
    except BaseException as exc:
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        runs.finish(run)
        raise
    if trackers:
        for tracker in trackers:
            try:
                run.tracked[tracker.name] = tracker.log_run(run, files)
            except Exception as exc:  # the run is in the built-in table: a tracker that is down loses nothing
                run.tracked[tracker.name] = f"error: {type(exc).__name__}: {exc}"
        runs.finish(run)
        report["run"]["tracked"] = dict(run.tracked)
    return EvalRun(run, result, gate_results, previous, report, files)
