"""Naming a recorded thing (a dataset version, a synthetic set) by its id, a unique prefix, or ``current``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from flightdeck.errors import WorkspaceError
from flightdeck.workspace.workspace import Workspace

__all__ = ["resolve_id"]


def resolve_id(ws: Workspace, column: Any, ref: str, *, current_state: str | None, what: str, lister: str,
               none_yet: str) -> str:
    """The full id in ``column`` that ``ref`` names: a full id, a unique hex prefix, or ``current`` (the id
    kept in the workspace state ``current_state``; None: nothing is current). Errors say ``what`` was sought,
    name the command that lists them (``lister``) and, with nothing recorded yet, what to do (``none_yet``)."""
    ref = ref.strip()
    if ref == "current" and current_state is not None:
        current = ws.get_state(current_state)
        if current is None:
            raise WorkspaceError(f"{ws.root}: no {what} yet; {none_yet}")
        return current
    if not ref or any(c not in "0123456789abcdef" for c in ref.lower()):
        raise WorkspaceError(f"{ref!r} is not a {what} id; `{lister}` lists them")
    with ws.engine.connect() as conn:
        matches = [r[0] for r in conn.execute(select(column).where(column.startswith(ref.lower())))]
    if not matches:
        raise WorkspaceError(f"no {what} matches {ref!r}; `{lister}` lists them")
    if len(matches) > 1:
        raise WorkspaceError(f"{ref!r} matches {len(matches)} {what}s "
                             f"({', '.join(m[:12] for m in sorted(matches))}); give more characters")
    return matches[0]
