"""The ``flightdeck`` command: a thin shell over :class:`flightdeck.Project`."""

from __future__ import annotations

import inspect

import typer

from flightdeck.cli import (
    agent_cmd,
    audit_cmds,
    batch_cmd,
    data_cmds,
    drift_cmd,
    eval_cmds,
    explain_cmd,
    export_cmd,
    init_cmd,
    keys_cmds,
    lineage_cmd,
    redteam_cmd,
    release_cmds,
    run_cmds,
    schedule_cmd,
    serve_cmd,
    spec_cmds,
    tune_cmd,
)

app = typer.Typer(
    name="flightdeck",
    help="Run the AI engineering lifecycle from one spec (flightdeck.yaml): the filled-in checklist.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(init_cmd.init)
app.command("validate")(spec_cmds.validate)
app.command("checklist")(spec_cmds.checklist)
app.command("schema")(spec_cmds.schema)
app.command("run")(run_cmds.run)
app.command("search")(run_cmds.search)
app.command("ask")(run_cmds.ask)
app.command("agent")(agent_cmd.agent)
app.command("batch")(batch_cmd.batch)
app.command("serve")(serve_cmd.serve)
app.command("drift")(drift_cmd.drift)
app.command("tune")(tune_cmd.tune)
app.command("explain")(explain_cmd.explain)
app.command("redteam")(redteam_cmd.redteam)
app.add_typer(audit_cmds.audit_app, name="audit")
app.add_typer(data_cmds.data_app, name="data")
app.command("lineage")(lineage_cmd.lineage)
app.add_typer(eval_cmds.app, name="eval")
app.add_typer(keys_cmds.keys_app, name="keys")
app.add_typer(release_cmds.release_app, name="release")
app.add_typer(schedule_cmd.schedule_app, name="schedule")
app.command("export")(export_cmd.export)


def reflowed(doc: str) -> str:
    """``doc`` with each paragraph's lines joined into one (paragraphs stay apart; a paragraph starting with ``\\b``
    keeps its lines, as click's convention says)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)


def _reflow_help(typer_app: typer.Typer) -> None:
    """typer keeps a docstring's line breaks in the paragraphs after the first: a help text wrapped at 120 columns in
    the source would print ragged in an 80-column terminal. Each command's help is its docstring reflowed."""
    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc:
            info.help = reflowed(doc)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_reflow_help(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
