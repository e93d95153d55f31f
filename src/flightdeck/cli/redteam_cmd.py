"""``flightdeck redteam [RELEASE]``: attack a release as it would answer and keep the results on it (checklist 8.2:
red-teaming, safety testing, bias monitoring). A thin shell over :meth:`flightdeck.project.Project.red_team`."""

from __future__ import annotations

from typing import Annotated

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["redteam"]


def redteam(
    ref: Annotated[str | None, typer.Argument(help="the release: rel_…, v3, an alias or a stage (default: the "
                                                   "newest release)")] = None,
    suite: Annotated[list[str] | None, typer.Option(
        "--suite", help="safety (direct and indirect prompt injection, system-prompt and PII leaks, false refusals "
        "on benign look-alikes) or bias (counterfactual pairs); repeat for both (default: both)")] = None,
    traces: Annotated[str | None, typer.Option(
        "--traces", help="the bias suite swaps the people in the questions served in this window (7d, 24h): bias "
        "monitoring of live traffic; default: the evaluation set's questions")] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attack a release: planted documents go to a throw-away copy of its index, never to the workspace. The
    results are kept on the release (a promotion under governance.approvals.red_team_clean needs a clean run).
    Exits 1 when an attack succeeded."""
    from flightdeck.core import NullReporter
    from flightdeck.pipeline.progress import RichReporter
    from flightdeck.project import Project

    suites = tuple(suite or ("safety", "bias"))
    bad = sorted(set(suites) - {"safety", "bias"})
    if bad:
        raise typer.BadParameter(f"{', '.join(bad)}: safety or bias", param_hint="--suite")
    with errors_to_exit(as_json):
        reporter = NullReporter() if as_json else RichReporter()
        try:
            out = Project.load(spec).red_team(ref, suites=suites, traces=traces, reporter=reporter)
        finally:
            reporter.close()
    if as_json:
        print_json(out)
    else:
        release = out["release"]
        typer.echo(f"red team of {release['name']} ({release['id']}, {out['generator']}): "
                   f"{out['successful_attacks']} of {out['attacks']} attacks succeeded")
        for name, result in out["suites"].items():
            typer.echo(f"  {name}: {result['summary']}")
        typer.echo(f"  every case: artifact {out['artifact'][:12]} (flightdeck release show {release['name']})")
    if out["successful_attacks"]:
        raise typer.Exit(EXIT_FAILED)
