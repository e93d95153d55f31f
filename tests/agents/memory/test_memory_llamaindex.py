"""LlamaIndex memory (checklist 6.2): the memory contract through LlamaIndex chat stores (SimpleChatStore, and
SQLAlchemyChatStore on a SQLite file: the store under ``llama_index.core.memory.Memory``), a LlamaIndex ``Memory``
and flightdeck reading and writing the same conversation, and flightdeck's memory used by LlamaIndex's
ChatMemoryBuffer as a chat store."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightdeck.agents.memory.base import AgentMemoryError, session_key
from flightdeck.agents.memory.builtin import BuiltinMemory
from flightdeck.testing import FakeEmbedder
from flightdeck.testing.memory_contract import MemoryContract
from flightdeck.workspace import Workspace
from needs import need, needs

pytestmark = [pytest.mark.unit, needs("llamaindex", "llama_index.core")]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace(tmp_path / ".flightdeck")
    yield ws
    ws.close()


def _sql_store(path: Path):
    from llama_index.core.storage.chat_store.sql import SQLAlchemyChatStore

    return SQLAlchemyChatStore(table_name="llama_index_memory", async_database_uri=f"sqlite+aiosqlite:///{path}")


class TestLlamaIndexMemoryOnSimpleChatStore(MemoryContract):
    @pytest.fixture
    def make_memory(self, workspace: Workspace):
        from llama_index.core.storage.chat_store import SimpleChatStore

        from flightdeck.agents.memory.llamaindex import LlamaIndexMemory

        store = SimpleChatStore()
        return lambda summarize=None: LlamaIndexMemory(store, facts=BuiltinMemory(workspace.engine),
                                                       summarize=summarize)


class TestLlamaIndexMemoryOnSqlAlchemyChatStore(MemoryContract):
    @pytest.fixture
    def make_memory(self, workspace: Workspace, tmp_path: Path):
        need("llamaindex", "aiosqlite")
        from flightdeck.agents.memory.llamaindex import LlamaIndexMemory

        store = _sql_store(tmp_path / "llama.db")
        facts = BuiltinMemory(workspace.engine, embed=FakeEmbedder(dimension=256).embed_documents)
        return lambda summarize=None: LlamaIndexMemory(store, facts=facts, summarize=summarize)


def test_a_llamaindex_memory_and_flightdeck_share_a_conversation(workspace: Workspace, tmp_path: Path) -> None:
    need("llamaindex", "aiosqlite")
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.memory import Memory
    from llama_index.core.storage.chat_store.base_db import MessageStatus

    from flightdeck.agents.memory.llamaindex import LlamaIndexMemory

    ours = LlamaIndexMemory(_sql_store(tmp_path / "llama.db"))
    ours.append("alice", "c1", "user", "I live in Porto.")
    ours.append("alice", "c1", "assistant", "Noted: Porto.")
    theirs_store = _sql_store(tmp_path / "llama.db")  # another store object on the same file, as another process
    theirs = Memory.from_defaults(session_id=session_key("alice", "c1"), chat_store=theirs_store, token_limit=60,
                                  chat_history_token_ratio=0.5, token_flush_size=20)
    assert [(m.role.value, m.content) for m in theirs.get_all()] == [("user", "I live in Porto."),
                                                                     ("assistant", "Noted: Porto.")]
    for i in range(6):  # past its token limit: Memory archives its oldest messages
        theirs.put(ChatMessage(role="user", content=f"question {i} about the weather in Porto this week"))
        theirs.put(ChatMessage(role="assistant", content=f"answer {i}: sunny, around twenty degrees"))
    archived = theirs.get_all(status=MessageStatus.ARCHIVED)
    assert archived, "the LlamaIndex Memory archived nothing: the test no longer covers archived messages"
    history = ours.history("alice", "c1")
    assert len(history) == 14 and history[0].content == "I live in Porto."  # archived ones still in the history
    assert history[-1].content == "answer 5: sunny, around twenty degrees"
    assert ours.conversations("alice") == ["c1"] and ours.conversations("bob") == []
    ours.clear("alice")
    assert theirs.get_all() == []


def test_llamaindex_s_chat_memory_buffer_on_flightdeck_memory(workspace: Workspace) -> None:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.memory import ChatMemoryBuffer

    from flightdeck.agents.memory.llamaindex import as_llamaindex_chat_store

    memory = BuiltinMemory(workspace.engine)
    memory.append("alice", "c1", "user", "My favourite colour is green.")
    store = as_llamaindex_chat_store(memory, "alice")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        buffer = ChatMemoryBuffer.from_defaults(chat_store=store, chat_store_key="c1", token_limit=1000)
    assert [m.content for m in buffer.get_all()] == ["My favourite colour is green."]
    buffer.put(ChatMessage(role="assistant", content="Green it is."))
    buffer.put(ChatMessage(role="system", content="not kept"))
    assert [(m.role, m.content) for m in memory.history("alice", "c1")] == [
        ("user", "My favourite colour is green."), ("assistant", "Green it is.")]
    assert store.get_keys() == ["c1"]
    store.add_message("c1", ChatMessage(role="user", content="inserted first"), idx=0)
    assert store.delete_message("c1", 2).content == "Green it is."
    assert store.delete_last_message("c1").content == "My favourite colour is green."
    assert [m.content for m in memory.history("alice", "c1")] == ["inserted first"]
    assert store.delete_message("c1", 5) is None
    buffer.reset()
    assert memory.history("alice", "c1") == [] and store.get_keys() == []
    assert as_llamaindex_chat_store(memory, "bob").get_messages("c1") == []


def test_bad_settings_are_named() -> None:
    from flightdeck.agents.memory.llamaindex import LlamaIndexMemory, as_llamaindex_chat_store

    with pytest.raises(AgentMemoryError, match="give a LlamaIndex BaseChatStore"):
        LlamaIndexMemory(chat_store={})
    with pytest.raises(AgentMemoryError, match="keeps no long-term facts"):
        LlamaIndexMemory().recall("a", "x")
    with pytest.raises(AgentMemoryError, match="must be a flightdeck Memory"):
        as_llamaindex_chat_store(object(), "a")  # type: ignore[arg-type]
