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
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentBudget", "AgentSettings"]


class AgentBudget(BaseModel):
    """How far one agent run may go."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_steps: int = Field(6, ge=1, le=50, description="tool calls per run; then one last turn to answer")
    max_tokens: int = Field(16000, ge=256, description="tokens read and written by the model in all, per run")
    max_seconds: float = Field(120.0, gt=0, description="wall time per run")
    max_answer_tokens: int = Field(384, ge=16, le=8192, description="tokens the model may write per turn")
    max_observation_chars: int = Field(2000, ge=200, description="characters of one tool result the model reads")


class AgentSettings(BaseModel):
    """``agents.agent``: the agent's instructions and budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    instructions: str = Field("", max_length=8000, description="added to the agent's system prompt (the house "
                                                               "rules of this project)")
    budget: AgentBudget = Field(default_factory=AgentBudget, description="steps, tokens and time per run")
