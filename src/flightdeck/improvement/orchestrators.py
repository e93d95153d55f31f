"""The pipeline of a spec as an Airflow DAG, a Prefect flow or a Dagster job (checklist 6.3; ``flightdeck export``).

A team that already runs an orchestrator wants the lifecycle there, next to its other pipelines: its retries, its
alerts, its UI. Each export is one Python file with the same tasks:

- ``run`` — ``flightdeck run``: ingest (parse, clean, chunk) → embed → index;
- ``evaluate`` — ``flightdeck eval --gate``: the spec's first evaluation set scored and ``evaluation.gates`` checked
  (only when the spec has ``evaluation.sets`` and ``improvement.automation.evaluate`` is on);
- ``release`` — ``flightdeck release create``: the build recorded as a candidate release (only when asked:
  ``release=True``, or ``improvement.automation.release`` in the spec).

Each task runs the flightdeck CLI in a subprocess, by absolute path, with ``--spec`` absolute and ``--json``: the
orchestrator's own environment never imports flightdeck (Prefect cannot share one with it: it pins an older
FastAPI). A task fails when the command exits non-zero, with the command's error (the missed gates, the spec's
problems, the last lines of its stderr) in the orchestrator's log, and is retried ``retries`` times,
``retry_delay`` seconds apart.

The step cache stays flightdeck's: it lives in the spec's workspace, not in the orchestrator. A task that runs
again (a retry, the next scheduled run) runs ``flightdeck run`` again, whose steps skip when their inputs and config
are unchanged, so only what changed is rebuilt; the orchestrator's own result caching is left off, since it would
skip a build whose sources changed. The workspace's writer lock keeps two builds apart (a build that finds another
one running fails, and is retried); Airflow's ``max_active_runs=1`` and Prefect's ``serve(global_limit=1)`` keep the
runs one at a time, and so does Dagster's run queue with a limit on the job's ``flightdeck/project`` tag.

The schedule is ``improvement.automation.cron`` (UTC) when the spec sets one: an Airflow ``CronTriggerTimetable``,
a Dagster ``ScheduleDefinition``, a Prefect deployment's ``Cron`` (``python flow.py serve``). Promotion stays with
``flightdeck release promote`` and ``governance.approvals``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from flightdeck.spec.automation import parse_cron
from flightdeck.spec.loader import load_spec

__all__ = ["ORCHESTRATORS", "ExportPlan", "plan_export", "export_pipeline", "export_airflow", "export_prefect",
           "export_dagster"]

#: the orchestrators ``flightdeck export`` writes for
ORCHESTRATORS = ("airflow", "prefect", "dagster")
_MAX_RETRIES = 100
_MAX_DELAY = 86_400


@dataclass(frozen=True)
class ExportPlan:
    """What an export writes: the spec, the command that runs flightdeck, the tasks, retries and schedule."""

    project: str
    spec_path: Path
    command: tuple[str, ...]
    evaluate: bool
    release: bool
    retries: int
    retry_delay: int
    cron: str | None

    @property
    def tasks(self) -> tuple[str, ...]:
        return ("run", *(("evaluate",) if self.evaluate else ()), *(("release",) if self.release else ()))

    @property
    def slug(self) -> str:
        """The project's name as an identifier (Airflow's dag_id, Dagster's job name): letters, digits and ``_``."""
        return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", self.project.lower())).strip("_")[:200] or "project"


def _command(flightdeck_bin: str | Path | Sequence[str]) -> tuple[str, ...]:
    parts = (str(flightdeck_bin),) if isinstance(flightdeck_bin, str | Path) else tuple(str(p) for p in flightdeck_bin)
    if not parts or not parts[0]:
        raise ValueError("flightdeck_bin is empty: give the flightdeck executable's absolute path")
    if not Path(parts[0]).is_absolute():
        raise ValueError(f"flightdeck_bin {parts[0]!r} is not an absolute path: the orchestrator's workers share "
                         "neither your PATH nor your working folder; give e.g. /path/to/.venv/bin/flightdeck")
    return parts


