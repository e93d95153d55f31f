"""Commands that use the workspace: run, search, ask."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["run", "search", "ask"]


def run(spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Ingest → chunk → embed → index, with progress; steps whose inputs are unchanged are skipped.

    With --json, progress is printed as JSON lines and the last line is the run summary.
    """
    from flightdeck.pipeline.progress import default_reporter, format_counts
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        project = Project.load(spec)
        reporter = default_reporter(as_json)
        try:
            summary = project.run(reporter)
        finally:
            reporter.close()
    if as_json:
        print_json({"event": "summary", **summary.to_dict()})
        return
    failures = [f for s in summary.steps for f in s.counts.get("failures", [])]
    typer.echo(f"run {summary.run_id[:12]} {summary.status} in {summary.seconds:.1f}s")
    for s in summary.steps:
        counts = format_counts(s.counts, skip=("failures",))
        typer.echo(f"  {s.step:<7} {s.status:<9} {counts}")
    if failures:
        typer.echo(f"{len(failures)} item(s) could not be ingested:", err=True)
        for f in failures:
            typer.echo(f"  {f['uri']}: {f['reason']}", err=True)


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
