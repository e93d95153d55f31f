"""Commands about the spec: validate, checklist, schema."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["validate", "checklist", "schema"]


def validate(spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Check the spec: every problem with file:line:column and the valid choices. Exit 1 if any."""
    from flightdeck.spec.loader import check_spec, find_spec_file

    with errors_to_exit(as_json):
        path = find_spec_file(spec)
        loaded, problems = check_spec(path)
    if as_json:
        print_json({"ok": not problems, "file": str(path), "problems": [p.to_dict() for p in problems]})
    elif problems:
        for p in problems:
            typer.echo(f"error: {p}", err=True)
        typer.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {path}", err=True)
    else:
        typer.echo(f"{path}: ok")
    if problems:
        raise typer.Exit(EXIT_FAILED)


class ChecklistFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def checklist(
    spec: SpecOption = None,
    fmt: Annotated[ChecklistFormat, typer.Option("--format", "-f", help="text, markdown or json")] =
    ChecklistFormat.text,
    as_json: JsonOption = False,
) -> None:
    """The seed checklist with this project's choices ticked and the status of every option in this build.

    ready: a test marked for the option passed in the run that validated this build, and what it needed is
    installed here; needs extra: proved, but this install lacks something (the detail says what); planned:
    not implemented or not proved yet (the detail says why); unverified: only a plugin implements it.
    Without a spec in the current folder (and no --spec), shows the build's status with nothing ticked.
    """
    from flightdeck.spec.loader import SPEC_FILENAME, load_spec
    from flightdeck.spec.report import checklist_report, render_markdown, render_text

    loaded = None
    with errors_to_exit(as_json or fmt == ChecklistFormat.json):
        from pathlib import Path

        if spec is not None or Path(SPEC_FILENAME).is_file():
            loaded = load_spec(spec)
    report = checklist_report(loaded.spec if loaded else None)
    if as_json or fmt == ChecklistFormat.json:
        print_json(report)
    elif fmt == ChecklistFormat.markdown:
        typer.echo(render_markdown(report))
    else:
        typer.echo(render_text(report))


def schema() -> None:
    """Print the JSON Schema of flightdeck.yaml (for editors and CI)."""
    from flightdeck.spec.models import spec_model

    typer.echo(json.dumps(spec_model().model_json_schema(), indent=2))
