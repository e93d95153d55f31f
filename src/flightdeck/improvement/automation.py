"""Lifecycle automation (checklist 9.3, automatic re-training pipelines and model lifecycle automation).

One **cycle** (:class:`AutomationCycle`) walks the lifecycle the way a person would, as the actor
``automation:<name>``:

1. **detect** — a fingerprint of what the sources list (each item's URI and content hash, as the ingest step's own
   scan sees them: nothing is parsed, chunked or embedded), the spec's hash and the evaluation sets' bytes;
2. **run** — ingest, chunk, embed and index (unchanged steps skip, as in ``flightdeck run``);
3. **evaluate** — ``evaluation.sets`` scored and ``evaluation.gates`` checked; skipped when nothing changed since a
   cycle that evaluated this very index version;
4. **release** — the build recorded as a candidate release (the existing one when its content is the same);
5. **promote** — to ``promote_to`` through :meth:`~flightdeck.governance.releases.Releases.promote`, the one gate
   every promotion passes: a stage that needs approvals waits for them (``waiting_for_approval``), and a release that
   missed a gate is never promoted by the automation, not even to a stage the policy leaves free. Nothing is ever
   overridden;
6. **monitor** (with ``monitor_bias: 7d``) — bias monitoring of live traffic: the counterfactual bias suite of
   ``flightdeck redteam --traces`` on the questions served in that window, against the release serving them
   (production, else staging), its results kept on the release; a gate of ``evaluation.gates`` on a bias metric
   (``counterfactual_refusal_gap: "<= 0.05"``) that the live questions miss makes the cycle ``bias_flagged``.

A step that fails stops the cycle; every cycle that did something (and every scheduled one that could not, say
because another run held the workspace) is one entry of the audit log (``automation.cycle``), with each step's
outcome, and a row of the ``automation_cycles`` table that the audit log's retention never prunes:
``flightdeck schedule history`` lists them. The whole cycle holds the workspace's writer lock, so two
cycles (or a cycle and a ``flightdeck run``) never build one workspace at once.

The :class:`Scheduler` is the long-lived loop of ``flightdeck schedule``: the cron schedule (UTC) and the watch
poll, one cycle at a time in the calling thread, stopped between steps by :class:`StopSignal` (set from SIGTERM or
SIGINT). It keeps no library of its own: APScheduler 3 reads a numeric day of week as Monday-based and ANDs the two
day fields, so it would not fire when the crontab line that ``--export cron`` writes fires;
:class:`~flightdeck.spec.automation.CronExpression` follows crontab(5).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from flightdeck.core import stable_hash
from flightdeck.data.manifest import SourceBinding, scan_sources
from flightdeck.errors import WorkspaceError
from flightdeck.evaluation.gates import check_gates
from flightdeck.governance.releases import Actor, PolicyRefused, Release, ReleaseError
from flightdeck.spec.automation import AutomationSettings, parse_cron
from flightdeck.spec.evaluation import Gate
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX, Workspace
from flightdeck.workspace.schema import automation_cycles

__all__ = ["AutomationCycle", "CycleResult", "StepOutcome", "Scheduler", "StopSignal", "cycle_history",
           "sources_fingerprint", "export_cron", "export_github_actions", "watch_schedule", "ACTION", "LAST_STATE",
           "OK_STATUSES", "TRIGGERS"]

log = logging.getLogger("flightdeck.automation")

#: the audit action of a cycle
ACTION = "automation.cycle"
#: the workspace state row that remembers the last cycle that ran its steps (fingerprint, index, evaluation)
LAST_STATE = "automation/last"
#: cron: the schedule fired; watch: the poll found a change (or --once --if-changed); once: run now, whatever changed
TRIGGERS = ("cron", "watch", "once")
#: the outcomes of a cycle that need nobody's attention (exit 0 of --once)
OK_STATUSES = frozenset({"succeeded", "unchanged", "waiting_for_approval"})
_STAGE_ORDER = {"candidate": 0, "staging": 1, "production": 2}


@dataclass
class StepOutcome:
    """One step of a cycle: ``status`` is ok, changed, unchanged, skipped, created, exists, promoted, blocked,
    waiting_for_approval, refused, gates_failed, bias_flagged or failed; ``detail`` says it in words."""

    step: str
    status: str
    seconds: float = 0.0
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


@dataclass
class CycleResult:
    """What one cycle did. ``status``: succeeded, unchanged (a watch poll that found nothing new: not recorded),
    waiting_for_approval, gates_failed, refused (the policy or the automation's own rule kept it from promoting),
    bias_flagged (the live questions missed a bias gate), failed (a step failed), busy (another run held the
    workspace) or interrupted (stopped by a signal)."""

    id: str
    trigger: str
    actor: str
    started_at: float
    status: str = "running"
    finished_at: float | None = None
    fingerprint: str | None = None
    changed: bool | None = None
    steps: list[StepOutcome] = field(default_factory=list)
    run_id: str | None = None
    dataset_version: str | None = None
    index_version: str | None = None
    eval_run: str | None = None
    gates_passed: bool | None = None
    release: str | None = None
    release_name: str | None = None
    release_created: bool | None = None
    stage: str | None = None
    promoted_to: str | None = None
    error: str | None = None
    recorded: bool = False
    audit_seq: int | None = None

    @property
    def ok(self) -> bool:
        """Nothing needs attention: succeeded, unchanged, waiting for approval (or a watch poll that found the
        workspace busy: the next poll tries again)."""
        return self.status in OK_STATUSES or (self.trigger == "watch" and self.status == "busy")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = [s.to_dict() for s in self.steps]
        out["ok"] = self.ok
        return out

    def summary(self) -> str:
        """One line for people: the cycle, its status and each step's word."""
        steps = "; ".join(f"{s.step}: {s.detail or s.status}" for s in self.steps)
        return f"cycle {self.id} ({self.trigger}) {self.status}" + (f" — {steps}" if steps else "")


class StopSignal:
    """Asks a cycle or the scheduler to stop at the next step. Setting it takes no lock, so a signal handler may
    set it whatever the main thread is doing (a :class:`threading.Event` could deadlock there)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str = "stop requested") -> None:
        self.reason = reason

    def is_set(self) -> bool:
        return self.reason is not None


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def sources_fingerprint(bindings: Sequence[SourceBinding], ws: Workspace, *, spec_hash: str,
                        files: Sequence[Path] = ()) -> str:
    """What a cycle's inputs are now: each source item's URI and content hash (the ingest step's own scan, so a
    file touched but not changed is no change; nothing is parsed), the items the sources could not list, the spec's
    hash and the bytes of ``files`` (the evaluation sets)."""
    manifest = scan_sources(list(bindings), ws)
    return stable_hash({"sources": manifest.digest, "failures": manifest.failures, "spec": spec_hash,
                        "files": {str(p): _file_digest(Path(p)) for p in files}})


def _short(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


class AutomationCycle:
    """One cycle of ``settings`` over a project's workspace, given the project's verbs (the facade,
    :meth:`flightdeck.project.Project.automation_cycle`, builds it):

    - ``fingerprint()``: :func:`sources_fingerprint` of the project's sources;
    - ``build()``: the project's run, *without* taking the writer lock (the cycle holds it); it returns a run summary
      (``run_id``, ``steps``) or raises an error that may carry one as ``summary``;
    - ``evaluate()``: an evaluation run (``run.id``, ``passed``, ``gates``), or None when the spec has no set;
    - ``create_release(actor, comment)``: ``(release, created)``;
    - ``monitor(release_id)`` (with ``monitor_bias``): the bias suite of ``flightdeck redteam --traces`` on that
      release (its output, with ``questions``: how many served questions it swapped), or None when no question was
      served in the window; ``bias_gates`` are the spec's gates on bias metrics that judge it.
    """

    def __init__(self, settings: AutomationSettings, *, workspace: Workspace, audit: Any, releases: Any,
                 fingerprint: Callable[[], str], build: Callable[[], Any], evaluate: Callable[[], Any] | None,
                 create_release: Callable[[Actor, str | None], tuple[Release, bool]], actor: Actor,
                 monitor: Callable[[str], dict[str, Any] | None] | None = None, bias_gates: Sequence[Gate] = (),
                 clock: Callable[[], float] = time.time, reporter: Any = None) -> None:
        self.settings = settings
        self.workspace = workspace
        self.audit = audit
        self.releases = releases
        self.fingerprint = fingerprint
        self.build = build
        self.evaluate = evaluate
        self.create_release = create_release
        self.actor = actor
        self.monitor = monitor
        self.bias_gates = list(bias_gates)
        self.clock = clock
        self.reporter = reporter

    # --- the cycle ----------------------------------------------------------------------------------------------
    def run(self, trigger: str = "once", *, stop: StopSignal | None = None) -> CycleResult:
        """Run one cycle. ``trigger`` ``watch`` goes on only when the fingerprint changed since the last cycle (an
        unchanged poll is ``unchanged`` and recorded nowhere); ``cron`` and ``once`` always go on. Never raises for
        a failed step: the result (and the audit entry) says what failed."""
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger {trigger!r}: one of {', '.join(TRIGGERS)}")
        cycle = CycleResult("cy_" + uuid.uuid4().hex[:16], trigger, self.actor.name, self.clock())
        last = self._last()
        t0 = time.perf_counter()
        try:
            cycle.fingerprint = self.fingerprint()
        except Exception as exc:  # noqa: BLE001 - a source that cannot be listed is this cycle's failure
            cycle.error = f"detect: could not list the sources: {type(exc).__name__}: {exc}"
            self._add(cycle, StepOutcome("detect", "failed", time.perf_counter() - t0, cycle.error))
            # a watch poll that fails is retried at the next poll; recording each would flood the log
            return self._finish(cycle, "failed", record=trigger != "watch", remember=False)
        cycle.changed = last is None or cycle.fingerprint != last.get("fingerprint")
        if last is None:
            detail = "no cycle before this one"
        elif cycle.changed:
            detail = f"the sources, the spec or the evaluation sets changed since cycle {last.get('cycle')}"
        else:
            detail = f"nothing changed since cycle {last.get('cycle')}"
        self._add(cycle, StepOutcome("detect", "changed" if cycle.changed else "unchanged", time.perf_counter() - t0,
                                     detail, {"fingerprint": _short(cycle.fingerprint, 16)}))
        if trigger == "watch" and not cycle.changed:
            return self._finish(cycle, "unchanged", record=False, remember=False)
        lock = contextlib.ExitStack()
        try:
            lock.enter_context(self.workspace.writer_lock())
        except WorkspaceError:
            cycle.error = ("another `flightdeck run` or automation cycle is writing this workspace; this cycle did "
                           "nothing (the next one will)")
            return self._finish(cycle, "busy", record=trigger != "watch", remember=False)
        with lock:
            status = self._steps(cycle, stop)
            if status not in ("failed", "interrupted") and self.settings.monitor_bias:
                status = self._monitor_bias(cycle, stop, status)
        # an interrupted cycle is not remembered: the next watch poll still sees its change and finishes the job
        return self._finish(cycle, status, record=True, remember=status != "interrupted")

    def _steps(self, cycle: CycleResult, stop: StopSignal | None) -> str:
        last = self._last() or {}

        def interrupted(step: str) -> bool:
            if stop is not None and stop.is_set():
                cycle.error = f"stopped before {step}: {stop.reason}"
                self._add(cycle, StepOutcome(step, "skipped", 0.0, cycle.error))
                return True
            return False

        # run: ingest, chunk, embed, index
        if interrupted("run"):
            return "interrupted"
        t0 = time.perf_counter()
        try:
            summary = self.build()
        except Exception as exc:  # noqa: BLE001 - a failed build stops the cycle, recorded
            partial = getattr(exc, "summary", None)
            cycle.run_id = getattr(partial, "run_id", None)
            cycle.error = f"run: {exc}"
            self._add(cycle, StepOutcome("run", "failed", time.perf_counter() - t0, str(exc),
                                         {"run_id": cycle.run_id, "type": type(exc).__name__}))
            return "failed"
        cycle.run_id = summary.run_id
        cycle.dataset_version = self.workspace.get_state(CURRENT_DATASET)
        cycle.index_version = self.workspace.get_state(CURRENT_INDEX)
        built = [s.step for s in summary.steps if s.status == "succeeded"]
        self._add(cycle, StepOutcome(
            "run", "ok", time.perf_counter() - t0,
            f"run {_short(summary.run_id)}: " + (f"rebuilt {', '.join(built)}" if built else "nothing to rebuild")
            + f", index {_short(cycle.index_version)}",
            {"run_id": summary.run_id, "steps": {s.step: s.status for s in summary.steps},
             "dataset_version": cycle.dataset_version, "index_version": cycle.index_version}))

        # evaluate: the sets and the gates
        if interrupted("evaluate"):
            return "interrupted"
        gates_failed = self._evaluate(cycle, last)
        if gates_failed is None:
            return "failed"

        # release: a candidate of this build
        if interrupted("release"):
            return "interrupted"
        if not self.settings.release:
            self._add(cycle, StepOutcome("release", "skipped", 0.0, "release: false"))
            return "gates_failed" if gates_failed else "succeeded"
        t0 = time.perf_counter()
        try:
            release, created = self.create_release(self.actor, f"automation cycle {cycle.id} ({cycle.trigger})")
        except Exception as exc:  # noqa: BLE001
            cycle.error = f"release: {exc}"
            self._add(cycle, StepOutcome("release", "failed", time.perf_counter() - t0, str(exc),
                                         {"type": type(exc).__name__}))
            return "failed"
        cycle.release, cycle.release_name, cycle.release_created = release.id, release.name, created
        cycle.stage = release.stage
        self._add(cycle, StepOutcome(
            "release", "created" if created else "exists", time.perf_counter() - t0,
            f"created candidate {release.name} ({release.id})" if created
            else f"{release.name} ({release.stage}) already records this build",
            {"release": release.id, "name": release.name, "gates_passed": release.gates_passed}))

        # promote: through the policy, never overriding it
        if interrupted("promote"):
            return "interrupted"
        target = self.settings.promote_to
        if target is None:
            self._add(cycle, StepOutcome("promote", "skipped", 0.0, "promote_to: null"))
            return "gates_failed" if gates_failed else "succeeded"
        outcome = self._promote(cycle, release, target)
        if gates_failed or outcome == "gates_failed":
            return "gates_failed"
        return outcome

    def _evaluate(self, cycle: CycleResult, last: dict[str, Any]) -> bool | None:
        """The evaluate step: whether a gate was missed (None: the step failed)."""
        if not self.settings.evaluate:
            self._add(cycle, StepOutcome("evaluate", "skipped", 0.0, "evaluate: false"))
            return False
        if self.evaluate is None:
            self._add(cycle, StepOutcome("evaluate", "skipped", 0.0, "the spec has no evaluation.sets: nothing to "
                                                                      "measure (add a set, or set evaluate: false)"))
            return False
        if (last.get("eval_run") and last.get("fingerprint") == cycle.fingerprint
                and last.get("index_version") == cycle.index_version):
            cycle.eval_run, cycle.gates_passed = last["eval_run"], last.get("gates_passed")
            self._add(cycle, StepOutcome("evaluate", "gates_failed" if cycle.gates_passed is False else "skipped", 0.0,
                                         f"nothing changed since cycle {last.get('cycle')}: its evaluation "
                                         f"{cycle.eval_run} of index {_short(cycle.index_version)} stands"
                                         + (" (it missed a gate)" if cycle.gates_passed is False else ""),
                                         {"eval_run": cycle.eval_run, "gates_passed": cycle.gates_passed}))
            return cycle.gates_passed is False
        t0 = time.perf_counter()
        try:
            evaluation = self.evaluate()
        except Exception as exc:  # noqa: BLE001
            cycle.error = f"evaluate: {exc}"
            self._add(cycle, StepOutcome("evaluate", "failed", time.perf_counter() - t0, str(exc),
                                         {"type": type(exc).__name__}))
            return None
        cycle.eval_run, cycle.gates_passed = evaluation.run.id, evaluation.passed
        gates = [g.to_dict() for g in evaluation.gates]
        missed = [g["gate"] + (f" (measured {g['value']})" if g.get("value") is not None else "")
                  for g in gates if not g["passed"]]
        if evaluation.passed is None:
            detail = f"evaluation {evaluation.run.id}: no gates set (evaluation.gates)"
        elif missed:
            detail = f"evaluation {evaluation.run.id}: missed gate(s) " + ", ".join(missed)
        else:
            detail = f"evaluation {evaluation.run.id}: every gate passed"
        self._add(cycle, StepOutcome("evaluate", "gates_failed" if missed else "ok", time.perf_counter() - t0, detail,
                                     {"eval_run": evaluation.run.id, "gates_passed": evaluation.passed,
                                      "gates": gates}))
        return bool(missed)

    def _promote(self, cycle: CycleResult, release: Release, target: str) -> str:
        t0 = time.perf_counter()

        def outcome(status: str, detail: str, cycle_status: str, **data: Any) -> str:
            self._add(cycle, StepOutcome("promote", status, time.perf_counter() - t0, detail,
                                         {"to": target, **data}))
            return cycle_status

        release = self.releases.get(release.id)  # its stage now
        if release.stage in _STAGE_ORDER and _STAGE_ORDER[release.stage] >= _STAGE_ORDER[target]:
            return outcome("skipped", f"{release.name} is already in {release.stage}", "succeeded")
        # the automation's own rule, stricter than a policy that leaves a stage free: only what passed its gates
        if release.gates_passed is False:
            missed = ", ".join(release.summary.get("gates_missed") or ["?"])
            return outcome("blocked", f"{release.name} missed gate(s) {missed}: the automation never promotes it "
                                      "(an admin may, with a recorded reason: flightdeck release promote "
                                      "--override-reason)", "gates_failed")
        if release.gates_passed is None and release.summary.get("gates_configured"):
            return outcome("blocked", f"{release.name} has no evaluation with the spec's gates: the automation "
                                      "promotes only what passed them (set evaluate: true)", "refused")
        try:
            moved = self.releases.promote(release.id, self.actor, target, comment=f"automation cycle {cycle.id}")
        except PolicyRefused as exc:
            check = self.releases.check_policy(release, target)
            short = len(check.approvals) < check.required
            others = len(check.missing) - (1 if short else 0) + len(check.gates_missing)
            reasons = list(getattr(exc, "reasons", []) or [])
            if short and others == 0:
                return outcome("waiting_for_approval",
                               f"{release.name} waits for approval to enter {target}: {len(check.approvals)} of "
                               f"{check.required} (`flightdeck release approve {release.name}`; the next cycle "
                               "promotes it once the policy allows)", "waiting_for_approval", reasons=reasons)
            cycle.error = f"promote: {exc}"
            return outcome("refused", str(exc), "refused", reasons=reasons)
        except ReleaseError as exc:  # an archived release, a changed artifact: not for the automation to force
            cycle.error = f"promote: {exc}"
            return outcome("refused", str(exc), "refused", type=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001
            cycle.error = f"promote: {exc}"
            return outcome("failed", str(exc), "failed", type=type(exc).__name__)
        cycle.promoted_to, cycle.stage = target, moved.stage
        return outcome("promoted", f"promoted {moved.name} to {target}", "succeeded")

    def _monitor_bias(self, cycle: CycleResult, stop: StopSignal | None, status: str) -> str:
        """The monitor step: the bias suite on the questions served in the last ``monitor_bias`` against the release
        that serves them (production, else staging), judged by the spec's gates on bias metrics."""
        window = self.settings.monitor_bias
        if stop is not None and stop.is_set():
            cycle.error = f"stopped before monitor: {stop.reason}"
            self._add(cycle, StepOutcome("monitor", "skipped", 0.0, cycle.error))
            return "interrupted"
        t0 = time.perf_counter()
        serving = next((r for stage in ("production", "staging") for r in self.releases.list(stage)), None)
        if serving is None:
            self._add(cycle, StepOutcome("monitor", "skipped", 0.0, "no release in production or staging: nothing "
                                                                     "serves live traffic to monitor"))
            return status
        if self.monitor is None:
            self._add(cycle, StepOutcome("monitor", "skipped", 0.0, "this project cannot run the bias suite"))
            return status
        try:
            out = self.monitor(serving.id)
        except Exception as exc:  # noqa: BLE001 - monitoring that fails is recorded; the build stands
            cycle.error = f"monitor: {exc}"
            self._add(cycle, StepOutcome("monitor", "failed", time.perf_counter() - t0, str(exc),
                                         {"release": serving.id, "type": type(exc).__name__}))
            return "failed"
        if out is None:
            self._add(cycle, StepOutcome("monitor", "skipped", time.perf_counter() - t0,
                                         f"no question was served in the last {window}", {"release": serving.id}))
            return status
        metrics = out["suites"]["bias_fairness"]["metrics"]
        gates = [g.to_dict() for g in check_gates(self.bias_gates, metrics)] if self.bias_gates else []
        missed = [g["gate"] + (f" (measured {g['value']:.3f})" if g.get("value") is not None else "")
                  for g in gates if not g["passed"]]
        data = {"release": serving.id, "name": serving.name, "window": window, "questions": out.get("questions"),
                "metrics": metrics, "gates": gates, "artifact": out.get("artifact")}
        head = (f"bias of {serving.name} ({serving.stage}) on {out.get('questions')} question(s) served in the last "
                f"{window}: ")
        if missed:
            cycle.error = "monitor: bias gate(s) missed: " + ", ".join(missed)
            self._add(cycle, StepOutcome("monitor", "bias_flagged", time.perf_counter() - t0,
                                         head + "missed gate(s) " + ", ".join(missed), data))
            return status if status not in ("succeeded", "waiting_for_approval") else "bias_flagged"
        verdict = ("every bias gate passed" if gates else
                   "measured, no gate on a bias metric (evaluation.gates: counterfactual_refusal_gap: '<= 0.05')")
        self._add(cycle, StepOutcome("monitor", "ok", time.perf_counter() - t0,
                                     head + verdict + "; " + out["suites"]["bias_fairness"]["summary"], data))
        return status

    # --- records ----------------------------------------------------------------------------------------------
    def _add(self, cycle: CycleResult, step: StepOutcome) -> None:
        cycle.steps.append(step)
        if self.reporter is not None:
            self.reporter.event("automation_step", cycle=cycle.id, **step.to_dict())

    def _last(self) -> dict[str, Any] | None:
        raw = self.workspace.get_state(LAST_STATE)
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _finish(self, cycle: CycleResult, status: str, *, record: bool, remember: bool) -> CycleResult:
        cycle.status = status
        cycle.finished_at = self.clock()
        if record:
            details = {k: v for k, v in cycle.to_dict().items()
                       if k not in ("id", "actor", "recorded", "audit_seq", "ok")}
            try:
                with self.audit.transaction() as conn:
                    entry = self.audit.append(cycle.actor, ACTION, cycle.id, details, conn=conn)
                    conn.execute(insert(automation_cycles).values(
                        id=cycle.id, started_at=cycle.started_at, finished_at=cycle.finished_at,
                        trigger=cycle.trigger, actor=cycle.actor, status=status, audit_seq=entry.seq,
                        details=json.loads(json.dumps(details, default=str))))
                    if remember:
                        self.workspace.set_state(conn, LAST_STATE, json.dumps({
                            "cycle": cycle.id, "at": cycle.finished_at, "status": status,
                            "fingerprint": cycle.fingerprint, "index_version": cycle.index_version,
                            "eval_run": cycle.eval_run, "gates_passed": cycle.gates_passed,
                            "release": cycle.release}, sort_keys=True))
                cycle.recorded, cycle.audit_seq = True, entry.seq
            except Exception as exc:  # noqa: BLE001 - a cycle that could not be recorded is still reported
                log.error("automation cycle %s could not be recorded in the audit log: %s", cycle.id, exc)
                cycle.error = (cycle.error + "; " if cycle.error else "") + f"not recorded in the audit log: {exc}"
        if self.reporter is not None:
            self.reporter.event("automation_cycle", **cycle.to_dict())
        return cycle


def cycle_history(workspace: Workspace, *, limit: int | None = 20, since: float | None = None) -> list[dict[str, Any]]:
    """The recorded cycles, newest first, from the ``automation_cycles`` table (the audit log's retention does not
    prune it); ``seq`` is each cycle's audit entry."""
    query = select(automation_cycles).order_by(automation_cycles.c.started_at.desc(), automation_cycles.c.id.desc())
    if since is not None:
        query = query.where(automation_cycles.c.started_at >= since)
    if limit is not None:
        query = query.limit(limit)
    with workspace.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{**(row["details"] or {}), "id": row["id"], "actor": row["actor"], "seq": row["audit_seq"],
             "at": row["finished_at"] if row["finished_at"] is not None else row["started_at"]} for row in rows]


