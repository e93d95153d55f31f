"""The agent's long-term memory as two tools (checklist 6.2): ``remember`` keeps a fact for the user the run is for,
``recall`` finds the user's facts that match a query (by embedding where the memory has one). Both are bound to one
scope when a run starts, so a model can never read or write another user's facts, whatever it asks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightdeck.agents.tools.base import ToolResult, ToolSpec

__all__ = ["memory_tools", "RememberTool", "RecallTool"]

_MAX_FACT_CHARS = 2000


class RememberTool:
    """Keeps one fact in the scope's memory."""

    def __init__(self, memory: Any, scope: str) -> None:
        self.memory, self.scope = memory, scope
        self.spec = ToolSpec("remember", "Keep a short fact about the user or the task for later conversations "
                                         "(a preference, a name, a decision).",
                             {"type": "object", "properties": {"fact": {"type": "string"}}, "required": ["fact"],
                              "additionalProperties": False})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        fact = arguments.get("fact")
        if not isinstance(fact, str) or not fact.strip():
            return ToolResult.refused("fact must be a non-empty string")
        if len(fact) > _MAX_FACT_CHARS:
            return ToolResult.refused(f"a fact has at most {_MAX_FACT_CHARS} characters; keep it short")
        kept = self.memory.remember(self.scope, fact.strip(), {"by": "agent"})
        return ToolResult(content=f"kept: {kept.text}", data={"fact_id": kept.id},
                          sources=[{"id": f"memory:{kept.id}"}])


class RecallTool:
    """Finds the scope's facts that best match a query."""

    def __init__(self, memory: Any, scope: str, k: int = 3) -> None:
        self.memory, self.scope, self.k = memory, scope, k
        self.spec = ToolSpec("recall", "Find facts kept in earlier conversations with this user that match a query.",
                             {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"],
                              "additionalProperties": False})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolResult.refused("query must be a non-empty string")
        facts = self.memory.recall(self.scope, query.strip(), k=self.k)
        if not facts:
            return ToolResult(content="no fact kept matches", data={"facts": []})
        return ToolResult(content="\n".join(f.text for f in facts), data={"facts": [f.to_dict() for f in facts]},
                          sources=[{"id": f"memory:{f.id}", "text": f.text} for f in facts])


def memory_tools(memory: Any, scope: str) -> list[Any]:
    """``remember`` and ``recall`` over ``memory``, bound to ``scope``."""
    return [RememberTool(memory, scope), RecallTool(memory, scope)]
