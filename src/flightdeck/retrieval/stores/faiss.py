"""FAISS: exact inner-product search over normalised vectors (cosine similarity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from flightdeck.errors import MissingDependencyError

__all__ = ["FaissConfig", "FaissStore"]


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError("vector_store 'faiss' needs: pip install 'flightdeck[faiss]'") from exc
    return faiss


class FaissConfig(BaseModel):
    """Settings of ``vector_database: {provider: faiss, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    index: Literal["flat"] = "flat"  # HNSW/IVF chosen by size arrive with issue #4


class FaissStore:
    """An immutable FAISS index plus the chunk id of each row, saved as two files."""

    INDEX_FILE = "index.faiss"
    IDS_FILE = "ids.json"

    def __init__(self, config: FaissConfig | None = None) -> None:
        self.config = config or FaissConfig()
        self._index: Any = None
        self._ids: list[str] = []

    def build(self, ids: list[str], vectors: np.ndarray) -> None:
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        dim = vectors.shape[1] if vectors.ndim == 2 and len(vectors) else 0
        index = faiss.IndexFlatIP(dim or 1)
        if len(vectors):
            index.add(vectors)
        self._index, self._ids = index, list(ids)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self._index, str(folder / self.INDEX_FILE))
        (folder / self.IDS_FILE).write_text(json.dumps(self._ids))

    def load(self, folder: Path) -> None:
        self._index = _faiss().read_index(str(folder / self.INDEX_FILE))
        self._ids = json.loads((folder / self.IDS_FILE).read_text())

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        if self._index is None or not self._ids:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        scores, rows = self._index.search(q, min(k, len(self._ids)))
        return [(self._ids[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def __len__(self) -> int:
        return len(self._ids)
