"""Roles and permissions (checklist 8.3, RBAC): what each role of an API key may do.

Deny by default: a permission is granted only by the table below, and each role holds the permissions of the
roles under it. The server maps every route to exactly one permission (a test fails when a route has none).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role", "Permission", "ROLE_PERMISSIONS", "allowed", "parse_role"]


class Role(StrEnum):
    """The role of an API key, from the least to the most trusted."""

    VIEWER = "viewer"  # ask, search, chat
    EDITOR = "editor"  # + add, read and delete documents
    APPROVER = "approver"  # + approve or reject releases
    ADMIN = "admin"  # + promote and roll back releases, read the audit log, manage keys and configuration


class Permission(StrEnum):
    QUERY = "query"  # answers, chat completions, embeddings, traces of one's own requests
    SEARCH = "search"
    METRICS = "metrics"  # /metrics, for a Prometheus scraping with a viewer key
    DOCUMENTS_READ = "documents:read"
    DOCUMENTS_WRITE = "documents:write"
    RELEASES_READ = "releases:read"  # list and show releases, lineage of answers
    RELEASES_APPROVE = "releases:approve"
    RELEASES_PROMOTE = "releases:promote"  # promote, roll back, override a failed gate (with a reason)
    AUDIT_READ = "audit:read"  # the audit log's entries and its verification
    KEYS_MANAGE = "keys:manage"
    CONFIG = "config"


_VIEWER = frozenset({Permission.QUERY, Permission.SEARCH, Permission.METRICS})
_EDITOR = _VIEWER | {Permission.DOCUMENTS_READ, Permission.DOCUMENTS_WRITE, Permission.RELEASES_READ}
_APPROVER = _EDITOR | {Permission.RELEASES_APPROVE}
_ADMIN = _APPROVER | {Permission.RELEASES_PROMOTE, Permission.AUDIT_READ, Permission.KEYS_MANAGE, Permission.CONFIG}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.EDITOR: _EDITOR,
    Role.APPROVER: _APPROVER,
    Role.ADMIN: _ADMIN,
}


def allowed(role: Role | str, permission: Permission | str) -> bool:
    """Whether ``role`` holds ``permission``; an unknown role or permission is denied, never an error."""
    try:
        return Permission(permission) in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def parse_role(value: str) -> Role:
    """``value`` as a role, or a ValueError that lists the roles."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {value!r}; use one of: {', '.join(r.value for r in Role)}") from None
