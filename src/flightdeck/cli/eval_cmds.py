"""``flightdeck eval``: measured quality, starting with retrieval on BEIR-format datasets."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flightdeck.cli.common import JsonOption, errors_to_exit, print_json

__all__ = ["app"]

app = typer.Typer(help="Evaluate: retrieval quality on BEIR-format datasets.", no_args_is_help=True)


class Mode(StrEnum):
    hybrid = "hybrid"
    vector = "vector"
    keyword = "keyword"


@app.command("retrieval")
def retrieval(
    beir: Annotated[Path, typer.Option("--beir", help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/")],
    split: Annotated[str, typer.Option("--split", help="the qrels split to score: train, dev or test")] = "test",
    mode: Annotated[Mode, typer.Option("--mode", "-m", help="hybrid, vector or keyword")] = Mode.hybrid,
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", help="where the index is built and kept (default: ./.flightdeck-eval/<dataset>)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Index a BEIR corpus (or reuse the index), run every judged query, report nDCG@10, recall@100, MRR@10.

    Chunk hits become document hits (best chunk per document). Latency is the search alone; the query
    embedding time is reported separately.
    """
    from flightdeck.evaluation.beir import beir_spec, evaluate_project, load_beir
    from flightdeck.pipeline.progress import NullReporter, RichReporter
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        dataset = load_beir(beir, split)
        folder = (workspace or Path(".flightdeck-eval") / dataset.root.resolve().name).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        spec_path = folder / "flightdeck.yaml"
        spec_text = beir_spec(dataset)
        if not spec_path.is_file() or spec_path.read_text() != spec_text:
            spec_path.write_text(spec_text)
        project = Project.load(spec_path)
        reporter = NullReporter() if as_json else RichReporter()
        try:
            project.run(reporter)
        finally:
            reporter.close()
        report = evaluate_project(project, dataset, mode=mode.value)
    if as_json:
        print_json(report.to_dict())
        return
    m = report.metrics
    typer.echo(f"{report.dataset} ({report.split}, {report.queries} queries, {report.mode}): "
               f"nDCG@10 {m['ndcg@10']:.4f}  recall@100 {m['recall@100']:.4f}  MRR@10 {m['mrr@10']:.4f}")
    lat, emb = report.latency_ms, report.query_embedding_ms
    typer.echo(f"search latency ms: p50 {lat.get('p50')}  p99 {lat.get('p99')}  "
               f"(+ query embedding p50 {emb.get('p50')})")
