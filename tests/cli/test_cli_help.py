"""Every command's --help reads as prose in any terminal width: the docstrings' source line breaks are not kept."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from flightdeck.cli.main import app, reflowed

runner = CliRunner()


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path] if path else []
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_a_paragraph_is_one_line_and_paragraphs_stay_apart() -> None:
    doc = """First line
        goes on.

        A second paragraph, wrapped
        in the source.

        \b
        kept
        as is
        """
    assert reflowed(doc) == "First line goes on.\n\nA second paragraph, wrapped in the source.\n\n\b\nkept\nas is"


@pytest.mark.parametrize("path", _commands(typer.main.get_command(app)), ids=" ".join)
def test_help_lines_are_filled_not_cut_where_the_source_wrapped(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    intro = result.output.split("╭")[0]  # the description, before the options' panels
    lines = [line.strip() for line in intro.splitlines()]
    # at 200 columns a line that ends mid-sentence (a lower-case word follows on the next line) is a source wrap
    cut = [f"{a!r} / {b!r}" for a, b in zip(lines, lines[1:], strict=False)
           if a and b and not a.startswith("Usage:") and re.match(r"[a-z(]", b) and len(a) < 150]
    assert not cut, cut
