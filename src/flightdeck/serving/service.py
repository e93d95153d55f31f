"""The operations every transport serves, with authentication and authorisation done once, here."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from flightdeck.errors import FlightdeckError
from flightdeck.governance.access import Permission, Role, allowed
from flightdeck.governance.api_keys import AuthenticationError, KeyStore
from flightdeck.project import Project
from flightdeck.workspace import CURRENT_INDEX

__all__ = ["Service", "Principal", "PermissionDenied", "LOCAL"]


class PermissionDenied(FlightdeckError):
    """A valid key whose role lacks the permission (the server answers 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's id and role (or the local user of a server run with ``--no-auth``)."""

    key_id: str
    role: Role


# The caller of a server started with --no-auth: local use only (the CLI refuses it on other addresses).
LOCAL = Principal("local", Role.ADMIN)


class Service:
    """Search and answers over one project, for authenticated callers.

    ``keys`` None turns authentication off (``flightdeck serve --no-auth``): every caller is :data:`LOCAL`.
    Searches run one at a time: the searcher loads its model and index lazily and is not thread-safe.
    """

    def __init__(self, project: Project, keys: KeyStore | None) -> None:
        self.project = project
        self.keys = keys
        self._lock = threading.Lock()

    # who may do what ------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a request whose ``Authorization`` header is ``authorization`` (``Bearer <key>``)."""
        if self.keys is None:
            return LOCAL
        if not authorization:
            raise AuthenticationError("no API key: send `Authorization: Bearer <key>`")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("the Authorization header must read `Bearer <key>`")
        record = self.keys.verify(token.strip())
        return Principal(record.id, record.role)

    @staticmethod
    def authorize(principal: Principal, permission: Permission) -> None:
        if not allowed(principal.role, permission):
            raise PermissionDenied(f"a {principal.role.value} key may not {permission.value}; "
                                   "ask an admin for a key with a role that may")

    # what they may do -----------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """Whether there is an index to answer from, and which."""
        version = self.project.workspace.get_state(CURRENT_INDEX)
        return {"ready": version is not None, "index_version": version}

    def warm_up(self) -> str | None:
        """Load the embedding model and open the index before the first caller waits for it (a search nobody
        sees); returns the index version warmed, or None when there is no index yet."""
        version = self.ready()["index_version"]
        if version is not None:
            with self._lock:
                self.project.search("warm up", k=1)
        return version

    def search(self, principal: Principal, query: str, k: int | None = None, mode: str | None = None,
               where: dict[str, Any] | None = None) -> dict[str, Any]:
        self.authorize(principal, Permission.SEARCH)
        with self._lock:
            result = self.project.search(query, k=k, mode=mode, where=where)
        return result.to_dict()

    def query(self, principal: Principal, question: str) -> dict[str, Any]:
        """A grounded, cited answer to ``question``."""
        self.authorize(principal, Permission.QUERY)
        t0 = time.perf_counter()
        with self._lock:
            answer = self.project.ask(question)
        out = answer.to_dict()
        out.setdefault("timings_ms", {})["server_total"] = round((time.perf_counter() - t0) * 1000, 3)
        return out
