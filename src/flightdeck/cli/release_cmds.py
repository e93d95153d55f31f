"""``flightdeck release …``: create, inspect, review, promote, roll back, export and import releases, and sync them
to the model registries (thin shells over :class:`~flightdeck.governance.releases.Releases`; the CLI acts as the OS
user, an admin of their workspace)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

if TYPE_CHECKING:
    from flightdeck.governance.releases import Release
    from flightdeck.project import Project

__all__ = ["release_app"]

release_app = typer.Typer(
    name="release", no_args_is_help=True,
    help="Releases: immutable records of what is served (spec, dataset and index versions, models, prompts, "
         "evaluation), moved candidate -> staging -> production by the approval policy (governance.approvals).")

RefArg = Annotated[str, typer.Argument(help="a release: its id (or a unique prefix), v3 or 3, an alias, or a stage "
                                            "(production, staging, candidate)")]
CommentOption = Annotated[str | None, typer.Option("--comment", "-m", help="why, kept with the event")]


def _project(spec: Path | None) -> Project:
    from flightdeck.project import Project

    return Project.load(spec)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _line(r: Release) -> str:
    gates = {True: "gates passed", False: "gates MISSED", None: "no gates"}[r.gates_passed]
    aliases = f"  [{', '.join(r.aliases)}]" if r.aliases else ""
    return (f"{r.name:<5} {r.id}  {r.stage:<10}  {gates:<12}  index {r.summary.get('index_version', '')}  "
            f"{r.summary.get('generator') or ''}  {_when(r.created_at)} by {r.created_by}{aliases}")


@release_app.command("create")
def create(comment: CommentOption = None, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Record the current index version with this spec, its models and prompts, and the latest evaluation of that
    index made with this spec (run `flightdeck eval` first for its gates to count) as a candidate release."""
    with errors_to_exit(as_json):
        project = _project(spec)
        release, created = project.create_release(comment=comment)
        check = project.releases.check_policy(release)
    if as_json:
        print_json({"created": created, "release": release.to_dict(), "policy": check.to_dict()})
        return
    typer.echo(("created " if created else "already recorded: ") + _line(release))
    if not check.allowed:
        typer.echo("to reach production it still needs: " + "; ".join(check.to_dict()["missing"]))


