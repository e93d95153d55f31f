"""The built-in memory (checklist 6.2) in a real workspace DB (SQLite, migrated to 0010): the memory contract with
keyword recall and with embedding recall, and what only the built-in one does: rows under the scope's hash, vectors
as float32 blobs, memory kept across a reopen, and facts from another embedder refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from flightdeck.agents.memory.base import AgentMemoryError
from flightdeck.agents.memory.builtin import BuiltinMemory
from flightdeck.testing import FakeEmbedder
from flightdeck.testing.memory_contract import MemoryContract
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import agent_facts, agent_messages

pytestmark = pytest.mark.unit


@pytest.fixture
def workspace(tmp_path: Path):
    ws = Workspace(tmp_path / ".flightdeck")
    yield ws
    ws.close()


class TestBuiltinMemoryByKeyword(MemoryContract):
    @pytest.fixture
    def make_memory(self, workspace: Workspace):
        return lambda summarize=None: BuiltinMemory(workspace.engine, summarize=summarize)


class TestBuiltinMemoryBySimilarity(MemoryContract):
    @pytest.fixture
    def make_memory(self, workspace: Workspace):
        embedder = FakeEmbedder(dimension=256)
        return lambda summarize=None: BuiltinMemory(workspace.engine, embed=embedder.embed_documents,
                                                    summarize=summarize)


def test_rows_are_kept_under_the_scope_s_hash_and_vectors_as_float32(workspace: Workspace) -> None:
    embedder = FakeEmbedder(dimension=32)
    memory = BuiltinMemory(workspace.engine, embed=embedder.embed_documents)
    assert memory.recall_by == "similarity"
    memory.append("user:42*", "c1", "user", "hello")
    fact = memory.remember("user:42*", "Drinks oat milk", {"source": "chat"})
    key = hashlib.sha256(b"user:42*").hexdigest()
    with workspace.engine.connect() as conn:
        assert conn.execute(select(agent_messages.c.scope)).scalars().all() == [key]
        row = conn.execute(select(agent_facts)).one()
    assert (row.id, row.scope, row.text, row.metadata, row.dimension) == (fact.id, key, "Drinks oat milk",
                                                                         {"source": "chat"}, 32)
    vector = np.frombuffer(row.vector, dtype="<f4")
    assert vector.shape == (32,)
    np.testing.assert_allclose(vector, embedder.embed_query("Drinks oat milk"), rtol=1e-6)


def test_memory_is_kept_across_a_reopen(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / ".flightdeck")
    BuiltinMemory(ws.engine).append("alice", "c1", "user", "remember me")
    fact = BuiltinMemory(ws.engine).remember("alice", "Lives on a boat")
    ws.close()
    again = Workspace(tmp_path / ".flightdeck")
    try:
        memory = BuiltinMemory(again.engine)
        assert [m.content for m in memory.history("alice", "c1")] == ["remember me"]
        assert memory.recall("alice", "boat")[0].id == fact.id
    finally:
        again.close()


def test_facts_of_another_embedder_are_refused_with_what_to_do(workspace: Workspace) -> None:
    BuiltinMemory(workspace.engine, embed=FakeEmbedder(dimension=16).embed_documents).remember("a", "Plays chess")
    other = BuiltinMemory(workspace.engine, embed=FakeEmbedder(dimension=24).embed_documents)
    with pytest.raises(AgentMemoryError, match="16 dimensions and the embedder gives 24.*forget"):
        other.recall("a", "chess")
    BuiltinMemory(workspace.engine).remember("b", "Plays go")
    with pytest.raises(AgentMemoryError, match="without an embedder"):
        other.recall("b", "go")
    assert BuiltinMemory(workspace.engine).recall("a", "chess")[0].text == "Plays chess"  # keyword recall reads all


def test_a_bad_embedder_is_named(workspace: Workspace) -> None:
    memory = BuiltinMemory(workspace.engine, embed=lambda texts: np.zeros((len(texts) + 1, 4)))
    with pytest.raises(AgentMemoryError, match=r"shape \(2, 4\) for 1 texts"):
        memory.remember("a", "x")
    with pytest.raises(AgentMemoryError, match="embed must be a callable"):
        BuiltinMemory(workspace.engine, embed="not callable")  # type: ignore[arg-type]


def test_migration_0010_creates_the_tables_as_schema_py_defines_them(workspace: Workspace) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with workspace.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), agent_messages.metadata)
    ours = [d for d in diff if any(name in repr(d) for name in ("agent_messages", "agent_facts"))]
    assert ours == []
