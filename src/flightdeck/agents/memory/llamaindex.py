"""LlamaIndex memory (checklist 6.2), both ways, through LlamaIndex's chat stores
(``pip install 'flightdeck[llamaindex]'``).

- :class:`LlamaIndexMemory` keeps flightdeck's conversations in a LlamaIndex chat store, each under the key
  :func:`~flightdeck.agents.memory.base.session_key` gives ``(scope, conversation)``. The store may be a
  ``BaseChatStore`` (``SimpleChatStore``, the default, in this process; or the Redis, Postgres… chat-store
  packages) or an ``AsyncDBChatStore`` such as ``SQLAlchemyChatStore``, the store under
  ``llama_index.core.memory.Memory``: a ``Memory.from_defaults(session_id=session_key(scope, conversation),
  chat_store=...)`` then reads and writes the same conversation. An async store runs on an event loop of this
  memory's own, in one background thread, so any async driver works from sync code and from several threads.
  Messages that ``Memory`` archived (flushed from its short-term queue) are still part of the conversation here.
  Facts go to the memory given as ``facts``.
- :func:`as_llamaindex_chat_store` gives a LlamaIndex app one scope of flightdeck's memory as a ``BaseChatStore``
  whose keys are the conversation ids (for ``ChatMemoryBuffer``, chat engines and the like).

Both keep the user's and the assistant's words; system and tool messages are skipped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import quote

from flightdeck.agents.memory.base import (
    AgentMemoryError,
    FactsFrom,
    Memory,
    MemoryBase,
    Message,
    Summarize,
    check_id,
    session_key,
    split_session_key,
)
from flightdeck.registry.lookup import optional_import

_NEEDS = ("llamaindex", "memory 'llamaindex'")
BaseChatStore = optional_import("llama_index.core.storage.chat_store", *_NEEDS).BaseChatStore
AsyncDBChatStore = optional_import("llama_index.core.storage.chat_store.base_db", *_NEEDS).AsyncDBChatStore
ChatMessage = optional_import("llama_index.core.base.llms.types", *_NEEDS).ChatMessage

__all__ = ["LlamaIndexMemory", "FlightdeckChatStore", "as_llamaindex_chat_store"]

_ROLE = {"user": "user", "assistant": "assistant"}


def _from_llamaindex(messages: Sequence[Any]) -> list[Message]:
    out = []
    for message in messages:
        role, text = _ROLE.get(getattr(message.role, "value", message.role)), message.content or ""
        if role and text.strip():
            out.append(Message(role, text))
    return out


class _Loop:
    """One event loop in a daemon thread: every coroutine of an async store runs there, so the store's
    connections stay on the loop that opened them."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="flightdeck-memory-llamaindex",
                                 daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


class LlamaIndexMemory(FactsFrom, MemoryBase):
    """Conversations in a LlamaIndex chat store (see the module); facts in ``facts``."""

    def __init__(self, chat_store: Any = None, *, facts: Memory | None = None, summarize: Summarize | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(summarize=summarize, clock=clock)
        if chat_store is None:
            chat_store = optional_import("llama_index.core.storage.chat_store", *_NEEDS).SimpleChatStore()
        if not isinstance(chat_store, BaseChatStore | AsyncDBChatStore):
            raise AgentMemoryError(f"chat_store is a {type(chat_store).__name__}: give a LlamaIndex BaseChatStore "
                                   "(SimpleChatStore…) or AsyncDBChatStore (SQLAlchemyChatStore…)")
        if facts is not None and not isinstance(facts, Memory):
            raise AgentMemoryError("facts must be a Memory that keeps facts (e.g. BuiltinMemory)")
        self.chat_store = chat_store
        self.facts = facts
        self._async = isinstance(chat_store, AsyncDBChatStore)
        self._loop = _Loop() if self._async else None
        # one call at a time: SimpleChatStore is a dict of lists, and SQLAlchemyChatStore creates its table on first
        # use without a guard (two first calls at once: "no such table")
        self._lock = threading.Lock()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.chat_store, name)
        with self._lock:
            return self._loop.run(method(*args, **kwargs)) if self._loop is not None else method(*args, **kwargs)

    def _append(self, scope: str, conversation: str, message: Message) -> None:
        self._call("add_message", session_key(scope, conversation), ChatMessage(role=message.role,
                                                                                content=message.content))

    def _messages(self, scope: str, conversation: str) -> list[Message]:
        extra = {"status": None} if self._async else {}  # archived messages too: all of the conversation
        return _from_llamaindex(self._call("get_messages", session_key(scope, conversation), **extra) or [])

    def _conversations(self, scope: str) -> list[str]:
        """Read from the store's keys (all scopes' keys: a store shared by many users lists them all)."""
        head = quote(scope, safe="") + "/"
        found = [split_session_key(key) for key in self._call("get_keys") if key.startswith(head)]
        return [pair[1] for pair in found if pair is not None and pair[0] == scope]

    def _clear(self, scope: str, conversation: str | None) -> None:
        for name in self._conversations(scope) if conversation is None else [conversation]:
            self._call("delete_messages", session_key(scope, name))


class FlightdeckChatStore(BaseChatStore):
    """One scope of a flightdeck :class:`~flightdeck.agents.memory.base.Memory` as a LlamaIndex ``BaseChatStore``:
    its keys are the scope's conversation ids (see :func:`as_llamaindex_chat_store`). Changing a message in the
    middle (``add_message`` with ``idx``, ``delete_message``) rewrites the conversation."""

    memory: Any
    scope: str

    @classmethod
    def class_name(cls) -> str:
        return "FlightdeckChatStore"

    def _rewrite(self, key: str, messages: list[Any]) -> None:
        self.memory.clear(self.scope, key)
        for message in _from_llamaindex(messages):
            self.memory.append(self.scope, key, message.role, message.content)

    def _read(self, key: str) -> list[Any]:
        return [ChatMessage(role=m.role, content=m.content) for m in self.memory.history(self.scope, key)]

    def set_messages(self, key: str, messages: list[Any]) -> None:
        self._rewrite(key, list(messages))

    def get_messages(self, key: str) -> list[Any]:
        return self._read(key)

    def add_message(self, key: str, message: Any, idx: int | None = None) -> None:
        if idx is None:
            for item in _from_llamaindex([message]):
                self.memory.append(self.scope, key, item.role, item.content)
            return
        messages = self._read(key)
        messages.insert(idx, message)
        self._rewrite(key, messages)

    def delete_messages(self, key: str) -> list[Any] | None:
        messages = self._read(key)
        self.memory.clear(self.scope, key)
        return messages or None

    def delete_message(self, key: str, idx: int) -> Any | None:
        messages = self._read(key)
        if not 0 <= idx < len(messages):
            return None
        gone = messages.pop(idx)
        self._rewrite(key, messages)
        return gone

    def delete_last_message(self, key: str) -> Any | None:
        messages = self._read(key)
        return self.delete_message(key, len(messages) - 1) if messages else None

    def get_keys(self) -> list[str]:
        return self.memory.conversations(self.scope)


def as_llamaindex_chat_store(memory: Memory, scope: str) -> Any:
    """``scope``'s conversations in ``memory`` as a LlamaIndex ``BaseChatStore`` keyed by conversation id, e.g.
    ``ChatMemoryBuffer.from_defaults(chat_store=as_llamaindex_chat_store(memory, "alice"), chat_store_key="c1")``."""
    if not isinstance(memory, Memory):
        raise AgentMemoryError("memory must be a flightdeck Memory")
    return FlightdeckChatStore(memory=memory, scope=check_id(scope))