def plan_export(spec_path: str | Path | None, flightdeck_bin: str | Path | Sequence[str], *, retries: int = 2,
                retry_delay: int = 60, release: bool | None = None) -> ExportPlan:
    """The plan of an export of the spec at ``spec_path`` (a file, a folder holding flightdeck.yaml, or None:
    ./flightdeck.yaml); raises :class:`~flightdeck.errors.SpecError` for a spec that does not load and ``ValueError``
    for a bad argument. ``release`` None: the spec's ``improvement.automation.release``."""
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= _MAX_RETRIES:
        raise ValueError(f"retries {retries!r}: a whole number from 0 to {_MAX_RETRIES}")
    if isinstance(retry_delay, bool) or not isinstance(retry_delay, int) or not 0 <= retry_delay <= _MAX_DELAY:
        raise ValueError(f"retry_delay {retry_delay!r}: whole seconds from 0 to {_MAX_DELAY}")
    command = _command(flightdeck_bin)
    loaded = load_spec(spec_path)
    spec = loaded.spec
    automation = spec.improvement.automation
    return ExportPlan(
        project=spec.project, spec_path=loaded.path.resolve(), command=command,
        evaluate=bool(spec.evaluation.sets) and automation.evaluate,
        release=automation.release if release is None else release,
        retries=retries, retry_delay=retry_delay,
        cron=parse_cron(automation.cron).text if automation.cron else None)


def _said(text: str) -> str:
    """``text`` fit for a docstring: printable, no backslash or double quote (the spec's values are data)."""
    return "".join(c if c.isprintable() and c not in '\\"' else "_" for c in text)


# --- the code every export shares: one flightdeck command per task ---------------------------------------------
_SHARED = '''
def _json_values(text: str) -> list:
    """Every JSON value that the command printed, in order (progress lines, then its result)."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:  # a line that is not JSON: skip it
            end = text.find("\\n", i)
            i = len(text) if end < 0 else end + 1
            continue
        values.append(value)
    return values


def _why(args: tuple, code: int, result: object, stderr: str) -> str:
    """Why a command failed, in words: flightdeck's error, the spec's problems, the missed gates, its stderr."""
    reasons = []
    if isinstance(result, dict):
        if result.get("error"):
            reasons.append(str(result["error"]))
        for p in result.get("problems") or []:
            reasons.append(f"{p.get('file')}:{p.get('line')}: {p.get('location')}: {p.get('message')}")
        missed = [g for g in result.get("gates") or [] if isinstance(g, dict) and g.get("passed") is False]
        if missed:
            reasons.append("gates missed: " + "; ".join(f"{g.get('gate')} (value {g.get('value')})" for g in missed))
    message = f"`flightdeck {' '.join(args)}` exited {code}" + (": " + " | ".join(reasons) if reasons else "")
    tail = stderr.strip()[-STDERR_TAIL:]
    return message + (f"\\n--- its stderr (last lines) ---\\n{tail}" if tail else "")


def flightdeck(log, *args: str) -> dict:
    """Run ``flightdeck <args> --json --spec SPEC``, log what it says, and return its result (the last JSON value
    it printed). A non-zero exit raises: the task fails with flightdeck's error, and is retried."""
    argv = [*FLIGHTDECK, *args, "--json", "--spec", SPEC]
    log.info("$ " + shlex.join(argv))
    done = subprocess.run(argv, cwd=os.path.dirname(SPEC), capture_output=True, text=True, encoding="utf-8",
                          errors="replace", check=False)
    values = _json_values(done.stdout)
    result = values[-1] if values else None
    for line in done.stderr.splitlines():
        if line.strip():
            (log.info if done.returncode == 0 else log.error)("flightdeck: " + line)
    if done.returncode != 0:
        raise _failed(_why(args, done.returncode, result, done.stderr), done.returncode, done.stderr)
    return result if isinstance(result, dict) else {}


def do_run(log) -> dict:
    """flightdeck run: ingest, embed, index; unchanged steps skip (the workspace's step cache)."""
    summary = flightdeck(log, "run")
    steps = {s.get("step"): s.get("status") for s in summary.get("steps") or [] if isinstance(s, dict)}
    log.info(f"run {summary.get('run_id')} {summary.get('status')}: "
             + ", ".join(f"{step} {status}" for step, status in steps.items()))
    return {"run_id": summary.get("run_id"), "status": summary.get("status"), "steps": steps}


def do_evaluate(log) -> dict:
    """flightdeck eval --gate: the first evaluation set scored, evaluation.gates checked (a missed gate fails)."""
    report = flightdeck(log, "eval", "--gate")
    run = report.get("run") or {}
    gates = {g.get("gate"): g.get("passed") for g in report.get("gates") or [] if isinstance(g, dict)}
    log.info(f"evaluation {run.get('id')} of index {run.get('index_version')}: passed {report.get('passed')}"
             + (" (" + ", ".join(f"{g} {'ok' if ok else 'missed'}" for g, ok in gates.items()) + ")" if gates else ""))
    return {"eval_run": run.get("id"), "index_version": run.get("index_version"), "passed": report.get("passed"),
            "gates": gates}


def do_release(log, comment: str) -> dict:
    """flightdeck release create: the current index, this spec and its latest evaluation as a candidate."""
    out = flightdeck(log, "release", "create", "--comment", comment)
    release = out.get("release") or {}
    log.info(("created " if out.get("created") else "already recorded: ")
             + f"release {release.get('name')} ({release.get('id')}), stage {release.get('stage')}")
    return {"release": release.get("id"), "name": release.get("name"), "stage": release.get("stage"),
            "created": out.get("created")}
'''


