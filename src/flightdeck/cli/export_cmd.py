"""``flightdeck export airflow|prefect|dagster``: the spec's pipeline as an Airflow DAG, a Prefect flow or a Dagster
job whose tasks run this flightdeck (a thin shell over :mod:`flightdeck.improvement.orchestrators`)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["export"]


class Orchestrator(StrEnum):
    airflow = "airflow"
    prefect = "prefect"
    dagster = "dagster"


def default_flightdeck() -> list[str]:
    """This flightdeck, by absolute path: the console script next to the running Python (a virtualenv's bin/), else
    that Python with ``-m flightdeck``. The interpreter's path is kept as it is, not resolved: resolving a
    virtualenv's python leaves the virtualenv."""
    python = Path(sys.executable).absolute()
    script = python.parent / "flightdeck"
    return [str(script)] if script.is_file() else [str(python), "-m", "flightdeck"]


def export(
    orchestrator: Annotated[Orchestrator | None, typer.Argument(
        help="airflow (an Airflow 3 DAG), prefect (a Prefect 3 flow) or dagster (a Dagster job and its Definitions); "
             "default: the first of them in the spec's agents.orchestration")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the Python file here (default: stdout); "
                                                                 "for Airflow, a file in its dags folder")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, max=100, help="how many times a failed task is "
                                                                          "retried")] = 2,
    retry_delay: Annotated[int, typer.Option("--retry-delay", min=0, max=86_400, help="seconds between a failed "
                                                                                     "task and its retry")] = 60,
    release: Annotated[bool | None, typer.Option("--release/--no-release", help="end with a release task "
                                                                                "(flightdeck release create); "
                                                                                "default: improvement.automation."
                                                                                "release")] = None,
    flightdeck_bin: Annotated[str | None, typer.Option("--flightdeck", help="the flightdeck executable the tasks "
                                                                            "run, as an absolute path on the "
                                                                            "orchestrator's workers (default: "
                                                                            "this one)")] = None,
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Write the spec's pipeline for an orchestrator: tasks run (flightdeck run: ingest, chunk, embed, index),
    evaluate (flightdeck eval --gate, when the spec has evaluation.sets) and release (with --release), each a
    subprocess of this flightdeck on this spec, retried --retries times --retry-delay seconds apart, and failing with
    flightdeck's error in the orchestrator's log.

    The step cache stays flightdeck's, in the workspace: a task that runs again re-runs `flightdeck run`, whose
    unchanged steps skip. The schedule is improvement.automation.cron (UTC) when the spec sets one.

    \b
    Airflow:  save it in the dags folder; `airflow dags test <dag_id>` runs it once.
    Prefect:  `python flow.py` runs it once; `python flow.py serve` serves it on the schedule.
    Dagster:  `dagster dev -f job.py`, or flightdeck_pipeline.execute_in_process().
    """
    from flightdeck.improvement.orchestrators import export_pipeline, plan_export

    if flightdeck_bin is not None and not Path(flightdeck_bin).is_absolute():
        raise typer.BadParameter(f"{flightdeck_bin!r} is not an absolute path: the orchestrator's workers share "
                                 "neither your PATH nor your working folder", param_hint="--flightdeck")
    if out is not None and out.is_dir():
        raise typer.BadParameter(f"{out} is a folder: give the file to write, e.g. {out / 'flightdeck_pipeline.py'}",
                                 param_hint="--out")
    with errors_to_exit(as_json):
        if orchestrator is None:
            from flightdeck.spec.loader import load_spec

            chosen = [r.provider for r in load_spec(spec).spec.agents.orchestration or []
                      if r.provider in Orchestrator.__members__]
            if not chosen:
                raise typer.BadParameter("name one (airflow, prefect, dagster), or choose one in the spec: agents: "
                                         "{orchestration: [airflow]}", param_hint="orchestrator")
            orchestrator = Orchestrator(chosen[0])
        plan = plan_export(spec, [flightdeck_bin] if flightdeck_bin else default_flightdeck(), retries=retries,
                           retry_delay=retry_delay, release=release)
        text = export_pipeline(orchestrator.value, plan)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    if as_json:
        print_json({"orchestrator": orchestrator.value, "spec": str(plan.spec_path), "tasks": list(plan.tasks),
                    "retries": plan.retries, "retry_delay": plan.retry_delay, "schedule": plan.cron,
                    "flightdeck": list(plan.command), "out": str(out) if out is not None else None,
                    **({"text": text} if out is None else {})})
    elif out is not None:
        typer.echo(f"wrote {out}: {orchestrator.value} pipeline of {plan.project} ({' -> '.join(plan.tasks)}; "
                   f"{plan.retries} retries; " + (f"schedule '{plan.cron}' UTC)" if plan.cron else "no schedule)"),
                   err=True)
    else:
        sys.stdout.write(text)
