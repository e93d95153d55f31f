"""Agents of other frameworks (checklist 3.3) on flightdeck's model, through its OpenAI-compatible endpoint, and its
tools: one contract (:mod:`.base`), one module per framework (imported on first use: each framework is optional)."""

from flightdeck.agents.frameworks.base import FrameworkAgent, FrameworkAgentBase, RunRecorder

__all__ = ["FrameworkAgent", "FrameworkAgentBase", "RunRecorder"]
