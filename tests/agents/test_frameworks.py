"""Agents of other frameworks on flightdeck's model and tools (checklist 3.3): LangChain 1.x ``create_agent`` and
LlamaIndex's ``FunctionAgent`` ask flightdeck's own server (``/v1/chat/completions`` with tools, uvicorn on
127.0.0.1) for each turn, run the flightdeck tool the model called (a search over a real project's index), send the
result back and get the answer; the run comes back as the flightdeck loop's ``AgentRun``. The server's agent model is
scripted here; the slow tests put the packaged Gemma GGUF (llama.cpp, held to the schema of the tools) there."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from flightdeck.agents.frameworks.base import FrameworkAgentBase, RunRecorder, cited_numbers
from flightdeck.agents.frameworks.local_endpoint import local_endpoint
from flightdeck.agents.runtime import AgentError
from flightdeck.agents.tools.base import ToolResult, ToolSpec
from flightdeck.errors import MissingDependencyError
from flightdeck.spec.agents import AgentBudget
from flightdeck.testing import ScriptedAgentModel
from needs import needs_provider

DOCS = {"kettles.md": "# Kettles\n\nThe Aurora kettle boils 1.7 litres in three minutes.\n",
        "toasters.md": "# Toasters\n\nThe Boreal toaster browns four slices at once.\n"}


class Scripted(ScriptedAgentModel):
    """A scripted model whose script a test extends while the server runs."""

    def add(self, *replies: Any) -> None:
        self.replies = [*self.replies, *replies]


class Prices:
    """A small tool with a source that has no text: a price list."""

    spec = ToolSpec("lookup_price", "The price of a product, by name.",
                    {"type": "object", "properties": {"product": {"type": "string"}}, "required": ["product"]})

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.calls.append(dict(arguments))
        product = arguments.get("product")
        if not isinstance(product, str):
            return ToolResult.refused("product must be a string")
        return ToolResult(content=f"{product}: 49 EUR", data={"eur": 49}, sources=[{"id": "prices.csv"}])


class Broken:
    """A tool whose backend is down."""

    spec = ToolSpec("inventory", "Units in stock of a product.",
                    {"type": "object", "properties": {"product": {"type": "string"}}, "required": ["product"]})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        raise ConnectionError("inventory database unreachable")


def _frameworks() -> dict[str, type[FrameworkAgentBase]]:
    from flightdeck.agents.frameworks.langchain import LangchainAgent
    from flightdeck.agents.frameworks.llamaindex import LlamaindexAgent

    return {"langchain": LangchainAgent, "llamaindex": LlamaindexAgent}


FRAMEWORKS = ["langchain", "llamaindex"]

# LlamaIndex's workflows read every attribute of the agent (a pydantic model) when it is built
pytestmark = [pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")]


def _project(root: Path, extra: str = "") -> Any:
    from flightdeck import Project
    from flightdeck.testing import FakeEmbedder

    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: handbook
        data:
          sources: [{provider: files, path: ./docs}]
          chunking: {provider: recursive, size: 64, overlap: 8}
        retrieval: {system: [hybrid_search]}
        agents:
          tools: [{provider: file_search, k: 1}]
        """) + extra, "utf-8")
    project = Project.load(root).use(embedder=FakeEmbedder())
    project.run()
    return project


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str, str, Scripted]]:
    """A project whose server's agent model is scripted, served on 127.0.0.1: (project, base_url, key, model)."""
    pytest.importorskip("fastapi")
    from flightdeck.governance.access import Role
    from flightdeck.serving.api import create_app
    from flightdeck.serving.service import Service

    project = _project(tmp_path)
    model = Scripted([])
    project.use(agent_model=model)
    key = project.api_keys.create(Role.VIEWER).key
    with local_endpoint(lambda: create_app(Service(project, project.api_keys)), key) as (base_url, api_key):
        yield project, base_url, api_key, model


def _agent(framework: str, base_url: str, key: str, tools: list[Any], **options: Any) -> FrameworkAgentBase:
    pytest.importorskip({"langchain": "langchain_openai", "llamaindex": "llama_index.core"}[framework])
    return _frameworks()[framework](base_url=base_url, api_key=key, model="handbook", tools=tools, **options)


# --------------------------------------------------------------------------------------- against flightdeck's server

