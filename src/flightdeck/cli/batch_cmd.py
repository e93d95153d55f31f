"""``flightdeck batch IN.jsonl OUT.jsonl``: answer a file of questions, resumably (a shell over BatchRunner)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightdeck.cli.common import EXIT_FAILED, EXIT_USAGE, JsonOption, SpecOption, _stderr, errors_to_exit, print_json

if TYPE_CHECKING:
    from flightdeck.serving.batch import BatchSummary

__all__ = ["batch"]

#: How many failed lines the text summary lists (``--json`` has them all).
SHOWN_FAILURES = 10


def batch(
    input_path: Annotated[Path, typer.Argument(
        metavar="IN.jsonl", exists=True, dir_okay=False, readable=True, resolve_path=True,
        help='the questions, one JSON object a line: {"question": "...", "id": "q1"}; '
             "id is optional (default line-<n>), other fields come back as meta")],
    output_path: Annotated[Path, typer.Argument(
        metavar="OUT.jsonl", dir_okay=False, resolve_path=True,
        help="the answers, one JSON object a line, in input order; appended to, so a rerun resumes")],
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer every question of IN.jsonl into OUT.jsonl, with citations, one line at a time.

    Killed or stopped? Rerun the same command: it resumes where OUT.jsonl stops
    (a half-written last line is dropped; no line is answered twice).

    A bad line, or a question whose answering fails, gets an error record
    {"id", "line", "error"} and the batch goes on.

    Exit code: 0 every line answered; 1 some lines failed (the summary lists them)
    or the project cannot answer; 2 the files cannot be used.
    """
    from flightdeck.project import Project
    from flightdeck.serving.batch import BatchFileError, BatchRunner

    if output_path == input_path:
        raise typer.BadParameter("is the input file; write the answers to another file", param_hint="OUT.jsonl")
    if not output_path.parent.is_dir():
        raise typer.BadParameter(f"its folder {output_path.parent} does not exist", param_hint="OUT.jsonl")
    summary: BatchSummary | None = None
    with errors_to_exit(as_json):
        project = Project.load(spec)
        runner = BatchRunner(lambda question: project.ask(question).to_dict())
        bar = _ProgressBar()
        try:
            summary = runner.run(input_path, output_path, progress=bar.update,
                                 warm_up=lambda: project.search("warm up", k=1))
        except BatchFileError as exc:
            bar.close()
            if as_json:
                print_json({"ok": False, "error": str(exc), "type": type(exc).__name__})
            else:
                _stderr(f"error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            bar.close()
            _stderr(f"interrupted: the answers so far are in {output_path}; run the same command again to resume")
            raise typer.Exit(130) from None
        finally:
            bar.close()
    assert summary is not None
    if as_json:
        print_json(summary.to_dict())
    else:
        _print_summary(summary)
    if not summary.complete:
        raise typer.Exit(EXIT_FAILED)


class _ProgressBar:
    """A Rich bar on stderr (drawn only on a terminal): lines done of the total, and questions/s."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                  console=Console(stderr=True), transient=True)
        self._task: Any = None
        self._open = False

    def update(self, summary: BatchSummary) -> None:
        if self._task is None:
            self._progress.start()
            self._open = True
            self._task = self._progress.add_task("batch", total=summary.total, rate="")
        rate = f"{summary.questions_per_second:.2f} q/s" if summary.answered + summary.failed else ""
        self._progress.update(self._task, completed=summary.done, total=summary.total, rate=rate)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._progress.stop()


def _print_summary(summary: BatchSummary) -> None:
    """Counts on stdout; the failed lines on stderr (plain text: ids and errors are data, not markup)."""
    previous = f", {summary.skipped} already in {summary.output}" if summary.skipped else ""
    typer.echo(f"batch: {summary.answered} answered, {summary.failed} failed{previous}, of {summary.total} lines, "
               f"in {summary.seconds:.1f}s ({summary.questions_per_second:.2f} questions/s)")
    if summary.failures:
        typer.echo(f"{len(summary.failures)} line(s) failed (error records in {summary.output}):", err=True)
        for f in summary.failures[:SHOWN_FAILURES]:
            given = "" if f["id"] == f"line-{f['line']}" else f" (id {f['id']})"
            typer.echo(f"  {f['error']}{given}", err=True)
        if len(summary.failures) > SHOWN_FAILURES:
            typer.echo(f"  … and {len(summary.failures) - SHOWN_FAILURES} more (--json lists them all)", err=True)
    else:
        typer.echo(f"every line answered: {summary.output}")
