"""The contract every embedder passes: a test class that each embedder's test module inherits.

Usage (in an embedder's test module)::

    from flightdeck.testing.embedder_contract import EmbedderContract

    class TestMyEmbedder(EmbedderContract):
        @pytest.fixture(scope="class")
        def embedder(self):
            return MyEmbedder(MyConfig(...))

The fixture may have any scope (a model loaded once per class keeps the suite fast). The suite checks what the
pipeline, the search and the stores rely on (:class:`flightdeck.retrieval.embedders.base.Embedder`): one
float32 row of ``dimension`` per text, in order, ``(0, dimension)`` for no text; unit length unless the
provider is set not to normalise (``normalizes = False`` on the test class); a query vector of the same
dimension; the same text always gives the same vector, alone or in a batch; a query ranks the document that
says the same thing first; ``model_id``, ``max_tokens`` and ``model_dir`` (a folder with the tokenizer that
chunking counts with). Needs pytest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flightdeck.data.tokenization import Tokenizer
from flightdeck.retrieval.embedders.base import Embedder

__all__ = ["EmbedderContract", "TEXTS"]

#: Three sentences on three different topics, so that each one's nearest neighbour is itself.
TEXTS = [
    "Store widgets in a dry place between 5 and 25 degrees Celsius.",
    "The night train to Vienna leaves the central station at nine.",
    "Knead the bread dough for ten minutes, then let it rise for an hour.",
]


class EmbedderContract:
    """Inherit and provide an ``embedder`` fixture (any scope)."""

    #: False for a provider set not to normalise (``normalize: false``): its vectors need not be unit length.
    normalizes: bool = True
    #: Tolerance when the same text is compared alone and in a batch (padding changes float rounding).
    batch_atol: float = 1e-4

    @pytest.fixture
    def embedder(self) -> Embedder:  # pragma: no cover - overridden
        raise NotImplementedError("an embedder's test class provides the embedder fixture")

    def _check_rows(self, vectors: Any, rows: int, dim: int) -> np.ndarray:
        assert isinstance(vectors, np.ndarray), type(vectors)
        assert vectors.shape == (rows, dim), vectors.shape
        assert vectors.dtype == np.float32, vectors.dtype
        assert np.isfinite(vectors).all()
        if self.normalizes and rows:
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        return vectors

    def test_satisfies_the_protocol(self, embedder: Embedder) -> None:
        assert isinstance(embedder, Embedder)

    def test_model_id_dimension_and_max_tokens(self, embedder: Embedder) -> None:
        assert isinstance(embedder.model_id, str) and embedder.model_id.strip()
        assert embedder.model_id == embedder.model_id  # read twice: a property, not a fresh value per call
        assert isinstance(embedder.dimension, int) and embedder.dimension > 0
        assert isinstance(embedder.max_tokens, int) and embedder.max_tokens > 2

    def test_model_dir_holds_the_tokenizer_chunking_counts_with(self, embedder: Embedder) -> None:
        folder = embedder.model_dir
        if folder is None:
            pytest.skip("this embedder names no tokenizer folder")
        assert (Path(folder) / "tokenizer.json").is_file(), folder
        assert Tokenizer.from_model_dir(folder).count(TEXTS[0]) > 0

    def test_documents_give_one_row_per_text_in_order_alone_or_in_a_batch(self, embedder: Embedder) -> None:
        dim = embedder.dimension
        vectors = self._check_rows(embedder.embed_documents(list(TEXTS)), len(TEXTS), dim)
        reverse = self._check_rows(embedder.embed_documents(TEXTS[::-1]), len(TEXTS), dim)
        np.testing.assert_allclose(reverse[::-1], vectors, atol=self.batch_atol)
        for i, text in enumerate(TEXTS):
            alone = self._check_rows(embedder.embed_documents([text]), 1, dim)
            np.testing.assert_allclose(alone[0], vectors[i], atol=self.batch_atol)
        # three topics: three different vectors
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        sims = unit @ unit.T
        assert (sims[~np.eye(len(TEXTS), dtype=bool)] < 0.99).all(), sims

    def test_no_texts_give_an_empty_matrix(self, embedder: Embedder) -> None:
        self._check_rows(embedder.embed_documents([]), 0, embedder.dimension)

    def test_a_query_is_one_vector_that_ranks_the_document_saying_the_same_first(self, embedder: Embedder) -> None:
        docs = embedder.embed_documents(list(TEXTS))
        for i, text in enumerate(TEXTS):
            q = embedder.embed_query(text)
            assert isinstance(q, np.ndarray) and q.shape == (embedder.dimension,), getattr(q, "shape", None)
            self._check_rows(q[None, :], 1, embedder.dimension)
            scores = (docs @ q) / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q))  # cosine, normalised or not
            assert int(np.argmax(scores)) == i, (text, scores)
            if i == 0:
                np.testing.assert_allclose(embedder.embed_query(text), q, atol=1e-5)  # the same again
