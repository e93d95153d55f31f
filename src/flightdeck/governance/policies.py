"""IAM-style policies (``governance.policies``, checklist 8.3) evaluated for a caller: what a deny statement
takes away, and the metadata filter every search of a scoped caller is limited to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flightdeck.governance.access import Permission, Role
from flightdeck.retrieval.filters import matches, normalise_payload, parse_filter
from flightdeck.spec.policies import PolicyStatement

__all__ = ["AccessPolicy"]


class AccessPolicy:
    """The statements of a spec, asked about one caller (its key id and role) and one action."""

    def __init__(self, statements: Sequence[PolicyStatement] = ()) -> None:
        self.statements = list(statements)
        for i, statement in enumerate(self.statements):
            if statement.where is not None:
                parse_filter(statement.where, where=f"governance.policies[{i}].where")  # a bad filter fails now

    @staticmethod
    def _applies(statement: PolicyStatement, key_id: str, role: Role, action: Permission) -> bool:
        who = "*" in statement.principals or f"key:{key_id}" in statement.principals \
            or f"role:{role.value}" in statement.principals
        return who and ("*" in statement.actions or action.value in statement.actions)

    def denied(self, key_id: str, role: Role, action: Permission) -> bool:
        return any(s.effect == "deny" and self._applies(s, key_id, role, action) for s in self.statements)

    def scope(self, key_id: str, role: Role, action: Permission) -> dict[str, Any] | None:
        """The filter the caller's reads are limited to (every matching allow statement's, all of them), or
        None when no statement limits it."""
        filters = [s.where for s in self.statements
                   if s.effect == "allow" and s.where is not None and self._applies(s, key_id, role, action)]
        if not filters:
            return None
        return filters[0] if len(filters) == 1 else {"$and": filters}

    @staticmethod
    def narrowed(where: dict[str, Any] | None, scope: dict[str, Any] | None) -> dict[str, Any] | None:
        """A request's own filter within the caller's scope: both must hold."""
        if scope is None:
            return where
        return scope if not where else {"$and": [scope, where]}

    @staticmethod
    def admits(scope: dict[str, Any] | None, metadata: dict[str, Any]) -> bool:
        """Whether a document with ``metadata`` is inside ``scope``."""
        return scope is None or matches(parse_filter(scope), normalise_payload(metadata))
