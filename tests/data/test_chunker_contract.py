"""Every built-in chunker passes the chunker contract (:mod:`flightdeck.testing.chunker_contract`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flightdeck.data.chunkers.base import Chunker
from flightdeck.data.chunkers.fixed import FixedChunker, FixedConfig
from flightdeck.data.chunkers.markdown import MarkdownChunker, MarkdownConfig
from flightdeck.data.chunkers.recursive import RecursiveChunker, RecursiveConfig
from flightdeck.data.chunkers.semantic import SemanticChunker, SemanticConfig
from flightdeck.data.chunkers.sentence import SentenceChunker, SentenceConfig
from flightdeck.testing import FakeEmbedder
from flightdeck.testing.chunker_contract import ChunkerContract

pytestmark = pytest.mark.unit


class TestRecursiveChunker(ChunkerContract):
    @pytest.fixture
    def make_chunker(self) -> Callable[[int], Chunker]:
        return lambda size: RecursiveChunker(RecursiveConfig(size=size, overlap=size // 4))


class TestFixedChunker(ChunkerContract):
    @pytest.fixture
    def make_chunker(self) -> Callable[[int], Chunker]:
        return lambda size: FixedChunker(FixedConfig(size=size, overlap=size // 4))


class TestSentenceChunker(ChunkerContract):
    @pytest.fixture
    def make_chunker(self) -> Callable[[int], Chunker]:
        return lambda size: SentenceChunker(SentenceConfig(size=size, overlap=size // 4))


class TestMarkdownChunker(ChunkerContract):
    @pytest.fixture
    def make_chunker(self) -> Callable[[int], Chunker]:
        return lambda size: MarkdownChunker(MarkdownConfig(size=size, overlap=size // 4))


class TestSemanticChunker(ChunkerContract):
    # The breakpoints come from embeddings: the fake embedder keeps this fast and deterministic.
    @pytest.fixture
    def make_chunker(self) -> Callable[[int], Chunker]:
        return lambda size: SemanticChunker(SemanticConfig(size=size, overlap=size // 4), embedder=FakeEmbedder())
