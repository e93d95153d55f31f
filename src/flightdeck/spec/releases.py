"""``governance.approvals``: what a release needs before it may be promoted (checklist 8.1, approval workflows).

```yaml
governance:
  approvals:
    required: 1                    # approvals from distinct people (0: none needed)
    roles: [approver, admin]       # whose approvals count
    gates_must_pass: true          # a missed evaluation gate blocks promotion, approvals or not
    self_approval: false           # may the release's author approve it
    red_team_clean: false          # needs a `flightdeck redteam` run on the release with no successful attack
    stages: [production]           # promotions to these stages need the policy; staging is free by default
```

A failed gate blocks promotion regardless of approvals unless an admin overrides it with a recorded reason; a
rejection by anyone who may approve blocks the release until that person approves it after all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ApprovalPolicy", "STAGES", "ROLES"]

#: a release's stages, in the order it moves through them (archived: no longer served, kept for rollback)
STAGES = ("candidate", "staging", "production", "archived")
ROLES = ("viewer", "editor", "approver", "admin")  # governance.access.Role (this module sits below it)


class ApprovalPolicy(BaseModel):
    """``governance.approvals``: how many approvals, from which roles, which checks, for which stages."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    required: int = Field(1, ge=0, le=20, description="approvals from distinct people a release needs")
    roles: list[str] = Field(default_factory=lambda: ["approver", "admin"],
                             description="the roles whose approvals count (approver, admin)")
    gates_must_pass: bool = Field(True, description="a release whose evaluation missed a gate (or that has no "
                                                    "evaluation while the spec sets gates) cannot be promoted, "
                                                    "unless an admin overrides with a reason")
    self_approval: bool = Field(False, description="whether the release's author may approve it")
    red_team_clean: bool = Field(False, description="require a `flightdeck redteam` run on the release in which "
                                                    "no attack succeeded")
    stages: list[Literal["staging", "production"]] = Field(
        default_factory=lambda: ["production"], description="promotions to these stages need the policy")

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if r not in ("approver", "admin")]
        if bad:
            raise ValueError(f"roles: {bad} cannot approve: only approver and admin keys hold releases:approve")
        if not value:
            raise ValueError("roles: give at least one role whose approvals count (approver, admin)")
        return value
