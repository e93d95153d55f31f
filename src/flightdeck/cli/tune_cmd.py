"""``flightdeck tune``: optimise the settings of ``model.tuning.space`` on the tune part of a question set, score the
best once on the holdout part beside the spec's settings, and write the spec patch. The questions are the project's
own evaluation set (``--set``, the default: retrieval, answers, prompt and temperature) or a BEIR split's judged
queries (``--beir``: retrieval and chunking)."""

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


def _open_trial(loaded: Any) -> Any:
    """The project of a trial's validated spec, over the project's own workspace."""
    from flightdeck.project import Project

    return Project(loaded)


def tune(
    beir: Annotated[Path | None, typer.Option(
        "--beir", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) whose judged queries are the "
        "objective (retrieval settings and chunking only)", show_default=False)] = None,
    set_ref: Annotated[str | None, typer.Option(
        "--set", help="an evaluation set: a name of evaluation.sets or a JSONL file, whose questions are the objective "
        "(default, when --beir is not given: the first of evaluation.sets)", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=2, help="--set: use only the first N questions of the set (a quick look)",
        show_default=False)] = None,
    split: Annotated[str, typer.Option(
        "--split", help="--beir: the qrels split to tune on; keep the test split out of tuning")] = "train",
    holdout: Annotated[float | None, typer.Option(
        "--holdout", min=0.0, max=1.0, help="share of the queries or questions held out (by hashed id) and scored "
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
        "--objective", help="--beir: ndcg@10, recall@100 or mrr@10; --set: a metric with a value per question, e.g. "
        "token_f1, citation_recall, groundedness, ndcg@10, false_refusal_rate (minimised) (default: "
        "model.tuning.objective)", show_default=False)] = None,
    patch: Annotated[Path | None, typer.Option(
        "--patch", help="where to write the spec patch, e.g. tuned.yaml (default: --beir <workspace>/<study "
        "id>.patch.yaml; --set <project workspace>/tune/<set>/<study id>.patch.yaml)", show_default=False)] = None,
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", help="--beir: where the index of each chunking and the shared embeddings cache are kept "
        "(default: ./.flightdeck-tune/<dataset>)", show_default=False)] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tune the settings of model.tuning.space on a question set, tune part only; score the best once on the rest.

    --set NAME (the default: the first of evaluation.sets): the project itself on its own evaluation set, over the
    index `flightdeck run` built. Each trial is the spec with the trial's settings written in and validated, searched
    and answered as `flightdeck eval` does: the query-time search settings (k, candidates, mode, fusion, rrf_k, the
    weights), the LLM generator's temperature and prompt_template (template files relative to the spec, null: the
    shipped one) and retrieval.query_transformation (none, rewrite, multi_query, hyde). The objective
    (model.tuning.objective) is the mean of a metric's per-question values; an answerable question without one
    (refused, failed) counts 0; false_refusal_rate is minimised, every other maximised. Chunking is refused here:
    each chunk size would re-ingest the project's documents; tune it with --beir.

    --beir DIR: retrieval on a BEIR split's judged queries (nDCG@10, recall@100, MRR@10): the query-time settings and
    the chunk size and overlap; each chunking is indexed once, embedding only chunk texts not seen before.

    Either way the questions are split by hashed id (model.tuning.holdout held out); the best configuration is
    scored once on the held-out part beside the spec's own settings, with a paired 95% bootstrap interval of the
    gain. Every trial is in the runs table (kind trial; the study is kind tune) and goes to the trackers of
    model.experiment_tracking; the patch (the changed keys) is written and printed. The space, the objective, the
    number of trials and the seed are model.tuning's; the tuner is model.hyperparameter_optimization's.
    """
    if beir is not None and set_ref is not None:
        raise typer.BadParameter("give --beir FOLDER or --set NAME, not both", param_hint="--set")
    if beir is None:
        _tune_set(spec, set_ref, limit=limit, holdout=holdout, tuner=tuner, trials=trials, seed=seed,
                  objective=objective, patch=patch, as_json=as_json)
        return
    from flightdeck.evaluation.beir import trec_eval

    with errors_to_exit(as_json):
        trec_eval()  # the scores need the eval extra: say so before indexing anything
    from flightdeck.evaluation.beir import load_beir
    from flightdeck.evaluation.tuning import require_beir, tune_beir
    from flightdeck.models.trackers.builtin import ExperimentRuns, git_commit
    from flightdeck.pipeline.progress import NullReporter, RichReporter
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        project = Project.load(spec)
        tuning, tuner_name, chosen = _settings(project, trials=trials, seed=seed, objective=objective,
                                               holdout=holdout, tuner=tuner)
        require_beir(tuning)  # before the split is read
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
        runs = ExperimentRuns(project.workspace, audit=project.audit)
        if not as_json:
            typer.echo(f"tuning on {dataset.root.name}/{split} with {tuner_name}: {tuning.trials} trials, "
                       f"{tuning.objective}; indexes in {root}", err=True)
        try:
            report = tune_beir(
                dataset, tuning=tuning, tuner=chosen, tuner_name=tuner_name,
                base_chunking={"provider": chunking_ref.provider, **chunking_ref.settings},
                base_search=retrieval.search, settings=settings, root=root, open_project=_open_project, runs=runs,
                spec_hash=project.spec_hash, git_commit=git_commit(project.loaded.base_dir),
                patch_path=patch, reporter=reporter, on_trial=_on_trial(as_json),
                trackers=project.assembly.trackers())
        finally:
            reporter.close()
    _print_report(report, as_json, "queries")


def _settings(project: Any, *, trials: int | None, seed: int | None, objective: str | None, holdout: float | None,
              tuner: str | None) -> tuple[Any, str, Any]:
    """model.tuning with the command's overrides, and the tuner (its name and the provider)."""
    from flightdeck.evaluation.tuning import tuner_for
    from flightdeck.spec.tuning import TuningSettings

    overrides = {k: v for k, v in (("trials", trials), ("seed", seed), ("objective", objective),
                                   ("holdout", holdout)) if v is not None}
    try:
        tuning = TuningSettings(**{**project.spec.model.tuning.model_dump(), **overrides})
    except ValueError as exc:  # a pydantic ValidationError: say each problem of the overridden settings
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()] if hasattr(exc, "errors") else [str(exc)]
        raise typer.BadParameter("; ".join(problems)) from None
    tuner_name, chosen = tuner_for(tuner, project.spec.model.hyperparameter_optimization)
    return tuning, tuner_name, chosen