_ONE_AT_A_TIME = {
    "airflow": "max_active_runs=1 keeps the DAG's runs one at a time",
    "prefect": "`serve` runs one flow run at a time (global_limit=1)",
    "dagster": "for one run at a time, limit the tag flightdeck/project to 1 in dagster.yaml's\n"
               "run_queue.tag_concurrency_limits",
}


def _docstring(plan: ExportPlan, kind: str, how: str) -> str:
    steps = {"run": "flightdeck run: ingest (parse, clean, chunk) -> embed -> index",
             "evaluate": "flightdeck eval --gate: evaluation.sets scored, evaluation.gates checked",
             "release": "flightdeck release create: the build recorded as a candidate release"}
    schedule = (f"Schedule: '{plan.cron}' in UTC (improvement.automation.cron)." if plan.cron else
                "Schedule: none (the spec sets no improvement.automation.cron): trigger it by hand.")
    return (f'"""The flightdeck pipeline of {_said(plan.project)} as {kind}: written by `flightdeck export '
            f"{how}`.\n\n"
            f"Spec: {_said(str(plan.spec_path))}\n"
            "Tasks, each after the one before:\n" + "".join(f"  {t:<9} {steps[t]}\n" for t in plan.tasks) + "\n"
            "Each task runs the flightdeck CLI (FLIGHTDECK) on the spec with --json and fails when it exits non-zero,\n"
            "with flightdeck's error (the missed gates, the spec's problems, its stderr) in this orchestrator's log;\n"
            "a failed task is retried RETRIES times, RETRY_DELAY_SECONDS apart.\n\n"
            "The step cache is flightdeck's own and stays in the spec's workspace: running this again,\n"
            "or retrying a task, runs `flightdeck run` again, whose steps skip when their inputs and config are\n"
            "unchanged, so only what changed is rebuilt. The orchestrator's own result cache is not used (it would\n"
            "skip a build whose sources changed). The workspace has one writer: a build that finds another one\n"
            f"running fails and is retried; {_ONE_AT_A_TIME[how]}.\n\n"
            f"{schedule}\n"
            "Promotion stays with `flightdeck release promote` and governance.approvals.\n"
            '"""\n')


def _constants(plan: ExportPlan) -> str:
    return (f"FLIGHTDECK = {list(plan.command)!r}\n"
            f"SPEC = {str(plan.spec_path)!r}\n"
            f"TASKS = {plan.tasks!r}\n"
            f"RETRIES = {plan.retries!r}\n"
            f"RETRY_DELAY_SECONDS = {plan.retry_delay!r}\n"
            f"CRON = {plan.cron!r}  # UTC\n"
            "STDERR_TAIL = 4000  # characters of a failed command's stderr kept in the task's error\n")


def _render(template: str, plan: ExportPlan, kind: str, how: str, **values: str) -> str:
    return Template(template).substitute(doc=_docstring(plan, kind, how), constants=_constants(plan),
                                         shared=_SHARED.strip("\n"), **values)


