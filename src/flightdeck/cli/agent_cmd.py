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


FRAMEWORKS = ("langchain", "llamaindex")


def _framework_run(project: Any, framework: str, question: str) -> Any:
    """``question`` run by another framework's agent (``model.agent_frameworks``) on this project's tools, its model
    reached through flightdeck's own OpenAI-compatible endpoint, served on 127.0.0.1 for the run with a key made
    for it and revoked after."""
    from flightdeck.agents.frameworks.local_endpoint import local_endpoint
    from flightdeck.governance.access import Role
    from flightdeck.serving.api import create_app
    from flightdeck.serving.service import Service

    if framework == "langchain":
        from flightdeck.agents.frameworks.langchain import LangchainAgent as Agent
    else:
        from flightdeck.agents.frameworks.llamaindex import LlamaindexAgent as Agent  # type: ignore[assignment]
    settings = project.spec.agents.agent
    key = project.api_keys.create(Role.VIEWER, name=f"agent-{framework}", expires_in=3600)
    try:
        with local_endpoint(lambda: create_app(Service(project, project.api_keys)), key.key) as (url, api_key):
            run = Agent(base_url=url, api_key=api_key, model=project.spec.project,
                        tools=list(project.agent.tools.values()), instructions=settings.instructions,
                        budget=settings.budget).run(question)
    finally:
        project.api_keys.revoke(key.record.id)
    return project.record_agent_run(run, framework=framework)


def agent(
    question: Annotated[str, typer.Argument(help="what to ask the agent")],
    conversation: Annotated[str | None, typer.Option(
        "--conversation", "-c", help="continue this conversation (any id you choose): its earlier turns are read "
                                     "from agents.memory, and this one is kept")] = None,
    framework: Annotated[str | None, typer.Option(
        "--framework", help="run the agent with LangChain's create_agent or LlamaIndex's FunctionAgent on the same "
                            "tools and model (through flightdeck's endpoint); default: model.agent_frameworks' "
                            "first of langchain/llamaindex, else flightdeck's own loop")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the answer and its citations")] = False,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer with the tools of agents.tools (the index, a SQL database, a sandbox…): each step is shown as it ends
    (on stderr), then the answer with its numbered citations. The run is traced (`flightdeck lineage TRACE_ID`) and
    audited. Exits 1 when the agent did not answer (its budget ran out, a tool failed)."""
    from flightdeck.project import Project

    if framework is not None and framework not in (*FRAMEWORKS, "flightdeck"):
        raise typer.BadParameter(f"{framework}: langchain, llamaindex or flightdeck", param_hint="--framework")
    with errors_to_exit(as_json):
        project = Project.load(spec)
        chosen = framework or next((f for f in project.spec.model.agent_frameworks or () if f in FRAMEWORKS),
                                   "flightdeck")
        if chosen == "flightdeck":
            run = project.run_agent(question, conversation=conversation,
                                    on_step=None if (as_json or quiet) else _show_step)
        else:
            if conversation:
                raise typer.BadParameter("a conversation is flightdeck's own loop's (agents.memory); drop "
                                         "--conversation or use --framework flightdeck", param_hint="--conversation")
            run = _framework_run(project, chosen, question)
            if not (as_json or quiet):
                for step in run.steps:
                    _show_step(step)
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