def _on_trial(as_json: bool) -> Any:
    from flightdeck.evaluation.tuning import describe_params

    def on_trial(trial: Any) -> None:
        if not as_json:
            shown = f"{trial.value:.4f}" if trial.value is not None else f"failed: {trial.error}"
            typer.echo(f"  trial {trial.number:>3}  {shown}  {describe_params(trial.params)}", err=True)

    return on_trial


def _tune_set(spec: Path | None, set_ref: str | None, *, limit: int | None, holdout: float | None, tuner: str | None,
              trials: int | None, seed: int | None, objective: str | None, patch: Path | None, as_json: bool) -> None:
    from flightdeck.errors import FlightdeckError
    from flightdeck.evaluation.sets import store_set
    from flightdeck.evaluation.tuning_set import tune_set
    from flightdeck.models.trackers.builtin import ExperimentRuns, git_commit
    from flightdeck.pipeline.progress import NullReporter, RichReporter
    from flightdeck.project import Project
    from flightdeck.workspace import CURRENT_INDEX

    with errors_to_exit(as_json):
        project = Project.load(spec)
        if set_ref is None and not project.spec.evaluation.sets:
            raise typer.BadParameter(f"{project.spec_path} lists no evaluation.sets: give --set FILE (a JSONL set) "
                                     "or --beir FOLDER (a BEIR split's judged queries)", param_hint="--set")
        tuning, tuner_name, chosen = _settings(project, trials=trials, seed=seed, objective=objective,
                                               holdout=holdout, tuner=tuner)
        eval_set = project.eval_set(set_ref)
        if not project.workspace.get_state(CURRENT_INDEX):
            raise FlightdeckError(f"{project.spec_path}: no index yet; run `flightdeck run` before `flightdeck tune "
                                  "--set` (its trials search the project's index)")
        options = project.eval_options(limit)
        embedder = project.embedder
        results = project.workspace.root / "tune" / eval_set.name
        reporter = NullReporter() if as_json else RichReporter()
        if not as_json:
            typer.echo(f"tuning on set {eval_set.name} with {tuner_name}: {tuning.trials} trials, "
                       f"{tuning.objective}; trial results in {results}", err=True)
        try:
            report = tune_set(
                eval_set, loaded=project.loaded, tuning=tuning, tuner=chosen, tuner_name=tuner_name,
                options=options, embed=embedder.embed_documents, open_project=_open_trial, embedder=embedder,
                runs=ExperimentRuns(project.workspace, audit=project.audit),
                spec_hash=project.spec_hash,
                results=results, git_commit=git_commit(project.loaded.base_dir), patch_path=patch,
                set_id=store_set(project.workspace, eval_set), reporter=reporter, trackers=project.assembly.trackers(),
                on_trial=_on_trial(as_json))
        finally:
            reporter.close()
    _print_report(report, as_json, "questions")


def _print_report(report: Any, as_json: bool, noun: str) -> None:
    from flightdeck.evaluation.tuning import describe_params

    if as_json:
        print_json(report.to_dict())
        return
    h, b = report.holdout, report.best
    better = " (lower is better)" if report.direction == "minimise" else ""
    typer.echo(f"study {report.study_id}: {len(report.trials)} trials on {report.queries['tune']} {noun} "
               f"({report.queries['holdout']} held out)")
    typer.echo(f"baseline (the spec's settings): {report.objective}{better} {report.baseline['tune']:.4f} on the "
               "tune part")
    typer.echo(f"best: trial {b['trial']}, {report.objective} {b['tune']:.4f}: {describe_params(b['params'])}")
    typer.echo(f"holdout ({h['queries']} {noun}, scored once): baseline {h['baseline']:.4f} -> best {h['best']:.4f}"
               f" (gain {h['gain']:+.4f}, 95% CI {h['ci95'][0]:+.4f} .. {h['ci95'][1]:+.4f}; {h['improved']} "
               f"{noun} better, {h['worsened']} worse)")
    if not b["beats_baseline"]:
        typer.echo("no trial beat the spec's settings on the tune part: the patch changes nothing")
    typer.echo(f"spec patch ({report.patch_file}):")
    typer.echo(report.patch_yaml.rstrip())
