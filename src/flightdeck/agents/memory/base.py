"""The contract every agent memory keeps (checklist 6.2): conversations and long-term facts, each kept apart per
``scope``.

A **scope** is whose memory it is (a user id, an API key id): one scope never reads, lists, trims or deletes
another's messages or facts, whatever the two strings look like (``"a"``, ``"a*"``, ``"a:b"``). Inside a scope,
**conversations** are named by their own ids, and each holds messages in the order they were appended.

- ``append(scope, conversation, role, content)`` keeps one message (``role``: ``user`` or ``assistant``, the two
  the agent loop reads as history).
- ``history(scope, conversation, max_tokens=..., count_tokens=...)`` gives the messages oldest first, trimmed
  from the oldest side to fit ``max_tokens`` (as ``count_tokens`` counts the content). A memory built with a
  ``summarize`` callable replaces what was trimmed by one summary message (:func:`summarize_history`, the one
  implementation every backend uses). A :class:`Message` reads as the ``{"role", "content"}`` mapping that
  :meth:`flightdeck.agents.runtime.AgentLoop.run` takes, so ``loop.run(q, history=memory.history(...))`` works.
- ``conversations(scope)`` and ``clear(scope, conversation=None)`` list and delete conversations.
- ``remember(scope, text, metadata)``, ``recall(scope, query, k)`` and ``forget(scope, fact_id=None)`` keep
  long-term facts. ``recall`` ranks by embedding similarity where the memory was given an ``embed`` callable
  (:attr:`Memory.recall_by` is ``"similarity"``), else by keyword overlap (``"keyword"``).

What is stored is **untrusted data**: a message or fact is whatever a user or a model wrote, and goes back to a
model as conversation text, never as instructions of the system. Ids are checked (:func:`check_id`) and every
backend keys its storage so that no id can reach outside its scope (hashed Redis keys, bound SQL parameters).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote, unquote

import numpy as np

from flightdeck.errors import FlightdeckError

__all__ = ["Memory", "Message", "Fact", "AgentMemoryError", "Role", "ROLES", "Embed", "Summarize", "approx_tokens",
           "summarize_history", "check_id", "check_role", "check_text", "check_metadata", "check_k",
           "keyword_scores", "embed_texts", "cosine_scores", "top_facts", "session_key", "split_session_key",
           "SUMMARY_PREFIX", "MAX_ID_CHARS", "MAX_TEXT_CHARS", "MemoryBase", "new_fact_id",
           "FactsFrom"]

Role = Literal["user", "assistant"]
ROLES: tuple[str, ...] = ("user", "assistant")
#: what a summary message starts with, so a model reads it as context and not as the user's request
SUMMARY_PREFIX = "Earlier in this conversation (summary): "
MAX_ID_CHARS = 512
MAX_TEXT_CHARS = 200_000

#: texts -> one vector per text, shape (n, d): e.g. ``embedder.embed_documents``
Embed = Callable[[list[str]], Any]
#: the messages that were trimmed (oldest first) -> a short text that stands for them
Summarize = Callable[[list["Message"]], str]


class AgentMemoryError(FlightdeckError):
    """A call the memory refuses (a bad id, role, text or setting) or a store it cannot use as configured."""


@dataclass(frozen=True)
class Message(Mapping[str, str]):
    """One message of a conversation. ``at``: unix time it was appended, where the backend keeps it; ``summary``:
    True for the message that stands for trimmed ones. As a mapping it has exactly ``role`` and ``content``."""

    role: str
    content: str
    at: float | None = None
    summary: bool = False

    def __getitem__(self, key: str) -> str:
        if key == "role":
            return self.role
        if key == "content":
            return self.content
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("role", "content"))

    def __len__(self) -> int:
        return 2

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "at": self.at, "summary": self.summary}


@dataclass(frozen=True)
class Fact:
    """A long-term fact of a scope. ``score``: how well it matched the query of a ``recall`` (cosine similarity, or
    keyword overlap in [0, 1]); 0 elsewhere."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    at: float | None = None
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "metadata": self.metadata, "at": self.at, "score": self.score}


