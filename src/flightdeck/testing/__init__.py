"""Deterministic fakes and shared helpers for tests of flightdeck and of third-party providers.

The fakes (one per category) import nothing beyond flightdeck's own dependencies. The contract suites, one
module per category, need pytest and are imported by name: :mod:`flightdeck.testing.source_contract`,
:mod:`~flightdeck.testing.chunker_contract`, :mod:`~flightdeck.testing.embedder_contract`,
:mod:`~flightdeck.testing.store_contract` and :mod:`~flightdeck.testing.generator_contract`.
"""

from flightdeck.testing.fakes import FakeChunker, FakeEmbedder, FakeGenerator, FakeGeneratorConfig, FakeSource

__all__ = ["FakeEmbedder", "FakeSource", "FakeChunker", "FakeGenerator", "FakeGeneratorConfig"]
