"""Deterministic fakes and shared helpers for tests of flightdeck and of third-party providers."""

from flightdeck.testing.fakes import FakeEmbedder

__all__ = ["FakeEmbedder"]
