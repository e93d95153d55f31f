"""``flightdeck eval``: measured quality, starting with retrieval on BEIR-format datasets or a synthetic set."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["app"]

app = typer.Typer(help="Evaluate: retrieval quality on BEIR-format datasets or a synthetic set.",
                  no_args_is_help=True)


class Mode(StrEnum):
    hybrid = "hybrid"
    vector = "vector"
    keyword = "keyword"


@app.command("retrieval")
def retrieval(
    beir: Annotated[Path | None, typer.Option(
        "--beir", help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/")] = None,
    set_ref: Annotated[str | None, typer.Argument(
        metavar="SET", help="with --synthetic: a synthetic set id or unique prefix (default: the current set)",
        show_default=False)] = None,
    synthetic: Annotated[bool, typer.Option(
        "--synthetic", help="score the project's index on a synthetic set (data.sources: synthetic)")] = False,
    split: Annotated[str, typer.Option("--split", help="the qrels split to score: train, dev or test")] = "test",
    mode: Annotated[Mode, typer.Option("--mode", "-m", help="hybrid, vector or keyword")] = Mode.hybrid,
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", help="where the index is built and kept (default: ./.flightdeck-eval/<dataset>)")] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score retrieval: nDCG@10, recall@100, MRR@10, on a BEIR folder (--beir) or a synthetic set (--synthetic).

    --beir indexes the BEIR corpus (or reuses the index) and runs every judged query; chunk hits become
    document hits (best chunk per document). Latency is the search alone; the query embedding time is
    reported separately. --synthetic searches every question of the set against the project's current index:
    the question's source document is relevant, and hit@k of its exact chunk is reported too.
    """
    # click's usage errors exit with 2 (EXIT_USAGE) and show the usage line
    if beir is not None and synthetic:
        raise typer.BadParameter("--beir and --synthetic are mutually exclusive; give one",
                                 param_hint="--beir / --synthetic")
    if beir is None and not synthetic:
        raise typer.BadParameter("give --beir FOLDER or --synthetic [SET]", param_hint="--beir / --synthetic")
    if set_ref is not None and not synthetic:
        raise typer.BadParameter(f"a set ({set_ref!r}) is only read with --synthetic", param_hint="[SET]")
    from flightdeck.evaluation.beir import trec_eval

    with errors_to_exit(as_json):
        trec_eval()  # the scores need the eval extra: say so before indexing the corpus
    if synthetic:
        _synthetic(set_ref, mode.value, spec, as_json)
        return
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


def _synthetic(set_ref: str | None, mode: str, spec: Path | None, as_json: bool) -> None:
    from flightdeck.evaluation.synthetic import HIT_KS, evaluate_synthetic
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        report = evaluate_synthetic(Project.load(spec), set_ref, mode=mode)
    if as_json:
        print_json(report.to_dict())
        return
    m = report.metrics
    hits = "  ".join(f"hit@{k} {m[f'chunk_hit@{k}']:.4f}" for k in HIT_KS)
    typer.echo(f"synthetic set {report.set_id[:12]} ({report.queries} questions, {mode}): nDCG@10 {m['ndcg@10']:.4f}"
               f"  recall@100 {m['recall@100']:.4f}  MRR@10 {m['mrr@10']:.4f}")
    typer.echo(f"exact chunk: {hits}")
    for kind, scores in report.by_kind.items():
        if scores.get("queries"):
            typer.echo(f"  {kind}: {scores['queries']} questions, nDCG@10 {scores['ndcg@10']:.4f}, "
                       f"chunk hit@10 {scores['chunk_hit@10']:.4f}")
    typer.echo(f"search latency ms: p50 {report.latency_ms.get('p50')}  p99 {report.latency_ms.get('p99')}")
    for w in report.warnings:
        typer.echo(f"warning: {w}", err=True)
