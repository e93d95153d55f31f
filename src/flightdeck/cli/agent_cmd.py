"""``flightdeck agent QUESTION``: a tool-using agent answers with citations, each step shown as it ends (checklist
0.1 agents, phase 6). A thin shell over :meth:`flightdeck.project.Project.run_agent`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["agent"]


def _show_step(step: Any) -> None:
    if step.kind == "answer":
        return
    head = f"  step {step.n} {step.kind}"
    if step.tool:
        head += f" {step.tool}({json.dumps(step.arguments, ensure_ascii=False)[:160]})"
    typer.echo(head, err=True)
    if step.error:
        typer.echo(f"    refused: {step.error[:300]}", err=True)
    elif step.kind == "tool":
        lines = [ln for ln in step.content.splitlines() if not ln.startswith(("<source", "</source"))]
        preview = " ".join(" ".join(lines).split())
        typer.echo(f"    → {preview[:200]}{'…' if len(preview) > 200 else ''}", err=True)


def agent(
    question: Annotated[str, typer.Argument(help="what to ask the agent")],
    conversation: Annotated[str | None, typer.Option(
        "--conversation", "-c", help="continue this conversation (any id you choose): its earlier turns are read "
                                     "from agents.memory, and this one is kept")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the answer and its citations")] = False,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer with the tools of agents.tools (the index, a SQL database, a sandbox…): each step is shown as it ends
    (on stderr), then the answer with its numbered citations. The run is traced (`flightdeck lineage TRACE_ID`) and
    audited. Exits 1 when the agent did not answer (its budget ran out, a tool failed)."""
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        run = Project.load(spec).run_agent(question, conversation=conversation,
                                           on_step=None if (as_json or quiet) else _show_step)
    if as_json:
        print_json(run.to_dict())
    else:
        typer.echo(run.answer or f"(no answer: {run.stop_reason or run.status})")
        for c in run.citations:
            where = c.get("source_uri") or c.get("url") or c.get("table") or c.get("id")
            typer.echo(f"  [{c['number']}] {c['tool']}: {where}")
        typer.echo(f"  {run.status}: {run.tool_calls} tool call(s), {sum(run.usage.values())} tokens, "
                   f"{run.ms / 1000:.1f} s; trace {run.trace_id}", err=True)
    if run.status != "answered":
        raise typer.Exit(EXIT_FAILED)
