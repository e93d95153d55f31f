"""What every embedder provides."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors (raw ones only where a provider's ``normalize: false`` asks).

    ``model_id`` names the model and every setting that changes its vectors (prefixes, normalisation):
    the embedding cache and the index are keyed by it, so that a changed model never mixes vectors.

    The constructor is cheap: a provider loads its model or opens its client on first use. The same text
    always gives the same vector, whether it is embedded alone or in a batch (up to float rounding).
    :mod:`flightdeck.testing.embedder_contract` checks these promises for every embedder.
    """

    @property
    def model_id(self) -> str:
        """The model and the settings that change its vectors; the key of the embedding cache."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        ...

    @property
    def max_tokens(self) -> int:
        """The most tokens the model reads of one text (special tokens included); chunk sizes fit under it."""
        ...

    @property
    def model_dir(self) -> str | None:
        """A folder with the model's ``tokenizer.json``, which chunking counts tokens with."""
        ...

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order: a ``(len(texts), dimension)`` float32 array (``(0, dimension)`` for none)."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """The ``(dimension,)`` vector of a search query (with the query prefix, where the model has one)."""
        ...
