"""Where the OpenAI Responses and Assistants shapes keep what a key creates: the workspace's ``openai_objects``
(responses, conversations, assistants, threads, runs, paused agent runs) and ``openai_items`` (a conversation's
items, a thread's messages), migration 0011.

Every read and write names its owner, the API key that made the object: a key that asks for another key's object
is told that there is none (404), the same answer as for an id that never existed. An object's ``body`` is the
JSON the API returns, plus what the server keeps inside under ``_`` (the input a response saw, a paused run's
state), which :func:`public` leaves out.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from flightdeck.errors import FlightdeckError
from flightdeck.workspace.schema import openai_items, openai_objects

__all__ = ["ObjectStore", "ObjectNotFound", "new_id", "public"]

KINDS = ("response", "conversation", "assistant", "thread", "run", "paused")
NAMES = {"response": "response", "conversation": "conversation", "assistant": "assistant", "thread": "thread",
         "run": "run", "paused": "paused call"}


class ObjectNotFound(FlightdeckError, KeyError):
    """No such object, or none of the caller's (the server answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such object"


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: ``resp_<48 hex>``, ``msg_<…>``."""
    return f"{prefix}_{secrets.token_hex(24)}"


def public(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without what the server keeps inside (the keys that start with ``_``)."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


class ObjectStore:
    """The two tables through ``engine`` (the workspace's, migrated to revision 0011 or later)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def put(self, kind: str, object_id: str, owner: str, body: dict[str, Any], *, parent: str | None = None) -> None:
        assert kind in KINDS, kind
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(insert(openai_objects).values(id=object_id, kind=kind, owner=owner, parent=parent,
                                                       created_at=now, updated_at=now, body=body))

    def get(self, kind: str, object_id: str, owner: str) -> dict[str, Any]:
        """The body of ``object_id`` of ``owner``; :class:`ObjectNotFound` when it is not there or not theirs."""
        c = openai_objects.c
        query = select(c.body).where(c.id == object_id, c.kind == kind, c.owner == owner)
        with self.engine.connect() as conn:
            body = conn.execute(query).scalar_one_or_none()
        if body is None:
            raise ObjectNotFound(f"no {NAMES[kind]} {object_id!r} made with this key")
        return dict(body)

    def find(self, kind: str, object_id: str, owner: str) -> dict[str, Any] | None:
        try:
            return self.get(kind, object_id, owner)
        except ObjectNotFound:
            return None

    def replace(self, kind: str, object_id: str, owner: str, body: dict[str, Any]) -> None:
        c = openai_objects.c
        with self.engine.begin() as conn:
            done = conn.execute(update(openai_objects).where(c.id == object_id, c.kind == kind, c.owner == owner)
                                .values(body=body, updated_at=self.clock())).rowcount
        if not done:
            raise ObjectNotFound(f"no {NAMES[kind]} {object_id!r} made with this key")

    def take(self, kind: str, object_id: str, owner: str) -> dict[str, Any] | None:
        """Read and delete ``object_id`` in one transaction (a paused run is resumed once); None when not there."""
        c = openai_objects.c
        where = (c.id == object_id, c.kind == kind, c.owner == owner)
        with self.engine.begin() as conn:
            body = conn.execute(select(c.body).where(*where)).scalar_one_or_none()
            if body is None or not conn.execute(delete(openai_objects).where(*where)).rowcount:
                return None
        return dict(body)

    def remove(self, kind: str, object_id: str, owner: str) -> None:
        """Delete ``object_id`` and its items."""
        c = openai_objects.c
        with self.engine.begin() as conn:
            done = conn.execute(delete(openai_objects).where(c.id == object_id, c.kind == kind,
                                                             c.owner == owner)).rowcount
            if not done:
                raise ObjectNotFound(f"no {NAMES[kind]} {object_id!r} made with this key")
            conn.execute(delete(openai_items).where(openai_items.c.container == object_id,
                                                    openai_items.c.owner == owner))

    def listing(self, kind: str, owner: str, *, parent: str | None = None, limit: int = 20,
             order: str = "desc", after: str | None = None, before: str | None = None) -> tuple[list[dict], bool]:
        """The owner's objects of ``kind`` (of ``parent``), newest first with ``order`` desc, a page of ``limit``
        after (or before) the object ``after``; and whether more follow."""
        c = openai_objects.c
        query = select(c.body, c.created_at, c.id).where(c.kind == kind, c.owner == owner)
        if parent is not None:
            query = query.where(c.parent == parent)
        rows = [(dict(b), at, i) for b, at, i in self._all(query.order_by(c.created_at, c.id))]
        if order == "desc":
            rows.reverse()
        ids = [i for _, _, i in rows]
        if after is not None:
            rows = rows[ids.index(after) + 1:] if after in ids else []
        if before is not None:
            rows = rows[:ids.index(before)] if before in ids else []
        return [b for b, _, _ in rows[:limit]], len(rows) > limit

    def _all(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())

    # items of a conversation or a thread --------------------------------------------------------------------
    def add_items(self, container: str, owner: str, items: Sequence[dict[str, Any]]) -> None:
        """Append ``items`` (each with its ``id``) to ``container``, in one transaction."""
        if not items:
            return
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(insert(openai_items), [{"id": item["id"], "container": container, "owner": owner,
                                                 "created_at": now, "body": item} for item in items])

    def replace_item(self, container: str, owner: str, item: dict[str, Any]) -> None:
        c = openai_items.c
        with self.engine.begin() as conn:
            conn.execute(update(openai_items).where(c.id == item["id"], c.container == container, c.owner == owner)
                         .values(body=item))

    def items(self, container: str, owner: str, *, limit: int | None = None, order: str = "asc",
              after: str | None = None, before: str | None = None) -> tuple[list[dict[str, Any]], bool]:
        """The items of ``container`` (the caller checked that it is the owner's), in ``order``; a page of ``limit``
        after (or before) the item ``after`` (``before``), and whether more follow."""
        c = openai_items.c
        query = select(c.body, c.id).where(c.container == container, c.owner == owner).order_by(c.seq)
        rows = [(dict(b), i) for b, i in self._all(query)]
        if order == "desc":
            rows.reverse()
        ids = [i for _, i in rows]
        if after is not None:
            if after not in ids:
                raise ObjectNotFound(f"after: no item {after!r} in {container}")
            rows = rows[ids.index(after) + 1:]
        if before is not None:
            if before not in ids:
                raise ObjectNotFound(f"before: no item {before!r} in {container}")
            rows = rows[:ids.index(before)]
        page = rows if limit is None else rows[:limit]
        return [b for b, _ in page], limit is not None and len(rows) > limit