@runtime_checkable
class Memory(Protocol):
    """Conversation memory and long-term facts, kept apart per scope (see the module's docstring)."""

    #: how :meth:`recall` ranks: ``"similarity"`` (embeddings) or ``"keyword"`` (word overlap)
    recall_by: str

    def append(self, scope: str, conversation: str, role: str, content: str) -> Message:
        """Keep one message at the end of the conversation; the stored message."""
        ...

    def history(self, scope: str, conversation: str, *, max_tokens: int | None = None,
                count_tokens: Callable[[str], int] = ...) -> list[Message]:
        """The conversation oldest first, trimmed from the oldest side to ``max_tokens`` (summarised where the
        memory has a ``summarize``); ``[]`` for a conversation it does not have."""
        ...

    def conversations(self, scope: str) -> list[str]:
        """The ids of the scope's conversations."""
        ...

    def clear(self, scope: str, conversation: str | None = None) -> None:
        """Delete one conversation of the scope, or all of them (its facts stay: see :meth:`forget`)."""
        ...

    def remember(self, scope: str, text: str, metadata: Mapping[str, Any] | None = None) -> Fact:
        """Keep a fact; the stored fact with its id."""
        ...

    def recall(self, scope: str, query: str, k: int = 3) -> list[Fact]:
        """At most ``k`` of the scope's facts that best match ``query``, best first (keyword recall leaves out facts
        that share no word with it)."""
        ...

    def forget(self, scope: str, fact_id: str | None = None) -> int:
        """Delete one fact, or every fact of the scope; how many were deleted (0 for an id it does not have)."""
        ...


