"""``governance.audit``: how the audit log is signed, anchored, kept and what it records (checklist 8.1, audit logs).

```yaml
governance:
  audit:
    signing_key_env: FLIGHTDECK_AUDIT_KEY   # the env var holding the HMAC key (the default)
    signing_key_file: /etc/flightdeck/audit.key   # or a file holding it, outside the workspace
    anchor: /var/lib/flightdeck/audit-anchor.jsonl   # the head is appended here, outside the workspace
    anchor_every: 100                       # entries between two anchors
    retention_days: 365                     # `flightdeck audit prune` deletes older entries (null: keep forever)
    log_queries: false                      # true: every query and chat is an entry with its trace id (PII-redacted)
```

The log itself is always on: every state change (runs, documents, keys, evaluations, releases…) is an entry. The key
and the anchor are what make it tamper-evident beyond the chain; both must live outside the workspace, since whoever
can rewrite the workspace could rewrite them there too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.errors import SpecError, SpecProblem

if TYPE_CHECKING:
    from flightdeck.spec.loaded import LoadedSpec

__all__ = ["AuditSettings", "resolve_audit", "MIN_KEY_BYTES"]

#: The shortest signing key taken; a good key is 32 random bytes (``secrets.token_hex(32)``)
MIN_KEY_BYTES = 16


class AuditSettings(BaseModel):
    """``governance.audit``: the audit log's signing key, anchor, retention and whether queries are recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    signing_key_env: str | None = Field("FLIGHTDECK_AUDIT_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                        description="the environment variable holding the HMAC key that signs each "
                                                    "entry (unset or empty: entries are not signed)")
    signing_key_file: str | None = Field(None, min_length=1,
                                         description="a file holding the HMAC key (outside the workspace), read when "
                                                     "the environment variable is not set")
    anchor: str | None = Field(None, min_length=1,
                               description="a file outside the workspace that the log's head is appended to, so that "
                                           "a truncated log is detected (relative paths: from the spec's folder)")
    anchor_every: int = Field(100, ge=1, le=1_000_000, description="entries between two anchors")
    retention_days: float | None = Field(None, gt=0, description="`flightdeck audit prune` deletes entries older "
                                                                 "than this (null: keep every entry)")
    log_queries: bool = Field(False, description="record every query and chat answered by the server, with its trace "
                                                 "id and the question PII-redacted")


def _problem(loaded: LoadedSpec, field: str, message: str) -> SpecError:
    loc = ("governance", "audit", field)
    line, column = loaded.position(loc) or (None, None)
    return SpecError([SpecProblem(str(loaded.path), ".".join(loc), message, line, column)])


def _outside(loaded: LoadedSpec, field: str, path: Path, workspace: Path, what: str) -> Path:
    path = path.expanduser()
    path = (path if path.is_absolute() else loaded.base_dir / path).resolve()
    try:
        path.relative_to(workspace.resolve())
    except ValueError:
        return path
    raise _problem(loaded, field, f"{path} is inside the workspace {workspace}: the {what} must live outside it "
                                  "(whoever can rewrite the log there could rewrite it too); move it to another "
                                  "folder, disk or mount")


def resolve_audit(loaded: LoadedSpec, workspace: Path,
                  environ: Mapping[str, str] | None = None) -> tuple[bytes | None, Path | None]:
    """The signing key (from ``signing_key_env``, else ``signing_key_file``; None: unsigned) and the anchor file's
    path of ``loaded``'s ``governance.audit``; a :class:`SpecError` names the setting when either lies inside
    ``workspace``, the key file is missing, or the key is too short."""
    settings: AuditSettings = loaded.spec.governance.audit
    env = os.environ if environ is None else environ
    key: bytes | None = None
    where = ""
    if settings.signing_key_env and env.get(settings.signing_key_env):
        key, where = env[settings.signing_key_env].strip().encode(), f"${settings.signing_key_env}"
    elif settings.signing_key_file:
        path = _outside(loaded, "signing_key_file", Path(settings.signing_key_file), workspace, "signing key")
        try:
            key, where = path.read_bytes().strip(), str(path)
        except OSError as exc:
            raise _problem(loaded, "signing_key_file", f"cannot read the audit signing key {path}: "
                                                       f"{exc.strerror or exc}") from None
    if key is not None and len(key) < MIN_KEY_BYTES:
        field = "signing_key_file" if where and not where.startswith("$") else "signing_key_env"
        raise _problem(loaded, field, f"the audit signing key in {where} is {len(key)} bytes; use at least "
                                      f"{MIN_KEY_BYTES} random bytes, e.g. the output of "
                                      "`python -c \"import secrets; print(secrets.token_hex(32))\"`")
    anchor = None if settings.anchor is None else \
        _outside(loaded, "anchor", Path(settings.anchor), workspace, "audit anchor")
    return key, anchor
