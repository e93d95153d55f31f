"""Agent memory (checklist 6.2): one contract (:mod:`.base`), one module per backend. :mod:`.builtin` (the
workspace DB), :mod:`.redis`, :mod:`.vector` (facts in FAISS), :mod:`.langchain` and :mod:`.llamaindex` (both ways
through the frameworks' chat histories and chat stores). Only the contract is imported here: a backend's module is
imported by name, and imports its optional library then."""

from flightdeck.agents.memory.base import AgentMemoryError, Fact, Memory, MemoryBase, Message, summarize_history

__all__ = ["AgentMemoryError", "Fact", "Memory", "MemoryBase", "Message", "summarize_history"]
