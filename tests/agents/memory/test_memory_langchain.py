"""LangChain memory (checklist 6.2): the memory contract through LangChain chat histories (langchain-core's
in-memory one, langchain-community's SQLChatMessageHistory on SQLite and RedisChatMessageHistory on the Redis
server), and flightdeck's memory used by a LangChain app as a BaseChatMessageHistory."""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck.agents.memory.base import AgentMemoryError, session_key
from flightdeck.agents.memory.builtin import BuiltinMemory
from flightdeck.testing import FakeEmbedder
from flightdeck.testing.memory_contract import MemoryContract
from flightdeck.workspace import Workspace
from needs import need, needs

pytestmark = needs("langchain", "langchain_core")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace(tmp_path / ".flightdeck")
    yield ws
    ws.close()


def _facts(workspace: Workspace) -> BuiltinMemory:
    return BuiltinMemory(workspace.engine, embed=FakeEmbedder(dimension=256).embed_documents)


@pytest.mark.unit
class TestLangChainMemoryInMemory(MemoryContract):
    @pytest.fixture
    def make_memory(self, workspace: Workspace):
        from flightdeck.agents.memory.langchain import LangChainMemory

        return lambda summarize=None: LangChainMemory(facts=BuiltinMemory(workspace.engine), summarize=summarize)


@pytest.mark.unit
class TestLangChainMemoryOnSql(MemoryContract):
    """langchain-community's SQLChatMessageHistory, one table in a SQLite file, keyed by session_key."""

    @pytest.fixture
    def make_memory(self, workspace: Workspace, tmp_path: Path):
        need("ragas", "langchain_community")
        from langchain_community.chat_message_histories import SQLChatMessageHistory
        from sqlalchemy import create_engine

        from flightdeck.agents.memory.langchain import LangChainMemory

        engine = create_engine(f"sqlite:///{tmp_path / 'chat.db'}", connect_args={"timeout": 30})

        def history_for(scope: str, conversation: str) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return SQLChatMessageHistory(session_id=session_key(scope, conversation), connection=engine)

        yield lambda summarize=None: LangChainMemory(history_for, facts=_facts(workspace), summarize=summarize)
        engine.dispose()


@pytest.mark.integration
class TestLangChainMemoryOnRedis(MemoryContract):
    """langchain-community's RedisChatMessageHistory on the Redis server, under a key prefix of the test's own."""

    @pytest.fixture
    def make_memory(self, workspace: Workspace):
        need("ragas", "langchain_community")
        need("redis", "redis")
        import redis
        from langchain_community.chat_message_histories import RedisChatMessageHistory

        from flightdeck.agents.memory.langchain import LangChainMemory

        prefix = f"fdtest:lc:{uuid.uuid4().hex[:12]}:"
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")

        def history_for(scope: str, conversation: str) -> Any:
            return RedisChatMessageHistory(session_key(scope, conversation), url="redis://127.0.0.1:6379/0",
                                           key_prefix=prefix, ttl=600)

        yield lambda summarize=None: LangChainMemory(history_for, facts=_facts(workspace), summarize=summarize)
        keys = list(client.scan_iter(match=re.sub(r"([*?\[\]])", r"\\\1", prefix) + "*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.unit
@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")  # still how a chain takes a history
def test_a_langchain_app_reads_and_writes_flightdeck_memory(workspace: Workspace) -> None:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_core.runnables.history import RunnableWithMessageHistory

    from flightdeck.agents.memory.langchain import as_langchain_history

    memory = BuiltinMemory(workspace.engine)
    memory.append("alice", "c1", "user", "My name is Alice.")
    memory.append("alice", "c1", "assistant", "Hello Alice!")
    history = as_langchain_history(memory, "alice", "c1")
    assert isinstance(history, BaseChatMessageHistory)
    assert [(type(m), m.content) for m in history.messages] == [(HumanMessage, "My name is Alice."),
                                                                (AIMessage, "Hello Alice!")]

    def answer(inputs: dict[str, Any]) -> AIMessage:  # a chain step that reads the history it is given
        said = [m.content for m in inputs["history"]]
        return AIMessage(content=f"I have {len(said)} earlier messages; the first: {said[0]}")

    chain = RunnableWithMessageHistory(RunnableLambda(answer), lambda session_id: as_langchain_history(
        memory, "alice", session_id), input_messages_key="question", history_messages_key="history")
    reply = chain.invoke({"question": "What is my name?"}, config={"configurable": {"session_id": "c1"}})
    assert reply.content == "I have 2 earlier messages; the first: My name is Alice."
    assert [(m.role, m.content) for m in memory.history("alice", "c1")][2:] == [
        ("user", "What is my name?"), ("assistant", reply.content)]

    history.add_messages([SystemMessage(content="be terse"), AIMessage(content="", tool_calls=[
        {"name": "search", "args": {"q": "x"}, "id": "t1"}]), ToolMessage(content="42", tool_call_id="t1"),
        AIMessage(content=[{"type": "text", "text": "The answer is 42."}])])
    assert memory.history("alice", "c1")[-1].content == "The answer is 42."  # words kept, tool traffic not
    assert len(memory.history("alice", "c1")) == 5
    history.clear()
    assert memory.history("alice", "c1") == [] and memory.conversations("alice") == []
    assert as_langchain_history(memory, "bob", "c1").messages == []


@pytest.mark.unit
def test_what_langchain_wrote_is_read_and_bad_settings_are_named(workspace: Workspace) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from flightdeck.agents.memory.langchain import LangChainMemory, as_langchain_history

    memory = LangChainMemory()
    assert memory.recall_by == "none"
    with pytest.raises(AgentMemoryError, match="keeps no long-term facts: give it facts="):
        memory.remember("alice", "x")
    memory.history_for("alice", "c9").add_messages([SystemMessage(content="sys"), HumanMessage(content="hi"),
                                                    AIMessage(content="hello")])
    assert [(m.role, m.content) for m in memory.history("alice", "c9")] == [("user", "hi"), ("assistant", "hello")]
    with pytest.raises(AgentMemoryError, match="not a LangChain BaseChatMessageHistory"):
        LangChainMemory(lambda scope, conversation: []).append("a", "c", "user", "x")
    with pytest.raises(AgentMemoryError, match="facts must be a Memory"):
        LangChainMemory(facts="nope")  # type: ignore[arg-type]
    with pytest.raises(AgentMemoryError, match="scope is empty"):
        as_langchain_history(memory, "", "c1")
