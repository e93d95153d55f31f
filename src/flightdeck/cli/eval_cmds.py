"""``flightdeck eval``: the project measured on an evaluation set — retrieval, answers, groundedness, refusals —
with gates, reports and a runs table; ``eval retrieval`` scores retrieval alone on BEIR or a synthetic set."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

if TYPE_CHECKING:
    from flightdeck.evaluation.reports.suites import SuiteView

__all__ = ["app"]

app = typer.Typer(help="Evaluate the project on an evaluation set (retrieval, answers, groundedness, refusals), "
                  "check its gates and write HTML/JSON/Markdown reports; `eval retrieval` scores retrieval alone on a "
                  "BEIR folder or a synthetic set; `eval runs` lists past runs.", invoke_without_command=True)


@app.callback()
def evaluate(
    ctx: typer.Context,
    set_ref: Annotated[str | None, typer.Option(
        "--set", help="a set of evaluation.sets by name, or a JSONL file (default: the first set of the spec)")] = None,
    gate: Annotated[bool, typer.Option(
        "--gate", help="exit 1 when a gate of evaluation.gates is missed, naming every missed gate")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="score only the first N questions")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="the folder for report.html, report.json and report.md "
        "(default: <workspace>/reports/<run id>)")] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the project on an evaluation set: every question is searched and answered as a user would get it.

    Measures retrieval (nDCG@k, recall@k, precision@k, MRR, hit rate), answers against the reference (token F1,
    exact match, BLEU, ROUGE, embedding similarity), citations against the reference sources, judge-free
    groundedness (each answer sentence's support in the chunks it cites), refusals (of unanswerable questions;
    false refusals of answerable ones) and latency. The run is recorded (`flightdeck eval runs`) with the index
    version it measured, and compared with the previous run of the same set.
    """
    if ctx.invoked_subcommand is not None:
        for name, value in (("--set", set_ref), ("--gate", gate or None), ("--limit", limit), ("--out", out),
                            ("--json", as_json or None), ("--spec", spec)):
            if value is not None:
                raise typer.BadParameter(f"{name} belongs after the subcommand: flightdeck eval "
                                         f"{ctx.invoked_subcommand} {name} …", param_hint=name)
        return
    from flightdeck.pipeline.progress import NullReporter, RichReporter
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        project = Project.load(spec)
        reporter = NullReporter() if as_json else RichReporter()
        try:
            done = project.evaluate(set_ref, limit=limit, report_dir=out, reporter=reporter)
        finally:
            reporter.close()
    if as_json:
        print_json({**done.report, "reports": {k: str(v) for k, v in done.files.items()}})
    else:
        _print_summary(done.report, done.files)
    if gate and done.passed is False:
        if not as_json:
            missed = [g for g in done.report["gates"] if not g["passed"]]
            typer.echo(f"gate failed: {len(missed)} of {len(done.report['gates'])} missed: " +
                       "; ".join(f"{g['gate']} ({g['reason']})" for g in missed), err=True)
        raise typer.Exit(EXIT_FAILED)