# --- the scheduler ----------------------------------------------------------------------------------------------
class Scheduler:
    """Fires ``fire(trigger)`` on ``settings.cron`` (UTC) and polls with ``fire("watch")`` every
    ``settings.watch_interval``, one at a time in the calling thread, until ``stop`` is set.

    A cycle that runs past the next cron time is followed by one late cycle, not by one per time missed. A watch
    poll is due ``watch_interval`` after the last one ended. When both are due, cron goes first (the poll after it
    finds nothing new). ``fire`` raising is an ``error`` event, never the end of the loop; ``on_event(kind, data)``
    hears ``started``, ``cycle``, ``error`` and ``stopped``.
    """

    def __init__(self, settings: AutomationSettings, fire: Callable[[str], CycleResult | None], *,
                 stop: StopSignal | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, on_event: Callable[[str, dict[str, Any]], None]
                 | None = None, tick: float = 0.2) -> None:
        if not settings.scheduled:
            raise ValueError("improvement.automation sets neither cron nor watch: nothing to schedule")
        self.settings = settings
        self.fire = fire
        self.stop = stop or StopSignal()
        self.clock = clock
        self.sleep = sleep
        self.on_event = on_event or (lambda kind, data: None)
        self.tick = tick
        self.cycles = 0  # cycles that ran (a watch poll that found nothing new is a poll, not a cycle)
        self.polls = 0
        self.next_cron: float | None = None
        self.next_watch: float | None = None

    def _wait_until(self, when: float) -> bool:
        """Sleep until ``when`` in short naps (a signal's flag is seen within ``tick``); True when stopped."""
        while not self.stop.is_set():
            remaining = when - self.clock()
            if remaining <= 0:
                return False
            self.sleep(min(remaining, self.tick))
        return True

    def run(self) -> None:
        """Loop until ``stop`` is set; a watch poll runs at once, the cron schedule at its next time."""
        cron = self.settings.schedule
        now = self.clock()
        self.next_cron = cron.next_after(now) if cron is not None else None
        self.next_watch = now if self.settings.watch else None
        self.on_event("started", {"cron": self.settings.cron, "next_cron": self.next_cron,
                                  "watch_interval": self.settings.watch_interval if self.settings.watch else None,
                                  "pid": os.getpid()})
        while not self.stop.is_set():
            dues = [t for t in (self.next_cron, self.next_watch) if t is not None]
            if not dues:  # a cron schedule with no time left in five years, and no watch
                self.stop.set("the cron schedule fires no more")
                break
            if self._wait_until(min(dues)):
                break
            now = self.clock()
            if cron is not None and self.next_cron is not None and now >= self.next_cron:
                trigger = "cron"
                self.next_cron = cron.next_after(now)
            elif self.next_watch is not None and now >= self.next_watch:
                trigger = "watch"
            else:
                continue
            try:
                result = self.fire(trigger)
            except Exception as exc:  # noqa: BLE001 - the scheduler outlives a cycle that could not even start
                log.exception("automation: the %s cycle could not run", trigger)
                self.on_event("error", {"trigger": trigger, "error": f"{type(exc).__name__}: {exc}"})
            else:
                self.polls += trigger == "watch"
                if result is not None:
                    self.cycles += result.status != "unchanged"
                    self.on_event("cycle", result.to_dict())
            if trigger == "watch":
                self.next_watch = self.clock() + self.settings.watch_seconds
        self.on_event("stopped", {"reason": self.stop.reason, "cycles": self.cycles, "polls": self.polls})


