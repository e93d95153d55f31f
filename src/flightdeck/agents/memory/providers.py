"""The memories of ``agents.memory`` (checklist 6.2) as providers: each one's settings (light: pydantic only) and the
function that builds it from them and the project's parts (the workspace, the embedder), as the registry calls it.

```yaml
agents:
  memory:
    - builtin                                  # the default: the workspace's own tables, facts by embedding
    # - {provider: redis, url: "redis://127.0.0.1:6379/0", ttl: 30d}
    # - {provider: vector_store}               # facts in a FAISS index per user; conversations in the workspace
    # - {provider: langchain, history: "myapp.memory:history_for"}
    # - {provider: llamaindex, chat_store: "myapp.memory:chat_store"}
```

The first entry keeps the conversations (``flightdeck agent --conversation``, the server's agent runs) and the
facts the agent's ``remember``/``recall`` tools keep. Memories without facts of their own (LangChain's and
LlamaIndex's chat histories) keep them in the workspace.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.core.durations import duration_seconds

__all__ = ["BuiltinMemoryConfig", "RedisMemoryConfig", "VectorMemoryConfig", "LangchainMemoryConfig",
           "LlamaindexMemoryConfig", "builtin_memory", "redis_memory", "vector_memory", "langchain_memory",
           "llamaindex_memory"]


def _ttl(value: Any, what: str) -> float | None:
    if value is None:
        return None
    seconds = duration_seconds(value if isinstance(value, str) else str(value), bare_seconds=True)
    if not seconds:
        raise ValueError(f"{what} {value!r}: a duration such as 12h, 30d (or null: kept until cleared)")
    return seconds


class BuiltinMemoryConfig(BaseModel):
    """``builtin``: conversations and facts in the workspace's tables."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    recall_by: str = Field("similarity", pattern="^(similarity|keyword)$",
                           description="similarity (the project's embedder) or keyword overlap")


class RedisMemoryConfig(BaseModel):
    """``redis``: conversations and facts in a Redis server, per user, with expiry."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
    url: str = Field("redis://127.0.0.1:6379/0", repr=False, description="the server (redis:// or rediss://)")
    prefix: str = Field("flightdeck:memory:", description="the keys' prefix (one per project, say)")
    ttl: str | None = Field("30d", description="a conversation is forgotten this long after its last message")
    fact_ttl: str | None = Field(None, description="a fact is forgotten this long after it was kept (null: never)")

    @field_validator("ttl", "fact_ttl")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        _ttl(value, "ttl")
        return value


class VectorMemoryConfig(BaseModel):
    """``vector_store``: facts embedded in a FAISS index per user, recalled by similarity; conversations in the
    workspace."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LangchainMemoryConfig(BaseModel):
    """``langchain``: conversations in LangChain chat message histories."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    history: str | None = Field(None, description='"package.module:factory": (scope, conversation) -> a LangChain '
                                                  "BaseChatMessageHistory (SQLChatMessageHistory…); default: "
                                                  "langchain-core's in-memory history, kept as long as the process")


class LlamaindexMemoryConfig(BaseModel):
    """``llamaindex``: conversations in a LlamaIndex chat store."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    chat_store: str | None = Field(None, description='"package.module:attr": a LlamaIndex chat store, or a function '
                                                     "that makes one; default: SimpleChatStore in this process")


def _embed(embedder: Any) -> Any:
    return embedder.embed_documents if embedder is not None else None


def builtin_memory(config: BuiltinMemoryConfig, *, workspace: Any, embedder: Any = None) -> Any:
    from flightdeck.agents.memory.builtin import BuiltinMemory

    embed = _embed(embedder) if config.recall_by == "similarity" else None
    return BuiltinMemory(workspace.engine, embed=embed)


def redis_memory(config: RedisMemoryConfig, *, workspace: Any = None, embedder: Any = None) -> Any:
    from flightdeck.agents.memory.redis import RedisMemory

    return RedisMemory(config.url, prefix=config.prefix, ttl_s=_ttl(config.ttl, "ttl"),
                       fact_ttl_s=_ttl(config.fact_ttl, "fact_ttl"), embed=_embed(embedder))


def vector_memory(config: VectorMemoryConfig, *, workspace: Any, embedder: Any) -> Any:
    from flightdeck.agents.memory.builtin import BuiltinMemory
    from flightdeck.agents.memory.vector import VectorMemory

    return VectorMemory(BuiltinMemory(workspace.engine), _embed(embedder), path=workspace.root / "agent-memory")


def _imported(path: str) -> Any:
    """The object at ``path``; a function there is called (with no argument) to make it."""
    from flightdeck.agents.tools.custom import import_object

    found = import_object(path)
    return found() if inspect.isfunction(found) else found


def langchain_memory(config: LangchainMemoryConfig, *, workspace: Any, embedder: Any = None) -> Any:
    from flightdeck.agents.memory.builtin import BuiltinMemory
    from flightdeck.agents.memory.langchain import LangChainMemory
    from flightdeck.agents.tools.custom import import_object

    history_for = import_object(config.history) if config.history else None
    return LangChainMemory(history_for, facts=BuiltinMemory(workspace.engine, embed=_embed(embedder)))


def llamaindex_memory(config: LlamaindexMemoryConfig, *, workspace: Any, embedder: Any = None) -> Any:
    from flightdeck.agents.memory.builtin import BuiltinMemory
    from flightdeck.agents.memory.llamaindex import LlamaIndexMemory

    store = _imported(config.chat_store) if config.chat_store else None
    return LlamaIndexMemory(store, facts=BuiltinMemory(workspace.engine, embed=_embed(embedder)))
