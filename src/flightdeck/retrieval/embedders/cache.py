"""Vectors already stored in the workspace, read instead of computed: the answer path's embedder.

The ``sentences`` step (with the extractive generator in the real-time tier) stores the vector of every chunk
text and of every sentence of it in the ``embeddings`` table, beside the chunks' indexed vectors, under
:func:`text_key`. At question time :class:`StoredVectorsEmbedder` looks texts up there first and embeds only
what it does not find, so the extractive answerer embeds one text per question — the question — instead of
forty.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from sqlalchemy import select

from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import embeddings

__all__ = ["StoredVectorsEmbedder", "text_key"]

# SQLite's default limit of host parameters in one statement is 999 (older builds): look up in slices.
_LOOKUP_SLICE = 500


def text_key(text: str) -> str:
    """The key a text's own vector is stored under. Namespaced: the embed step keys a chunk's vector by the
    hash of its text but embeds its indexed text (heading line first), so the plain hash would find a vector of
    another text."""
    return hashlib.sha256(b"text\x00" + text.encode("utf-8")).hexdigest()


class StoredVectorsEmbedder:
    """``embedder`` with its document vectors read from the workspace when they are there.

    The same model (``model_id``), so the vectors are the ones the embedder would compute; queries are always
    embedded (a query may carry a prefix the stored documents do not). Everything else is the embedder's.
    """

    def __init__(self, embedder: Any, workspace: Workspace) -> None:
        self.embedder = embedder
        self.workspace = workspace
        self.hits = 0  # texts found stored, for tests and benchmarks
        self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.embedder, name)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_query(text)

    def stored(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``texts``, by key (texts without one are left out)."""
        keys = sorted({text_key(t) for t in texts})
        found: dict[str, np.ndarray] = {}
        model = self.embedder.model_id
        with self.workspace.engine.connect() as conn:
            for start in range(0, len(keys), _LOOKUP_SLICE):
                part = keys[start:start + _LOOKUP_SLICE]
                rows = conn.execute(select(embeddings.c.text_hash, embeddings.c.vector)
                                    .where(embeddings.c.model_id == model, embeddings.c.text_hash.in_(part)))
                found.update((h, np.frombuffer(v, dtype="<f4")) for h, v in rows)
        return found

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return self.embedder.embed_documents(texts)
        found = self.stored(texts)
        missing = [t for t in dict.fromkeys(texts) if text_key(t) not in found]
        if missing:
            found.update(zip((text_key(t) for t in missing), self.embedder.embed_documents(missing), strict=True))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        return np.stack([np.asarray(found[text_key(t)], dtype=np.float32) for t in texts])