# --- checks ----------------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_id(value: Any, what: str = "scope") -> str:
    """``value`` when it is a usable scope or conversation id (a non-blank string of at most 512 characters without
    control characters), else :class:`AgentMemoryError` naming ``what``."""
    if not isinstance(value, str):
        raise AgentMemoryError(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise AgentMemoryError(f"{what} is empty: give the user or key id ({what}={value!r})")
    if len(value) > MAX_ID_CHARS:
        raise AgentMemoryError(f"{what} is {len(value)} characters long; at most {MAX_ID_CHARS}")
    if _CONTROL.search(value):
        raise AgentMemoryError(f"{what} {value!r} holds a control character; ids are printable text")
    return value


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise AgentMemoryError(f"role {role!r}: a memory keeps 'user' and 'assistant' messages")
    return str(role)


def check_text(text: Any, what: str = "content") -> str:
    if not isinstance(text, str):
        raise AgentMemoryError(f"{what} must be a string, not {type(text).__name__}")
    if not text.strip():
        raise AgentMemoryError(f"{what} is empty: there is nothing to keep")
    if len(text) > MAX_TEXT_CHARS:
        raise AgentMemoryError(f"{what} is {len(text)} characters long; at most {MAX_TEXT_CHARS}")
    return text


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` as a plain dict that survives a JSON round trip (what every backend stores), else an error."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise AgentMemoryError("metadata must be a mapping with string keys")
    try:
        return json.loads(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise AgentMemoryError(f"metadata must be JSON (strings, numbers, booleans, lists, objects): {exc}") from exc


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise AgentMemoryError(f"k must be a whole number of at least 1, not {k!r}")
    return k


def session_key(scope: str, conversation: str) -> str:
    """One string for ``(scope, conversation)`` that no other pair gives: both percent-encoded (``/``, ``*``, ``:``
    included), joined by ``/``. For stores keyed by one session id (LangChain's, LlamaIndex's chat stores)."""
    return quote(scope, safe="") + "/" + quote(conversation, safe="")


def split_session_key(key: str) -> tuple[str, str] | None:
    """The ``(scope, conversation)`` of a :func:`session_key`, or None for a key that is not one."""
    scope, sep, conversation = key.partition("/")
    if not sep or not scope or not conversation or "/" in conversation:
        return None
    return unquote(scope), unquote(conversation)


# --- token budgets and summaries -------------------------------------------------------------------------------

_PIECE = re.compile(r"\w+|[^\w\s]")


def approx_tokens(text: str) -> int:
    """An estimate of the tokens of ``text`` for any tokenizer of today's models: one per punctuation mark and per
    four characters of a word (rounded up). Pass a model's own ``count_tokens`` for its exact count."""
    return sum(-(-len(piece) // 4) for piece in _PIECE.findall(text))


def _clip(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """The longest prefix of ``text`` (cut at a space where it can) that ``count_tokens`` counts within
    ``budget``."""
    if count_tokens(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits, by bisection (count_tokens grows with the prefix)
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid] + "…") <= budget:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    if lo < len(text) and not text[lo].isspace():  # the cut is inside a word: end at the word before it
        space = cut.rfind(" ")
        cut = cut[:space] if space > lo // 2 else cut
    return cut.rstrip() + "…" if cut.strip() else ""


def summarize_history(messages: Sequence[Message], summarize: Summarize | None, budget: int | None, *,
                      count_tokens: Callable[[str], int] = approx_tokens,
                      summary_share: float = 0.25) -> list[Message]:
    """``messages`` (oldest first) trimmed from the oldest side so that their content fits ``budget`` tokens.

    Roles keep alternating as chat templates want (a history the agent loop puts between the system prompt and
    the question): without a summary the kept part starts with a ``user`` message (an answer whose question was
    trimmed goes with it). With ``summarize``, the trimmed messages go to it, oldest first, and its text comes
    back as one ``user`` message (``summary=True``, starting with :data:`SUMMARY_PREFIX`) before a kept part that
    starts with an ``assistant`` message; the summary gets at most ``summary_share`` of the budget and is cut to
    it. ``budget`` None: every message, untouched.
    """
    kept = list(messages)
    if budget is None:
        return kept
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise AgentMemoryError(f"max_tokens must be a whole number of at least 1, not {budget!r}")
    if not 0 < summary_share < 1:
        raise AgentMemoryError(f"summary_share must be between 0 and 1, not {summary_share}")
    costs = [count_tokens(m.content) for m in kept]
    if sum(costs) <= budget:
        return kept
    room = budget - (max(1, int(budget * summary_share)) if summarize is not None else 0)
    start, total = len(kept), 0
    while start > 0 and total + costs[start - 1] <= room:
        start -= 1
        total += costs[start]
    first = "assistant" if summarize is not None else "user"
    while start < len(kept) and kept[start].role != first:
        start += 1
    dropped, kept = kept[:start], kept[start:]
    if summarize is None or not dropped:
        return kept
    text = str(summarize(list(dropped)) or "").strip()
    summary = _clip(SUMMARY_PREFIX + text, budget - sum(costs[start:]), count_tokens) if text else ""
    if len(summary.rstrip("…")) <= len(SUMMARY_PREFIX):  # no summary after all: trimmed as without one
        return summarize_history(messages, None, budget, count_tokens=count_tokens)
    return [Message("user", summary, at=dropped[-1].at, summary=True), *kept]


# --- recall ----------------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
# words that say nothing of a fact's topic: matching only these is no match
_STOP = frozenset("a an and are as at be by do does for from has have how i in is it its me my of on or our so "
                  "that the their them they this to was we what when where which who why will with you your".split())


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP}


def keyword_scores(query: str, texts: Sequence[str]) -> list[float]:
    """Keyword overlap of ``query`` with each text: the cosine of their sets of words (case-folded, any script,
    without a few English stop words), in [0, 1]; 0 where no word is shared."""
    q = _words(query)
    out = []
    for text in texts:
        words = _words(text)
        shared = len(q & words)
        out.append(shared / math.sqrt(len(q) * len(words)) if shared else 0.0)
    return out


def embed_texts(embed: Embed, texts: list[str]) -> np.ndarray:
    """``embed(texts)`` as unit float32 rows, checked: one finite, non-zero row per text."""
    vectors = np.asarray(embed(list(texts)), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] < 1:
        raise AgentMemoryError(f"embed gave an array of shape {vectors.shape} for {len(texts)} texts; it must give "
                               f"one vector per text, shape ({len(texts)}, dimension)")
    if not np.isfinite(vectors).all():
        raise AgentMemoryError("embed gave a vector with NaN or infinity")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def cosine_scores(query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Cosine similarity of a unit ``query`` vector with unit rows; an error naming both sizes when they differ
    (facts embedded by another model)."""
    if matrix.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    if matrix.shape[1] != query.shape[-1]:
        raise AgentMemoryError(f"the facts were embedded with {matrix.shape[1]} dimensions and the embedder gives "
                               f"{query.shape[-1]}: forget(scope) and remember them again with this embedder")
    return matrix @ query


def top_facts(facts: Sequence[Fact], scores: Sequence[float], k: int, *, keyword: bool) -> list[Fact]:
    """The ``k`` best ``facts`` by ``scores`` (ties: the newer first), each with its score; keyword recall leaves
    out those with no overlap."""
    ranked = sorted(zip(facts, scores, strict=True), key=lambda fs: (-float(fs[1]), -(fs[0].at or 0.0), fs[0].id))
    out = [Fact(f.id, f.text, f.metadata, f.at, round(float(s), 6)) for f, s in ranked if not keyword or s > 0]
    return out[:k]


def new_fact_id() -> str:
    """A fresh fact id: 16 hex digits of a random 63-bit number (so a FAISS id map can hold it as an int64)."""
    return f"{secrets.randbits(63):016x}"


class MemoryBase:
    """What the backends share: the checks of every argument, :func:`summarize_history` for ``history``, and
    recall over the facts a backend lists (:meth:`_facts`). A backend implements the ``_`` methods, which get
    checked arguments only."""

    def __init__(self, *, embed: Embed | None = None, summarize: Summarize | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if embed is not None and not callable(embed):
            raise AgentMemoryError("embed must be a callable: texts -> one vector per text (embed_documents)")
        if summarize is not None and not callable(summarize):
            raise AgentMemoryError("summarize must be a callable: trimmed messages -> a summary text")
        self.embed = embed
        self.summarize = summarize
        self.clock = clock

    @property
    def recall_by(self) -> str:
        return "similarity" if self.embed is not None else "keyword"

    # -- conversations
    def append(self, scope: str, conversation: str, role: str, content: str) -> Message:
        message = Message(check_role(role), check_text(content), at=self.clock())
        self._append(check_id(scope), check_id(conversation, "conversation"), message)
        return message

    def history(self, scope: str, conversation: str, *, max_tokens: int | None = None,
                count_tokens: Callable[[str], int] = approx_tokens) -> list[Message]:
        messages = self._messages(check_id(scope), check_id(conversation, "conversation"))
        return summarize_history(messages, self.summarize, max_tokens, count_tokens=count_tokens)

    def conversations(self, scope: str) -> list[str]:
        return self._conversations(check_id(scope))

    def clear(self, scope: str, conversation: str | None = None) -> None:
        check_id(scope)
        self._clear(scope, None if conversation is None else check_id(conversation, "conversation"))

    # -- facts
    def remember(self, scope: str, text: str, metadata: Mapping[str, Any] | None = None) -> Fact:
        check_id(scope)
        fact = Fact(new_fact_id(), check_text(text, "text"), check_metadata(metadata), at=self.clock())
        vector = embed_texts(self.embed, [fact.text])[0] if self.embed is not None else None
        self._remember(scope, fact, vector)
        return fact

    def recall(self, scope: str, query: str, k: int = 3) -> list[Fact]:
        return self._recall(check_id(scope), check_text(query, "query"), check_k(k))

    def forget(self, scope: str, fact_id: str | None = None) -> int:
        check_id(scope)
        if fact_id is not None and not isinstance(fact_id, str):
            raise AgentMemoryError(f"fact_id must be a string, not {type(fact_id).__name__}")
        return self._forget(scope, fact_id)

    def _recall(self, scope: str, query: str, k: int) -> list[Fact]:
        facts, vectors = self._facts(scope, self.embed is not None)
        if not facts:
            return []
        if self.embed is None:
            return top_facts(facts, keyword_scores(query, [f.text for f in facts]), k, keyword=True)
        assert vectors is not None
        scores = cosine_scores(embed_texts(self.embed, [query])[0], vectors)
        return top_facts(facts, list(scores), k, keyword=False)

    # -- what a backend implements
    def _append(self, scope: str, conversation: str, message: Message) -> None:
        raise NotImplementedError

    def _messages(self, scope: str, conversation: str) -> list[Message]:
        raise NotImplementedError

    def _conversations(self, scope: str) -> list[str]:
        raise NotImplementedError

    def _clear(self, scope: str, conversation: str | None) -> None:
        raise NotImplementedError

    def _remember(self, scope: str, fact: Fact, vector: np.ndarray | None) -> None:
        raise NotImplementedError

    def _facts(self, scope: str, with_vectors: bool) -> tuple[list[Fact], np.ndarray | None]:
        """The scope's facts, and with ``with_vectors`` their unit vectors as rows (a fact kept without a vector
        is an error naming what to do)."""
        raise NotImplementedError

    def _forget(self, scope: str, fact_id: str | None) -> int:
        raise NotImplementedError


class FactsFrom:
    """``remember``, ``recall`` and ``forget`` of another memory (``self.facts``), for backends whose framework keeps
    chat messages only (LangChain's chat histories, LlamaIndex's chat stores). Put it before :class:`MemoryBase` in
    the bases."""

    facts: Memory | None

    def _fact_memory(self) -> Memory:
        if self.facts is None:
            raise AgentMemoryError(f"this {type(self).__name__} keeps no long-term facts: give it facts=, a memory "
                                   "that keeps them (e.g. BuiltinMemory, or VectorMemory with an embedder)")
        return self.facts

    @property
    def recall_by(self) -> str:
        return self.facts.recall_by if self.facts is not None else "none"

    def remember(self, scope: str, text: str, metadata: Mapping[str, Any] | None = None) -> Fact:
        return self._fact_memory().remember(scope, text, metadata)

    def recall(self, scope: str, query: str, k: int = 3) -> list[Fact]:
        return self._fact_memory().recall(scope, query, k)

    def forget(self, scope: str, fact_id: str | None = None) -> int:
        return self._fact_memory().forget(scope, fact_id)