@release_app.command("list")
def list_releases(
    stage: Annotated[str | None, typer.Option("--stage", help="only this stage: candidate, staging, production, "
                                                              "archived")] = None,
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Every release, newest first, with its stage, gates and aliases."""
    from flightdeck.spec.releases import STAGES

    if stage is not None and stage not in STAGES:
        raise typer.BadParameter(f"{stage!r}: one of {', '.join(STAGES)}", param_hint="--stage")
    with errors_to_exit(as_json):
        found = _project(spec).releases.list(stage)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        typer.echo("no releases yet; `flightdeck release create` records the current index as one")
    for r in found:
        typer.echo(_line(r))


@release_app.command("show")
def show(ref: RefArg, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """A release: its manifest, its history, what promotion to production still needs, and whether its artifacts
    and models still match their recorded hashes."""
    with errors_to_exit(as_json):
        project = _project(spec)
        releases = project.releases
        release = releases.get(ref)
        manifest = releases.manifest(release)
        events = releases.events(release)
        check = releases.check_policy(release)
        problems = releases.verify(release, model_files=project.release_model_problems)
        mirrors = releases.mirror_status(release)
    if as_json:
        print_json({"release": release.to_dict(), "manifest": manifest, "events": [e.to_dict() for e in events],
                    "policy": check.to_dict(), "intact": not problems, "problems": problems, "mirrors": mirrors})
        return
    typer.echo(_line(release))
    iv = manifest["index_version"]
    typer.echo(f"  spec {manifest['spec']['sha256'][:12]}  dataset {str(manifest.get('dataset_version'))[:12]}  "
               f"index {str(iv.get('id'))[:12]} ({iv.get('store')}, {iv.get('chunk_count')} chunks, "
               f"{len(manifest.get('index_files') or {})} files hashed)")
    for kind, model in manifest["models"].items():
        typer.echo(f"  {kind}: {model.get('model_id') or model.get('provider')} "
                   f"({len(model.get('files') or {})} files hashed)")
    for p in manifest.get("prompts") or []:
        typer.echo(f"  prompt template: {p.get('template')} sha256 {str(p.get('sha256'))[:12]}")
    ev = manifest.get("evaluation")
    if ev:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(ev["metrics"].items())
                          if isinstance(v, float))[:300]
        typer.echo(f"  evaluation {ev['run_id']} on {ev['eval_set']}: {shown}")
        for g in ev.get("gates") or []:
            typer.echo(f"    gate {g.get('gate')}: {'passed' if g.get('passed') else 'MISSED'} "
                       f"(measured {g.get('value')})")
    else:
        typer.echo("  evaluation: none of this index version with this spec")
    typer.echo("  history:")
    for e in events:
        move = f" {e.from_stage or ''} -> {e.to_stage}" if e.to_stage else ""
        why = f": {e.comment}" if e.comment else ""
        override = e.details.get("override")
        extra = f" (override: {override['reason']})" if override else ""
        if e.event in ("mirrored", "mirror_failed"):
            extra = f" ({e.details.get('registry')} {_mirrored(e.details)})"
        typer.echo(f"    {_when(e.at)}  {e.event}{move} by {e.actor} ({e.role}){why}{extra}")
    typer.echo("  production: " + ("allowed" if check.allowed else "needs " + "; ".join(check.to_dict()["missing"])))
    typer.echo("  integrity: " + ("intact" if not problems else "BROKEN: " + "; ".join(problems)))
    for name, last in sorted(mirrors.items()):
        state = "ok" if last["event"] == "mirrored" else "FAILED"
        error = f": {last.get('error')}" if last["event"] == "mirror_failed" else ""
        typer.echo(f"  registry {name}: {state} {_mirrored(last)} at {_when(last['at'])}{error}")
    if any(last["event"] == "mirror_failed" for last in mirrors.values()):
        typer.echo(f"  `flightdeck release sync {release.name}` tells the registries again")


def _mirrored(details: dict[str, Any]) -> str:
    """What a mirror event told a registry: ``publish``, ``set_stage production``, ``set_alias golden``."""
    return " ".join([str(details.get("action")), *(str(details[k]) for k in ("stage", "alias") if k in details)])


def _review(ref: str, verdict: str, comment: str | None, spec: Path | None, as_json: bool) -> None:
    from flightdeck.governance.releases import Actor

    with errors_to_exit(as_json):
        project = _project(spec)
        event = project.releases.review(ref, Actor.local(), verdict, comment)
        release = project.releases.get(event.release_id)
        check = project.releases.check_policy(release)
    if as_json:
        print_json({"event": event.to_dict(), "release": release.to_dict(), "policy": check.to_dict()})
        return
    typer.echo(f"{verdict} {release.name} ({release.id}) as {event.actor}")
    typer.echo("production: " + ("allowed" if check.allowed else "needs " + "; ".join(check.to_dict()["missing"])))


@release_app.command("approve")
def approve(ref: RefArg, comment: CommentOption = None, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Approve a release as the OS user (approvals over the API come from approver keys)."""
    _review(ref, "approved", comment, spec, as_json)


@release_app.command("reject")
def reject(ref: RefArg, comment: CommentOption = None, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Reject a release: it cannot be promoted while this rejection stands."""
    _review(ref, "rejected", comment, spec, as_json)


@release_app.command("promote")
def promote(
    ref: RefArg,
    to: Annotated[str, typer.Option("--to", help="staging or production")] = "production",
    override_reason: Annotated[str | None, typer.Option(
        "--override-reason", help="promote although evaluation gates failed, for this recorded reason (admin; "
        "approvals and integrity are still required)")] = None,
    comment: CommentOption = None, spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Promote a release when governance.approvals allows it; to production, the release there is archived. A
    running server switches to it without a restart."""
    from flightdeck.governance.releases import Actor

    if to not in ("staging", "production"):
        raise typer.BadParameter(f"{to!r}: staging or production", param_hint="--to")
    with errors_to_exit(as_json):
        project = _project(spec)
        release = project.releases.promote(ref, Actor.local(), to, override_reason=override_reason,
                                           comment=comment, model_files=project.release_model_problems)
    if as_json:
        print_json({"release": release.to_dict()})
        return
    typer.echo(f"promoted {release.name} ({release.id}) to {release.stage}")


@release_app.command("rollback")
def rollback(
    to: Annotated[str | None, typer.Option("--to", help="a release that was in production before (default: the one "
                                                        "before the current)")] = None,
    comment: CommentOption = None, spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Put back in production the release that was there before; the current one is archived."""
    from flightdeck.governance.releases import Actor

    with errors_to_exit(as_json):
        project = _project(spec)
        release = project.releases.rollback(Actor.local(), to, comment, model_files=project.release_model_problems)
    if as_json:
        print_json({"release": release.to_dict()})
        return
    typer.echo(f"rolled back: {release.name} ({release.id}) is in production again")


@release_app.command("archive")
def archive(ref: RefArg, comment: CommentOption = None, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Archive a release: it is no longer served or promotable, and stays for the record and for rollback."""
    from flightdeck.governance.releases import Actor

    with errors_to_exit(as_json):
        release = _project(spec).releases.archive(ref, Actor.local(), comment)
    if as_json:
        print_json({"release": release.to_dict()})
        return
    typer.echo(f"archived {release.name} ({release.id})")


@release_app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="the alias, e.g. champion")],
    ref: Annotated[str | None, typer.Argument(help="the release it names (omit with --remove)")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="remove the alias")] = False,
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Point an alias at a release (or remove it); serve or promote by alias."""
    from flightdeck.governance.releases import Actor

    if not remove and ref is None:
        raise typer.BadParameter("give the release the alias names, or --remove", param_hint="REF")
    with errors_to_exit(as_json):
        releases = _project(spec).releases
        if remove:
            releases.remove_alias(name, Actor.local())
            out: dict[str, Any] = {"alias": name, "removed": True}
        else:
            assert ref is not None
            release = releases.set_alias(name, ref, Actor.local())
            out = {"alias": name, "release": release.to_dict()}
    if as_json:
        print_json(out)
        return
    typer.echo(f"removed alias {name}" if remove else f"{name} -> {out['release']['name']} ({out['release']['id']})")


@release_app.command("diff")
def diff(a: RefArg, b: RefArg, spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """What changed from release A to B: spec, documents, index, models, prompts and metrics."""
    with errors_to_exit(as_json):
        out = _project(spec).releases.diff(a, b)
    if as_json:
        print_json(out)
        return
    typer.echo(f"{out['from']['name']} -> {out['to']['name']}" + (" (same content)" if out["same"] else ""))
    for line in out["spec"]:
        typer.echo("  " + line)
    if out["documents"]:
        d = out["documents"]
        typer.echo(f"  documents: {len(d['added'])} added, {len(d['removed'])} removed, {len(d['changed'])} changed")
        for kind in ("added", "removed", "changed"):
            for doc in d[kind][:20]:
                typer.echo(f"    {kind[0].upper() if kind != 'changed' else 'M'} {doc}")
    if out["index_version"]:
        change = out["index_version"]
        typer.echo(f"  index version: {str(change['from'])[:12]} -> {str(change['to'])[:12]}")
    for kind, change in out["models"].items():
        typer.echo(f"  {kind}: {change['from'].get('model_id')} -> {change['to'].get('model_id')}")
    if out["prompts"]:
        typer.echo("  prompt templates changed")
    metrics = out["metrics"]
    for side, other in (("from", "to"), ("to", "from")):
        if metrics and all(m[side] is None for m in metrics.values()):  # one side was never evaluated
            typer.echo(f"  evaluation: {out[side]['name']} has none; {out[other]['name']} has "
                       f"{len(metrics)} metrics (flightdeck release show {out[other]['name']})")
            metrics = {}
    for name, m in metrics.items():
        change = f" ({m['change']:+.4f})" if "change" in m else ""
        typer.echo(f"  {name}: {m['from']} -> {m['to']}{change}")


@release_app.command("export")
def export(
    ref: RefArg,
    out: Annotated[Path, typer.Argument(help="the archive to write, e.g. release-v3.tar.gz")],
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Write a release and every artifact it names to one archive (models are recorded by hash, not bundled)."""
    from flightdeck.governance.releases import Actor

    with errors_to_exit(as_json):
        info = _project(spec).releases.export(ref, out, actor=Actor.local())
    if as_json:
        print_json(info)
        return
    typer.echo(f"exported {info['name']} ({info['release']}) to {info['path']}: {info['artifacts']} artifacts, "
               f"{info['index_files']} index files, {info['bytes']} bytes")