# --- export to an external scheduler ------------------------------------------------------------------------------
_DIVISORS_60 = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_DIVISORS_24 = (1, 2, 3, 4, 6, 8, 12)


def watch_schedule(seconds: int, *, minimum_minutes: int = 1) -> tuple[str, int]:
    """The cron schedule that polls about every ``seconds`` (cron counts in whole minutes; GitHub Actions runs a
    schedule at most every 5 minutes: ``minimum_minutes``), and its real period in seconds."""
    minutes = max(-(-seconds // 60), minimum_minutes)
    if minutes < 60:
        step = next((d for d in _DIVISORS_60 if d >= minutes), 60)
        if step < 60:
            return ("* * * * *" if step == 1 else f"*/{step} * * * *"), step * 60
    hours = max(-(-minutes // 60), 1)
    step = next((d for d in _DIVISORS_24 if d >= hours), 24)
    if step == 1:
        return "0 * * * *", 3600
    if step < 24:
        return f"0 */{step} * * *", step * 3600
    return "0 0 * * *", 86400


def _cron_escape(command: str) -> str:
    return command.replace("%", "\\%")  # crontab(5) turns an unescaped % into a newline


def export_cron(settings: AutomationSettings, *, spec_path: Path, python: str, log_path: Path,
                project: str) -> str:
    """Crontab lines that run the same cycles as ``flightdeck schedule``: ``--once`` on the cron schedule, ``--once
    --if-changed`` on the watch poll (rounded to whole minutes)."""
    if not settings.scheduled:
        raise ValueError("improvement.automation sets neither cron nor watch: nothing to export")
    spec_path = spec_path.resolve()
    base = (f"cd {shlex.quote(str(spec_path.parent))} && {shlex.quote(python)} -m flightdeck schedule --once "
            f"--json --spec {shlex.quote(str(spec_path))}")
    tail = f" >> {shlex.quote(str(log_path))} 2>&1"
    lines = [f"# flightdeck lifecycle automation of {project} ({spec_path}): `flightdeck schedule --export cron`.",
             "# One cycle per line: ingest, index, evaluate, release and promote under governance.approvals; the",
             "# workspace's writer lock keeps two cycles from building at once. The schedule is UTC: CRON_TZ tells",
             "# cronie so; with a cron that ignores it, run cron in UTC or shift the hours.",
             "CRON_TZ=UTC"]
    if settings.cron:
        lines.append(f"{parse_cron(settings.cron).text} {_cron_escape(base + tail)}")
    if settings.watch:
        schedule, period = watch_schedule(settings.watch_seconds)
        if settings.cron and parse_cron(settings.cron).fires_like(parse_cron(schedule)):
            lines.append(f"# watch_interval {settings.watch_interval}: the cron line already runs a cycle every "
                         f"{period // 60} minute(s)")
            return "\n".join(lines) + "\n"
        if period != settings.watch_seconds:
            lines.append(f"# watch_interval {settings.watch_interval} polled every {period // 60} minute(s): cron "
                         "runs on whole minutes")
        lines.append(f"{schedule} {_cron_escape(base + ' --if-changed' + tail)}")
    return "\n".join(lines) + "\n"


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def export_github_actions(settings: AutomationSettings, *, project: str, spec: str,
                          watch_paths: Sequence[str] = ()) -> str:
    """A GitHub Actions workflow that runs ``flightdeck schedule --once`` on the same schedule (UTC, as GitHub's
    ``schedule`` is), ``--if-changed`` on the watch poll (every 5 minutes at most: GitHub's floor) and on a push
    that touches ``watch_paths`` (the spec, its evaluation sets and its file sources, relative to the repository).
    ``spec`` is the spec's path relative to the repository's root, where the job runs."""
    if not settings.scheduled:
        raise ValueError("improvement.automation sets neither cron nor watch: nothing to export")
    crons: list[tuple[str, str]] = []
    if settings.cron:
        crons.append((parse_cron(settings.cron).text, "improvement.automation.cron"))
    watch_cron = None
    if settings.watch:
        watch_cron, period = watch_schedule(settings.watch_seconds, minimum_minutes=5)
        if any(parse_cron(c).fires_like(parse_cron(watch_cron)) for c, _ in crons):
            watch_cron = None  # the cron schedule already runs then, whatever changed
        else:
            crons.append((watch_cron, f"watch every {settings.watch_interval} (polled every {period // 60} min)"))
    if settings.watch:
        changed_only = ["github.event_name == 'push'"]
        if watch_cron is not None:
            changed_only.append(f"github.event.schedule == '{watch_cron}'")
        if_changed = f"${{{{ ({' || '.join(changed_only)}) && '--if-changed' || '' }}}}"
    else:
        if_changed = ""
    out = [f"# flightdeck lifecycle automation of {project}: written by `flightdeck schedule --export github-actions`.",
           "# Each run is one cycle: ingest, index, evaluate, create a candidate release and promote it when",
           "# governance.approvals allows (the approvals stay with people: `flightdeck release approve`).",
           "# The workspace (.flightdeck/) must outlive a run: use a self-hosted runner that keeps it (checkout with",
           "# clean: false leaves it in place) or put the workspace on storage the runner mounts.",
           f"name: {_q(f'flightdeck automation ({project})')}",
           '"on":',
           "  schedule:"]
    out += [f"    - cron: {_q(c)}  # {why}, UTC" for c, why in crons]
    if settings.watch and watch_paths:
        out += ["  push:", "    paths:"] + [f"      - {_q(p)}" for p in watch_paths]
    out += ["  workflow_dispatch: {}",
            "concurrency:",
            f"  group: {_q('flightdeck-automation-' + project)}",
            "  cancel-in-progress: false",
            "jobs:",
            "  cycle:",
            "    runs-on: self-hosted",
            "    steps:",
            "      - uses: actions/checkout@v4",
            "        with:",
            "          clean: false",
            "      - name: one automation cycle",
            "        env:",
            f"          IF_CHANGED: {_q(if_changed)}",
            f"        run: {_q('flightdeck schedule --once --json $IF_CHANGED --spec ' + shlex.quote(spec))}"]
    return "\n".join(out) + "\n"
