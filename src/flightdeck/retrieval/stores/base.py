"""What every vector store provides.

A store holds one vector and one filterable payload per chunk id, in one *collection*. Two kinds exist:

- ``versioned = True`` (FAISS): each index version is its own folder, built whole and swapped in
  atomically by switching the workspace's ``current_index``; a reader that opened the previous folder
  keeps reading it.
- ``versioned = False`` (Qdrant, Chroma, pgvector, Weaviate, Pinecone): one live collection per project
  and embedding model, synced by the index step with only the chunks that were added, changed or removed.

Lifecycle: ``store = factory(); store.open(location)``; then ``upsert``/``delete``/``search``;
``flush()`` makes the writes durable (saves the folder, or is a no-op where the server already did);
``close()`` releases connections; ``drop()`` deletes the collection and everything in it. ``search``
returns ``(chunk_id, score)`` best first, higher is better, scores being cosine similarities for
unit-length vectors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from flightdeck.retrieval.filters import Filter

__all__ = ["VectorStore", "StoreLocation", "check_batch", "typed_key", "typed_payload", "chunk_uuid"]


@dataclass(frozen=True)
class StoreLocation:
    """Where a store keeps a collection.

    ``folder`` is a private folder under the workspace (embedded modes keep their files there);
    ``collection`` is a name safe for every server (lowercase letters, digits and ``_``, starting with a
    letter, at most 48 characters); ``dimension`` is the embedder's.
    """

    folder: Path
    collection: str
    dimension: int


@runtime_checkable
class VectorStore(Protocol):
    """Holds vectors and payloads under chunk ids and searches them with pushed-down metadata filters."""

    versioned: bool

    def open(self, location: StoreLocation) -> None: ...

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def ids(self) -> set[str]: ...

    def search(self, query: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[str, float]]: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def drop(self) -> None: ...

    def __len__(self) -> int: ...


def check_batch(ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]], dimension: int
                ) -> np.ndarray:
    """Validate an upsert batch and return the vectors as a C-contiguous float32 matrix."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 and len(ids) == 0:
        matrix = matrix.reshape(0, dimension)
    if matrix.ndim != 2 or len(ids) != matrix.shape[0] or len(payloads) != len(ids):
        raise ValueError(f"upsert needs as many ids, vectors and payloads: {len(ids)} ids, "
                         f"{matrix.shape[0] if matrix.ndim == 2 else '?'} vectors, {len(payloads)} payloads")
    if len(ids) and matrix.shape[1] != dimension:
        raise ValueError(f"vectors of dimension {matrix.shape[1]} for a collection of dimension {dimension}")
    if len(set(ids)) != len(ids):
        raise ValueError("upsert got the same id twice in one batch")
    return matrix


def typed_key(key: str, value: Any) -> str:
    """The key under which a store without typed filters keeps ``value``: ``b_``, ``n_`` or ``s_`` + ``key``.

    Weaviate and Pinecone compare values across types (``true`` with ``1``), so a store keeps each type
    under its own key: a boolean condition then never reads a number and a range only reads numbers."""
    if isinstance(value, bool):
        return f"b_{key}"
    if isinstance(value, (int, float)):
        return f"n_{key}"
    if isinstance(value, str):
        return f"s_{key}"
    raise TypeError(f"payload value {value!r} under {key!r} is not a string, number or boolean")


def typed_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Every payload value under its :func:`typed_key`, integers as floats."""
    return {typed_key(k, v): float(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in payload.items()}


# uuid5 namespace of flightdeck chunk ids: the same chunk id maps to the same UUID in every store.
CHUNK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "flightdeck:chunk-id")


def chunk_uuid(chunk_id: str) -> str:
    """The UUID of a chunk id, for stores whose ids must be UUIDs (Qdrant, Weaviate, Pinecone's fallback)."""
    return str(uuid.uuid5(CHUNK_NAMESPACE, chunk_id))

