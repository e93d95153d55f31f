"""Agent memory whose long-term facts live in a FAISS vector index (checklist 6.2 "vector memory stores"), while
its conversations are kept by another memory it is given::

    memory = VectorMemory(messages=BuiltinMemory(workspace.engine), embed=embedder.embed_documents,
                          path=workspace.root / "memory")

Each scope has an index of its own (``IndexIDMap2`` over an exact inner-product ``IndexFlatIP`` of unit vectors:
cosine similarity), so a search never sees another scope's facts and needs no filter. A fact's id is its 63-bit
FAISS id in hex. With ``path``, each scope's index and facts are one file, ``<sha256 of the scope>.npz`` (the
serialized index and the facts as JSON), written to a temporary name and renamed over the old one after every
change: a killed process leaves the old file or the new one, never half of one. One process should write a
``path`` at a time. Without ``path`` the facts live as long as the object.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flightdeck.agents.memory.base import (
    AgentMemoryError,
    Embed,
    Fact,
    Memory,
    MemoryBase,
    Message,
    approx_tokens,
    embed_texts,
)
from flightdeck.registry.lookup import optional_import

__all__ = ["VectorMemory"]


def _faiss() -> Any:
    return optional_import("faiss", "faiss", "memory 'vector'")


@dataclass
class _ScopeIndex:
    index: Any
    facts: dict[int, Fact] = field(default_factory=dict)


class VectorMemory(MemoryBase):
    """Facts in a FAISS index per scope (embedded by ``embed``), conversations in ``messages``."""

    def __init__(self, messages: Memory, embed: Embed, *, path: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if embed is None:
            raise AgentMemoryError("VectorMemory needs embed: a callable texts -> vectors (embed_documents)")
        if not isinstance(messages, Memory):
            raise AgentMemoryError("messages must be a Memory (e.g. BuiltinMemory) that keeps the conversations")
        super().__init__(embed=embed, clock=clock)
        self.messages = messages
        self.path = Path(path) if path is not None else None
        self._scopes: dict[str, _ScopeIndex | None] = {}
        self._lock = threading.RLock()

    # -- conversations: the other memory's
    def append(self, scope: str, conversation: str, role: str, content: str) -> Message:
        return self.messages.append(scope, conversation, role, content)

    def history(self, scope: str, conversation: str, *, max_tokens: int | None = None,
                count_tokens: Callable[[str], int] = approx_tokens) -> list[Message]:
        return self.messages.history(scope, conversation, max_tokens=max_tokens, count_tokens=count_tokens)

    def conversations(self, scope: str) -> list[str]:
        return self.messages.conversations(scope)

    def clear(self, scope: str, conversation: str | None = None) -> None:
        self.messages.clear(scope, conversation)

    # -- facts
    def _file(self, scope: str) -> Path | None:
        return None if self.path is None else self.path / f"{hashlib.sha256(scope.encode()).hexdigest()}.npz"

    def _scope(self, scope: str) -> _ScopeIndex | None:
        """The scope's index, read from its file on first use (None: the scope has no facts)."""
        if scope not in self._scopes:
            file = self._file(scope)
            if file is None or not file.is_file():
                self._scopes[scope] = None
            else:
                with np.load(file, allow_pickle=False) as data:
                    index = _faiss().deserialize_index(np.array(data["index"], dtype=np.uint8))
                    records = json.loads(bytes(data["facts"]).decode("utf-8"))
                facts = {int(r["id"], 16): Fact(r["id"], r["text"], r["metadata"], r["at"]) for r in records}
                self._scopes[scope] = _ScopeIndex(index, facts)
        return self._scopes[scope]

    def _save(self, scope: str, entry: _ScopeIndex | None) -> None:
        self._scopes[scope] = entry
        file = self._file(scope)
        if file is None:
            return
        if entry is None:
            file.unlink(missing_ok=True)
            return
        file.parent.mkdir(parents=True, exist_ok=True)
        records = [{"id": f.id, "text": f.text, "metadata": f.metadata, "at": f.at} for f in entry.facts.values()]
        blob = np.frombuffer(json.dumps(records, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        tmp = file.with_name(f"{file.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        with open(tmp, "wb") as out:
            np.savez(out, index=_faiss().serialize_index(entry.index), facts=blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, file)

    def _remember(self, scope: str, fact: Fact, vector: np.ndarray | None) -> None:
        assert vector is not None
        faiss = _faiss()
        with self._lock:
            entry = self._scope(scope)
            if entry is None:
                entry = _ScopeIndex(faiss.IndexIDMap2(faiss.IndexFlatIP(int(vector.shape[0]))))
            if entry.index.d != vector.shape[0]:
                raise AgentMemoryError(f"the facts of this scope were embedded with {entry.index.d} dimensions and "
                                       f"the embedder gives {vector.shape[0]}: forget(scope) and remember them "
                                       "again with this embedder")
            number = int(fact.id, 16)
            entry.index.add_with_ids(vector.reshape(1, -1).astype(np.float32), np.array([number], dtype=np.int64))
            entry.facts[number] = fact
            self._save(scope, entry)

    def _recall(self, scope: str, query: str, k: int) -> list[Fact]:
        with self._lock:
            entry = self._scope(scope)
            if entry is None or not entry.facts:
                return []
            vector = embed_texts(self.embed, [query])  # type: ignore[arg-type]
            if vector.shape[1] != entry.index.d:
                raise AgentMemoryError(f"the facts of this scope were embedded with {entry.index.d} dimensions and "
                                       f"the embedder gives {vector.shape[1]}: forget(scope) and remember them "
                                       "again with this embedder")
            scores, numbers = entry.index.search(vector, min(k, len(entry.facts)))
            found = [(entry.facts[int(n)], float(s)) for n, s in zip(numbers[0], scores[0], strict=True) if n >= 0]
        return [Fact(f.id, f.text, f.metadata, f.at, round(s, 6)) for f, s in found]

    def _forget(self, scope: str, fact_id: str | None) -> int:
        with self._lock:
            entry = self._scope(scope)
            if entry is None:
                return 0
            if fact_id is None:
                count = len(entry.facts)
                self._save(scope, None)
                return count
            try:
                number = int(fact_id, 16)
            except ValueError:
                return 0
            if number not in entry.facts or entry.facts[number].id != fact_id:
                return 0
            entry.index.remove_ids(np.array([number], dtype=np.int64))
            del entry.facts[number]
            self._save(scope, entry if entry.facts else None)
            return 1
