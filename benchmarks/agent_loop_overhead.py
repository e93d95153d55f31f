"""Agent loop overhead (issue #14): what flightdeck's agent loop costs around the model and the tools, beside
LangChain 1.x's ``create_agent`` running the same scripted model and the same tools.

Both loops run the same task: the model calls ``search`` (a tool returning three passages), then ``lookup`` (a tool
returning one row), then answers. The model is scripted (no LLM: its time would drown the loops' own), so what is
timed is each framework's work per run — building the prompt and the messages, parsing the model's action,
calling the tools, recording the steps — in the same process, interleaved run by run so that a noisy machine
slows both alike. Each agent is built once, as an app would build it; each run gets a fresh script.

- flightdeck: :class:`flightdeck.agents.runtime.AgentLoop` with :class:`flightdeck.testing.ScriptedAgentModel`
  (the JSON actions the grammar would force), the tools as flightdeck tools.
- LangChain: ``langchain.agents.create_agent`` with langchain-core's ``GenericFakeChatModel`` replying the same
  two tool calls and the answer as ``AIMessage(tool_calls=…)``, the same tools through
  :func:`flightdeck.agents.tools.langchain.to_langchain` (LangChain's own ``StructuredTool``).

    python benchmarks/agent_loop_overhead.py               # 300 runs each (after 20 warm-up runs)
    python benchmarks/agent_loop_overhead.py --runs 1000

Results: benchmarks/results/agent_loop_overhead.json (median and p95 per run, and the ratio). Rules:
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flightdeck.agents.runtime import AgentLoop
from flightdeck.agents.tools.base import ToolResult, ToolSpec
from flightdeck.agents.tools.langchain import to_langchain
from flightdeck.testing import ScriptedAgentModel

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What does the Aurora kettle hold, and what does it cost?"


class Search:
    spec = ToolSpec("search", "Search the documents.",
                    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        passages = [f"Kettles: the Aurora kettle boils 1.7 litres in three minutes (passage {n})." for n in range(3)]
        return ToolResult(content="\n".join(passages),
                          sources=[{"id": f"c{n}", "chunk_id": f"c{n}", "text": p} for n, p in enumerate(passages)])


class Lookup:
    spec = ToolSpec("lookup", "Look a product up in the shop database.",
                    {"type": "object", "properties": {"product": {"type": "string"}}, "required": ["product"]})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult(content="name | price_eur\nAurora kettle | 49.0", sources=[{"id": "sql:products"}])


ACTIONS = [{"tool": "search", "arguments": {"query": "Aurora kettle"}},
           {"tool": "lookup", "arguments": {"product": "Aurora kettle"}},
           {"answer": "It boils 1.7 litres [1] and costs 49 euros [4].", "cites": [1, 4]}]


MODEL = ScriptedAgentModel([])
LOOP = AgentLoop(MODEL, [Search(), Lookup()])  # built once too


def flightdeck_run() -> str:
    MODEL.replies, MODEL.requests = list(ACTIONS), []
    run = LOOP.run(QUESTION)
    assert run.status == "answered" and len(run.citations) == 2, run.stop_reason
    return run.answer


def langchain_runner() -> Any:
    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    tools = [to_langchain(Search()), to_langchain(Lookup())]

    class Model(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # the fake ignores tools, as a scripted model does
            return self

    model = Model(messages=iter([]))
    agent = create_agent(model, tools)  # built once, as an app would; each run gets a fresh script

    def run() -> str:
        model.messages = iter([
            AIMessage("", tool_calls=[{"name": "search", "args": {"query": "Aurora kettle"}, "id": "c1"}]),
            AIMessage("", tool_calls=[{"name": "lookup", "args": {"product": "Aurora kettle"}, "id": "c2"}]),
            AIMessage("It boils 1.7 litres [1] and costs 49 euros [4].")])
        out = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]})
        assert len(out["messages"]) == 6, out
        return str(out["messages"][-1].content)

    return run


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 3), "runs": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    langchain_run = langchain_runner()
    for _ in range(args.warmup):
        flightdeck_run()
        langchain_run()
    times: dict[str, list[float]] = {"flightdeck": [], "langchain": []}
    for _ in range(args.runs):  # interleaved: a noisy moment slows both
        for name, fn in (("flightdeck", flightdeck_run), ("langchain", langchain_run)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    import langchain

    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "langchain": langchain.__version__, "runs": args.runs, "load": os.getloadavg()[0],
              "flightdeck": _stats(times["flightdeck"]), "langchain_create_agent": _stats(times["langchain"])}
    result["ratio_langchain_over_flightdeck"] = round(
        result["langchain_create_agent"]["median_ms"] / result["flightdeck"]["median_ms"], 2)
    out = ROOT / "benchmarks" / "results" / "agent_loop_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
