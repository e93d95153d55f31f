"""``flightdeck audit verify|log|export|anchor|prune``: the hash-chained audit log (thin shells over AuditLog)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightdeck.cli.common import EXIT_FAILED, JsonOption, SpecOption, errors_to_exit, print_json

if TYPE_CHECKING:
    from flightdeck.workspace.audit import AuditEntry, AuditLog

__all__ = ["audit_app", "verify", "show_log", "export", "anchor", "prune"]

audit_app = typer.Typer(name="audit", no_args_is_help=True,
                        help="The audit log: every state change (runs, documents, keys, evaluations, releases…), "
                             "hash-chained, signed and anchored as governance.audit says. Verify, read, export, "
                             "anchor, prune.")


def _log(spec: Path | None) -> AuditLog:
    from flightdeck.project import Project

    return Project.load(spec).audit


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@audit_app.command("verify")
def verify(spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Check the whole audit log and exit 1 naming the first bad entry.

    Each entry's hash is checked against its content and against the next entry's link, the sequence for gaps, each
    signature under the signing key (governance.audit), and the log against the anchor file (a truncated tail). An
    entry edited, deleted, inserted or reordered is named, as is a log cut short of its newest anchor.
    """
    with errors_to_exit(as_json):
        result = _log(spec).verify()
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(result.summary() + (f" [{result.seconds:.2f} s]" if result.ok else ""))
        for line in result.warnings:
            _warn(line)
        if not result.ok:
            what = f"the entries from {result.first_bad_seq} on" if result.first_bad_seq else "the log"
            typer.echo(f"what to do: treat {what} as untrusted; compare with an earlier `flightdeck audit export` or a "
                       "backup of the workspace, and find out who could write its metadata.db", err=True)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def _line(entry: AuditEntry) -> str:
    details = json.dumps(entry.details, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if len(details) > 120:
        details = details[:119] + "…"
    return f"{entry.seq:>6}  {entry.to_dict()['time']}  {entry.actor}  {entry.action}  {entry.target}  {details}"


@audit_app.command("log")
def show_log(
    since: Annotated[str | None, typer.Option("--since", help="from this date (2026-12-01, UTC) or this long ago "
                                                              "(7d, 12h, 30m)")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="only this actor, e.g. user:alice or "
                                                              "key:0123456789ab")] = None,
    action: Annotated[str | None, typer.Option("--action", help="only this action, e.g. run.finished; release.* for "
                                                                "every release action")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="the newest N entries that match")] = 50,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """The audit log's entries, oldest first: the newest --limit that match the filters."""
    from flightdeck.workspace.audit import parse_since

    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    with errors_to_exit(as_json):
        found = _log(spec).entries(since=start, actor=actor, action=action, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    if not found:
        typer.echo("no audit entries match" if since or actor or action else "the audit log is empty")
        return
    for entry in found:
        typer.echo(_line(entry))


@audit_app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="the JSONL file to write (one entry a line, oldest first)")],
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write every entry of the audit log to a JSONL file, with its hashes and signature."""
    with errors_to_exit(as_json):
        count = _log(spec).export_jsonl(path)
    if as_json:
        print_json({"path": str(path), "entries": count})
        return
    typer.echo(f"exported {count} audit entries to {path}")


@audit_app.command("anchor")
def anchor(spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Append the log's head to the anchor file (governance.audit.anchor) now.

    The head's seq, hash, time and signature make one JSON line; one is also written every anchor_every entries. A log
    that later ends before its newest anchor, or differs from one, was truncated or rewritten.
    """
    with errors_to_exit(as_json):
        log = _log(spec)
        line = log.anchor_now()
    if as_json:
        print_json({"anchor": str(log.anchor), **line})
        return
    typer.echo(f"anchored entry {line['seq']} (hash {line['hash'][:16]}…) in {log.anchor}")


@audit_app.command("prune")
def prune(
    older_than: Annotated[str | None, typer.Option("--older-than", help="delete entries older than this (90d, 52w); "
                                                   "default: governance.audit.retention_days")] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete the entries older than the retention (governance.audit.retention_days), keeping the rest verifiable.

    The last deleted entry becomes the genesis the chain is checked from, and the pruning is itself an entry
    (audit.pruned). A log that does not verify is not pruned: that would delete the evidence.
    """
    import time

    from flightdeck.errors import FlightdeckError
    from flightdeck.project import Project
    from flightdeck.workspace.audit import local_actor, parse_since

    with errors_to_exit(as_json):
        project = Project.load(spec)
        days = project.spec.governance.audit.retention_days
        if older_than is not None:
            try:
                cutoff = parse_since(older_than)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--older-than") from None
        elif days is not None:
            cutoff = time.time() - days * 86400
        else:
            raise FlightdeckError(f"{project.spec_path}: governance.audit.retention_days is not set, so every entry is "
                                  "kept; set it (e.g. audit: {retention_days: 365}) or give --older-than 365d")
        result = project.audit.prune(cutoff, local_actor())
    out: dict[str, Any] = result.to_dict()
    if as_json:
        print_json(out)
        return
    if not result.pruned:
        typer.echo("nothing to prune: no entry is older than the retention")
        return
    typer.echo(f"pruned {result.pruned} audit entries (through entry {result.through_seq}); the log is checked from "
               f"there on, and the pruning is entry {result.entry.seq if result.entry else '?'}")