def _print_summary(report: dict, files: dict[str, Path]) -> None:
    from flightdeck.evaluation.reports.markdown import format_value, headline
    from flightdeck.evaluation.reports.suites import suite_views

    s, m, deltas = report["set"], report["metrics"], report.get("deltas", {})
    counts = s["counts"]
    typer.echo(f"{s['name']}: {counts['questions']} questions ({counts['answerable']} answerable, "
               f"{counts['unanswerable']} not), generator {report['run'].get('generator')}, index "
               f"{(report['run'].get('index_version') or '')[:12]}")
    names = headline(report)
    width = max(map(len, names), default=10)
    for name in names:
        d = deltas.get(name)
        delta = "" if d is None else f"  ({d:+.3f} vs previous)" if not name.endswith("_ms") else f"  ({d:+,.0f} ms)"
        typer.echo(f"  {name:<{width}}  {format_value(name, m[name]):>10}{delta}")
    outcomes: dict[str, int] = {}
    for q in report["questions"]:
        outcomes[q["outcome"]] = outcomes.get(q["outcome"], 0) + 1
    typer.echo("  outcomes: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(outcomes.items())))
    suites = suite_views(report)
    in_suites = {g["gate"] for suite in suites for g in suite.gates}
    for g in report["gates"]:
        if g["gate"] not in in_suites:  # a suite's gates are shown with the suite
            typer.echo(f"  gate {g['gate']}: " + ("pass" if g["passed"] else f"MISSED ({g['reason']})"))
    for suite in suites:
        _print_suite(suite)
    typer.echo(f"run {report['run']['id']}; report: {files.get('html')}")


#: offending cases of a suite shown in the terminal (the HTML report has them all)
SHOWN_FINDINGS = 3


def _print_suite(suite: SuiteView) -> None:
    """A validation suite in a few lines: its verdict and counts, its rates, its gates, its first offending cases
    with the attack and the answer (model output: one line, no control characters, shortened)."""
    import textwrap

    from flightdeck.evaluation.reports.suites import plain

    verdict = {"missed": "gate MISSED", "passed": "gates passed", None: "no gate"}[suite.status]
    counts = [f"{suite.cases} cases", f"{len(suite.findings)} offending"] + (
        [f"{len(suite.errors)} not measured"] if suite.errors else [])
    typer.echo(f"{suite.name}: {verdict} · " + " · ".join(counts))
    rates = " · ".join(f"{r.metric} {r.text}" + (f" ({r.cases})" if r.cases else "") for r in suite.rates)
    for line in textwrap.wrap(plain(rates), 110):
        typer.echo(f"  {line}")
    summary = textwrap.wrap(plain(suite.summary), 110)
    for n, line in enumerate(summary[:4]):
        typer.echo(f"  {line}" + (" …" if n == 3 and len(summary) > 4 else ""))
    for g in suite.gates:
        typer.echo(f"  gate {plain(g['gate'])}: " + ("pass" if g["passed"] else f"MISSED ({plain(g['reason'])})"))
    for f in suite.findings[:SHOWN_FINDINGS]:
        typer.echo(f"  ✗ {plain(f.id, 60)} ({plain(f.kind, 40)}): {plain(f.what, 140)}" +
                   (f"; {plain(f.note, 100)}" if f.note else ""))
        for name, text in f.texts:
            typer.echo(f"      {name}: {plain(text, 120) or '(empty)'}")
    if len(suite.findings) > SHOWN_FINDINGS:
        typer.echo(f"  … {len(suite.findings) - SHOWN_FINDINGS} more offending cases in the report")


@app.command("runs")
def runs(
    set_name: Annotated[str | None, typer.Option("--set", help="only the runs of this evaluation set")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="how many, newest first")] = 20,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """List evaluation runs, newest first: set, status, gates, headline metrics, index version and commit."""
    from flightdeck.models.trackers.builtin import ExperimentRuns
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        found = ExperimentRuns(Project.load(spec).workspace).list("eval", set_name, limit)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        typer.echo("no evaluation runs yet; `flightdeck eval` makes one")
        return
    import datetime as dt

    for r in found:
        when = dt.datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M")
        gates = {None: "no gates", True: "gates passed", False: "gates FAILED"}[r.passed]
        k = r.params.get("evaluation", {}).get("k", 10)
        key = {f"ndcg@{k}": r.metrics.get(f"ndcg@{k}"), "token_f1": r.metrics.get("token_f1"),
               "refusal_rate": r.metrics.get("refusal_rate")}
        shown = "  ".join(f"{n} {v:.3f}" for n, v in key.items() if isinstance(v, int | float))
        typer.echo(f"{r.id}  {when}  {r.name:<16} {r.status:<9} {gates:<12} {shown}  index "
                   f"{(r.index_version or '-')[:12]}  commit {(r.git_commit or '-')[:8]}")


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


# --- checklist 4.2: OpenAI Evals samples (evaluation/tools/openai_evals.py) ---

def _openai_set(set_ref: str | None, spec: Path | None):
    """The set to export (an EvalSet)."""
    from flightdeck.evaluation.sets import load_eval_set
    from flightdeck.project import Project

    # a JSONL file exports without a project; a name (or no --set) is looked up in the spec's evaluation.sets
    if set_ref is not None and spec is None and Path(set_ref).is_file() and not Path("flightdeck.yaml").is_file():
        return load_eval_set(set_ref)
    return Project.load(spec).eval_set(set_ref)


@app.command("export-openai")
def export_openai(
    out: Annotated[Path, typer.Argument(metavar="OUT.jsonl", help="the OpenAI Evals samples file to write")],
    set_ref: Annotated[str | None, typer.Option(
        "--set", help="a set of evaluation.sets by name, or a JSONL file (default: the first set of the spec)")] = None,
    system_prompt: Annotated[str | None, typer.Option(
        "--system-prompt", help="the system message of every sample (\"\" for none; default: answer as "
        "concisely as possible)", show_default=False)] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write an evaluation set as OpenAI Evals samples, for its Match, Includes and FuzzyMatch evals.

    One line per answerable question with a reference answer, whose "input" is a system and a
    user message and whose "ideal" is the reference answer. flightdeck's id, tags and sources travel under the key
    "flightdeck", which oaieval ignores."""
    from flightdeck.evaluation.tools.openai_evals import DEFAULT_SYSTEM_PROMPT, export_samples

    with errors_to_exit(as_json):
        eval_set = _openai_set(set_ref, spec)
        written = export_samples(eval_set, out, DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt)
    skipped = len(eval_set.questions) - written
    if as_json:
        print_json({"ok": True, "set": eval_set.name, "set_id": eval_set.sha256, "out": str(out),
                    "samples": written, "skipped": skipped})
        return
    typer.echo(f"{out}: {written} samples from {eval_set.name} ({len(eval_set.questions)} questions; {skipped} "
               "without a reference answer or unanswerable left out)")


@app.command("import-openai")
def import_openai(
    samples: Annotated[Path, typer.Argument(metavar="SAMPLES.jsonl", help="an OpenAI Evals samples file")],
    out: Annotated[Path, typer.Argument(metavar="OUT.jsonl", help="the flightdeck evaluation set to write")],
    as_json: JsonOption = False,
) -> None:
    """Read an OpenAI Evals samples file and write it as a flightdeck evaluation set (JSONL).

    The question is the last user message of "input", the reference answer the first "ideal". Every bad line is
    named (file:line)."""
    import os

    from flightdeck.evaluation.sets import load_eval_set
    from flightdeck.evaluation.tools.openai_evals import import_samples

    with errors_to_exit(as_json):
        imported = import_samples(samples)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(imported.canonical(), encoding="utf-8")
            load_eval_set(tmp)  # what is written must load as a set
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    several = sum(len(v) > 1 for v in imported.ideals.values())
    if as_json:
        print_json({"ok": True, "out": str(out), "questions": len(imported.questions), "set_id": imported.sha256,
                    "questions_with_several_ideals": several})
        return
    typer.echo(f"{out}: {len(imported.questions)} questions from {samples}")
    if several:
        typer.echo(f"note: {several} sample(s) list several ideals; a flightdeck set keeps the first as the "
                   "reference answer", err=True)
