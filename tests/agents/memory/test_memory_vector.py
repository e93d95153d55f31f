"""The FAISS-backed vector memory (checklist 6.2 "vector memory stores"): the memory contract with its facts in
FAISS and its conversations in the built-in memory, facts kept across a reopen from its files, and the files
written whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flightdeck.agents.memory.base import AgentMemoryError
from flightdeck.agents.memory.builtin import BuiltinMemory
from flightdeck.agents.memory.vector import VectorMemory
from flightdeck.testing import FakeEmbedder
from flightdeck.testing.memory_contract import MemoryContract
from flightdeck.workspace import Workspace
from needs import needs

pytestmark = [pytest.mark.unit, needs("faiss", "faiss")]


@pytest.fixture
def workspace(tmp_path: Path):
    ws = Workspace(tmp_path / ".flightdeck")
    yield ws
    ws.close()


class TestVectorMemoryInMemory(MemoryContract):
    @pytest.fixture
    def make_memory(self, workspace: Workspace):
        embedder = FakeEmbedder(dimension=256)
        return lambda summarize=None: VectorMemory(BuiltinMemory(workspace.engine, summarize=summarize),
                                                   embedder.embed_documents)


class TestVectorMemoryOnDisk(MemoryContract):
    @pytest.fixture
    def make_memory(self, workspace: Workspace, tmp_path: Path):
        embedder = FakeEmbedder(dimension=256)
        return lambda summarize=None: VectorMemory(BuiltinMemory(workspace.engine, summarize=summarize),
                                                   embedder.embed_documents, path=tmp_path / "facts")


def test_facts_are_kept_across_a_reopen_and_forget_removes_the_file(workspace: Workspace, tmp_path: Path) -> None:
    embedder = FakeEmbedder(dimension=64)
    first = VectorMemory(BuiltinMemory(workspace.engine), embedder.embed_documents, path=tmp_path / "facts")
    assert first.recall_by == "similarity"
    keep = first.remember("alice", "Collects vinyl records of jazz", {"since": 2019})
    gone = first.remember("alice", "Runs a marathon every spring")
    first.remember("bob", "Bob grows tomatoes")
    files = sorted(p.name for p in (tmp_path / "facts").iterdir())
    assert len(files) == 2 and all(name.endswith(".npz") for name in files)  # one whole file per scope, no temp
    assert first.forget("alice", gone.id) == 1

    again = VectorMemory(BuiltinMemory(workspace.engine), embedder.embed_documents, path=tmp_path / "facts")
    found = again.recall("alice", "jazz vinyl", k=5)
    assert [(f.id, f.metadata) for f in found] == [(keep.id, {"since": 2019})]
    assert found[0].score == pytest.approx(float(embedder.embed_query("jazz vinyl") @
                                                 embedder.embed_query("Collects vinyl records of jazz")), abs=1e-5)
    assert again.forget("alice") == 1
    assert len(list((tmp_path / "facts").iterdir())) == 1
    assert again.recall("bob", "tomatoes")[0].text == "Bob grows tomatoes"


def test_another_embedder_is_refused_and_embed_is_required(workspace: Workspace) -> None:
    memory = VectorMemory(BuiltinMemory(workspace.engine), FakeEmbedder(dimension=16).embed_documents)
    memory.remember("a", "Plays chess")
    memory.embed = FakeEmbedder(dimension=24).embed_documents
    with pytest.raises(AgentMemoryError, match="16 dimensions and the embedder gives 24"):
        memory.recall("a", "chess")
    with pytest.raises(AgentMemoryError, match="16 dimensions and the embedder gives 24"):
        memory.remember("a", "Plays go")
    with pytest.raises(AgentMemoryError, match="needs embed"):
        VectorMemory(BuiltinMemory(workspace.engine), None)  # type: ignore[arg-type]
    with pytest.raises(AgentMemoryError, match="messages must be a Memory"):
        VectorMemory(object(), FakeEmbedder().embed_documents)  # type: ignore[arg-type]


def test_recall_ranks_like_exact_cosine(workspace: Workspace) -> None:
    embedder = FakeEmbedder(dimension=32)
    memory = VectorMemory(BuiltinMemory(workspace.engine), embedder.embed_documents)
    texts = [f"note {i} about topic {i % 4} and item {i % 7}" for i in range(30)]
    for text in texts:
        memory.remember("a", text)
    query = "topic 2 item 5"
    expected = embedder.embed_documents(texts) @ embedder.embed_query(query)
    found = memory.recall("a", query, k=5)
    assert [f.score for f in found] == pytest.approx(sorted(expected, reverse=True)[:5], abs=1e-5)
    assert np.isclose(found[0].score, expected.max(), atol=1e-5)
