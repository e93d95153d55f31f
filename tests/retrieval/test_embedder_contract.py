"""Every built-in embedder passes the embedder contract (:mod:`flightdeck.testing.embedder_contract`).

Each runs where its own tests run: sentence_transformers and huggingface on the packaged all-MiniLM-L6-v2,
openai against llama-cpp-python's OpenAI-compatible server (the session's ``llama_server``), cohere through the
real SDK against the replayed Cohere API of test_embedder_cohere.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flightdeck.registry import Category
from flightdeck.testing.embedder_contract import EmbedderContract
from needs import needs_provider

pytestmark = pytest.mark.integration


@needs_provider(Category.EMBEDDER, "sentence_transformers")
class TestSentenceTransformersEmbedder(EmbedderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Any:
        from flightdeck.retrieval.embedders.sentence_transformers import SentenceTransformersEmbedder

        return SentenceTransformersEmbedder()


@needs_provider(Category.EMBEDDER, "huggingface")
class TestHuggingFaceEmbedder(EmbedderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Any:
        from flightdeck.retrieval.embedders.huggingface import HuggingFaceConfig, HuggingFaceEmbedder

        return HuggingFaceEmbedder(HuggingFaceConfig(pooling="mean"))


@needs_provider(Category.EMBEDDER, "openai")
class TestOpenAIEmbedder(EmbedderContract):
    # llama.cpp computes a batch in one pass: its rows differ from one text at a time by up to ~1.2e-3 here
    batch_atol = 5e-3

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls, llama_server: Any) -> Any:
        from flightdeck.retrieval.embedders.openai import OpenAIConfig, OpenAIEmbedder

        return OpenAIEmbedder(OpenAIConfig(base_url=llama_server.base_url, model=llama_server.model,
                                           api_key=llama_server.api_key))


@needs_provider(Category.EMBEDDER, "cohere")
class TestCohereEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self) -> Iterator[Any]:
        from test_embedder_cohere import ReplayedCohere, make

        yield make(ReplayedCohere())
