"""Traces (checklist 7.1, 7.4): what happened for each answer, stored in the workspace.

A trace holds the question, what was retrieved with (the question, or a conversation's condensed follow-up),
the retrieved chunk ids and scores, the prompt template and its hash, the answer and its citations, flags
raised on instruction-like sources, tokens, timings, the index version, the generator and the key that
asked. ``GET /v1/traces/{id}`` and conversations read them back; lineage (an answer back to its files)
starts from one.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import insert, select

from flightdeck.errors import FlightdeckError
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import traces

__all__ = ["Trace", "TraceStore", "TraceNotFound", "new_trace_id"]


class TraceNotFound(FlightdeckError, KeyError):
    """No trace with this id (or none the caller may read)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such trace"


def new_trace_id() -> str:
    return "tr_" + secrets.token_hex(12)


@dataclass
class Trace:
    id: str
    operation: str
    question: str
    created_at: float = field(default_factory=time.time)
    key_id: str | None = None
    request_id: str | None = None
    conversation_id: str | None = None
    search_query: str | None = None
    answer: str | None = None
    found: bool | None = None
    index_version: str | None = None
    generator: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TraceStore:
    """The ``traces`` table of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def record(self, trace: Trace) -> str:
        row = trace.to_dict()
        row["found"] = None if trace.found is None else int(trace.found)
        with self.workspace.engine.begin() as conn:
            conn.execute(insert(traces).values(**row))
        return trace.id

    def get(self, trace_id: str, *, key_id: str | None = None) -> Trace:
        """The trace ``trace_id``; with ``key_id``, only if that key made it (a caller reads its own)."""
        query = select(traces).where(traces.c.id == trace_id)
        if key_id is not None:
            query = query.where(traces.c.key_id == key_id)
        with self.workspace.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise TraceNotFound(f"no trace {trace_id!r}" + (" made with this key" if key_id else ""))
        return _trace(row)

    def conversation(self, conversation_id: str, *, key_id: str | None = None, limit: int = 20) -> list[Trace]:
        """The last ``limit`` turns of a conversation, oldest first (only the key's own with ``key_id``)."""
        query = select(traces).where(traces.c.conversation_id == conversation_id)
        if key_id is not None:
            query = query.where(traces.c.key_id == key_id)
        query = query.order_by(traces.c.created_at.desc()).limit(limit)
        with self.workspace.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_trace(r) for r in reversed(rows)]

    def recent(self, *, limit: int = 50, key_id: str | None = None) -> list[Trace]:
        query = select(traces)
        if key_id is not None:
            query = query.where(traces.c.key_id == key_id)
        with self.workspace.engine.connect() as conn:
            rows = conn.execute(query.order_by(traces.c.created_at.desc()).limit(limit)).mappings().all()
        return [_trace(r) for r in rows]


def _trace(row: Any) -> Trace:
    values = dict(row)
    values["found"] = None if values["found"] is None else bool(values["found"])
    return Trace(**values)
