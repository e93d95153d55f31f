"""``flightdeck drift``: do two dataset versions, two index versions or two windows of traces differ?"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["drift"]


def drift(
    datasets: Annotated[tuple[str, str] | None, typer.Option(
        "--datasets", metavar="A B", help="two dataset versions (ids, unique prefixes or `current`): their chunks",
        show_default=False)] = None,
    indexes: Annotated[tuple[str, str] | None, typer.Option(
        "--indexes", metavar="A B", help="two index versions (ids, unique prefixes or `current`): the chunks and "
        "vectors each holds", show_default=False)] = None,
    traces: Annotated[bool, typer.Option(
        "--traces", help="the questions and retrieval scores of the last --window of traces against the window "
        "before it")] = False,
    window: Annotated[str | None, typer.Option(
        "--window", help="with --traces: the window's length, e.g. 24h, 7d, 2w (default 7d)",
        show_default=False)] = None,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="a test says drifted when its p-value is at most this (between 0 and 1)")] = 0.01,
    max_texts: Annotated[int, typer.Option(
        "--max-texts", min=2, help="texts embedded and tested per side at most (a seeded sample)")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="the seed of the samples and permutations")] = 0,
    fail_on_drift: Annotated[bool, typer.Option(
        "--fail-on-drift", help="exit 1 when any test says drifted (for CI)")] = False,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two samples of what the project sees, with two-sample tests and p-values.

    Embedding shift with the project's embedder (MMD² with a permutation test; a logistic-regression domain
    classifier's cross-validated AUC with a permutation test), token lengths (KS), the term distribution
    (Jensen-Shannon distance, permutation test) with the vocabulary overlap, OOV rate and top new terms, and for
    traces the retrieval scores (KS of each answer's top-1 and mean score). Exit 0; with --fail-on-drift, exit 1
    when any test's p-value is at most --alpha.
    """
    # click's usage errors exit with 2 (EXIT_USAGE) and show the usage line
    given = [name for name, value in (("--datasets", datasets), ("--indexes", indexes), ("--traces", traces)) if value]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --datasets A B, --indexes A B or --traces"
                                 + (f" (got {' and '.join(given)})" if given else ""),
                                 param_hint="--datasets / --indexes / --traces")
    if not 0.0 < alpha < 1.0:
        raise typer.BadParameter(f"{alpha:g} is not between 0 and 1 (e.g. 0.01)", param_hint="--alpha")
    if window is not None and not traces:
        raise typer.BadParameter("--window only goes with --traces", param_hint="--window")
    from flightdeck.errors import FlightdeckError
    from flightdeck.monitoring.drift_samples import parse_window

    try:
        parse_window(window or "7d")
    except FlightdeckError as exc:
        raise typer.BadParameter(str(exc), param_hint="--window") from None
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        report = Project.load(spec).drift(datasets=datasets, indexes=indexes, traces=traces, window=window or "7d",
                                          alpha=alpha, max_texts=max_texts, seed=seed)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report.to_dict())
    if fail_on_drift and report.drifted:
        raise typer.Exit(EXIT_FAILED)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and 0 < abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _print_report(r: dict[str, Any]) -> None:
    a, b = r["a"], r["b"]
    typer.echo(f"A: {a['label']} ({a['texts']} texts)")
    typer.echo(f"B: {b['label']} ({b['texts']} texts)")
    typer.echo(f"embedder {r['embedder']}, alpha {r['alpha']:g}")
    width = max(len(t["title"]) for t in r["tests"])
    typer.echo(f"  {'test':<{width}}  {'statistic':>10}  {'p-value':>9}  verdict")
    for t in r["tests"]:
        if t["skipped"]:
            typer.echo(f"  {t['title']:<{width}}  {'-':>10}  {'-':>9}  skipped: {t['skipped']}")
            continue
        verdict = "DRIFTED" if t["drifted"] else "no drift"
        typer.echo(f"  {t['title']:<{width}}  {_num(t['statistic']):>10}  {_num(t['p_value']):>9}  {verdict}")
    s = r["summary"]
    ta, tb = s["tokens"]["a"], s["tokens"]["b"]
    typer.echo(f"  tokens per text: mean {_num(ta['mean'], 1)} -> {_num(tb['mean'], 1)}, p50 {_num(ta['p50'], 0)} -> "
               f"{_num(tb['p50'], 0)}, p95 {_num(ta['p95'], 0)} -> {_num(tb['p95'], 0)}")
    v = s["vocabulary"]
    oov = "-" if v["oov_rate"] is None else f"{v['oov_rate']:.1%}"
    typer.echo(f"  vocabulary: {v['a_terms']} -> {v['b_terms']} terms, Jaccard {_num(v['jaccard'], 3)}, "
               f"B's tokens unseen in A {oov}")
    if v["new_terms"]:
        typer.echo("  new terms: " + ", ".join(f"{t['term']} ({t['count']})" for t in v["new_terms"]))
    if "scores" in s:
        top1 = s["scores"]["top1"]
        typer.echo(f"  top-1 score: mean {_num(top1['a']['mean'])} -> {_num(top1['b']['mean'])}; answers without "
                   f"hits {s['scores']['no_hits']['a']} -> {s['scores']['no_hits']['b']}")
    for note in r["notes"]:
        typer.echo(f"  note: {note}")
    drifted = r["drifted_tests"]
    ran = sum(1 for t in r["tests"] if not t["skipped"])
    typer.echo(f"DRIFTED: {len(drifted)} of {ran} tests at alpha {r['alpha']:g} ({', '.join(drifted)})" if drifted
               else f"no drift: none of {ran} tests at alpha {r['alpha']:g}")
