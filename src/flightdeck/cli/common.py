"""What every command shares: the --spec/--json options, printing JSON, and turning errors into exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from flightdeck.errors import FlightdeckError, SpecError

__all__ = ["SpecOption", "JsonOption", "print_json", "errors_to_exit", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

SpecOption = Annotated[
    Path | None,
    typer.Option("--spec", "-s", help="the spec file or its folder (default: ./flightdeck.yaml)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def _stderr(message: str) -> None:
    from rich.console import Console

    # soft_wrap: never break a line inside a path or a name (a log of stderr, or a terminal, wraps on its own)
    Console(stderr=True, highlight=False, soft_wrap=True).print(message, markup=False)


@contextmanager
def errors_to_exit(as_json: bool = False) -> Iterator[None]:
    """Spec problems and flightdeck errors become a message on stderr (or JSON) and exit code 1."""
    try:
        yield
    except SpecError as exc:
        if as_json:
            print_json({"ok": False, "problems": [p.to_dict() for p in exc.problems]})
        else:
            for p in exc.problems:
                _stderr(f"error: {p}")
        raise typer.Exit(EXIT_FAILED) from None
    except FlightdeckError as exc:
        if as_json:
            print_json({"ok": False, "error": str(exc), "type": type(exc).__name__})
        else:
            _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_FAILED) from None
