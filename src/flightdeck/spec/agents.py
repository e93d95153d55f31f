"""``agents.agent``: how far a tool-using agent may go and what it is told (checklist 0.1 agents, 0.2 agentic
workflow, phase 6). The tools are ``agents.tools`` (providers of the agent_tool category), the model the agent
thinks with ``agents.generator`` (default: ``model.generator`` when it is an LLM, else the packaged local one).

```yaml
agents:
  tools:
    - file_search                                   # the project's own hybrid search
    - {provider: sql_database, url: "sqlite:///shop.db", tables: [orders, customers]}
    - {provider: code_execution, timeout_s: 10}
  agent:
    instructions: "Prices are in euros."            # added to the agent's system prompt
    budget: {max_steps: 6, max_tokens: 16000, max_seconds: 120}
    team:                                           # optional: specialised agents under this one (a supervisor)
      - {name: librarian, description: "answers from the documents", tools: [search_documents]}
      - {name: analyst, description: "answers from the shop database", tools: [sql_schema, sql_query]}
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AgentBudget", "AgentSettings", "TeamMember"]


class AgentBudget(BaseModel):
    """How far one agent run may go."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_steps: int = Field(6, ge=1, le=50, description="tool calls per run; then one last turn to answer")
    max_tokens: int = Field(16000, ge=256, description="tokens read and written by the model in all, per run")
    max_seconds: float = Field(120.0, gt=0, description="wall time per run")
    max_answer_tokens: int = Field(384, ge=16, le=8192, description="tokens the model may write per turn")
    max_observation_chars: int = Field(2000, ge=200, description="characters of one tool result the model reads")


class TeamMember(BaseModel):
    """One specialised agent of ``agents.agent.team``: its own tools (names of agents.tools' tools) and
    instructions; the supervisor hands it sub-tasks through the tool ``ask_<name>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$", description="the member's name: ask_<name> is its tool")
    description: str = Field(min_length=1, max_length=500, description="what it is good at: the supervisor reads "
                                                                       "it to choose whom to ask")
    tools: list[str] = Field(min_length=1, description="the tools it may call, by name (search_documents, "
                                                       "sql_query…): a subset of agents.tools'")
    instructions: str = Field("", max_length=8000, description="added to its system prompt")
    max_steps: int = Field(4, ge=1, le=50, description="its tool calls per sub-task")


class AgentSettings(BaseModel):
    """``agents.agent``: the agent's instructions and budget, and optionally a team it supervises."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    instructions: str = Field("", max_length=8000, description="added to the agent's system prompt (the house "
                                                               "rules of this project)")
    budget: AgentBudget = Field(default_factory=AgentBudget, description="steps, tokens and time per run")
    history_tokens: int = Field(2000, ge=100, description="a conversation's earlier turns fit this many tokens; "
                                                          "older ones are summarised by the agent's model")
    team: list[TeamMember] = Field(default_factory=list, description="specialised agents: the agent becomes their "
                                   "supervisor and calls ask_<name> to hand each a sub-task (needs "
                                   "agent_orchestration in improvement.future_proofing)")

    @field_validator("team")
    @classmethod
    def _distinct(cls, team: list[TeamMember]) -> list[TeamMember]:
        names = [m.name for m in team]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two team members are named {', '.join(twice)}")
        return team
