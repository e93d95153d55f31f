"""``flightdeck init``: walk the checklist and write a commented ``flightdeck.yaml``.

With ``--yes`` (or ``--template rag --yes``) it asks nothing and writes the embedded RAG stack. Otherwise it
asks, phase by phase, for the sections that have an option ready in this build, with the embedded defaults
pre-selected; sections with nothing ready yet are listed and skipped. Answers are read with plain prompts,
so piping answers on stdin works as well as a terminal.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flightdeck.cli.common import EXIT_FAILED
from flightdeck.core.files import write_text_atomic

if TYPE_CHECKING:  # rich and the spec modules are imported when init runs, not when the CLI starts
    from rich.console import Console

    from flightdeck.spec.catalog import Section
    from flightdeck.spec.status import OptionStatus

__all__ = ["init", "Template"]

_STATE_STYLE = {"ready": "green", "needs extra": "yellow", "unverified": "cyan", "planned": "dim"}


class Template(StrEnum):
    """Starting points for a spec."""

    rag = "rag"  # the embedded RAG stack: files -> recursive chunks -> MiniLM -> FAISS + BM25 -> extractive


def _template_choices(template: Template | None) -> dict[str, object]:
    from flightdeck.spec.writer import default_choices

    # Every template today is the embedded RAG stack; the enum leaves room for others.
    return default_choices()


class _Questionnaire:
    """Asks one question per checklist section that has something ready, re-asking on unusable answers."""

    def __init__(self, console: Console, defaults: dict[str, object]) -> None:
        self.console = console
        self.defaults = defaults

    def say(self, message: str, style: str | None = None) -> None:
        from rich.text import Text

        self.console.print(Text(message, style=style or ""), soft_wrap=True)

    def run(self, folder: str) -> tuple[dict[str, object], list[dict[str, object]] | None]:
        """The choices by ``phase.section`` and the sources (None when the sources section was not asked)."""
        from flightdeck.spec.catalog import catalog
        from flightdeck.spec.status import option_usable

        choices: dict[str, object] = {}
        sources: list[dict[str, object]] | None = None
        for phase in catalog().phases:
            states = {o.key: option_usable(o.key) for s in phase.sections for o in s.options}
            askable = [s for s in phase.sections if any(states[o.key].state == "ready" for o in s.options)]
            self.say("")
            self.say(phase.heading, "bold")
            if not askable:
                self.say(f"  nothing ready in this build yet in its {len(phase.sections)} sections; skipped", "dim")
                continue
            for section in phase.sections:
                if section not in askable:
                    self.say(f"{section.heading}: nothing ready in this build yet; skipped", "dim")
                    continue
                picked = self.ask(section, states)
                if section.path == "data.sources":
                    sources = self._sources(section, picked or [], folder)
                elif picked is not None:
                    choices[section.path] = self._values(section, picked)
        return choices, sources

    def _default(self, section: Section) -> object:
        if section.path == "data.sources":
            from flightdeck.spec.writer import provider_for_option

            return [o.id for o in section.options if provider_for_option(section, o.id) == "files"] or None
        return self.defaults.get(section.path)

    @staticmethod
    def _values(section: Section, picked: str | list[str]) -> object:
        from flightdeck.spec.writer import provider_for_option

        if isinstance(picked, list):
            return [provider_for_option(section, p) for p in picked]
        return provider_for_option(section, picked)

    @staticmethod
    def _sources(section: Section, picked: list[str], folder: str) -> list[dict[str, object]]:
        from flightdeck.spec.writer import provider_for_option

        out: list[dict[str, object]] = []
        for option_id in picked:
            name = provider_for_option(section, option_id)
            out.append({"provider": name, "path": folder} if name == "files" else {"provider": name})
        return out

    def ask(self, section: Section, states: dict[str, OptionStatus]) -> str | list[str] | None:
        """The option id (single) or ids (multi) chosen for ``section``; None when none is chosen."""
        from rich.text import Text

        default = self._default(section)
        ids = section.option_ids
        # Only a usable default is pre-selected: Enter must never pick something that cannot run.
        default_ids = [d for d in (default if isinstance(default, list) else [default])
                       if d in ids and states[f"{section.path}.{d}"].state == "ready"] if default is not None else []
        self.say("")
        self.say(section.heading, "bold")
        if section.note:
            self.say(f"  {section.note}", "dim")
        width = max(len(i) for i in ids)
        for n, option in enumerate(section.options, 1):
            state = states[option.key].state
            line = Text(f"  {n:>2}. {option.id:<{width}}  ")
            line.append(f"{state:<11}", style=_STATE_STYLE.get(state, ""))
            line.append(f"  {option.label}")
            if option.id in default_ids:
                line.append("  (default)", style="cyan")
            self.console.print(line, soft_wrap=True)
        default_text = ",".join(str(n) for n in sorted(ids.index(d) + 1 for d in default_ids))
        if section.multi:
            prompt = "Numbers, comma-separated (Enter for the default, '-' for none)" if default_ids \
                else "Numbers, comma-separated (Enter or '-' for none)"
        else:
            prompt = "Number (Enter for the default)" if default_ids else "Number (Enter or '-' for none)"
        while True:
            answer = typer.prompt(prompt, default=default_text, show_default=bool(default_ids)).strip()
            if (not answer or answer == default_text) and default_ids:
                # The default as the template orders it, not as numbered.
                return list(default_ids) if section.multi else default_ids[0]
            if answer == "-" or not answer:
                if not section.multi and default_ids:
                    self.say(f"{section.heading} needs a choice here; press Enter for the default "
                             f"({default_ids[0]}).", "yellow")
                    continue
                return [] if section.multi else None
            picked, problem = self._parse(answer, ids)
            if problem is None and not section.multi and len(picked) != 1:
                problem = f"{section.heading} takes one choice; got {len(picked)}."
            if problem is None:
                problem = self._unusable(section, picked, states)
            if problem is not None:
                self.say(problem, "yellow")
                continue
            # The checklist's order, whatever the order typed.
            return sorted(picked, key=ids.index) if section.multi else picked[0]

    @staticmethod
    def _parse(answer: str, ids: list[str]) -> tuple[list[str], str | None]:
        picked: list[str] = []
        for token in answer.replace(",", " ").split():
            if token.isdigit() and 1 <= int(token) <= len(ids):
                choice = ids[int(token) - 1]
            elif token in ids:
                choice = token
            else:
                return [], f"'{token}' is not a choice: enter numbers from 1 to {len(ids)} (or option ids)."
            if choice not in picked:
                picked.append(choice)
        return picked, None

    @staticmethod
    def _unusable(section: Section, picked: list[str], states: dict[str, OptionStatus]) -> str | None:
        ready = [o.id for o in section.options if states[o.key].state == "ready"]
        for option_id in picked:
            status = states[f"{section.path}.{option_id}"]
            if status.state == "planned":
                return (f"'{option_id}' is planned: {status.detail}. "
                        f"Ready here: {', '.join(ready) or 'nothing yet'}. Choose again.")
            if status.state == "needs extra":
                return (f"'{option_id}' is not installed: {status.detail}. Install it and run init again, "
                        f"or choose again.")
        return None


def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="where to write the spec (a file, or a folder for flightdeck.yaml)")]
    = Path("flightdeck.yaml"),
    template: Annotated[Template | None, typer.Option(
        "--template", "-t", help="start from a template: rag (the embedded RAG stack, offline)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="accept the defaults, ask nothing")] = False,
    project: Annotated[str | None, typer.Option(
        "--project", help="the project's name (default: the name of the spec's folder)")] = None,
    source: Annotated[str, typer.Option(
        "--source", help="folder of documents for the files source, relative to the spec")] = "./docs",
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing spec")] = False,
) -> None:
    """Walk the checklist and write a commented flightdeck.yaml (the embedded RAG stack with --yes)."""
    from rich.console import Console
    from rich.text import Text

    from flightdeck.spec.loader import SPEC_FILENAME, check_spec
    from flightdeck.spec.writer import default_sources, render_spec

    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    target = path / SPEC_FILENAME if path.is_dir() else path
    if target.exists() and not force:
        errors.print(f"error: {target} already exists; pass --force to overwrite it, or give another path.",
                     markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    name = (project or "").strip() or target.resolve().parent.name or "my-project"
    defaults = _template_choices(template)

    if yes:
        choices, sources = defaults, default_sources(source)
    else:
        console.print(Text("flightdeck init: fill in the checklist. Enter accepts the default, '-' chooses none;"
                           " only options ready in this build can be chosen.", style="bold"), soft_wrap=True)
        if project is None:
            name = typer.prompt("Project name", default=name).strip() or name
        # typer vendors its own click, so the parameter source is compared by name.
        given = getattr(ctx.get_parameter_source("source"), "name", "DEFAULT")
        if given in ("DEFAULT", "DEFAULT_MAP"):
            source = typer.prompt("Folder of documents to index (files source)", default=source).strip() or source
        choices, sources = _Questionnaire(console, defaults).run(source)

    write_text_atomic(target, render_spec(name, choices, sources=sources))
    _, problems = check_spec(target)
    if problems:
        for p in problems:
            errors.print(f"error: {p}", markup=False, soft_wrap=True)
        errors.print(f"wrote {target} with {len(problems)} problem{'s' if len(problems) != 1 else ''}: fix them,"
                     " then run `flightdeck validate`.", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    console.print(f"wrote {target}", markup=False, soft_wrap=True)
    for entry in sources or []:
        folder = entry.get("path") if entry.get("provider") == "files" else None
        if isinstance(folder, str) and not (target.parent / folder).exists():
            console.print(f"note: {folder} does not exist yet; put the documents to index there"
                          " (Markdown, text, HTML or .jsonl).", markup=False, soft_wrap=True)
    console.print("next: flightdeck validate && flightdeck run", markup=False, soft_wrap=True)
