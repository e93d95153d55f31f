"""Multi-agent workflows (checklist 9.3, agent-based system orchestration): a supervisor that hands sub-tasks to
specialised agents, all run by the same loop.

Each member of ``agents.agent.team`` is an :class:`~flightdeck.agents.runtime.AgentLoop` of its own, with only the
tools it names and its own instructions; to the supervisor it is one tool, ``ask_<name>(task)``, described by what
the member is good at. A member's answer comes back to the supervisor as an observation, and the sources the member
cited come with it, so the supervisor's final answer cites the same chunks, tables and URLs (and lineage follows
them). Every member's run is kept in the supervisor's trace (the step's ``data``), and each member has its own step
budget; all share the supervisor's model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flightdeck.agents.runtime import AgentError, AgentLoop
from flightdeck.agents.tools.base import Tool, ToolResult, ToolSpec
from flightdeck.spec.agents import AgentBudget, TeamMember

__all__ = ["DelegateTool", "team_loop"]

SUPERVISOR_INSTRUCTIONS = ("You lead a team. Hand each part of the question to the member whose description fits, "
                           "with a short, self-contained task; then answer from what they report, citing it.")


class DelegateTool:
    """``ask_<name>``: runs the member's own loop on a sub-task; its answer and cited sources come back."""

    def __init__(self, member: TeamMember, loop: AgentLoop) -> None:
        self.member, self.loop = member, loop
        self.spec = ToolSpec(f"ask_{member.name}", member.description,
                             {"type": "object", "properties": {"task": {"type": "string",
                                                                        "description": "what to find out"}},
                              "required": ["task"], "additionalProperties": False})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        task = arguments.get("task")
        if not isinstance(task, str) or not task.strip():
            return ToolResult.refused("task must be a non-empty string")
        run = self.loop.run(task.strip())
        data = {"member": self.member.name, "run": run.to_dict()}
        if run.status != "answered" or not run.answer:
            return ToolResult.refused(f"{self.member.name} did not answer ({run.stop_reason or run.status})", **data)
        sources = [{k: v for k, v in c.items() if k != "number"} for c in run.citations]
        for source in sources:  # the member's cited sources, each citable by the supervisor in its turn
            source["id"] = str(source.get("id") or source.get("chunk_id") or source.get("url") or "")
        return ToolResult(content=f"{self.member.name}: {run.answer}", data=data, sources=sources)


def team_loop(model: Any, tools: Sequence[Tool], members: Sequence[TeamMember], *, budget: AgentBudget,
              instructions: str = "") -> AgentLoop:
    """The supervisor: an agent whose tools are its ``members`` (each an agent over its share of ``tools``)."""
    by_name = {t.spec.name: t for t in tools}
    delegates = []
    for member in members:
        unknown = [n for n in member.tools if n not in by_name]
        if unknown:
            raise AgentError(f"team member {member.name}: no tool {', '.join(map(repr, unknown))} in agents.tools "
                             f"(the tools are: {', '.join(by_name)})")
        own = budget.model_copy(update={"max_steps": member.max_steps})
        delegates.append(DelegateTool(member, AgentLoop(model, [by_name[n] for n in member.tools], budget=own,
                                                        instructions=member.instructions)))
    lead = "\n\n".join(p for p in (SUPERVISOR_INSTRUCTIONS, instructions.strip()) if p)
    return AgentLoop(model, delegates, budget=budget, instructions=lead)