@release_app.command("import")
def import_release(
    archive_path: Annotated[Path, typer.Argument(help="an archive of `flightdeck release export`")],
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Add an exported release to this workspace, every hash checked first; it arrives as a candidate."""
    from flightdeck.governance.releases import Actor

    with errors_to_exit(as_json):
        release, created = _project(spec).releases.import_(archive_path, Actor.local())
    if as_json:
        print_json({"created": created, "release": release.to_dict()})
        return
    typer.echo(("imported " if created else "already here: ") + _line(release))


@release_app.command("sync")
def sync(
    ref: Annotated[str | None, typer.Argument(help="only this release (default: every release some registry "
                                                   "missed a change of)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every release, to every registry")] = False,
    spec: SpecOption = None, as_json: JsonOption = False,
) -> None:
    """Tell the model registries of deployment.model_registry again what the workspace holds: publish the release,
    set its stage and its aliases (and remove those whose removal a registry missed). Exit 1 when a registry still
    failed."""
    from flightdeck.governance.releases import Actor

    if ref is not None and all_:
        raise typer.BadParameter("name one release or give --all, not both", param_hint="--all")
    with errors_to_exit(as_json):
        releases = _project(spec).releases
        configured = [getattr(m, "name", type(m).__name__) for m in releases.mirrors]
        results = releases.sync(ref, Actor.local(), all_=all_)
    ok = all(r["ok"] for r in results)
    if as_json:
        print_json({"ok": ok, "registries": configured, "releases": results})
    elif not configured:
        typer.echo("no model registry is configured (deployment.model_registry); nothing to sync")
    elif not results:
        typer.echo(f"every release is level in {', '.join(configured)}: no registry missed a change (--all tells "
                   "them everything again)")
    else:
        for r in results:
            aliases = f"  [{', '.join(r['aliases'])}]" if r["aliases"] else ""
            typer.echo(f"{r['name']:<5} {r['release']}  {r['stage']}{aliases}")
            for reg in r["registries"]:
                done = ", ".join(reg["done"]) or "nothing"
                if reg["ok"]:
                    typer.echo(f"  {reg['registry']}: ok ({done})")
                else:
                    typer.echo(f"  {reg['registry']}: FAILED at {reg['failed']} (done: {done}): {reg['error']}")
                for alias in reg.get("kept_aliases", []):
                    typer.echo(f"    alias {alias} stays there: this registry cannot remove aliases (see the "
                               "mirror_failed event in `flightdeck release show`)")
        failed = sum(not reg["ok"] for r in results for reg in r["registries"])
        typer.echo(f"{len(results)} release(s) synced" + (f"; {failed} registry call(s) still failed" if failed
                                                           else ""))
    if not ok:
        raise typer.Exit(EXIT_FAILED)
