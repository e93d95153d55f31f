"""What every vector store provides."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["VectorStore"]


class VectorStore(Protocol):
    """Holds vectors under chunk ids; ``search`` returns ``(chunk_id, score)`` best first."""

    def build(self, ids: list[str], vectors: np.ndarray) -> None: ...

    def save(self, folder: Path) -> None: ...

    def load(self, folder: Path) -> None: ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]: ...

    def __len__(self) -> int: ...
