"""``flightdeck data versions|diff|checkout|synthetic`` and the view of ``flightdeck lineage chunk ID``: thin
shells over Project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["data_app", "versions", "diff", "checkout", "synthetic", "chunk"]

data_app = typer.Typer(name="data", help="Dataset versions: list them, diff two, check one out; synthetic sets.",
                       no_args_is_help=True)

VersionArg = Annotated[str, typer.Argument(help="a dataset version id, a unique prefix of one, or 'current'")]


def _short_time(iso: str | None) -> str:
    return (iso or "?").replace("T", " ").replace("+00:00", "Z")


@data_app.command("versions")
def versions(spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """List the dataset versions, oldest first; * marks the current one."""
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        found = Project.load(spec).dataset_versions()
    if as_json:
        print_json([v.to_dict() for v in found])
        return
    if not found:
        typer.echo("no dataset versions yet; `flightdeck run` records one per ingest")
        return
    for v in found:
        d = v.to_dict()
        extra = "".join(f"  {name} {info.get('md5') or info.get('commit_id') or ''}".rstrip()
                        for name, info in v.providers.items() if isinstance(info, dict))
        typer.echo(f"{'*' if v.current else ' '} {v.short_id}  {_short_time(d['created_at'])}  run {v.run_id[:12]}"
                   f"  {v.documents} documents{extra}")
        typer.echo(f"    {v.id}")


@data_app.command("diff")
def diff(
    v1: Annotated[str, typer.Argument(help="the older version (id, unique prefix or 'current')")],
    v2: Annotated[str, typer.Argument(help="the newer version (id, unique prefix or 'current')")],
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Documents added, changed (content hash differs) and removed from V1 to V2."""
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        result = Project.load(spec).diff_datasets(v1, v2)
    if as_json:
        print_json(result.to_dict())
        return
    typer.echo(f"{result.from_version[:12]} -> {result.to_version[:12]}: {len(result.added)} added, "
               f"{len(result.changed)} changed, {len(result.removed)} removed, {result.unchanged} unchanged")
    for mark, items in (("+", result.added), ("~", result.changed), ("-", result.removed)):
        for item in items:
            typer.echo(f"  {mark} {item['document_id']}  {item['source_uri']}")


@data_app.command("checkout")
def checkout(version: VersionArg, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Restore the documents and chunks of VERSION and rebuild its index (recorded as a run).

    The next `flightdeck run` brings the workspace back to the sources' current state.
    """
    from flightdeck.pipeline.progress import default_reporter
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        project = Project.load(spec)
        reporter = default_reporter(False) if not as_json else None
        try:
            result = project.checkout_dataset(version, reporter)
        finally:
            if reporter is not None:
                reporter.close()
    if as_json:
        print_json(result.to_dict())
        return
    c = result.counts
    typer.echo(f"checked out dataset version {result.dataset_version[:12]} ({c['documents']} documents: "
               f"{c['restored']} restored, {c['removed']} removed, {c['kept']} unchanged); "
               f"{c.get('embedded', 0)} texts embedded; index version {(result.index_version or '?')[:12]}")
    typer.echo(f"note: {result.note}")


@data_app.command("synthetic")
def synthetic(
    set_id: Annotated[str | None, typer.Option("--set", help="a set id, a unique prefix or 'current': list its "
                                                             "examples")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="write the set's examples (default: the "
                                                                 "current set) to this JSONL file")] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the synthetic sets (data.sources: synthetic), or the examples of one set with their source chunk."""
    import json

    from flightdeck.data.synthetic_sets import resolve_set
    from flightdeck.errors import FlightdeckError
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        project = Project.load(spec)
        sets = project.synthetic_sets()
        if set_id is not None or export is not None:
            full_id = resolve_set(project.workspace, set_id)
            chosen = next(s for s in sets if s.id == full_id)
            examples = project.synthetic_examples(full_id)
            if export is not None:
                try:
                    with export.open("w", encoding="utf-8") as fh:
                        for e in examples:
                            fh.write(json.dumps({**e.to_dict(), "dataset_version": chosen.dataset_version},
                                                ensure_ascii=False) + "\n")
                except OSError as exc:
                    raise FlightdeckError(f"{export}: cannot write the export: {exc.strerror or exc}") from exc
    if set_id is None and export is None:
        if as_json:
            print_json([s.to_dict() for s in sets])
            return
        if not sets:
            typer.echo("no synthetic sets yet; add - {provider: synthetic} to data.sources and `flightdeck run`")
        for s in sets:
            c = s.counts
            dropped = ", ".join(f"{n} {r}" for r, n in c.get("dropped", {}).items() if n) or "none"
            typer.echo(f"{'*' if s.current else ' '} {s.id[:12]}  {_short_time(s.to_dict()['created_at'])}  "
                       f"dataset {s.dataset_version[:12]}  {s.generator}  {c.get('chunks', 0)} chunks: "
                       f"{c.get('qa', 0)} qa, {c.get('paraphrase', 0)} paraphrases; dropped: {dropped}")
        return
    if export is not None:
        if as_json:
            print_json({"set": chosen.id, "examples": len(examples), "path": str(export)})
        else:
            typer.echo(f"wrote {len(examples)} examples of set {chosen.id[:12]} to {export}")
        return
    if as_json:
        print_json({**chosen.to_dict(dropped=True), "examples": [e.to_dict() for e in examples]})
        return
    typer.echo(f"set {chosen.id[:12]}  dataset {chosen.dataset_version[:12]}  {chosen.generator}  "
               f"{len(examples)} examples")
    for e in examples:
        typer.echo(f"  [{e.kind}] {e.question}")
        if e.kind == "qa":
            typer.echo(f"      answer: {e.answer}")
        typer.echo(f"      chunk {e.chunk_id}  {e.document_id}")


def chunk(chunk_id: str, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Where a chunk came from: document, source URI, content hash, dataset versions, ingest run, indexes
    (``flightdeck lineage chunk ID``)."""
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        lin = Project.load(spec).lineage(chunk_id)
    if as_json:
        print_json(lin.to_dict())
        return
    run = lin.ingest_run
    typer.echo(f"chunk        {lin.chunk_id}{'' if lin.current else '  (no longer in the workspace)'}")
    typer.echo(f"document     {lin.document_id}" + (f"  § {lin.heading}" if lin.heading else ""))
    typer.echo(f"source       {lin.source_uri}")
    typer.echo(f"content hash {lin.content_hash}")
    typer.echo(f"ingest run   {run['id'][:12]}  {_short_time(run['started_at'])}")
    typer.echo(f"dataset versions ({len(lin.dataset_versions)}):")
    for v in lin.dataset_versions:
        typer.echo(f"  {'*' if v['current'] else ' '} {v['id'][:12]}  {_short_time(v['created_at'])}"
                   f"  run {v['run_id'][:12]}")
    typer.echo(f"index versions ({len(lin.index_versions)}):")
    for b in lin.index_versions:
        typer.echo(f"  {'*' if b['current'] else ' '} {b['id'][:12]}  {_short_time(b['created_at'])}  "
                   f"dataset {b['dataset_version'][:12]}  {b['embedder']} / {b['store']}")