@pytest.mark.integration
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_framework_calls_a_flightdeck_tool_through_flightdecks_endpoint_and_answers_citing_it(
        framework: str, served: tuple[Any, str, str, Scripted]) -> None:
    project, base_url, key, model = served
    model.add({"tool": "search_documents", "arguments": {"query": "Aurora kettle litres"}},
              {"answer": "The Aurora boils 1.7 litres [1].", "cites": [1]})
    agent = _agent(framework, base_url, key, project.assembly.agent_tools(), instructions="Answer in one sentence.")
    run = agent.run("How much water does the Aurora kettle boil?",
                    history=[{"role": "user", "content": "I am shopping for a kettle."},
                             {"role": "assistant", "content": "Happy to help."}])
    assert run.status == "answered", run.stop_reason
    assert run.answer == "The Aurora boils 1.7 litres [1]." and run.model == "handbook"
    assert [s.kind for s in run.steps] == ["tool", "answer"]
    search = run.steps[0]
    assert search.tool == "search_documents" and search.arguments == {"query": "Aurora kettle litres"}
    assert search.ok and search.sources == [1] and len(search.result_sha256 or "") == 64
    assert search.content.startswith("[1] ") and "1.7 litres" in search.content
    # the citation maps back to the chunk the search returned
    [cited] = run.citations
    assert cited["number"] == 1 and cited["tool"] == "search_documents" and cited["source_uri"].endswith("kettles.md")
    assert cited["chunk_id"] and run.sources[0]["chunk_id"] == cited["chunk_id"]
    # the tokens the endpoint reported, turn by turn
    first, second = (r["messages"] for r in model.requests)
    assert search.completion_tokens == 10 and run.steps[1].completion_tokens == 10
    assert run.usage["completion_tokens"] == 20 and run.usage["prompt_tokens"] == (
        search.prompt_tokens + run.steps[1].prompt_tokens) > 0
    # what flightdeck's model read: the framework's system prompt and instructions, the history, the question; then
    # its own call, and the passage the tool really found (fenced by the server) sent back as the tool result
    assert "cite the numbers you use" in first[0]["content"] and first[0]["content"].endswith("one sentence.")
    assert [m["content"] for m in first[1:]] == [
        "I am shopping for a kettle.", json.dumps({"answer": "Happy to help.", "cites": []}),
        "How much water does the Aurora kettle boil?"]
    assert json.loads(second[-2]["content"]) == {"tool": "search_documents",
                                                 "arguments": {"query": "Aurora kettle litres"}}
    # (the [1] the tool wrote became the source's number)
    assert second[-1]["content"].startswith('<source id="1" tool="search_documents">\n')
    assert "1.7 litres" in second[-1]["content"] and "[1]" not in second[-1]["content"]
    # each turn was held to a schema of the framework's tools (the search's own parameters), within the budget's
    # tokens per turn
    assert [r["max_tokens"] for r in model.requests] == [384, 384]
    schema = model.requests[0]["schema"]["anyOf"][0]
    assert schema["properties"]["tool"] == {"const": "search_documents"}
    assert schema["properties"]["arguments"]["required"] == ["query"]


@pytest.mark.integration
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_citation_the_model_gave_only_in_its_json_reaches_the_framework_as_a_marker_in_the_answer(
        framework: str, served: tuple[Any, str, str, Scripted]) -> None:
    project, base_url, key, model = served
    model.add({"tool": "search_documents", "arguments": {"query": "Boreal toaster"}},
              {"answer": "The Boreal browns four slices.", "cites": [1]})
    run = _agent(framework, base_url, key, project.assembly.agent_tools()).run("How many slices does the Boreal take?")
    assert run.status == "answered" and run.answer == "The Boreal browns four slices. [1]"
    [cited] = run.citations
    assert cited["tool"] == "search_documents" and cited["source_uri"].endswith("toasters.md")
    assert run.sources == [{"number": 1, **{k: v for k, v in cited.items() if k != "number"}}]
    assert model.requests[1]["schema"]["anyOf"][-1]["properties"]["cites"]["items"] == {"enum": [1]}


