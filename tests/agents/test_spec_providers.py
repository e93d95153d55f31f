"""Each agent tool and memory of the checklist chosen in a spec (checklist 6.1, 6.2) and used by `run_agent`: the
provider built from its `agents.tools` / `agents.memory` entry by the registry, with the project's parts, and a run
that reaches it. The model is scripted; each provider's own tests (tests/agents/tools, tests/agents/memory) go deep."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck import Project
from flightdeck.testing import FakeEmbedder, ScriptedAgentModel
from needs import needs

pytestmark = pytest.mark.unit

BASE = """\
project: spec-providers
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 8}
agents:
"""


def project(root: Path, agents: str, script: list[Any]) -> tuple[Project, ScriptedAgentModel]:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "a.md").write_text("# Parcels\n\nParcels ship from Lyon.\n", "utf-8")
    (root / "flightdeck.yaml").write_text(BASE + agents, "utf-8")
    model = ScriptedAgentModel(script)
    built = Project.load(root).use(embedder=FakeEmbedder(dimension=32), agent_model=model)
    built.run()
    return built, model


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


def done(*cites: int) -> dict[str, Any]:
    return {"answer": "done", "cites": list(cites)}


# --- tools ---------------------------------------------------------------------------------------------------------
@pytest.mark.exercises("agents.tools.code_execution")
def test_code_execution_from_the_spec_runs_the_models_program_in_the_sandbox(tmp_path: Path) -> None:
    built, model = project(tmp_path, "  tools: [{provider: code_execution, timeout_s: 5}]\n",
                           [call("python", code="import os\nprint(6 * 7, os.getcwd(), os.path.exists('/work'))"),
                            done(1)])
    run = built.run_agent("What is six times seven?")
    assert run.steps[0].ok, run.steps[0].error
    assert "42 /sandbox False" in model.requests[1]["messages"][-1]["content"]


@pytest.fixture
def page_server() -> Iterator[str]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = (b"<html><head><title>Rates</title></head><body><article><h1>Rates</h1><p>Express shipping "
                    b"costs six euros more than standard shipping to every country we deliver to.</p></article>"
                    b"</body></html>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.exercises("agents.tools.browser")
def test_the_browser_tool_from_the_spec_reads_only_allow_listed_hosts(tmp_path: Path, page_server: str) -> None:
    built, model = project(tmp_path, f"  tools: [{{provider: browser, allow_hosts: ['{page_server}']}}]\n",
                           [call("fetch_page", url=f"http://{page_server}/rates"),
                            call("fetch_page", url="http://127.0.0.1:9/other"), done(1)])
    run = built.run_agent("What does express shipping cost?")
    assert run.steps[0].ok and "six euros more" in model.requests[1]["messages"][-1]["content"]
    assert not run.steps[1].ok and "allow" in (run.steps[1].error or "")
    assert run.citations[0]["id"] == f"http://{page_server}/rates"


@pytest.mark.exercises("agents.tools.custom_business_logic")
def test_a_teams_typed_function_named_in_the_spec_is_a_tool(tmp_path: Path) -> None:
    built, model = project(tmp_path, "  tools: [{provider: custom_business_logic, "
                                     "function: 'agent_fixtures:shipping_quote'}]\n",
                           [call("shipping_quote", weight_kg=-1), call("shipping_quote", weight_kg=2, express=True),
                            done(1)])
    run = built.run_agent("What does a 2 kg express parcel cost?")
    assert not run.steps[0].ok and "weight_kg" in (run.steps[0].error or "")
    assert run.steps[1].ok and '{"eur":12.9}' in model.requests[2]["messages"][-1]["content"]


@needs("langchain", "langchain_core")
@pytest.mark.exercises("agents.tools.langchain")
def test_a_langchain_tool_named_in_the_spec_is_a_tool(tmp_path: Path) -> None:
    built, model = project(tmp_path, "  tools: [{provider: langchain, tool: 'agent_fixtures:word_count_tool'}]\n",
                           [call("count_words", text="one two three"), done(1)])
    run = built.run_agent("How many words?")
    assert run.steps[0].ok and "3" in model.requests[1]["messages"][-1]["content"]


# --- memory ----------------------------------------------------------------------------------------------------------
def _conversation(built: Project, model: ScriptedAgentModel) -> None:
    built.run_agent("My parcel number is 77.", conversation="c1", actor="user:alice")
    built.run_agent("What was my parcel number?", conversation="c1", actor="user:alice")
    built.run_agent("What was my parcel number?", conversation="c1", actor="user:bob")
    assert [m["content"] for m in model.requests[1]["messages"][1:-1]] == ["My parcel number is 77.", "Noted."]
    assert all("77" not in m["content"] for m in model.requests[2]["messages"])  # bob's c1 is not alice's


CHAT = [{"answer": "Noted.", "cites": []}, {"answer": "77", "cites": []}, {"answer": "I do not know.", "cites": []}]
TOOLS = "  tools: [file_search]\n"


def test_builtin_memory_keeps_conversations_in_the_workspace(tmp_path: Path) -> None:
    built, model = project(tmp_path, TOOLS + "  memory: [builtin]\n", list(CHAT))
    _conversation(built, model)
    assert type(built.agent_memory).__name__ == "BuiltinMemory"


@needs("redis", "redis")
@pytest.mark.exercises("agents.memory.redis")
def test_redis_memory_from_the_spec(tmp_path: Path) -> None:
    import redis

    prefix = f"fd-test-{uuid.uuid4().hex[:8]}:"
    built, model = project(tmp_path, TOOLS + f"  memory: [{{provider: redis, prefix: '{prefix}', ttl: 1h}}]\n",
                           list(CHAT))
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        _conversation(built, model)
        keys = list(client.scan_iter(match=prefix + "*"))
        assert keys and all(0 < client.ttl(k) <= 3600 for k in keys if client.type(k) == b"list")
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)


@needs("langchain", "langchain_core")
@pytest.mark.exercises("agents.memory.langchain")
def test_langchain_memory_from_the_spec(tmp_path: Path) -> None:
    built, model = project(tmp_path, TOOLS + "  memory: [langchain]\n", list(CHAT))
    _conversation(built, model)
    assert type(built.agent_memory).__name__ == "LangChainMemory"


@needs("llamaindex", "llama_index.core")
@pytest.mark.exercises("agents.memory.llamaindex")
def test_llamaindex_memory_from_the_spec(tmp_path: Path) -> None:
    built, model = project(tmp_path, TOOLS + "  memory: [llamaindex]\n", list(CHAT))
    _conversation(built, model)
    assert type(built.agent_memory).__name__ == "LlamaIndexMemory"
