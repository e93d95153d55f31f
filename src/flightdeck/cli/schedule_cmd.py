"""``flightdeck schedule``: lifecycle automation (``improvement.automation``) — the scheduler in the foreground, one
cycle now (``--once``, for cron, CI or another orchestrator), the same schedule exported as a crontab line or a GitHub
Actions workflow, and the history of the cycles (thin shells over :meth:`flightdeck.Project.automation_cycle` and
:mod:`flightdeck.improvement.automation`)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightdeck.cli.common import EXIT_FAILED, EXIT_USAGE, JsonOption, SpecOption, errors_to_exit, print_json

if TYPE_CHECKING:
    from flightdeck.project import Project

__all__ = ["schedule_app"]

schedule_app = typer.Typer(
    name="schedule", invoke_without_command=True,
    help="Lifecycle automation (improvement.automation): on a cron schedule (UTC) or when the sources change, ingest, "
         "index, evaluate, create a candidate release and promote it when governance.approvals allows. Without "
         "options it runs the scheduler in the foreground until SIGTERM or Ctrl-C (a running cycle stops after its "
         "current step; a second signal stops at once). --once runs one cycle now and exits 0, or 1 when a gate was "
         "missed, a step failed or the policy refused the promotion (waiting for an approval is 0). --export prints "
         "the same schedule as a crontab line or a GitHub Actions workflow. `flightdeck schedule history` lists the "
         "cycles.")


class ExportFormat(StrEnum):
    cron = "cron"
    github_actions = "github-actions"


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _emit_line(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class _Projects:
    """The project of the spec as it is now: loaded again when the spec file's text changed (a cycle uses the spec of
    its time; the models stay loaded while it does not change)."""

    def __init__(self, spec: Path | None) -> None:
        from flightdeck.spec.loader import find_spec_file

        self.path = find_spec_file(spec)
        self.text: str | None = None
        self.project: Project | None = None

    def current(self) -> Project:
        from flightdeck.project import Project

        text = self.path.read_text(encoding="utf-8")
        if self.project is None or text != self.text:
            project = Project.load(self.path)  # a broken spec raises here: the cycle does not run
            if self.project is not None and "workspace" in vars(self.project):
                self.project.workspace.close()
            self.project, self.text = project, text
        return self.project


def _cycle_exit(result: Any) -> None:
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def _print_cycle(result: Any) -> None:
    typer.echo(f"{_when(result.started_at)}  cycle {result.id} ({result.trigger}): {result.status}")
    for step in result.steps:
        typer.echo(f"  {step.step:<8} {step.status:<20} {step.detail}")
    if result.error and result.status not in ("succeeded", "unchanged"):
        typer.echo(f"  error: {result.error}", err=True)


@schedule_app.callback(invoke_without_command=True)
def schedule(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="run one cycle now and exit (0 ok or waiting for approval; 1 a "
                                                      "gate missed, a step failed or the promotion refused)")] = False,
    if_changed: Annotated[bool, typer.Option("--if-changed", help="with --once: only when the sources, the spec or "
                                                                  "the evaluation sets changed since the last cycle "
                                                                  "(a watch poll)")] = False,
    export: Annotated[ExportFormat | None, typer.Option("--export", help="print the schedule for an external "
                                                                         "scheduler: cron or github-actions")] = None,
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Run the lifecycle automation of improvement.automation."""
    if ctx.invoked_subcommand is not None:
        return
    if if_changed and not once:
        raise typer.BadParameter("--if-changed goes with --once (the scheduler's watch polls by itself)",
                                 param_hint="--if-changed")
    if export is not None and once:
        raise typer.BadParameter("--export prints a schedule; --once runs a cycle: give one of them",
                                 param_hint="--export")
    if export is not None:
        _export(export, spec, as_json)
    elif once:
        _once(spec, as_json, "watch" if if_changed else "once")
    else:
        _foreground(spec, as_json)


@contextmanager
def _stopped_by_signals(stop: Any, said: Any = None) -> Iterator[None]:
    """SIGTERM or SIGINT sets ``stop`` (the cycle ends after its current step, recorded as interrupted); a second one
    exits at once (the workspace's writes are transactional, and the writer lock goes with the process)."""

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise SystemExit(128 + signum)
        stop.set(f"{signal.Signals(signum).name} received")
        if said is not None:
            said(stop.reason)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may take signals
        yield
        return
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _once(spec: Path | None, as_json: bool, trigger: str) -> None:
    from flightdeck.improvement.automation import StopSignal
    from flightdeck.pipeline.progress import default_reporter
    from flightdeck.project import Project

    stop = StopSignal()
    with errors_to_exit(as_json), _stopped_by_signals(stop):
        project = Project.load(spec)
        reporter = default_reporter(as_json)
        try:
            result = project.automation_cycle(trigger, stop=stop, reporter=reporter)
        finally:
            reporter.close()
    if as_json:
        # the reporter printed each step as a JSON line; the cycle is the last line (automation_cycle event)
        pass
    else:
        _print_cycle(result)
    _cycle_exit(result)


