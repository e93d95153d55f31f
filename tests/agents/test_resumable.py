"""An agent run that hands the client's tool calls back (checklist 3.2, 3.3): server tools run in the loop, a client's
call stops the run with its state as JSON, and the output resumes it with the same steps, sources and budget. A
scripted model; the HTTP shapes over it are tested in tests/serving/test_responses_api.py and
test_assistants_api.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from flightdeck.agents.resumable import HandBack, ResumableRun, with_client_tools
from flightdeck.agents.runtime import AgentLoop, AgentRun, AgentStep
from flightdeck.agents.tools.base import ToolResult, ToolSpec
from flightdeck.spec.agents import AgentBudget
from flightdeck.testing import ScriptedAgentModel

pytestmark = pytest.mark.unit

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


class Passages:
    """A search-like server tool."""

    spec = ToolSpec("search", "Search the documents.",
                    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.calls.append(dict(arguments))
        return ToolResult(content="", sources=[{"id": "c1", "chunk_id": "c1", "document_id": "docs/kettles.md",
                                                "text": "The Aurora kettle boils 1.7 litres."}])


def _loop(model: ScriptedAgentModel, search: Passages, **budget: Any) -> AgentLoop:
    base = AgentLoop(model, [search], budget=AgentBudget(**budget), instructions="Use the tools.")
    return with_client_tools(base, [WEATHER], instructions="Be brief.")


def test_a_client_call_stops_the_run_and_its_output_resumes_it_from_the_saved_state() -> None:
    model = ScriptedAgentModel([{"tool": "search", "arguments": {"query": "Aurora"}},
                                {"tool": "get_weather", "arguments": {"city": "Oslo"}},
                                {"answer": "1.7 litres; snowy in Oslo.", "cites": [1, 2]}])
    search = Passages()
    *steps, handback = ResumableRun.start(_loop(model, search), "Aurora size and Oslo weather?").steps()
    assert [s.tool for s in steps] == ["search"] and isinstance(handback, HandBack)
    assert handback.name == "get_weather" and handback.arguments == {"city": "Oslo"}
    assert model.requests[0]["messages"][0]["content"].endswith("Use the tools.\n\nBe brief.")
    state = json.loads(json.dumps(handback.state))  # plain JSON: kept between two requests
    # a new loop (the next request), the same tools: the run goes on with the client's output as its result
    resumed = ResumableRun.load(_loop(model, search), state)
    items = list(resumed.steps(output="snowy, -3 C"))
    call, answer, run = items
    assert isinstance(call, AgentStep) and call.tool == "get_weather" and call.sources == [2]
    assert call.content.startswith('<source id="2" tool="get_weather"') and "snowy" in call.content
    assert isinstance(run, AgentRun) and run.status == "answered" and answer.kind == "answer"
    assert [c["number"] for c in run.citations] == [1, 2] and run.citations[0]["chunk_id"] == "c1"
    assert [s.tool for s in run.steps] == ["search", "get_weather", None] and len(search.calls) == 1
    assert run.usage["completion_tokens"] == 30  # the whole run's, both requests


def test_a_resumed_run_needs_the_output_and_a_client_call_made_before_is_not_handed_back_again() -> None:
    model = ScriptedAgentModel([{"tool": "get_weather", "arguments": {"city": "Oslo"}},
                                {"tool": "get_weather", "arguments": {"city": "Oslo"}},
                                {"answer": "snowy", "cites": [1]}])
    *_, handback = ResumableRun.start(_loop(model, Passages()), "Oslo?").steps()
    with pytest.raises(ValueError, match="waits for the output of call"):
        list(ResumableRun.load(_loop(model, Passages()), handback.state).steps())
    items = list(ResumableRun.load(_loop(model, Passages()), handback.state).steps(output="snowy"))
    assert [getattr(i, "kind", None) for i in items[:-1]] == ["tool", "repeat", "answer"]
    assert isinstance(items[-1], AgentRun) and items[-1].answer == "snowy"


def test_the_budget_counts_across_the_hand_back() -> None:
    model = ScriptedAgentModel([{"tool": "get_weather", "arguments": {"city": "Oslo"}}, {"answer": "x", "cites": []}],
                               tokens_per_reply=400)
    *_, handback = ResumableRun.start(_loop(model, Passages(), max_tokens=300), "Oslo?").steps()
    *_, run = ResumableRun.load(_loop(model, Passages(), max_tokens=300), handback.state).steps(output="snowy")
    assert run.status == "budget_exhausted" and len(model.requests) == 1


def test_a_client_tool_may_not_take_a_server_tools_name() -> None:
    clash = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
    with pytest.raises(ValueError, match=r"tools\[0\]: 'search' is the name of one of the server's tools"):
        with_client_tools(AgentLoop(ScriptedAgentModel([]), [Passages()]), [clash])
