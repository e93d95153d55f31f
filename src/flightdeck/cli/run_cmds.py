"""Commands that use the workspace: run, search, ask."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["run", "search", "ask"]


def run(spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Ingest → chunk → embed → index, with progress; steps whose inputs are unchanged are skipped.

    With --json, progress is printed as JSON lines and the last line is the run summary. The run fails
    (exit 1) when nothing was ingested or when the failures pass data.failures; the documents that were
    ingested are kept.
    """
    from flightdeck.pipeline.progress import default_reporter
    from flightdeck.pipeline.runner import StepFailedError
    from flightdeck.project import Project

    failure: StepFailedError | None = None
    with errors_to_exit(as_json):
        project = Project.load(spec)
        reporter = default_reporter(as_json)
        try:
            summary = project.run(reporter)
        except StepFailedError as exc:  # the run did work before it failed: show it, then exit 1
            if exc.summary is None:
                raise
            summary, failure = exc.summary, exc
        finally:
            reporter.close()
    if as_json:
        print_json({"event": "summary", **summary.to_dict()})
    else:
        _print_summary(summary)
    if failure is not None:
        if not as_json:
            typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(EXIT_FAILED)


def _print_summary(summary: Any) -> None:
    """The text summary of a run: one line per step, then the failures and warnings (the first of each).

    Printed with typer.echo, never as Rich markup: file names and reasons are data.
    """
    from flightdeck.pipeline.progress import ITEM_LISTS, format_counts, item_lines

    typer.echo(f"run {summary.run_id[:12]} {summary.status} in {summary.seconds:.1f}s")
    for s in summary.steps:
        counts = format_counts(s.counts, skip=ITEM_LISTS)
        typer.echo(f"  {s.step:<7} {s.status:<9} {counts}")
    failures = [f for s in summary.steps for f in s.counts.get("failures", [])]
    warnings = [w for s in summary.steps for w in s.counts.get("warnings", [])]
    if failures:
        typer.echo(f"{len(failures)} item(s) could not be ingested:", err=True)
        for line in item_lines(failures, "reason"):
            typer.echo(f"  {line}", err=True)
    if warnings:
        typer.echo(f"{len(warnings)} warning(s) about items that were ingested in part:", err=True)
        for line in item_lines(warnings, "message"):
            typer.echo(f"  {line}", err=True)
    if summary.warnings:
        typer.echo(f"{len(summary.warnings)} warning(s) about the run:", err=True)
        for w in summary.warnings:
            typer.echo(f"  {w['source']}: {w['message']}", err=True)


class Mode(StrEnum):
    hybrid = "hybrid"
    vector = "vector"
    keyword = "keyword"


def parse_where_option(raw: str | None) -> dict[str, Any] | None:
    """``--where`` as a filter dict, or a usage error (exit 2) that says what is wrong with it."""
    if raw is None:
        return None
    from flightdeck.retrieval.filters import FilterError, parse_filter

    try:
        value = json.loads(raw)
        parse_filter(value, "--where")
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc.msg} at character {exc.pos})", param_hint="--where") from None
    except FilterError as exc:
        raise typer.BadParameter(str(exc), param_hint="--where") from None
    except RecursionError:
        raise typer.BadParameter("not valid JSON (nested too deeply to read)", param_hint="--where") from None
    except ValueError as exc:  # json's limit on the digits of an integer (4300)
        raise typer.BadParameter(f"not valid JSON ({exc})", param_hint="--where") from None
    return value


def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    k: Annotated[int | None, typer.Option("--k", "-k", min=1, max=1000, help="hits to return")] = None,
    mode: Annotated[Mode | None, typer.Option("--mode", "-m", help="hybrid, vector or keyword")] = None,
    where: Annotated[str | None, typer.Option(
        "--where", "-w", help='metadata filter as JSON, e.g. \'{"lang": "en", "year": {"$gte": 2020}}\'; '
        "needs metadata_filtering in retrieval.system")] = None,
    transform: Annotated[bool, typer.Option(
        "--transform/--no-transform", help="apply retrieval.query_transformation when the spec sets one")] = True,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the index: BM25 and vectors fused (or one of them with --mode), optionally filtered; with a query
    transformation in the spec, the LLM's rewritten queries are searched and fused too."""
    from flightdeck.project import Project

    condition = parse_where_option(where)
    with errors_to_exit(as_json):
        result = Project.load(spec).search(query, k=k, mode=mode.value if mode else None, where=condition,
                                           transform=transform)
    if as_json:
        print_json(result.to_dict())
        return
    for variant in result.queries:
        typer.echo(f"searched [{variant['label']}]: {variant['keyword'] or variant['vector_query'] or ''}"
                   + (f"  (+ passage: {variant['passages'][0][:120]}…)" if variant["passages"] else ""))
    if not result.hits:
        typer.echo("no hits")
    for i, h in enumerate(result.hits, 1):
        typer.echo(f"{i:>2}. {h.score:.4f}  {h.document_id}  § {h.heading}")
        snippet = " ".join(h.text.split())
        typer.echo(f"    {snippet[:200]}{'…' if len(snippet) > 200 else ''}")


def ask(
    question: Annotated[str, typer.Argument(help="a question about the documents")],
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer from the documents with numbered citations (source file, heading, chunk id)."""
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        answer = Project.load(spec).ask(question)
    if as_json:
        print_json(answer.to_dict())
        return
    typer.echo(answer.answer)
    for c in answer.citations:
        typer.echo(f"  [{c.number}] {c.document_id} § {c.heading} (chunk {c.chunk_id})")
