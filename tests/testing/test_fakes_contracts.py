"""The fakes of :mod:`flightdeck.testing` keep the contracts of their categories, so that a test using one
relies on the same promises as the real providers (and a contract suite is seen to pass on something that
needs no model package or service)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flightdeck.testing import FakeChunker, FakeEmbedder, FakeGenerator, FakeSource
from flightdeck.testing.chunker_contract import ChunkerContract
from flightdeck.testing.embedder_contract import EmbedderContract
from flightdeck.testing.generator_contract import GeneratorContract
from flightdeck.testing.source_contract import SourceContract

pytestmark = pytest.mark.unit

ITEMS = {
    "guide/install.md": "# Installing Widgets\n\nRun the installer and align the sprockets.\n",
    "care.html": "<html><body><h1>Care</h1><p>Clean a widget once a week.</p></body></html>",
    "notes.txt": "Widgets come in red, blue and green.\n",
}


class TestFakeSource(SourceContract):
    @pytest.fixture
    def items(self) -> dict[str, str | bytes]:
        return dict(ITEMS)

    @pytest.fixture
    def make_source(self, items: dict[str, str | bytes]) -> Callable[[], FakeSource]:
        return lambda: FakeSource(items)

    @pytest.fixture
    def change_item(self, items: dict[str, str | bytes]) -> Callable[[], str]:
        def change() -> str:
            items["notes.txt"] = "Widgets now come in yellow too.\n"
            return "notes.txt"

        return change

    @pytest.fixture
    def make_failing_source(self) -> Callable[[], FakeSource]:
        return lambda: FakeSource(ITEMS, broken={"huge.pdf": "over max_file_bytes"})


class TestFakeChunker(ChunkerContract):
    @pytest.fixture
    def make_chunker(self) -> Callable[[int], FakeChunker]:
        return FakeChunker


class TestFakeEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self, tmp_path: Path) -> FakeEmbedder:
        # A tokenizer folder of its own: the default one is the packaged MiniLM's, a model package.
        from tokenizers import Tokenizer, models, pre_tokenizers

        tok = Tokenizer(models.WordLevel({"[UNK]": 0, "widgets": 1}, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.save(str(tmp_path / "tokenizer.json"))
        return FakeEmbedder(model_dir=str(tmp_path))


class TestFakeGenerator(GeneratorContract):
    @pytest.fixture
    def generator(self) -> FakeGenerator:
        return FakeGenerator()
