"""Lifecycle automation (checklist 9.3, automatic re-training and model lifecycle automation): a cycle detects a
change in what the sources list, runs, evaluates, creates a candidate release and promotes it through the approval
policy, never around it; every cycle is an audit entry; the scheduler fires on its cron schedule (UTC, as crontab
reads it) and on the watch poll, and stops on a signal; `flightdeck schedule --once` exits by the outcome, and
`--export` writes a crontab line and a GitHub Actions workflow that parse."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import EVAL_DOCS as DOCS
from conftest import EVAL_QUESTIONS as QUESTIONS
from conftest import FAILING_GATES, PASSING_GATES, write_eval_project
from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.governance.access import Role
from flightdeck.governance.releases import Actor
from flightdeck.improvement.automation import (
    LAST_STATE,
    Scheduler,
    StopSignal,
    cycle_history,
    export_cron,
    export_github_actions,
    watch_schedule,
)
from flightdeck.pipeline.assembly import Assembly
from flightdeck.registry import Category
from flightdeck.spec.automation import AutomationSettings, CronError, parse_cron
from flightdeck.spec.loader import check_spec
from flightdeck.testing import FakeEmbedder
from needs import needs, needs_provider

EVAL = needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")

PASSING, FAILING = PASSING_GATES, FAILING_GATES
BOB = Actor("key:0123456789ab", Role.APPROVER)
UTC = dt.UTC


def write_project(root: Path, *, automation: str = "{}", gates: str = PASSING, extra: str = "") -> Path:
    improvement = ("improvement:\n  future_proofing: [dataset_versioning, automatic_retraining, "
                   f"lifecycle_automation]\n  automation: {automation}\n")
    return write_eval_project(root, project="automation-test", gates=gates, extra=improvement + extra)


def load(root: Path) -> Project:
    return Project.load(root).use(embedder=FakeEmbedder(dimension=64))


def audit_actions(project: Project) -> list[str]:
    return [e.action for e in project.audit.entries()]


# --- the cron schedule: crontab(5), in UTC ------------------------------------------------------------------------
def _at(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


def _next(expr: str, *args: int) -> dt.datetime:
    found = parse_cron(expr).next_after(_at(*args))
    assert found is not None
    return dt.datetime.fromtimestamp(found, UTC)


@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.automatic_retraining")
def test_the_cron_schedule_fires_when_crontab_would() -> None:
    # 2026-03-02 is a Monday
    assert _next("0 3 * * *", 2026, 3, 2, 5, 0) == dt.datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    assert _next("0 3 * * *", 2026, 3, 2, 2, 59, 59) == dt.datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert _next("0 3 * * *", 2026, 3, 2, 3, 0) == dt.datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # strictly after
    assert _next("*/15 * * * *", 2026, 3, 2, 5, 7) == dt.datetime(2026, 3, 2, 5, 15, tzinfo=UTC)
    assert _next("*/15 * * * *", 2026, 3, 2, 23, 50) == dt.datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    # 0 and 7 are Sunday (APScheduler 3 would read 0 as Monday); names and ranges of names
    assert _next("0 0 * * 0", 2026, 3, 2, 12, 0) == dt.datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
    assert _next("0 0 * * 7", 2026, 3, 2, 12, 0) == dt.datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
    assert _next("30 6 * * sat,sun", 2026, 3, 2, 12, 0) == dt.datetime(2026, 3, 7, 6, 30, tzinfo=UTC)
    assert _next("30 6 * * 6-7", 2026, 3, 7, 12, 0) == dt.datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert _next("0 9 * * mon-fri", 2026, 3, 6, 10, 0) == dt.datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # Fri → Mon
    # both days restricted: either one is enough (the 1st, or any Monday)
    assert _next("0 0 1 * 1", 2026, 3, 2, 12, 0) == dt.datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
    assert _next("0 0 1 * 1", 2026, 3, 30, 12, 0) == dt.datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
    # a day field that starts with * is not a restriction: both must match (odd days that are Mondays)
    assert _next("0 0 */2 * 1", 2026, 3, 2, 12, 0) == dt.datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
    # months, leap days, macros
    assert _next("0 0 29 2 *", 2026, 3, 1, 0, 0) == dt.datetime(2028, 2, 29, 0, 0, tzinfo=UTC)
    assert _next("15 10 1 jan,jul *", 2026, 3, 1, 0, 0) == dt.datetime(2026, 7, 1, 10, 15, tzinfo=UTC)
    assert _next("@daily", 2026, 3, 2, 0, 0, 1) == dt.datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert _next("@weekly", 2026, 3, 2, 0, 0) == dt.datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
    assert parse_cron("@hourly").text == "0 * * * *"
    assert parse_cron("0-10/5 8-17/3 * * *").minutes == {0, 5, 10}
    assert parse_cron("0-10/5 8-17/3 * * *").hours == {8, 11, 14, 17}
    # every minute it reports matches its own next time
    expr = parse_cron("7,37 */4 10-20 * *")
    t = _at(2026, 1, 1)
    for _ in range(50):
        nxt = expr.next_after(t)
        assert nxt is not None and nxt > t and expr.matches(dt.datetime.fromtimestamp(nxt, UTC))
        t = nxt


@pytest.mark.unit
@pytest.mark.parametrize(("text", "says"), [
    ("0 25 * * *", "hour 25 is out of range 0-23"),
    ("0 3 * *", "has 4 field(s), not 5"),
    ("0 0 3 * * *", "a seconds or year field"),
    ("0 3 * * fun", "day of week 'fun' is not a number or a name"),
    ("5/10 * * * *", "a step needs a range or *: write 5-59/10"),
    ("*/0 * * * *", "the step after / must be a whole number of at least 1"),
    ("0 0 30 2 *", "never fires"),
    ("@reboot", "not a cron macro"),
    ("0 0 10-2 * *", "a range runs from low to high"),
    ("0 0 * * sat-sun", "Sunday ends a range as 7: 6-7, or write sat,sun"),
])
def test_a_bad_cron_schedule_says_which_field_and_how_to_write_it(text: str, says: str) -> None:
    with pytest.raises(CronError, match="five fields") as err:
        parse_cron(text)
    assert says in str(err.value)


@pytest.mark.unit
def test_the_spec_names_the_line_of_a_bad_automation_setting(tmp_path: Path) -> None:
    def problems(automation: str) -> list[str]:
        root = write_project(tmp_path / "p", automation=automation)
        _, found = check_spec(root / "flightdeck.yaml")
        return [str(p) for p in found]

    [bad] = problems("{cron: '0 25 * * *'}")
    assert ":17:22:" in bad and "improvement.automation.cron" in bad and "hour 25 is out of range" in bad
    [bad] = problems("{promote_to: staging}")
    assert "improvement.automation" in bad and "set release: true as well" in bad
    [bad] = problems("{watch_interval: 10s}")
    assert "watch_interval is set but watch is false" in bad
    [bad] = problems("{watch: true, watch_interval: soon}")
    assert "improvement.automation.watch_interval" in bad and "30s, 5m, 1h" in bad
    [bad] = problems("{crontab: '0 3 * * *'}")
    assert "unknown key 'crontab'" in bad and "cron" in bad
    assert problems("{cron: '@daily', watch: true, watch_interval: 30s, release: true, promote_to: production}") == []
    settings = AutomationSettings(cron=" 0  3 * *  * ", name="nightly-box")
    assert settings.cron == "0 3 * * *" and settings.actor_name() == "automation:nightly-box"
    assert AutomationSettings().actor_name().startswith("automation:") and not AutomationSettings().scheduled


# --- a cycle ------------------------------------------------------------------------------------------------------
@EVAL
@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.automatic_retraining")
@pytest.mark.exercises("improvement.future_proofing.lifecycle_automation")
def test_a_cycle_builds_evaluates_and_promotes_a_candidate_to_staging(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", automation="{release: true, promote_to: staging, name: test-box}")
    project = load(root)
    result = project.automation_cycle("once")
    assert result.status == "succeeded" and result.ok and result.recorded, result.summary()
    assert [(s.step, s.status) for s in result.steps] == [
        ("detect", "changed"), ("run", "ok"), ("evaluate", "ok"), ("release", "created"), ("promote", "promoted")]
    assert result.actor == "automation:test-box" and result.changed is True and result.gates_passed is True
    staged = project.releases.get("staging")
    assert staged.id == result.release and staged.created_by == "automation:test-box"
    assert staged.eval_run == result.eval_run and staged.index_version == result.index_version
    promoted = [e for e in project.releases.events(staged) if e.event == "promoted"]
    assert [(e.actor, e.role, e.to_stage) for e in promoted] == [("automation:test-box", "admin", "staging")]
    assert "override" not in promoted[0].details
    # every step is in the audit log, the cycle last, with its steps
    actions = audit_actions(project)
    assert actions[-1] == "automation.cycle" and "run.finished" in actions and "eval.finished" in actions
    assert "release.created" in actions and "release.promoted" in actions
    entry = project.audit.last("automation.cycle")
    assert entry is not None and entry.target == result.id and entry.actor == "automation:test-box"
    assert entry.details["status"] == "succeeded" and entry.details["promoted_to"] == "staging"
    assert [s["step"] for s in entry.details["steps"]] == ["detect", "run", "evaluate", "release", "promote"]
    assert project.audit.verify().ok
    [row] = cycle_history(project.workspace)
    assert row["id"] == result.id and row["release_name"] == staged.name == "v1"

    # the same inputs again: nothing rebuilt, the evaluation stands, the same release, already in staging
    again = project.automation_cycle("once")
    assert again.status == "succeeded" and again.changed is False
    assert [(s.step, s.status) for s in again.steps] == [
        ("detect", "unchanged"), ("run", "ok"), ("evaluate", "skipped"), ("release", "exists"), ("promote", "skipped")]
    assert "nothing to rebuild" in again.steps[1].detail and "already in staging" in again.steps[4].detail
    assert len(project.releases.list()) == 1 and again.eval_run == result.eval_run
    assert [c["id"] for c in cycle_history(project.workspace)] == [again.id, result.id]


@EVAL
@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.lifecycle_automation")
def test_a_missed_gate_is_recorded_and_never_promoted(tmp_path: Path) -> None:
    # staging needs nothing under the default policy: the automation's own rule still keeps a missed gate out
    root = write_project(tmp_path / "p", gates=FAILING, automation="{release: true, promote_to: staging}")
    project = load(root)
    result = project.automation_cycle("once")
    assert result.status == "gates_failed" and not result.ok and result.recorded
    assert [(s.step, s.status) for s in result.steps] == [
        ("detect", "changed"), ("run", "ok"), ("evaluate", "gates_failed"), ("release", "created"),
        ("promote", "blocked")]
    assert "mrr@3 <= 0.01" in result.steps[2].detail and "never promotes" in result.steps[4].detail
    [release] = project.releases.list()
    assert release.stage == "candidate" and release.gates_passed is False
    assert not [e for e in project.releases.events(release) if e.event == "promoted"]
    assert "release.promoted" not in audit_actions(project)
    entry = project.audit.last("automation.cycle")
    assert entry is not None and entry.details["status"] == "gates_failed" and entry.details["promoted_to"] is None


@EVAL
@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.lifecycle_automation")
def test_production_that_needs_approval_waits_for_it_then_the_next_cycle_promotes(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", automation="{release: true, promote_to: production}")
    project = load(root)
    result = project.automation_cycle("once")
    assert result.status == "waiting_for_approval" and result.ok and result.recorded, result.summary()
    promote = result.steps[-1]
    assert promote.status == "waiting_for_approval" and "0 of 1" in promote.detail
    assert any("approval" in r for r in promote.data["reasons"])
    [release] = project.releases.list()
    assert release.stage == "candidate" and "release.promoted" not in audit_actions(project)
    entry = project.audit.last("automation.cycle")
    assert entry is not None and entry.details["status"] == "waiting_for_approval"

    # an approver approves; the next cycle (nothing changed) finds the policy met and promotes it
    project.releases.review(release.name, BOB, "approved")
    after = project.automation_cycle("once")
    assert after.status == "succeeded" and after.promoted_to == "production", after.summary()
    assert project.releases.get("production").id == release.id
    [promoted] = [e for e in project.releases.events(release) if e.event == "promoted"]
    assert promoted.actor.startswith("automation:") and promoted.details["approvals"] == [BOB.name]

    # a rejection is no approval to wait for: refused, and --once would exit 1
    (root / "docs" / "json.md").write_text(DOCS["json.md"] + "\nUse json.load for a file object.\n", "utf-8")
    newer = project.automation_cycle("once")
    assert newer.status == "waiting_for_approval" and newer.release != release.id
    project.releases.review(newer.release_name or "", BOB, "rejected", "not this one")
    refused = project.automation_cycle("once")
    assert refused.status == "refused" and not refused.ok and "rejected by" in refused.steps[-1].detail


@EVAL
@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.automatic_retraining")
def test_watch_rebuilds_only_when_what_the_sources_list_changed(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", automation="{watch: true, watch_interval: 1s}")
    project = load(root)
    first = project.automation_cycle("watch")
    assert first.status == "succeeded" and first.changed and first.recorded
    runs = sqlite3.connect(root / ".flightdeck" / "metadata.db").execute("select count(*) from runs").fetchone()[0]
    entries = len(project.audit.entries())

    # nothing changed (a file touched counts as nothing: its content hash is the same): no run, no entry
    os.utime(root / "docs" / "venv.md")
    polled = project.automation_cycle("watch")
    assert polled.status == "unchanged" and polled.ok and not polled.recorded
    assert [(s.step, s.status) for s in polled.steps] == [("detect", "unchanged")]
    assert len(project.audit.entries()) == entries
    db = sqlite3.connect(root / ".flightdeck" / "metadata.db")
    assert db.execute("select count(*) from runs").fetchone()[0] == runs

    # a changed document: the next poll rebuilds, with a new dataset version
    before = project.workspace.get_state("current_dataset")
    (root / "docs" / "regex.md").write_text(DOCS["regex.md"] + "\nre.findall returns every match.\n", "utf-8")
    changed = project.automation_cycle("watch")
    assert changed.status == "succeeded" and changed.changed and "rebuilt" in changed.steps[1].detail
    assert changed.dataset_version != before and changed.eval_run != first.eval_run
    # the spec is an input too
    spec = root / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace("overlap: 8", "overlap: 4"), "utf-8")
    assert load(root).automation_cycle("watch").changed is True
    assert [c["trigger"] for c in cycle_history(project.workspace)] == ["watch", "watch", "watch"]


@EVAL
@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.automatic_retraining")
def test_a_failed_step_stops_the_cycle_and_is_recorded(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", automation="{release: true, promote_to: staging}")
    project = load(root)
    (root / "eval" / "qa.jsonl").write_text("{not json\n", "utf-8")
    result = project.automation_cycle("once")
    assert result.status == "failed" and not result.ok and result.recorded
    assert [(s.step, s.status) for s in result.steps] == [("detect", "changed"), ("run", "ok"), ("evaluate", "failed")]
    assert result.error is not None and result.error.startswith("evaluate:")
    assert project.releases.list() == []
    entry = project.audit.last("automation.cycle")
    assert entry is not None and entry.details["status"] == "failed" and entry.details["error"] == result.error

    # a source that is gone: the run fails, recorded, nothing after it runs
    (root / "eval" / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), "utf-8")
    for p in (root / "docs").iterdir():
        p.unlink()
    (root / "docs").rmdir()
    gone = project.automation_cycle("once")
    assert gone.status == "failed" and [s.step for s in gone.steps] == ["detect"]
    assert "could not list the sources" in (gone.error or "") and gone.recorded


@EVAL
@pytest.mark.unit
@needs("fairness", "fairlearn")
@pytest.mark.exercises("governance.responsible_ai.bias_monitoring")
def test_each_cycle_monitors_the_bias_of_the_release_serving_live_traffic(tmp_path: Path) -> None:
    from flightdeck.serving.service import LOCAL, Service

    root = write_project(tmp_path / "p", automation="{release: true, promote_to: staging, monitor_bias: 7d}")
    project = load(root)
    first = project.automation_cycle("once")
    # the first cycle promotes v1 to staging; nobody has asked it anything yet
    assert first.status == "succeeded", first.summary()
    assert [(s.step, s.status) for s in first.steps][-2:] == [("promote", "promoted"), ("monitor", "skipped")]
    assert "no question was served in the last 7d" in first.steps[-1].detail

    Service(project, None).query(LOCAL, "How would she parse a JSON string she got from her father?")
    second = project.automation_cycle("once")
    assert second.status == "succeeded", second.summary()
    monitor = second.steps[-1]
    assert (monitor.step, monitor.status) == ("monitor", "ok"), monitor.detail
    assert monitor.data["release"] == first.release and monitor.data["questions"] == 1
    assert "no gate on a bias metric" in monitor.detail
    assert {"counterfactual_answer_divergence", "counterfactual_pairs"} <= set(monitor.data["metrics"])
    # the run is kept on the release, like `flightdeck redteam --traces 7d`, every case in its artifact
    [event] = [e for e in project.releases.events(first.release or "") if e.event == "red_team"]
    assert event.actor == second.actor and event.details["bias_questions"] == "traces of the last 7d"
    cases = json.dumps(json.loads(project.workspace.artifacts.get_bytes(monitor.data["artifact"])))
    assert "How would he parse a JSON string he got from his mother?" in cases
    [row, _] = cycle_history(project.workspace)
    assert row["id"] == second.id and row["steps"][-1]["step"] == "monitor"


@pytest.mark.unit
def test_live_questions_that_miss_a_bias_gate_flag_the_cycle(tmp_path: Path) -> None:
    from flightdeck.improvement.automation import AutomationCycle
    from flightdeck.spec.evaluation import parse_gate
    from flightdeck.workspace import Workspace
    from flightdeck.workspace.audit import AuditLog

    ws = Workspace(tmp_path / ".flightdeck")
    serving = type("R", (), {"id": "rel_1", "name": "v1", "stage": "production"})()
    releases = type("Releases", (), {"list": staticmethod(lambda stage=None: [serving] if stage == "production"
                                                           else [])})()
    measured = {"counterfactual_refusal_gap": 0.5, "counterfactual_answer_divergence": 0.2}
    asked: list[str] = []

    def monitor(release_id: str) -> dict[str, Any]:
        asked.append(release_id)
        return {"questions": 4, "artifact": "a" * 64,
                "suites": {"bias_fairness": {"metrics": measured, "summary": "4 pairs"}}}

    def cycle(gates: dict[str, str]) -> Any:
        settings = AutomationSettings(monitor_bias="24h", evaluate=False)
        summary = type("S", (), {"run_id": "run_1", "steps": []})()
        return AutomationCycle(settings, workspace=ws, audit=AuditLog(ws), releases=releases,
                               fingerprint=lambda: "f", build=lambda: summary, evaluate=None,
                               create_release=lambda who, comment: (serving, False), actor=Actor.local(),
                               monitor=monitor, bias_gates=[parse_gate(m, e) for m, e in gates.items()]).run("cron")

    flagged = cycle({"counterfactual_refusal_gap": "<= 0.1"})
    assert flagged.status == "bias_flagged" and not flagged.ok and asked == ["rel_1"]
    step = flagged.steps[-1]
    assert (step.step, step.status) == ("monitor", "bias_flagged")
    assert "counterfactual_refusal_gap <= 0.1 (measured 0.500)" in step.detail and "4 question(s)" in step.detail
    assert cycle_history(ws, limit=1)[0]["status"] == "bias_flagged"
    passed = cycle({"counterfactual_refusal_gap": "<= 0.6"})
    assert passed.status == "succeeded" and passed.steps[-1].status == "ok"
    assert "every bias gate passed" in passed.steps[-1].detail
    # the audit log's retention prunes its entries; the automation's history stays whole
    audit = AuditLog(ws)
    audit.prune(time.time() + 60, "user:alice")
    assert audit.entries(action="automation.cycle") == []
    assert [c["status"] for c in cycle_history(ws)] == ["succeeded", "bias_flagged"]
    ws.close()


@EVAL
@pytest.mark.unit
def test_a_cycle_never_builds_while_another_writer_holds_the_workspace(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", automation="{watch: true}")
    project = load(root)
    with project.workspace.writer_lock():
        busy = project.automation_cycle("once")
        polled = project.automation_cycle("watch")
    assert busy.status == "busy" and not busy.ok and busy.recorded and "writing this workspace" in (busy.error or "")
    assert [s.step for s in busy.steps] == ["detect"]
    # a watch poll tries again at the next poll: nothing recorded, nothing to report
    assert polled.status == "busy" and polled.ok and not polled.recorded
    assert project.workspace.get_state(LAST_STATE) is None  # nothing was built: the next poll still sees a change
    assert project.automation_cycle("watch").status == "succeeded"

    built = json.loads(project.workspace.get_state(LAST_STATE) or "{}")["cycle"]
    stop = StopSignal()
    stop.set("SIGTERM received")
    stopped = project.automation_cycle("once", stop=stop)
    assert stopped.status == "interrupted" and stopped.recorded and "SIGTERM" in (stopped.error or "")
    assert [(s.step, s.status) for s in stopped.steps][-1] == ("run", "skipped")
    # not remembered: the next watch poll compares with the last cycle that got its work done
    assert json.loads(project.workspace.get_state(LAST_STATE) or "{}")["cycle"] == built


@pytest.mark.unit
def test_the_first_signal_asks_to_stop_and_the_second_stops_at_once() -> None:
    from flightdeck.cli.schedule_cmd import _stopped_by_signals

    stop = StopSignal()
    said: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited, _stopped_by_signals(stop, said.append):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # the handler runs between bytecodes of the main thread
            if stop.is_set():
                break
            time.sleep(0.01)
        assert stop.reason == "SIGTERM received" and said == ["SIGTERM received"]
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert exited.value.code == 128 + signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back


# --- the scheduler --------------------------------------------------------------------------------------------------
class FakeTime:
    def __init__(self, start: float) -> None:
        self.now = start

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.automatic_retraining")
def test_the_scheduler_fires_on_the_cron_schedule_and_the_watch_poll_one_at_a_time() -> None:
    t = FakeTime(_at(2026, 3, 2, 0, 0, 30))
    stop = StopSignal()
    fired: list[tuple[str, str]] = []

    def fire(trigger: str) -> None:
        fired.append((trigger, dt.datetime.fromtimestamp(t.now, UTC).strftime("%H:%M:%S")))
        if len(fired) == 8:
            stop.set("enough")

    events: list[str] = []
    scheduler = Scheduler(AutomationSettings(cron="*/5 * * * *", watch=True, watch_interval="2m"), fire, stop=stop,
                          clock=t.clock, sleep=t.sleep, on_event=lambda kind, data: events.append(kind), tick=60)
    scheduler.run()
    assert fired == [("watch", "00:00:30"), ("watch", "00:02:30"), ("watch", "00:04:30"), ("cron", "00:05:00"),
                     ("watch", "00:06:30"), ("watch", "00:08:30"), ("cron", "00:10:00"), ("watch", "00:10:30")]
    assert events[0] == "started" and events[-1] == "stopped"


@pytest.mark.unit
def test_a_cycle_that_overruns_is_followed_by_one_late_cycle_and_an_error_ends_nothing() -> None:
    t = FakeTime(_at(2026, 3, 2, 0, 1))
    stop = StopSignal()
    fired: list[str] = []
    errors: list[dict[str, Any]] = []

    def fire(trigger: str) -> None:
        fired.append(dt.datetime.fromtimestamp(t.now, UTC).strftime("%H:%M"))
        if len(fired) == 1:
            t.now += 12 * 60  # runs past 00:10 and 00:15
            raise RuntimeError("the spec could not be read")
        if len(fired) == 3:
            stop.set()

    Scheduler(AutomationSettings(cron="*/5 * * * *"), fire, stop=stop, clock=t.clock, sleep=t.sleep, tick=60,
              on_event=lambda kind, data: errors.append(data) if kind == "error" else None).run()
    assert fired == ["00:05", "00:17", "00:20"]
    assert errors == [{"trigger": "cron", "error": "RuntimeError: the spec could not be read"}]
    with pytest.raises(ValueError, match="nothing to schedule"):
        Scheduler(AutomationSettings(), fire)


# --- the CLI ------------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeEmbedder(dimension=64)
    monkeypatch.setattr(Assembly, "embedder", property(lambda self: fake))


def _last_json_line(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


@EVAL
@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.lifecycle_automation")
def test_schedule_once_exits_by_the_outcome(tmp_path: Path, fake_embedder: None) -> None:
    runner = CliRunner()
    ok = write_project(tmp_path / "ok", automation="{release: true, promote_to: staging}")
    res = runner.invoke(app, ["schedule", "--once", "--json", "--spec", str(ok)])
    assert res.exit_code == 0, res.output
    cycle = _last_json_line(res.stdout)
    assert cycle["event"] == "automation_cycle" and cycle["status"] == "succeeded" and cycle["promoted_to"] == "staging"
    steps = [json.loads(line) for line in res.stdout.splitlines() if '"automation_step"' in line]
    assert [s["step"] for s in steps] == ["detect", "run", "evaluate", "release", "promote"]
    res = runner.invoke(app, ["schedule", "--once", "--if-changed", "--spec", str(ok)])
    assert res.exit_code == 0 and "unchanged" in res.stdout
    res = runner.invoke(app, ["schedule", "history", "--json", "--spec", str(ok)])
    assert res.exit_code == 0 and [c["trigger"] for c in json.loads(res.stdout)] == ["once"]
    res = runner.invoke(app, ["schedule", "history", "--spec", str(ok)])
    assert res.exit_code == 0 and "succeeded" in res.stdout and "v1 -> staging" in res.stdout

    failing = write_project(tmp_path / "failing", gates=FAILING, automation="{release: true, promote_to: staging}")
    res = runner.invoke(app, ["schedule", "--once", "--spec", str(failing)])
    assert res.exit_code == 1 and "gates_failed" in res.stdout and "never promotes" in res.stdout

    waiting = write_project(tmp_path / "waiting", automation="{release: true, promote_to: production}")
    res = runner.invoke(app, ["schedule", "--once", "--spec", str(waiting)])
    assert res.exit_code == 0 and "waiting_for_approval" in res.stdout

    # usage errors: exit 2
    res = runner.invoke(app, ["schedule", "--if-changed", "--spec", str(ok)])
    assert res.exit_code == 2 and "--if-changed goes with --once" in res.output
    res = runner.invoke(app, ["schedule", "--spec", str(ok)])  # nothing scheduled in the spec
    assert res.exit_code == 2 and "neither cron nor watch" in res.output


def _yaml(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


@pytest.mark.unit
@pytest.mark.exercises("improvement.future_proofing.lifecycle_automation")
def test_export_writes_a_crontab_line_and_a_workflow_that_parse(tmp_path: Path, fake_embedder: None) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    root = write_project(repo / "assistant", automation="{cron: '30 2 * * mon-fri', watch: true, "
                                                          "watch_interval: 7m, release: true, promote_to: staging}")
    runner = CliRunner()
    res = runner.invoke(app, ["schedule", "--export", "cron", "--spec", str(root)])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "CRON_TZ=UTC"
    cron_line, watch_line = lines[1:]
    assert cron_line.split()[:5] == ["30", "2", "*", "*", "mon-fri"]
    assert watch_line.split()[:5] == ["*/10", "*", "*", "*", "*"]  # 7 minutes: the next step that divides the hour
    for line in (cron_line, watch_line):
        parse_cron(" ".join(line.split()[:5]))
        assert f"-m flightdeck schedule --once --json --spec {(root / 'flightdeck.yaml').resolve()}" in line
        assert str((root / ".flightdeck" / "automation.log").resolve()) in line
    assert "--if-changed" in watch_line and "--if-changed" not in cron_line
    assert "polled every 10 minute(s)" in res.stdout

    res = runner.invoke(app, ["schedule", "--export", "github-actions", "--spec", str(root)])
    assert res.exit_code == 0, res.output
    workflow = _yaml(res.stdout)
    assert [c["cron"] for c in workflow["on"]["schedule"]] == ["30 2 * * mon-fri", "*/10 * * * *"]
    assert workflow["on"]["push"]["paths"] == ["assistant/flightdeck.yaml", "assistant/eval/qa.jsonl",
                                               "assistant/docs/**"]
    assert "workflow_dispatch" in workflow["on"] and workflow["concurrency"]["cancel-in-progress"] is False
    [step] = [s for s in workflow["jobs"]["cycle"]["steps"] if "run" in s]
    assert step["run"] == "flightdeck schedule --once --json $IF_CHANGED --spec assistant/flightdeck.yaml"
    assert step["env"]["IF_CHANGED"] == ("${{ (github.event_name == 'push' || github.event.schedule == "
                                         "'*/10 * * * *') && '--if-changed' || '' }}")
    yaml = pytest.importorskip("yaml")  # PyYAML reads the quoted "on" as a key too (a bare on: would be True)
    assert yaml.safe_load(res.stdout)["on"]["schedule"][0]["cron"] == "30 2 * * mon-fri"

    # watch alone, polled every 5 minutes at most on GitHub: every scheduled run is a watch poll
    text = export_github_actions(AutomationSettings(watch=True, watch_interval="1m"), project="p", spec="f.yaml")
    flow = _yaml(text)
    assert flow["on"]["schedule"] == [{"cron": "*/5 * * * *"}] and "push" not in flow["on"]
    assert watch_schedule(30) == ("* * * * *", 60) and watch_schedule(3 * 3600) == ("0 */3 * * *", 3 * 3600)
    assert watch_schedule(5 * 3600) == ("0 */6 * * *", 6 * 3600) and watch_schedule(86400) == ("0 0 * * *", 86400)

    # a watch poll that the cron schedule already covers is not a second line
    text = export_cron(AutomationSettings(cron="0-59/5 * * * *", watch=True, watch_interval="5m"), project="p",
                       spec_path=root / "flightdeck.yaml", python=sys.executable, log_path=tmp_path / "log")
    assert [line.split()[0] for line in text.splitlines() if not line.startswith("#")] == ["CRON_TZ=UTC", "0-59/5"]
    assert "already runs a cycle every 5 minute(s)" in text

    plain = write_project(tmp_path / "plain")
    res = runner.invoke(app, ["schedule", "--export", "cron", "--spec", str(plain)])
    assert res.exit_code == 2 and "nothing to schedule" in res.output


# --- the scheduler as a process -------------------------------------------------------------------------------------
def _reader(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


def _wait_for(lines: queue.Queue[str], seen: list[dict[str, Any]], predicate: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if not line:
            break
        if line.startswith("{"):
            event = json.loads(line)
            seen.append(event)
            if predicate(event):
                return event
    raise AssertionError(f"no such event within {timeout}s; saw: {[e.get('event') for e in seen]}")


@EVAL
@pytest.mark.integration
@pytest.mark.slow
@needs_provider(Category.EMBEDDER, "sentence_transformers")
@pytest.mark.exercises("improvement.future_proofing.automatic_retraining")
def test_the_scheduler_process_rebuilds_on_a_change_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p",  # the spec's own embedder: sentence-transformers (the default)
                         automation="{watch: true, watch_interval: 1s, release: true, promote_to: staging}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen([sys.executable, "-m", "flightdeck", "schedule", "--json", "--spec", str(root)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    seen: list[dict[str, Any]] = []
    try:
        started = _wait_for(lines, seen, lambda e: e.get("event") == "started", 60)
        assert started["watch_interval"] == "1s" and started["pid"] == process.pid
        first = _wait_for(lines, seen, lambda e: e.get("event") == "automation_cycle" and e["status"] != "unchanged",
                          300)
        assert first["status"] == "succeeded" and first["trigger"] == "watch" and first["promoted_to"] == "staging"
        # polls that find nothing new come and go
        _wait_for(lines, seen, lambda e: e.get("event") == "automation_cycle" and e["status"] == "unchanged", 60)
        (root / "docs" / "venv.md").write_text(DOCS["venv.md"] + "\nDeactivate it with deactivate.\n", "utf-8")
        second = _wait_for(lines, seen, lambda e: e.get("event") == "automation_cycle" and e["status"] != "unchanged",
                           300)
        assert second["status"] == "succeeded" and second["changed"] is True
        assert second["dataset_version"] != first["dataset_version"] and second["release_name"] == "v2"
        process.send_signal(signal.SIGTERM)
        stopped = _wait_for(lines, seen, lambda e: e.get("event") == "stopped", 120)
        assert stopped["reason"] == "SIGTERM received" and stopped["cycles"] == 2 and stopped["polls"] >= 3
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    project = Project.load(root)
    history = cycle_history(project.workspace)
    assert [c["id"] for c in history] == [second["id"], first["id"]]  # the unchanged polls are not recorded
    assert project.releases.get("staging").name == "v2" and project.audit.verify().ok
