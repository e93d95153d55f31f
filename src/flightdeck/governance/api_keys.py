"""API keys (checklist 8.3, API authentication): created with a role, shown once, stored only as a hash.

A key reads ``fdk_<id>_<secret>``: ``id`` (12 hex characters) is public, is how ``keys list`` and
``keys revoke`` name the key, and finds its row; ``secret`` is 32 random bytes (URL-safe base64). The
workspace keeps the SHA-256 of the whole key and never the key. A plain hash is enough here, unlike for
passwords: a key holds 256 random bits, so no dictionary or brute force can find it from its hash (GitHub's
and Stripe's tokens are stored the same way). A key is checked in constant time, and its expiry and
revocation are read on every check, so a revoked key fails on its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from flightdeck.core.durations import duration_seconds
from flightdeck.errors import FlightdeckError
from flightdeck.governance.access import Role, parse_role
from flightdeck.workspace import Workspace
from flightdeck.workspace.audit import AuditLog, local_actor
from flightdeck.workspace.ids import resolve_id
from flightdeck.workspace.schema import api_keys

__all__ = ["ApiKey", "IssuedKey", "KeyStore", "AuthenticationError", "parse_duration", "KEY_PREFIX"]

KEY_PREFIX = "fdk_"
_KEY = re.compile(r"^fdk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class AuthenticationError(FlightdeckError):
    """A key that is missing, malformed, unknown, wrong, expired or revoked (the server answers 401).

    The message says which of these, except that an unknown id and a wrong secret read the same, so a caller
    cannot learn which ids exist."""


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``30d``, ``12h``, ``90m``, ``2w`` or ``45s``; a ValueError names the forms."""
    seconds = duration_seconds(text)
    if not seconds:
        raise ValueError(f"expected a duration such as 30d, 12h, 90m or 2w, got {text!r}")
    return seconds


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ApiKey:
    """What the workspace knows of a key: everything but the key."""

    id: str
    name: str | None
    role: Role
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def status(self, now: float) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        out = asdict(self)
        out["role"] = self.role.value
        for key in ("created_at", "expires_at", "revoked_at"):
            out[key] = _iso(out[key])
        out["status"] = self.status(time.time() if now is None else now)
        return out


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: ``key`` is shown this once and is not stored."""

    key: str
    record: ApiKey

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        return {"key": self.key, **self.record.to_dict(now)}


class KeyStore:
    """The API keys of one workspace. ``clock`` gives the time (seconds since the epoch; tests move it). With
    ``audit``, creating and revoking a key are entries of the audit log, committed with the change."""

    def __init__(self, ws: Workspace, clock: Callable[[], float] = time.time, *, audit: AuditLog | None = None) -> None:
        self.ws = ws
        self.clock = clock
        self.audit = audit

    def create(self, role: Role | str, name: str | None = None, expires_in: float | None = None, *,
               actor: str | None = None) -> IssuedKey:
        """A new key with ``role``, valid for ``expires_in`` seconds (None: until revoked); ``actor`` is who creates
        it (default: the OS user)."""
        role = role if isinstance(role, Role) else parse_role(role)
        if expires_in is not None and expires_in <= 0:
            raise ValueError(f"expires_in must be positive, got {expires_in}")
        if name is not None and (len(name) > 200 or not name.strip()):
            raise ValueError("a key's name is 1 to 200 characters")
        now = self.clock()
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, name, role, now, None if expires_in is None else now + expires_in, None)
        with self._transaction() as conn:
            conn.execute(insert(api_keys).values(id=key_id, name=name, role=role.value, key_hash=_hash(key),
                                                 created_at=now, expires_at=record.expires_at, revoked_at=None))
            if self.audit is not None:
                self.audit.append(actor or local_actor(), "key.created", key_id, {
                    "role": role.value, "name": name, "expires_at": _iso(record.expires_at)}, conn=conn)
        return IssuedKey(key, record)

    def list(self) -> list[ApiKey]:
        """Every key, oldest first, revoked and expired ones too (with their status)."""
        with self.ws.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)).mappings().all()
        return [self._record(r) for r in rows]

    def get(self, ref: str) -> ApiKey:
        """The key whose id is ``ref`` or starts with it (a unique prefix)."""
        key_id = self._resolve(ref)
        with self.ws.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
        return self._record(row)

    def revoke(self, ref: str, *, actor: str | None = None) -> ApiKey:
        """Revoke the key ``ref`` (an id or a unique prefix); revoking a revoked key changes nothing. ``actor`` is who
        revokes it (default: the OS user)."""
        key_id = self._resolve(ref)
        with self._transaction() as conn:
            changed = conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                                   .values(revoked_at=self.clock())).rowcount
            if changed and self.audit is not None:
                role = conn.execute(select(api_keys.c.role).where(api_keys.c.id == key_id)).scalar_one()
                self.audit.append(actor or local_actor(), "key.revoked", key_id, {"role": role}, conn=conn)
        return self.get(key_id)

    def verify(self, key: str | None) -> ApiKey:
        """The record of ``key`` when it is valid now; otherwise :class:`AuthenticationError` says why."""
        if not key:
            raise AuthenticationError("no API key: send `Authorization: Bearer <key>`")
        found = _KEY.match(key.strip())
        if not found:
            raise AuthenticationError("malformed API key: a flightdeck key reads fdk_<id>_<secret>")
        with self.ws.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == found.group(1))).mappings().first()
        # Compared even when the id is unknown, so that both cases take the same time and read the same.
        expected = row["key_hash"] if row is not None else _hash(KEY_PREFIX)
        if not hmac.compare_digest(expected, _hash(key.strip())) or row is None:
            raise AuthenticationError("invalid API key")
        record = self._record(row)
        status = record.status(self.clock())
        if status != "active":
            raise AuthenticationError(f"API key {record.id} is {status}; ask an admin for a new one")
        return record

    def _transaction(self) -> Any:
        """A write transaction for a change and its audit entry (committed together)."""
        return self.ws.engine.begin() if self.audit is None else self.audit.transaction()

    def _resolve(self, ref: str) -> str:
        return resolve_id(self.ws, api_keys.c.id, ref.strip().removeprefix(KEY_PREFIX), current_state=None,
                          what="key", lister="flightdeck keys list",
                          none_yet="create one with `flightdeck keys create --role viewer`")

    @staticmethod
    def _record(row: Any) -> ApiKey:
        return ApiKey(row["id"], row["name"], Role(row["role"]), row["created_at"], row["expires_at"],
                      row["revoked_at"])