def _chain(plan: ExportPlan, calls: dict[str, str], *, returns: bool) -> str:
    """The wiring, in a function's body: each task takes the previous one's result (its dependency)."""
    lines, previous = [], ""
    names = {"run": "built", "evaluate": "checked", "release": "released"}
    for i, name in enumerate(plan.tasks):
        last = i == len(plan.tasks) - 1
        target = "return " if last and returns else "" if last else f"{names[name]} = "
        lines.append(f"    {target}{calls[name]}({previous})")
        previous = names[name]
    return "\n".join(lines)


_AIRFLOW = '''$doc
import datetime as dt
import json
import logging
import os
import shlex
import subprocess

from airflow.sdk import dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

$constants
DAG_ID = $dag_id
log = logging.getLogger("flightdeck.pipeline")


def _failed(message: str, code: int, stderr: str) -> Exception:
    return RuntimeError(message)


$shared


@dag(
    dag_id=DAG_ID,
    description=$description,
    schedule=CronTriggerTimetable(CRON, timezone="UTC") if CRON else None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": dt.timedelta(seconds=RETRY_DELAY_SECONDS)},
    tags=["flightdeck"],
    doc_md=__doc__,
)
def flightdeck_pipeline():
    @task(task_id="run")
    def run_task():
        return do_run(log)

    @task(task_id="evaluate")
    def evaluate_task(built):
        return do_evaluate(log)

    @task(task_id="release")
    def release_task(previous):
        return do_release(log, f"airflow {DAG_ID} run {get_current_context()['run_id']}")

$wiring

flightdeck_pipeline()
'''

_PREFECT = '''$doc
import json
import os
import shlex
import subprocess
import sys

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

$constants
FLOW_NAME = $flow_name


def _failed(message: str, code: int, stderr: str) -> Exception:
    return RuntimeError(message)


$shared


def _task(name: str):
    # NO_CACHE: flightdeck's step cache decides what is rebuilt; Prefect's would skip a build whose sources changed
    return task(name=name, retries=RETRIES, retry_delay_seconds=RETRY_DELAY_SECONDS, cache_policy=NO_CACHE)


@_task("run")
def run_task() -> dict:
    return do_run(get_run_logger())


@_task("evaluate")
def evaluate_task(built: dict) -> dict:
    return do_evaluate(get_run_logger())


@_task("release")
def release_task(previous: dict) -> dict:
    return do_release(get_run_logger(), f"prefect {FLOW_NAME} run {flow_run.name} ({flow_run.id})")


@flow(name=FLOW_NAME, description=$description)
def flightdeck_pipeline() -> dict:
$wiring

if __name__ == "__main__":
    # `python this_file.py` runs the flow once (exit 1 when a task failed after its retries), on the server of
    # PREFECT_API_URL or, without one, on a temporary server of its own;
    # `python this_file.py serve` serves it as a deployment, on the spec's cron schedule when it has one: the
    # schedule fires on a running Prefect server (`prefect server start`, PREFECT_API_URL), not a temporary one.
    if sys.argv[1:] == ["serve"]:
        from prefect.schedules import Cron

        flightdeck_pipeline.serve(name=FLOW_NAME, schedules=[Cron(CRON, timezone="UTC")] if CRON else None,
                                  global_limit=1)
    elif sys.argv[1:]:
        sys.exit(f"usage: python {sys.argv[0]} [serve]")
    else:
        flightdeck_pipeline()
'''

_DAGSTER = '''$doc
import json
import os
import shlex
import subprocess

from dagster import (
    Definitions,
    Failure,
    MetadataValue,
    OpExecutionContext,
    RetryPolicy,
    ScheduleDefinition,
    job,
    op,
)

$constants
JOB_NAME = $job_name
RETRY = RetryPolicy(max_retries=RETRIES, delay=RETRY_DELAY_SECONDS)


def _failed(message: str, code: int, stderr: str) -> Exception:
    return Failure(description=message, metadata={"exit_code": code,
                                                  "stderr": MetadataValue.text(stderr[-STDERR_TAIL:])})


$shared


@op(name="run", retry_policy=RETRY)
def run_op(context: OpExecutionContext) -> dict:
    return do_run(context.log)


@op(name="evaluate", retry_policy=RETRY)
def evaluate_op(context: OpExecutionContext, built: dict) -> dict:
    return do_evaluate(context.log)


@op(name="release", retry_policy=RETRY)
def release_op(context: OpExecutionContext, previous: dict) -> dict:
    return do_release(context.log, f"dagster {JOB_NAME} run {context.run_id}")


@job(name=JOB_NAME, description=$description, tags={"flightdeck/project": $project})
def flightdeck_pipeline():
$wiring


schedules = ([ScheduleDefinition(name=f"{JOB_NAME}_schedule", job=flightdeck_pipeline, cron_schedule=CRON,
                                 execution_timezone="UTC")] if CRON else [])
defs = Definitions(jobs=[flightdeck_pipeline], schedules=schedules)
'''


