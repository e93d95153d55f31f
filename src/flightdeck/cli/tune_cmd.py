"""``flightdeck tune``: optimise retrieval settings (``model.tuning.space``) on the tune part of a BEIR split, score the
best once on the holdout part beside the spec's settings, and write the spec patch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["tune"]


def _open_project(spec_path: Path) -> Any:
    """A chunking's project (tests replace it to give the projects a fake embedder)."""
    from flightdeck.project import Project

    return Project.load(spec_path)


def tune(
    beir: Annotated[Path | None, typer.Option(
        "--beir", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) whose judged queries are the "
        "objective")] = None,
    split: Annotated[str, typer.Option(
        "--split", help="the qrels split to tune on; keep the test split out of tuning")] = "train",
    holdout: Annotated[float | None, typer.Option(
        "--holdout", min=0.0, max=1.0, help="share of the judged queries held out (by hashed query id) and scored "
        "once at the end (default: model.tuning.holdout, 0.2)", show_default=False)] = None,
    tuner: Annotated[str | None, typer.Option(
        "--tuner", help="optuna, hyperopt, ray_tune or grid_random (default: the first of "
        "model.hyperparameter_optimization, else optuna)", show_default=False)] = None,
    trials: Annotated[int | None, typer.Option(
        "--trials", min=1, help="how many configurations to try (default: model.tuning.trials)",
        show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", min=0, help="the tuner's and the bootstrap's seed (default: model.tuning.seed)",
        show_default=False)] = None,
    objective: Annotated[str | None, typer.Option(
        "--objective", help="ndcg@10, recall@100 or mrr@10 (default: model.tuning.objective)",
        show_default=False)] = None,
    patch: Annotated[Path | None, typer.Option(
        "--patch", help="where to write the spec patch, e.g. tuned.yaml (default: <workspace>/<study id>.patch.yaml)",
        show_default=False)] = None,
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", help="where the index of each chunking and the shared embeddings cache are kept "
        "(default: ./.flightdeck-tune/<dataset>)", show_default=False)] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tune retrieval settings: chunk size and overlap, k, candidates, mode, fusion, rrf_k and the weights.

    The space, the objective, the number of trials and the seed are model.tuning's; the tuner is
    model.hyperparameter_optimization's. Trials are scored on the tune part of the split; a trial that changes only
    query-time settings reuses its chunking's index, and each chunking is indexed once, embedding only chunk texts
    not seen before. The best configuration is then scored once on the held-out queries beside the spec's own
    settings, with a paired 95% bootstrap interval of the gain. Every trial is in the runs table (kind trial; the
    study is kind tune), and the patch (the changed keys) is written and printed.
    """
    if beir is None:
        raise typer.BadParameter("give --beir FOLDER: the judged queries of a BEIR split are the objective",
                                 param_hint="--beir")
    from flightdeck.evaluation.beir import trec_eval

    with errors_to_exit(as_json):
        trec_eval()  # the scores need the eval extra: say so before indexing anything
    from flightdeck.core import stable_hash
    from flightdeck.evaluation.beir import load_beir
    from flightdeck.evaluation.tuning import describe_params, tune_beir, tuner_for
    from flightdeck.models.trackers.builtin import ExperimentRuns, git_commit
    from flightdeck.pipeline.progress import NullReporter, RichReporter
    from flightdeck.project import Project
    from flightdeck.spec.tuning import TuningSettings

    with errors_to_exit(as_json):
        project = Project.load(spec)
        overrides = {k: v for k, v in (("trials", trials), ("seed", seed), ("objective", objective),
                                       ("holdout", holdout)) if v is not None}
        try:
            tuning = TuningSettings(**{**project.spec.model.tuning.model_dump(), **overrides})
        except ValueError as exc:  # a pydantic ValidationError: say each problem of the overridden settings
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                        for e in exc.errors()] if hasattr(exc, "errors") else [str(exc)]
            raise typer.BadParameter("; ".join(problems)) from None
        tuner_name, chosen = tuner_for(tuner, project.spec.model.hyperparameter_optimization)
        dataset = load_beir(beir, split)
        root = (workspace or Path(".flightdeck-tune") / dataset.root.resolve().name).resolve()
        retrieval = project.spec.retrieval
        settings: dict[str, Any] = {"search": retrieval.search.model_dump(exclude_none=True)}
        for key in ("embedding_model", "vector_database"):
            ref = getattr(retrieval, key)
            if ref is not None:
                settings[key] = ref.model_dump()
        chunking_ref = project.spec.data.chunking
        reporter = NullReporter() if as_json else RichReporter()

        def on_trial(trial: Any) -> None:
            if not as_json:
                shown = f"{trial.value:.4f}" if trial.value is not None else f"failed: {trial.error}"
                typer.echo(f"  trial {trial.number:>3}  {shown}  {describe_params(trial.params)}", err=True)

        runs = ExperimentRuns(project.workspace)
        if not as_json:
            typer.echo(f"tuning on {dataset.root.name}/{split} with {tuner_name}: {tuning.trials} trials, "
                       f"{tuning.objective}; indexes in {root}", err=True)
        try:
            report = tune_beir(
                dataset, tuning=tuning, tuner=chosen, tuner_name=tuner_name,
                base_chunking={"provider": chunking_ref.provider, **chunking_ref.settings},
                base_search=retrieval.search, settings=settings, root=root, open_project=_open_project, runs=runs,
                spec_hash=stable_hash(project.spec.model_dump()), git_commit=git_commit(project.loaded.base_dir),
                patch_path=patch, reporter=reporter, on_trial=on_trial)
        finally:
            reporter.close()
    if as_json:
        print_json(report.to_dict())
        return
    h, b = report.holdout, report.best
    typer.echo(f"study {report.study_id}: {len(report.trials)} trials on {report.queries['tune']} queries "
               f"({report.queries['holdout']} held out)")
    typer.echo(f"baseline (the spec's settings): {report.objective} {report.baseline['tune']:.4f} on the tune part")
    typer.echo(f"best: trial {b['trial']}, {report.objective} {b['tune']:.4f}: {describe_params(b['params'])}")
    typer.echo(f"holdout ({h['queries']} queries, scored once): baseline {h['baseline']:.4f} -> best {h['best']:.4f}"
               f" ({h['gain']:+.4f}, 95% CI {h['ci95'][0]:+.4f} .. {h['ci95'][1]:+.4f}; {h['improved']} queries "
               f"better, {h['worsened']} worse)")
    if not b["beats_baseline"]:
        typer.echo("no trial beat the spec's settings on the tune part: the patch changes nothing")
    typer.echo(f"spec patch ({report.patch_file}):")
    typer.echo(report.patch_yaml.rstrip())