@pytest.mark.integration
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_refusal_is_shown_to_the_model_which_tries_again(framework: str,
                                                           served: tuple[Any, str, str, Scripted]) -> None:
    _, base_url, key, model = served
    prices = Prices()
    model.add({"tool": "lookup_price", "arguments": {"product": 7}},
              {"tool": "lookup_price", "arguments": {"product": "Aurora"}},
              {"answer": "It costs 49 EUR [1].", "cites": [1]})
    run = _agent(framework, base_url, key, [prices]).run("What does the Aurora cost?")
    assert run.status == "answered" and prices.calls == [{"product": 7}, {"product": "Aurora"}]
    refused, found, _ = run.steps
    assert not refused.ok and refused.error == "product must be a string" and refused.sources == []
    assert found.ok and found.sources == [1] and found.content == "[1] Aurora: 49 EUR"
    assert "product must be a string" in model.requests[1]["messages"][-1]["content"]
    assert run.citations == [{"number": 1, "tool": "lookup_price", "step": 2, "id": "prices.csv"}]


@pytest.mark.integration
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_after_the_last_step_the_model_may_only_answer(framework: str,
                                                       served: tuple[Any, str, str, Scripted]) -> None:
    _, base_url, key, model = served
    model.add({"tool": "lookup_price", "arguments": {"product": "Aurora"}}, {"answer": "49 EUR [1]", "cites": [1]})
    run = _agent(framework, base_url, key, [Prices()], budget=AgentBudget(max_steps=1)).run("Aurora price?")
    assert run.status == "answered" and [s.kind for s in run.steps] == ["tool", "answer"]
    assert "anyOf" in model.requests[0]["schema"]  # a call or an answer
    assert model.requests[1]["schema"]["required"] == ["answer", "cites"]  # tool_choice none: an answer only


@pytest.mark.integration
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_spent_tokens_end_the_run_before_the_next_model_turn(framework: str,
                                                             served: tuple[Any, str, str, Scripted]) -> None:
    _, base_url, key, model = served
    model.add({"tool": "lookup_price", "arguments": {"product": "Aurora"}}, {"answer": "49 EUR", "cites": []})
    run = _agent(framework, base_url, key, [Prices()], budget=AgentBudget(max_tokens=256)).run("Aurora price?")
    assert run.status == "budget_exhausted" and "tokens budget" in run.stop_reason and run.answer == ""
    assert [s.kind for s in run.steps] == ["tool"] and len(model.requests) == 1  # the first turn read > 256 tokens
    assert run.usage["prompt_tokens"] > 256


@pytest.mark.integration
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_tool_that_raises_ends_the_run_as_failed_with_the_step_recorded(
        framework: str, served: tuple[Any, str, str, Scripted]) -> None:
    _, base_url, key, model = served
    model.add({"tool": "inventory", "arguments": {"product": "Aurora"}}, {"answer": "none left", "cites": []})
    run = _agent(framework, base_url, key, [Broken()]).run("Is the Aurora in stock?")
    assert run.status == "failed" and run.answer == ""
    [step] = run.steps
    assert step.kind == "error" and step.tool == "inventory" and not step.ok
    assert "ConnectionError: inventory database unreachable" in (step.error or "") and step.error in run.stop_reason


@pytest.mark.integration
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_key_the_endpoint_refuses_fails_the_run_saying_why(framework: str,
                                                             served: tuple[Any, str, str, Scripted]) -> None:
    _, base_url, _, model = served
    run = _agent(framework, base_url, "fd_not-a-key", [Prices()]).run("Aurora price?")
    assert run.status == "failed" and run.steps == [] and model.requests == []
    assert "AuthenticationError" in run.stop_reason and "401" in run.stop_reason


# ----------------------------------------------------------------------------------------------- what they share

@pytest.mark.unit
def test_sources_are_numbered_as_observed_and_only_those_can_be_cited() -> None:
    recorder = RunRecorder([Prices()], AgentBudget(max_observation_chars=200))
    [tool] = recorder.tools()
    passages = ToolResult(content="two passages", sources=[{"id": "c1", "text": "alpha " * 80},
                                                           {"id": "c2", "text": "beta"}])

    class Search:
        spec = ToolSpec("search", "Search.", {"type": "object", "properties": {}})

        def call(self, arguments: Mapping[str, Any]) -> ToolResult:
            return passages

    assert tool.call({"product": "Aurora"}).content == "[1] Aurora: 49 EUR"
    result = recorder.call(Search(), {})
    assert [s["number"] for s in result.sources] == [2, 3] and result.content.startswith("[2] alpha")
    assert result.content.split("\n")[0].endswith(" […cut]") and result.content.endswith("[3] beta")
    assert recorder.answer_only is False and recorder.calls == 2
    run = recorder.finish("q", "Alpha [2], beta [3, 9] and [1].", "answered", model="m")
    assert [c["number"] for c in run.citations] == [2, 3, 1] and run.citations[0]["id"] == "c1"
    assert "text" not in run.sources[1] and run.steps[-1].sources == [2, 3, 1]
    assert cited_numbers("see [12] and [x]", 12) == [12] and cited_numbers("[0] [4]", 3) == []