def _description(plan: ExportPlan) -> str:
    return repr(f"flightdeck pipeline of {plan.project}: " + " -> ".join(plan.tasks))


def _airflow(plan: ExportPlan) -> str:
    wiring = _chain(plan, {"run": "run_task", "evaluate": "evaluate_task", "release": "release_task"}, returns=False)
    return _render(_AIRFLOW, plan, "an Airflow DAG", "airflow", dag_id=repr(f"flightdeck_{plan.slug}"),
                   description=_description(plan), wiring=wiring)


def _prefect(plan: ExportPlan) -> str:
    wiring = _chain(plan, {"run": "run_task", "evaluate": "evaluate_task", "release": "release_task"}, returns=True)
    return _render(_PREFECT, plan, "a Prefect flow", "prefect", flow_name=repr(f"flightdeck-{plan.slug}"),
                   description=_description(plan), wiring=wiring)


def _dagster(plan: ExportPlan) -> str:
    wiring = _chain(plan, {"run": "run_op", "evaluate": "evaluate_op", "release": "release_op"}, returns=False)
    return _render(_DAGSTER, plan, "a Dagster job", "dagster", job_name=repr(f"flightdeck_{plan.slug}"),
                   description=_description(plan), project=repr(plan.project), wiring=wiring)


_WRITERS = {"airflow": _airflow, "prefect": _prefect, "dagster": _dagster}


def export_pipeline(orchestrator: str, plan: ExportPlan) -> str:
    """The Python source of ``plan`` for ``orchestrator`` (airflow, prefect or dagster)."""
    if orchestrator not in _WRITERS:
        raise ValueError(f"orchestrator {orchestrator!r}: one of {', '.join(ORCHESTRATORS)}")
    return _WRITERS[orchestrator](plan)


def export_airflow(spec_path: str | Path, flightdeck_bin: str | Path | Sequence[str], *, retries: int = 2,
                   retry_delay: int = 60, release: bool | None = None) -> str:
    """An Airflow 3 DAG (``airflow.sdk``) of the spec's pipeline: tasks run → evaluate → release, each a
    subprocess of the flightdeck CLI, retried ``retries`` times ``retry_delay`` seconds apart; the spec's cron (UTC)
    as its ``CronTriggerTimetable``. See the module's docstring."""
    return _airflow(plan_export(spec_path, flightdeck_bin, retries=retries, retry_delay=retry_delay, release=release))


def export_prefect(spec_path: str | Path, flightdeck_bin: str | Path | Sequence[str], *, retries: int = 2,
                   retry_delay: int = 60, release: bool | None = None) -> str:
    """A Prefect 3 flow of the spec's pipeline (``python file.py`` runs it once; ``python file.py serve`` serves it
    on the spec's cron, UTC); tasks as in :func:`export_airflow`, with Prefect's result cache off."""
    return _prefect(plan_export(spec_path, flightdeck_bin, retries=retries, retry_delay=retry_delay, release=release))


def export_dagster(spec_path: str | Path, flightdeck_bin: str | Path | Sequence[str], *, retries: int = 2,
                   retry_delay: int = 60, release: bool | None = None) -> str:
    """A Dagster job of the spec's pipeline (ops with a ``RetryPolicy``; a failed command raises ``Failure`` with
    its stderr as metadata), a ``ScheduleDefinition`` on the spec's cron (UTC) and ``defs``, the ``Definitions``
    that ``dagster dev -f file.py`` loads."""
    return _dagster(plan_export(spec_path, flightdeck_bin, retries=retries, retry_delay=retry_delay, release=release))
