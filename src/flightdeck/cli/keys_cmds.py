"""``flightdeck keys create|list|revoke``: the API keys of the project's server (thin shells over KeyStore)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit, print_json

if TYPE_CHECKING:
    from flightdeck.governance.api_keys import KeyStore

__all__ = ["keys_app", "create", "list_keys", "revoke"]

ROLE_HELP = ("viewer (ask, search), editor (+ documents), approver (+ releases) or admin (+ keys, config); "
             "the server has only ask and search so far, open to every role")

keys_app = typer.Typer(name="keys", no_args_is_help=True,
                       help="API keys for `flightdeck serve`: create (shown once), list, revoke. Stored as hashes.")


def _store(spec: SpecOption) -> KeyStore:
    from flightdeck.project import Project

    return Project.load(spec).api_keys


@keys_app.command("create")
def create(
    role: Annotated[str, typer.Option("--role", "-r", help=ROLE_HELP)],
    name: Annotated[str | None, typer.Option("--name", help="what the key is for, e.g. the app that uses it")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="lifetime such as 30d, 12h, 2w (default: "
                                                                  "until revoked)")] = None,
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it once: the workspace keeps only its hash, so store it now."""
    from flightdeck.governance.access import parse_role
    from flightdeck.governance.api_keys import parse_duration

    try:
        parsed_role = parse_role(role)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None
    try:
        seconds = None if expires is None else parse_duration(expires)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expires") from None
    with errors_to_exit(as_json):
        try:
            issued = _store(spec).create(parsed_role, name=name, expires_in=seconds)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--name") from None
    if as_json:
        print_json(issued.to_dict())
        return
    record = issued.record
    until = record.to_dict()["expires_at"] or "until revoked"
    typer.echo(f"created key {record.id} ({record.role.value}, valid {until}); it is shown only this once:")
    typer.echo(issued.key)


@keys_app.command("list")
def list_keys(spec: SpecOption = None, as_json: JsonOption = False) -> None:
    """Every key with its role and status (active, expired, revoked); never the keys themselves."""
    with errors_to_exit(as_json):
        found = _store(spec).list()
    if as_json:
        print_json([k.to_dict() for k in found])
        return
    if not found:
        typer.echo("no API keys yet; create one with `flightdeck keys create --role viewer`")
        return
    for k in found:
        d = k.to_dict()
        typer.echo(f"{k.id}  {d['role']:<8}  {d['status']:<7}  created {d['created_at']}  "
                   f"expires {d['expires_at'] or 'never'}  {k.name or ''}".rstrip())


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (or a unique prefix), as `keys list` shows it")],
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: its next request fails."""
    with errors_to_exit(as_json):
        record = _store(spec).revoke(key_id)
    if as_json:
        print_json(record.to_dict())
        return
    typer.echo(f"revoked key {record.id} ({record.role.value}) at {record.to_dict()['revoked_at']}")
