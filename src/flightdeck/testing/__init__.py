"""Deterministic fakes and shared helpers for tests of flightdeck and of third-party providers.

The fakes (one per category) import nothing beyond flightdeck's own dependencies. The contract suites, one
module per category, need pytest and are imported by name: :mod:`flightdeck.testing.source_contract`,
:mod:`~flightdeck.testing.parser_contract`, :mod:`~flightdeck.testing.chunker_contract`,
:mod:`~flightdeck.testing.embedder_contract`, :mod:`~flightdeck.testing.store_contract`,
:mod:`~flightdeck.testing.keyword_contract`, :mod:`~flightdeck.testing.generator_contract`,
:mod:`~flightdeck.testing.versioning_contract` and :mod:`~flightdeck.testing.tool_contract` (agent tools).
"""

from flightdeck.testing.agent_fakes import ScriptedAgentModel
from flightdeck.testing.fakes import (
    FakeChunker,
    FakeEmbedder,
    FakeGenerator,
    FakeGeneratorConfig,
    FakeSource,
    FakeVersioning,
    RecordingReporter,
)

__all__ = ["FakeEmbedder", "FakeSource", "FakeChunker", "FakeGenerator", "FakeGeneratorConfig", "FakeVersioning",
           "RecordingReporter", "ScriptedAgentModel"]
