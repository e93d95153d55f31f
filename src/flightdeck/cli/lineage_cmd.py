"""``flightdeck lineage REF``: where an answer, a release or a chunk came from (a thin shell over
:mod:`flightdeck.governance.answer_lineage`)."""

from __future__ import annotations

from typing import Annotated

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit

__all__ = ["lineage"]


def lineage(
    ref: Annotated[str, typer.Argument(
        metavar="REF", help="a trace id (tr_…, the trace_id of an answer), a release (rel_…, v3, an alias, "
                            "production) or a chunk id")],
    chunk_id: Annotated[str | None, typer.Argument(hidden=True, metavar="ID")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json, dot (Graphviz) or openlineage (one "
                                                            "OpenLineage RunEvent)")] = "text",
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Where REF came from. An answer: the release that answered, the chunks it retrieved and cited, their
    documents, source URIs and content hashes, dataset versions and ingest runs, and the spec. A release: its spec,
    index and dataset versions, models, evaluation and every source document. A chunk: its document, source,
    dataset versions and ingest run (`flightdeck lineage chunk ID` shows the chunk view of earlier versions)."""
    from flightdeck.cli.data_cmds import chunk
    from flightdeck.governance.answer_lineage import FORMATS
    from flightdeck.project import Project

    if ref == "chunk" and chunk_id is not None:
        chunk(chunk_id, spec, as_json)
        return
    if chunk_id is not None:
        raise typer.BadParameter(f"one REF, not two ({ref!r}, {chunk_id!r})", param_hint="REF")
    if as_json:
        fmt = "json"
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: one of {', '.join(FORMATS)}", param_hint="--format")
    with errors_to_exit(as_json):
        project = Project.load(spec)
        graph = project.lineage_graph(ref)
    typer.echo(graph.render(fmt, namespace=f"flightdeck/{project.spec.project}", producer=_producer()))


def _producer() -> str:
    from flightdeck.core import __version__
    from flightdeck.data.versioning.openlineage import PRODUCER

    return PRODUCER.format(version=__version__)
