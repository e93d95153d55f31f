"""The built-in agent memory (checklist 6.2): conversations and facts in the workspace's metadata DB, the tables
``agent_messages`` and ``agent_facts`` (migration 0010), through the engine it is given.

Each row is kept under the sha256 of its scope, a fixed-width key that every query binds as a parameter: a scope
id is never part of SQL text. Messages are ordered by their autoincremented row id, so appends from several
threads or processes keep the order in which they were committed, each in its own transaction. A fact's vector,
when the memory has an ``embed`` callable, is stored as float32 bytes beside it; recall then ranks the scope's
facts by cosine similarity in numpy (a user's facts are tens to thousands, not millions), else by keyword
overlap.

::

    memory = BuiltinMemory(workspace.engine, embed=embedder.embed_documents)
    memory.append("user-42", "chat-1", "user", "Which plan am I on?")
    loop.run("And its price?", history=memory.history("user-42", "chat-1", max_tokens=2000))
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, func, insert, select

from flightdeck.agents.memory.base import (
    AgentMemoryError,
    Embed,
    Fact,
    MemoryBase,
    Message,
    Summarize,
)
from flightdeck.workspace.schema import agent_facts, agent_messages

__all__ = ["BuiltinMemory"]


def _key(scope: str) -> str:
    return hashlib.sha256(scope.encode("utf-8")).hexdigest()


class BuiltinMemory(MemoryBase):
    """Agent memory in the workspace DB (``engine``: the workspace's, migrated to revision 0010 or later)."""

    def __init__(self, engine: Engine, *, embed: Embed | None = None, summarize: Summarize | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(embed=embed, summarize=summarize, clock=clock)
        self.engine = engine

    def _append(self, scope: str, conversation: str, message: Message) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(agent_messages).values(scope=_key(scope), conversation=conversation,
                                                       role=message.role, content=message.content, at=message.at))

    def _messages(self, scope: str, conversation: str) -> list[Message]:
        query = (select(agent_messages.c.role, agent_messages.c.content, agent_messages.c.at)
                 .where(agent_messages.c.scope == _key(scope), agent_messages.c.conversation == conversation)
                 .order_by(agent_messages.c.id))
        with self.engine.connect() as conn:
            return [Message(role, content, at) for role, content, at in conn.execute(query)]

    def _conversations(self, scope: str) -> list[str]:
        """Newest activity first."""
        last = func.max(agent_messages.c.id)
        query = (select(agent_messages.c.conversation).where(agent_messages.c.scope == _key(scope))
                 .group_by(agent_messages.c.conversation).order_by(last.desc()))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def _clear(self, scope: str, conversation: str | None) -> None:
        statement = delete(agent_messages).where(agent_messages.c.scope == _key(scope))
        if conversation is not None:
            statement = statement.where(agent_messages.c.conversation == conversation)
        with self.engine.begin() as conn:
            conn.execute(statement)

    def _remember(self, scope: str, fact: Fact, vector: np.ndarray | None) -> None:
        row: dict[str, Any] = {"id": fact.id, "scope": _key(scope), "text": fact.text, "metadata": fact.metadata,
                               "at": fact.at, "vector": None, "dimension": None}
        if vector is not None:
            row.update(vector=np.asarray(vector, dtype="<f4").tobytes(), dimension=int(vector.shape[0]))
        with self.engine.begin() as conn:
            conn.execute(insert(agent_facts).values(**row))

    def _facts(self, scope: str, with_vectors: bool) -> tuple[list[Fact], np.ndarray | None]:
        c = agent_facts.c
        query = select(c.id, c.text, c.metadata, c.at, c.vector, c.dimension).where(c.scope == _key(scope))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.at, c.id)).all()
        facts = [Fact(r.id, r.text, dict(r.metadata or {}), r.at) for r in rows]
        if not with_vectors:
            return facts, None
        missing = [r.id for r in rows if r.vector is None]
        if missing:
            raise AgentMemoryError(f"{len(missing)} facts of this scope were kept without an embedder (e.g. "
                                   f"{missing[0]}): forget(scope) and remember them again with this embedder")
        dims = {r.dimension for r in rows}
        if len(dims) > 1:
            raise AgentMemoryError(f"the facts of this scope were embedded with several dimensions ({sorted(dims)}):"
                                   " forget(scope) and remember them again with one embedder")
        matrix = (np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows]) if rows
                  else np.zeros((0, 0), dtype=np.float32))
        return facts, matrix.astype(np.float32, copy=False)

    def _forget(self, scope: str, fact_id: str | None) -> int:
        statement = delete(agent_facts).where(agent_facts.c.scope == _key(scope))
        if fact_id is not None:
            statement = statement.where(agent_facts.c.id == fact_id)
        with self.engine.begin() as conn:
            return int(conn.execute(statement).rowcount or 0)
