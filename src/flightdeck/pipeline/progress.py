"""Progress for people (Rich bars on a terminal) and for machines (JSON lines with ``--json``)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from flightdeck.core import NullReporter, Reporter

# Reporter and NullReporter live in flightdeck.core; re-exported here.
__all__ = ["Reporter", "NullReporter", "JsonReporter", "RichReporter", "default_reporter", "format_counts",
           "item_lines", "ITEM_LISTS"]


#: Lists of items in a step's counts (failures, warnings, duplicates): printed apart, by :func:`item_lines`.
ITEM_LISTS = ("failures", "warnings", "duplicates")
#: How many items of each list a terminal shows; ``--json`` has them all.
SHOWN_ITEMS = 10


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return "(" + " ".join(f"{k} {_format_value(v)}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):  # a list of items (unassigned documents...): its length on this line
        return str(len(value))
    return str(value)


def format_counts(counts: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """A step's counts on one line: ``documents 50, chunks 612, seconds (parse 1.20 chunk 0.85)``.

    Nested dicts (per-stage ``seconds``, split sizes) print as one parenthesised group; floats with two
    decimals; lists as their length. Keys in ``skip`` are left out.
    """
    return ", ".join(f"{k} {_format_value(v)}" for k, v in counts.items() if k not in skip)


def item_lines(items: list[dict[str, Any]], text_key: str, shown: int = SHOWN_ITEMS) -> list[str]:
    """``uri: reason`` for the first ``shown`` items, then ``… and N more (--json lists them all)``.

    Plain text: whoever prints it through Rich escapes it (file names such as ``bad[/x].pdf`` are data).
    """
    lines = [f"{i.get('uri', '')}: {i.get(text_key, '')}" for i in items[:shown]]
    if len(items) > shown:
        lines.append(f"… and {len(items) - shown} more (--json lists them all)")
    return lines


class JsonReporter:
    """One JSON object per line: ``{"ts": …, "event": "step_start", "step": "embed", …}``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _write(self, obj: dict[str, Any]) -> None:
        self.stream.write(json.dumps(obj, default=str) + "\n")
        self.stream.flush()

    def event(self, name: str, **fields: Any) -> None:
        self._write({"ts": round(time.time(), 3), "event": name, **fields})

    def progress(self, step: str, done: int, total: int) -> None:
        self._write({"ts": round(time.time(), 3), "event": "progress", "step": step, "done": done,
                     "total": total})

    def close(self) -> None:
        pass


class RichReporter:
    """A progress bar per step and one line per step outcome, failure and warning, on stderr.

    Every string that comes from outside (file names, reasons, errors, model names) is escaped: Rich would
    read ``bad[/x].pdf`` as markup and fail, or silently drop ``[bold]`` from a name.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self._progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=self.console, transient=True)
        self._tasks: dict[str, Any] = {}
        self._progress.start()

    def _say(self, mark: str, text: str) -> None:
        from rich.markup import escape

        self._progress.console.print(f"{mark} {escape(text)}", soft_wrap=True)

    def event(self, name: str, **fields: Any) -> None:
        if name == "step_end":
            counts = fields.get("counts") or {}
            detail = format_counts(counts, skip=ITEM_LISTS)
            mark = {"succeeded": "[green]✓[/]", "skipped": "[dim]–[/]"}.get(fields.get("status", ""), "[red]✗[/]")
            took = fields.get("seconds")  # a failed step's error is printed once, by the command, as it ends
            self._say(mark, f"{fields.get('step')}: {fields.get('status')}"
                      + (f" in {took:.1f}s" if took is not None else "") + (f" ({detail})" if detail else ""))
        elif name == "item_failed":
            self._say("[yellow]![/]", f"{fields.get('uri')}: {fields.get('reason')}")
        elif name == "item_warning":
            self._say("[yellow]![/]", f"warning: {fields.get('uri')}: {fields.get('message')}")
        elif name == "split_skipped":
            self._say("[yellow]![/]", f"warning: {fields.get('uri')}: in no split: {fields.get('reason')}")
        elif name == "hook_failed":
            self._say("[yellow]![/]", f"warning: {fields.get('hook')}.{fields.get('method')} failed: "
                                      f"{fields.get('error')}")
        elif name == "run_warning":
            self._say("[yellow]![/]", f"warning ({fields.get('source')}): {fields.get('message')}")
        elif name == "model_changed":
            self._say("[yellow]![/]",
                      f"the embedding model changed ({fields.get('previous')} -> {fields.get('current')}): "
                      f"embedding {fields.get('texts')} chunk texts again and rebuilding the index")

    def progress(self, step: str, done: int, total: int) -> None:
        task = self._tasks.get(step)
        if task is None:
            task = self._tasks[step] = self._progress.add_task(step, total=total)
        self._progress.update(task, completed=done, total=total)

    def close(self) -> None:
        self._progress.stop()


def default_reporter(json_logs: bool) -> Reporter:
    """JSON lines on stdout when asked; otherwise Rich on stderr (bars only on a terminal)."""
    return JsonReporter() if json_logs else RichReporter()