@pytest.mark.unit
def test_a_framework_agent_checks_what_it_is_built_from() -> None:
    with pytest.raises(AgentError, match="base_url 'localhost:8000' is not an http"):
        FrameworkAgentBase(base_url="localhost:8000", api_key="k", model="m", tools=[])
    with pytest.raises(AgentError, match="api_key is empty"):
        FrameworkAgentBase(base_url="http://127.0.0.1:1/v1", api_key="", model="m", tools=[])
    with pytest.raises(AgentError, match="two tools are named lookup_price"):
        FrameworkAgentBase(base_url="http://127.0.0.1:1/v1", api_key="k", model="m", tools=[Prices(), Prices()])
    with pytest.raises(AgentError, match="the question is empty"):
        FrameworkAgentBase(base_url="http://127.0.0.1:1/v1", api_key="k", model="m", tools=[]).run("  ")


@pytest.mark.unit
@pytest.mark.parametrize(("framework", "module"), [("langchain", "langchain_openai"),
                                                   ("llamaindex", "llama_index.core.agent.workflow")])
def test_a_missing_framework_names_the_extra_that_brings_it(framework: str, module: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import` finds when the package is not installed
    agent = _frameworks()[framework](base_url="http://127.0.0.1:9/v1", api_key="k", model="m", tools=[Prices()])
    with pytest.raises(MissingDependencyError, match=rf"needs: pip install 'flightdeck\[{framework}\]'"):
        agent.run("Aurora price?")


@pytest.mark.integration
def test_the_local_endpoint_serves_on_loopback_only_while_the_block_runs() -> None:
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    with local_endpoint(lambda: app, "secret") as (base_url, key):
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1") and key == "secret"
        assert httpx.get(f"{base_url}/models").text == "/v1/models"
        port = int(base_url.split(":")[2].split("/")[0])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    with pytest.raises(AgentError, match="api_key is empty"), local_endpoint(lambda: app, ""):
        pass


# ---------------------------------------------------------------------------------------- the packaged local model

@pytest.mark.integration
@pytest.mark.slow
@needs_provider("generator", "llama_cpp")
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_framework_runs_on_the_packaged_model_with_only_well_formed_tool_calls(framework: str,
                                                                                    tmp_path: Path) -> None:
    """Gemma 3 270M behind flightdeck's endpoint, held to the schema of the framework's tools: the run ends (an
    answer, or the framework's step limit) and every call the framework ran names a tool that exists, with an object
    of arguments. A turn takes up to a minute on two shared cores, so no timeout cuts one short (a request the client
    gave up on would still be writing when the model closes)."""
    pytest.importorskip("fastapi")
    from flightdeck.governance.access import Role
    from flightdeck.models.generators.llama_cpp import LlamaCppConfig, LlamaCppGenerator
    from flightdeck.serving.api import create_app
    from flightdeck.serving.service import Service

    project = _project(tmp_path, "deployment: {server: {request_timeout_s: 900}}\n")
    model = LlamaCppGenerator(LlamaCppConfig())
    project.use(agent_model=model)
    key = project.api_keys.create(Role.VIEWER).key
    try:
        with local_endpoint(lambda: create_app(Service(project, project.api_keys)), key,
                            stop_timeout=900) as (base_url, api_key):
            agent = _agent(framework, base_url, api_key, [*project.assembly.agent_tools(), Prices()], timeout=900,
                           budget=AgentBudget(max_steps=2, max_answer_tokens=96, max_seconds=1800))
            run = agent.run("How much water does the Aurora kettle boil?")
    finally:
        model.close()
    assert run.status in ("answered", "budget_exhausted"), run.stop_reason
    assert run.status != "answered" or run.answer
    assert run.usage["prompt_tokens"] > 0 and run.steps
    for step in run.steps:
        assert step.kind in ("tool", "answer"), step
        if step.kind == "tool":
            assert step.tool in ("search_documents", "lookup_price") and isinstance(step.arguments, dict)
            assert step.result_sha256
    assert all(1 <= c["number"] <= len(run.sources) for c in run.citations)
