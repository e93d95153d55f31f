"""LangChain memory (checklist 6.2), both ways, through LangChain's ``BaseChatMessageHistory``
(``pip install 'flightdeck[langchain]'``).

- :class:`LangChainMemory` keeps flightdeck's conversations in any LangChain chat history: ``history_for(scope,
  conversation)`` builds the history of one conversation (``SQLChatMessageHistory``, ``RedisChatMessageHistory``,
  ``PostgresChatMessageHistory``…; key it by :func:`~flightdeck.agents.memory.base.session_key`, which no two
  pairs share). The default keeps them in this process, in langchain-core's ``InMemoryChatMessageHistory``. As a
  chat history cannot list its sessions, the ids of a scope's conversations are kept in one more history of that
  scope, under a conversation id no caller can use (ids never hold control characters). Facts go to the memory
  given as ``facts``.
- :func:`as_langchain_history` gives a LangChain app flightdeck's memory of one conversation as a
  ``BaseChatMessageHistory`` (for ``RunnableWithMessageHistory`` and the like).

Both keep the user's and the assistant's words: human and AI messages with text. System prompts, tool calls and tool
results that a LangChain app writes are not kept (the agent's trace records those), and are skipped when read.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from flightdeck.agents.memory.base import (
    AgentMemoryError,
    FactsFrom,
    Memory,
    MemoryBase,
    Message,
    Summarize,
    check_id,
)
from flightdeck.registry.lookup import optional_import

_NEEDS = ("langchain", "memory 'langchain'")
BaseChatMessageHistory = optional_import("langchain_core.chat_history", *_NEEDS).BaseChatMessageHistory
_messages = optional_import("langchain_core.messages", *_NEEDS)

__all__ = ["LangChainMemory", "FlightdeckChatMessageHistory", "as_langchain_history", "HistoryFactory"]

#: (scope, conversation) -> the LangChain chat history of that conversation
HistoryFactory = Callable[[str, str], Any]
_INDEX = "\x1fconversations"  # the history that lists a scope's conversations: no caller's id has a control char
_ROLE = {"human": "user", "ai": "assistant"}


def _to_langchain(role: str, content: str) -> Any:
    return _messages.HumanMessage(content=content) if role == "user" else _messages.AIMessage(content=content)


def _from_langchain(messages: Sequence[Any]) -> list[Message]:
    """The human and AI messages with text, as flightdeck messages; the rest skipped (see the module)."""
    out = []
    for message in messages:
        role, text = _ROLE.get(message.type), message.text
        if role and text.strip():
            out.append(Message(role, text))
    return out


class _InMemoryHistories:
    """The default factory: one langchain-core ``InMemoryChatMessageHistory`` per (scope, conversation)."""

    def __init__(self) -> None:
        self._histories: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, scope: str, conversation: str) -> Any:
        with self._lock:
            if (scope, conversation) not in self._histories:
                in_memory = optional_import("langchain_core.chat_history", *_NEEDS).InMemoryChatMessageHistory
                with warnings.catch_warnings():  # deprecated in langchain-core 1.6.4, still its in-memory history
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._histories[(scope, conversation)] = in_memory()
            return self._histories[(scope, conversation)]


class LangChainMemory(FactsFrom, MemoryBase):
    """Conversations in LangChain chat histories built by ``history_for``; facts in ``facts`` (see the module)."""

    def __init__(self, history_for: HistoryFactory | None = None, *, facts: Memory | None = None,
                 summarize: Summarize | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(summarize=summarize, clock=clock)
        if history_for is not None and not callable(history_for):
            raise AgentMemoryError("history_for must be a callable (scope, conversation) -> BaseChatMessageHistory")
        if facts is not None and not isinstance(facts, Memory):
            raise AgentMemoryError("facts must be a Memory that keeps facts (e.g. BuiltinMemory)")
        self.history_for = history_for or _InMemoryHistories()
        self.facts = facts
        self._lock = threading.Lock()
        self._factory_lock = threading.Lock()

    def _history(self, scope: str, conversation: str) -> Any:
        with self._factory_lock:  # SQLChatMessageHistory creates its table in __init__, unguarded against a race
            history = self.history_for(scope, conversation)
        if not isinstance(history, BaseChatMessageHistory):
            raise AgentMemoryError(f"history_for gave {type(history).__name__}, not a LangChain "
                                   "BaseChatMessageHistory")
        return history

    def _index(self, scope: str) -> list[str]:
        return list(dict.fromkeys(m.text for m in self._history(scope, _INDEX).messages))

    def _append(self, scope: str, conversation: str, message: Message) -> None:
        self._history(scope, conversation).add_messages([_to_langchain(message.role, message.content)])
        with self._lock:  # read each time, not cached: an index kept with a TTL (Redis) may have expired
            if conversation not in self._index(scope):
                self._history(scope, _INDEX).add_messages([_messages.SystemMessage(content=conversation)])

    def _messages(self, scope: str, conversation: str) -> list[Message]:
        return _from_langchain(self._history(scope, conversation).messages)

    def _conversations(self, scope: str) -> list[str]:
        return self._index(scope)

    def _clear(self, scope: str, conversation: str | None) -> None:
        with self._lock:
            names = self._index(scope)
            for name in names if conversation is None else [conversation]:
                self._history(scope, name).clear()
            index = self._history(scope, _INDEX)
            index.clear()
            rest = [n for n in names if conversation is not None and n != conversation]
            if rest:
                index.add_messages([_messages.SystemMessage(content=n) for n in rest])


class FlightdeckChatMessageHistory(BaseChatMessageHistory):
    """One conversation of a flightdeck :class:`~flightdeck.agents.memory.base.Memory`, as a LangChain chat
    history (see :func:`as_langchain_history`)."""

    def __init__(self, memory: Memory, scope: str, conversation: str) -> None:
        if not isinstance(memory, Memory):
            raise AgentMemoryError("memory must be a flightdeck Memory")
        self.memory, self.scope = memory, check_id(scope)
        self.conversation = check_id(conversation, "conversation")

    @property
    def messages(self) -> list[Any]:  # type: ignore[override]
        return [_to_langchain(m.role, m.content) for m in self.memory.history(self.scope, self.conversation)]

    def add_messages(self, messages: Sequence[Any]) -> None:
        for message in _from_langchain(messages):
            self.memory.append(self.scope, self.conversation, message.role, message.content)

    def clear(self) -> None:
        self.memory.clear(self.scope, self.conversation)


def as_langchain_history(memory: Memory, scope: str, conversation: str) -> Any:
    """``scope``'s ``conversation`` in ``memory`` as a LangChain ``BaseChatMessageHistory``: ``messages`` reads it
    (human and AI messages), ``add_messages`` appends to it, ``clear`` deletes it."""
    return FlightdeckChatMessageHistory(memory, scope, conversation)
