"""Progress for people (Rich bars on a terminal) and for machines (JSON lines with ``--json``)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Protocol, TextIO

__all__ = ["Reporter", "NullReporter", "JsonReporter", "RichReporter", "default_reporter", "format_counts"]


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return "(" + " ".join(f"{k} {_format_value(v)}" for k, v in value.items()) + ")"
    return str(value)


def format_counts(counts: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """A step's counts on one line: ``documents 50, chunks 612, seconds (parse 1.20 chunk 0.85)``.

    Nested dicts (per-stage ``seconds``, split sizes) print as one parenthesised group; floats with two
    decimals. Keys in ``skip`` are left out.
    """
    return ", ".join(f"{k} {_format_value(v)}" for k, v in counts.items() if k not in skip)


class Reporter(Protocol):
    def event(self, name: str, **fields: Any) -> None: ...

    def progress(self, step: str, done: int, total: int) -> None: ...

    def close(self) -> None: ...


class NullReporter:
    """Reports nothing (library use)."""

    def event(self, name: str, **fields: Any) -> None:
        pass

    def progress(self, step: str, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


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
    """A progress bar per step and one line per step outcome, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self._progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=self.console, transient=True)
        self._tasks: dict[str, Any] = {}
        self._progress.start()

    def event(self, name: str, **fields: Any) -> None:
        if name == "step_end":
            counts = fields.get("counts") or {}
            detail = format_counts(counts)
            mark = {"succeeded": "[green]✓[/]", "skipped": "[dim]–[/]"}.get(fields.get("status", ""), "[red]✗[/]")
            took = fields.get("seconds")
            self._progress.console.print(
                f"{mark} {fields.get('step')}: {fields.get('status')}"
                + (f" in {took:.1f}s" if took is not None else "") + (f" ({detail})" if detail else ""))
        elif name == "item_failed":
            self._progress.console.print(f"[yellow]![/] {fields.get('uri')}: {fields.get('reason')}")
        elif name == "model_changed":
            self._progress.console.print(
                f"[yellow]![/] the embedding model changed ({fields.get('previous')} -> {fields.get('current')}): "
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
