"""``governance.policies``: IAM-style statements on top of the roles (checklist 8.3, IAM policies).

A statement names who (``principals``: ``key:<key id>``, ``role:<role>`` or ``*``), what (``actions``: the
permissions of :mod:`flightdeck.governance.access` — ``query``, ``search``, ``documents:read``… — or ``*``)
and its ``effect``:

- ``deny`` takes the actions away, whatever the role grants;
- ``allow`` with ``where`` limits what the actions may read to the documents matching that metadata filter:
  it is pushed into every search the principal makes, and nothing else is ever returned to it. An allow
  statement never grants more than the role does: roles grant, policies only narrow.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PolicyStatement"]

_PRINCIPAL = re.compile(r"^(\*|key:[0-9a-f]{12}|role:(viewer|editor|approver|admin))$")
_ACTIONS = {"*", "query", "search", "metrics", "documents:read", "documents:write", "releases:read",
            "releases:approve", "releases:promote", "audit:read", "keys:manage", "config"}


class PolicyStatement(BaseModel):
    """One statement of ``governance.policies``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    effect: Literal["allow", "deny"]
    principals: list[str] = Field(min_length=1, description="key:<key id>, role:<role> or *")
    actions: list[str] = Field(min_length=1, description="query, search, documents:read, … or *")
    where: dict[str, Any] | None = Field(None, description="allow only: the metadata filter the principal's "
                                                           "searches are limited to")

    @field_validator("principals")
    @classmethod
    def _principals(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _PRINCIPAL.match(p)]
        if bad:
            raise ValueError(f"principals: {bad} — use key:<the 12-character key id of `flightdeck keys list`>, "
                             "role:viewer|editor|approver|admin, or *")
        return value

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in _ACTIONS]
        if bad:
            raise ValueError(f"actions: {bad} — use {', '.join(sorted(_ACTIONS))}")
        return value

    def model_post_init(self, context: Any) -> None:
        if self.effect == "deny" and self.where is not None:
            raise ValueError("a deny statement takes no `where`: it takes the actions away entirely")