def _nothing_scheduled(path: Path, as_json: bool) -> None:
    message = (f"{path}: improvement.automation sets neither cron nor watch, so there is nothing to schedule; set "
               "one (e.g. improvement: {automation: {cron: '0 3 * * *'}}), or run `flightdeck schedule --once` from "
               "your own scheduler")
    if as_json:
        print_json({"ok": False, "error": message})
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _foreground(spec: Path | None, as_json: bool) -> None:
    from flightdeck.improvement.automation import Scheduler, StopSignal
    from flightdeck.pipeline.progress import default_reporter

    with errors_to_exit(as_json):
        projects = _Projects(spec)
        settings = projects.current().spec.improvement.automation
    if not settings.scheduled:
        _nothing_scheduled(projects.path, as_json)
    stop = StopSignal()
    noted: set[str] = set()
    last_error: list[str] = []  # a spec broken for an hour is said once, not at every poll

    def emit(kind: str, data: dict[str, Any]) -> None:
        if kind == "error":
            if last_error == [data["error"]]:
                return
            last_error[:] = [data["error"]]
        elif kind == "cycle":
            last_error.clear()
        if as_json:
            if kind != "cycle":  # a cycle's JSON line is its reporter's automation_cycle event
                _emit_line({"ts": round(dt.datetime.now(dt.UTC).timestamp(), 3), "event": kind, **data})
            return
        if kind == "started":
            parts = []
            if data.get("cron"):
                parts.append(f"cron '{data['cron']}' UTC (next {_when(data.get('next_cron'))})")
            if data.get("watch_interval"):
                parts.append(f"watching the sources every {data['watch_interval']}")
            typer.echo(f"flightdeck schedule (pid {data['pid']}): " + ", ".join(parts) + "; SIGTERM or Ctrl-C stops")
        elif kind == "cycle":
            if data.get("status") != "unchanged":
                result = data
                typer.echo(f"{_when(result['started_at'])}  cycle {result['id']} ({result['trigger']}): "
                           f"{result['status']} — " + "; ".join(f"{s['step']}: {s['detail'] or s['status']}"
                                                                for s in result["steps"]))
        elif kind == "error":
            typer.echo(f"error: the {data['trigger']} cycle could not run: {data['error']}", err=True)
        elif kind == "stopping":
            typer.echo(f"{data['reason']}: stopping after the current step (again to stop at once)", err=True)
        elif kind == "stopped":
            typer.echo(f"stopped ({data['reason']}) after {data['cycles']} cycle(s) and {data['polls']} watch poll(s)")
        elif kind == "note":
            typer.echo(f"note: {data['message']}", err=True)

    def fire(trigger: str) -> Any:
        project = projects.current()
        if project.spec.improvement.automation != settings and "changed" not in noted:
            noted.add("changed")
            emit("note", {"message": "improvement.automation changed in the spec: the cycles use it, the schedule is "
                                     "read at start (restart `flightdeck schedule` to change when cycles run)"})
        reporter = default_reporter(as_json) if trigger != "watch" or as_json else None
        try:
            return project.automation_cycle(trigger, stop=stop, reporter=reporter)
        finally:
            if reporter is not None:
                reporter.close()

    with _stopped_by_signals(stop, lambda reason: emit("stopping", {"reason": reason})):
        Scheduler(settings, fire, stop=stop, on_event=emit).run()


def _git_root(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _relative(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def _export(fmt: ExportFormat, spec: Path | None, as_json: bool) -> None:
    from flightdeck.improvement.automation import export_cron, export_github_actions
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        project = Project.load(spec)
        settings = project.spec.improvement.automation
        if not settings.scheduled:
            _nothing_scheduled(project.spec_path, as_json)
        spec_path = project.spec_path.resolve()
        if fmt is ExportFormat.cron:
            text = export_cron(settings, spec_path=spec_path, python=sys.executable,
                               log_path=project.workspace.root / "automation.log", project=project.spec.project)
        else:
            root = _git_root(spec_path.parent) or spec_path.parent
            watched = [spec_path, *(project.loaded.base_dir / s.path for s in project.spec.evaluation.sets)]
            for ref in project.spec.data.sources:
                if ref.provider == "files" and ref.settings.get("path"):
                    folder = (project.loaded.base_dir / str(ref.settings["path"])).resolve()
                    watched.append(folder / "**" if folder.is_dir() else folder)
            paths = [p for p in dict.fromkeys(_relative(Path(w), root) for w in watched) if p]
            text = export_github_actions(settings, project=project.spec.project,
                                         spec=spec_path.relative_to(root).as_posix(), watch_paths=paths)
    if as_json:
        print_json({"format": fmt.value, "text": text})
    else:
        sys.stdout.write(text)


@schedule_app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="the newest N cycles")] = 20,
    since: Annotated[str | None, typer.Option("--since", help="only cycles since a date (2026-12-01) or for a "
                                                              "duration back (7d, 12h)")] = None,
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """The automation's cycles, newest first: trigger, outcome and each step (run, evaluation and gates, release,
    promotion, bias monitoring), each with its audit entry (action automation.cycle). The history is kept apart
    from the audit log, whose retention does not prune it."""
    from flightdeck.improvement.automation import cycle_history
    from flightdeck.project import Project
    from flightdeck.workspace.audit import parse_since

    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    with errors_to_exit(as_json):
        cycles = cycle_history(Project.load(spec).workspace, limit=limit, since=start)
    if as_json:
        print_json(cycles)
        return
    if not cycles:
        typer.echo("no automation cycle yet; `flightdeck schedule --once` runs one")
    for c in cycles:
        words = ", ".join(f"{s['step']} {s['status']}" for s in c.get("steps", []))
        release = f"  {c['release_name']}" if c.get("release_name") else ""
        promoted = f" -> {c['promoted_to']}" if c.get("promoted_to") else ""
        typer.echo(f"{_when(c.get('started_at'))}  {c['id']}  {c.get('trigger', '?'):<5}  {c.get('status', '?'):<20}"
                   f"  {words}{release}{promoted}  by {c['actor']}")
