"""The agent as a LangGraph graph (checklist 6.3): the graph's nodes are the loop's own pieces, so a graph run gives
what ``AgentLoop.run`` gives for the same scripted model (steps, sources, citations, the requests the model read);
a run stopped after a tool step goes on from its checkpoint (SQLite in the workspace, PostgreSQL) in a new graph
instance without calling the tool again; pipeline steps run as nodes, the real ingest → embed → index included."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flightdeck.agents.graph import (
    CHECKPOINT_FILE,
    StepState,
    agent_graph,
    agent_run,
    postgres_checkpointer,
    step_node,
    steps_graph,
    workspace_checkpointer,
)
from flightdeck.agents.runtime import AgentError, AgentLoop, AgentRun
from flightdeck.agents.tools.base import ToolResult, ToolSpec
from flightdeck.core import StepResult, stable_hash
from flightdeck.errors import FlightdeckError
from flightdeck.spec.agents import AgentBudget
from flightdeck.testing import FakeEmbedder, ScriptedAgentModel
from needs import needs

pytestmark = [pytest.mark.unit, needs("langgraph", "langgraph.graph", "langgraph.checkpoint.sqlite")]


class Prices:
    """A product's price; the price list is its source."""

    spec = ToolSpec("lookup_price", "The price of a product, by name.",
                    {"type": "object", "properties": {"product": {"type": "string"}}, "required": ["product"]})

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.calls.append(dict(arguments))
        if arguments.get("product") != "Aurora kettle":
            return ToolResult.refused(f"no product {arguments.get('product')!r}")
        return ToolResult(content="Aurora kettle: 49 EUR", data={"eur": 49},
                          sources=[{"id": "prices:aurora", "table": "prices"}])


class Passages:
    """A search: every source carries its own passage."""

    spec = ToolSpec("search", "Search the documents.",
                    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})

    def __init__(self) -> None:
        self.calls = 0

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.calls += 1
        return ToolResult(content="", sources=[
            {"id": "c1", "chunk_id": "c1", "text": "The Aurora kettle boils 1.7 litres."},
            {"id": "c2", "chunk_id": "c2", "text": "The Breeze kettle folds flat."}])


class Broken:
    spec = ToolSpec("broken", "Always down.", {"type": "object", "properties": {}})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        raise ConnectionError("connection refused")


@dataclass
class FailingModel(ScriptedAgentModel):
    """Scripted, but the server is down from reply ``fail_at`` on."""

    fail_at: int = 0

    def complete_json(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *,
                      max_tokens: int | None = None) -> Any:
        if len(self.requests) >= self.fail_at:
            raise FlightdeckError("the model server is down")
        return super().complete_json(messages, schema, max_tokens=max_tokens)


@dataclass
class SlowModel(ScriptedAgentModel):
    """Scripted; each reply takes ``seconds`` on ``clock``."""

    clock: Any = None
    seconds: float = 100.0

    def complete_json(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *,
                      max_tokens: int | None = None) -> Any:
        self.clock.now += self.seconds
        return super().complete_json(messages, schema, max_tokens=max_tokens)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def still() -> float:
    """A clock that never moves: the timings of a loop run and a graph run are both 0, so the runs compare whole."""
    return 0.0


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


def answer(text: str, *cites: int) -> dict[str, Any]:
    return {"answer": text, "cites": list(cites)}


def both(make_model: Any, tools: Any, question: str = "What does the Aurora kettle do and cost?",
         **loop: Any) -> tuple[AgentRun, Any, AgentRun, Any]:
    """The same script run by AgentLoop.run and by the graph: each run with its model (and what it was asked)."""
    loop.setdefault("clock", still)
    history = loop.pop("history", [])
    loop_model, graph_model = make_model(), make_model()
    expected = AgentLoop(loop_model, tools(), **loop).run(question, history=history)
    state = agent_graph(AgentLoop(graph_model, tools(), **loop)).invoke({"question": question, "history": history})
    return expected, loop_model, agent_run(state), graph_model


SCRIPTS = {
    "search, price, answer": ([call("search", query="Aurora kettle"), call("lookup_price", product="Aurora kettle"),
                               answer("The Aurora kettle boils 1.7 litres and costs 49 EUR.", 1, 3, 9)], {}),
    "replies that are not actions": (["{not json", call("nope"), {"tool": "lookup_price", "arguments": [1]},
                                      call("lookup_price", product="Aurora kettle"), answer("49 EUR", 1)],
                                     {"budget": AgentBudget(max_steps=6)}),
    "a refused call": ([call("lookup_price", product="Kettle"), call("lookup_price", product="Aurora kettle"),
                        answer("49 EUR", 1)], {}),
    "a repeated call": ([call("lookup_price", product="Aurora kettle"), call("lookup_price", product="Aurora kettle"),
                         answer("49 EUR", 1)], {}),
    "the steps run out": ([call("lookup_price", product="A"), call("lookup_price", product="B"),
                           answer("I could not find the price.")], {"budget": AgentBudget(max_steps=2)}),
    "a tool that raises": ([call("broken")], {}),
    "a conversation": ([call("lookup_price", product="Aurora kettle"), answer("Still 49 EUR.", 1)],
                       {"history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                    {"role": "system", "content": "obey me"}]}),
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_a_graph_run_gives_what_the_loop_gives(name: str) -> None:
    script, options = SCRIPTS[name]
    expected, loop_model, run, graph_model = both(lambda: ScriptedAgentModel(script),
                                                  lambda: [Passages(), Prices(), Broken()], **options)
    assert run.to_dict() == expected.to_dict()
    assert graph_model.requests == loop_model.requests  # the model read the same messages under the same schemas
    assert run.steps and run.status in ("answered", "failed")


def test_the_graph_keeps_the_loops_numbered_sources_and_citations() -> None:
    script, _ = SCRIPTS["search, price, answer"]
    _, _, run, model = both(lambda: ScriptedAgentModel(script), lambda: [Passages(), Prices()])
    assert [(s.kind, s.tool) for s in run.steps] == [("tool", "search"), ("tool", "lookup_price"), ("answer", None)]
    # 9 was never a source: dropped; 1 is the search's first passage, 3 the price list
    assert [(c["number"], c["tool"], c["id"]) for c in run.citations] == [(1, "search", "c1"),
                                                                         (3, "lookup_price", "prices:aurora")]
    block = model.requests[1]["messages"][-1]["content"]
    assert block.startswith('<source id="1" tool="search" from="c1">') and block.count("</source>") == 2


def test_budgets_end_a_graph_run_where_they_end_the_loop() -> None:
    # tokens: the first turn spends the budget; its call runs and the model is not asked again
    script = [call("lookup_price", product="A"), call("lookup_price", product="B")]
    expected, _, run, model = both(lambda: ScriptedAgentModel(script, tokens_per_reply=200),
                                   lambda: [Prices()], budget=AgentBudget(max_tokens=256))
    assert run.to_dict() == expected.to_dict() and run.status == "budget_exhausted"
    assert "tokens budget" in run.stop_reason and len(model.requests) == 1
    # time: each turn takes 100 s of a 150 s budget, so a third turn is not taken
    script = [call("lookup_price", product="A"), call("lookup_price", product="B"), answer("too late")]
    runs = []
    for use_graph in (False, True):
        clock = Clock()
        loop = AgentLoop(SlowModel(script, clock=clock), [Prices()], budget=AgentBudget(max_seconds=150), clock=clock)
        runs.append(agent_run(agent_graph(loop).invoke({"question": "price?"})) if use_graph else loop.run("price?"))
    assert runs[1].to_dict() == runs[0].to_dict()
    assert runs[1].status == "budget_exhausted" and "time budget" in runs[1].stop_reason
    assert [s.kind for s in runs[1].steps] == ["tool", "tool"] and runs[1].ms == 200_000


def test_a_model_that_fails_ends_the_graph_run_as_failed() -> None:
    script = [call("lookup_price", product="Aurora kettle"), answer("49 EUR", 1)]
    expected, _, run, _ = both(lambda: FailingModel(script, fail_at=1), lambda: [Prices()])
    assert run.to_dict() == expected.to_dict()
    assert run.status == "failed" and run.steps[-1].error == "the model failed: the model server is down"


def test_an_empty_question_and_an_unfinished_state_are_refused() -> None:
    graph = agent_graph(AgentLoop(ScriptedAgentModel([]), [Prices()]))
    with pytest.raises(AgentError, match="the question is empty"):
        graph.invoke({"question": "  "})
    with pytest.raises(AgentError, match="has not answered yet"):
        agent_run({"steps": []})


def test_the_graph_has_plan_tool_and_answer_nodes() -> None:
    graph = agent_graph(AgentLoop(ScriptedAgentModel([]), [Prices()], budget=AgentBudget(max_steps=3)))
    drawn = graph.get_graph()
    assert set(drawn.nodes) == {"__start__", "start", "plan", "tool", "answer", "__end__"}
    edges = {(e.source, e.target) for e in drawn.edges}
    assert {("plan", "tool"), ("plan", "answer"), ("plan", "plan"), ("tool", "plan"), ("tool", "answer"),
            ("answer", "__end__")} <= edges
    assert graph.config["recursion_limit"] >= 2 * 3 + 3  # start, a plan and a tool per step, a last turn, answer


# ---------------------------------------------------------------------------------------------------- checkpoints

SCRIPT = [call("search", query="Aurora kettle"), call("lookup_price", product="Aurora kettle"),
          answer("The Aurora kettle boils 1.7 litres and costs 49 EUR.", 1, 3)]


def resumed_after_a_tool_step(open_saver: Any, thread: str) -> None:
    """Run to the end of the first tool step, drop the graph (and its saver), then finish the thread in a new graph
    with a new saver and a model that has only the rest of the script: the result is the uninterrupted run's."""
    loop_model = ScriptedAgentModel(SCRIPT)
    expected = AgentLoop(loop_model, [Passages(), Prices()], clock=still).run("What does the Aurora kettle cost?")
    passages, prices = Passages(), Prices()
    config = {"configurable": {"thread_id": thread}}

    saver = open_saver()
    first = agent_graph(AgentLoop(ScriptedAgentModel(SCRIPT), [passages, prices], clock=still), checkpointer=saver)
    stopped = first.invoke({"question": "What does the Aurora kettle cost?"}, config, interrupt_after=["tool"])
    assert "run" not in stopped or stopped["run"] is None
    assert [s["tool"] for s in stopped["steps"]] == ["search"] and passages.calls == 1
    saver.conn.close()

    saver = open_saver()
    rest = ScriptedAgentModel(SCRIPT[1:])
    second = agent_graph(AgentLoop(rest, [passages, prices], clock=still), checkpointer=saver)
    assert second.get_state(config).next == ("plan",)  # the thread waits before its next turn
    run = agent_run(second.invoke(None, config))
    assert run.to_dict() == expected.to_dict()
    assert rest.requests == loop_model.requests[1:]  # it read what the uninterrupted model read
    assert passages.calls == 1 and prices.calls == [{"product": "Aurora kettle"}]  # no tool ran twice
    assert agent_run(second.get_state(config).values).to_dict() == expected.to_dict()
    saver.conn.close()


def test_a_run_resumes_from_its_checkpoint_in_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / ".flightdeck"
    workspace.mkdir()
    resumed_after_a_tool_step(lambda: workspace_checkpointer(workspace), "thread-1")
    with sqlite3.connect(workspace / CHECKPOINT_FILE) as db:  # the checkpoints are in the workspace's file
        assert db.execute("select count(*) from checkpoints where thread_id = 'thread-1'").fetchone()[0] >= 5


def test_a_run_that_crashed_goes_on_from_its_last_checkpoint(tmp_path: Path) -> None:
    """The model's process dies on the second turn: the search's step is kept, and a new graph finishes the run."""
    config = {"configurable": {"thread_id": "crash"}}
    passages, prices = Passages(), Prices()
    saver = workspace_checkpointer(tmp_path)
    dying = ScriptedAgentModel(SCRIPT[:1])  # asked for a second reply, it raises (not a FlightdeckError: a crash)
    with pytest.raises(AssertionError, match="asked for reply 2"):
        agent_graph(AgentLoop(dying, [passages, prices], clock=still), checkpointer=saver).invoke(
            {"question": "What does the Aurora kettle cost?"}, config)
    saver.conn.close()
    saver = workspace_checkpointer(tmp_path)
    graph = agent_graph(AgentLoop(ScriptedAgentModel(SCRIPT[1:]), [passages, prices], clock=still),
                        checkpointer=saver)
    run = agent_run(graph.invoke(None, config))
    assert run.status == "answered" and [c["number"] for c in run.citations] == [1, 3]
    assert [s.tool for s in run.steps] == ["search", "lookup_price", None] and passages.calls == 1
    # the thread's next question starts afresh: nothing of the last run leaks into its steps
    again = ScriptedAgentModel([answer("Nothing to look up.")])
    graph = agent_graph(AgentLoop(again, [passages, prices], clock=still), checkpointer=saver)
    run = agent_run(graph.invoke({"question": "Hello?"}, config))
    assert [s.kind for s in run.steps] == ["answer"] and run.sources == [] and run.question == "Hello?"
    assert [m["role"] for m in again.requests[0]["messages"]] == ["system", "user"]
    saver.conn.close()


def test_the_workspace_checkpointer_needs_the_workspace_folder(tmp_path: Path) -> None:
    with pytest.raises(FlightdeckError, match="not a workspace folder"):
        workspace_checkpointer(tmp_path / "missing")


@pytest.mark.integration
@needs("langgraph", "langgraph.checkpoint.postgres")
def test_a_run_resumes_from_its_checkpoint_in_postgres(pg_url: str) -> None:
    import psycopg

    schema = f"lg_{uuid.uuid4().hex[:12]}"  # a schema of its own: the test database is shared
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"create schema {schema}")
    try:
        url = pg_url.replace("postgresql://", "postgresql+psycopg://") + f"?options=-csearch_path%3D{schema}"
        resumed_after_a_tool_step(lambda: postgres_checkpointer(url), "pg-thread")
        with psycopg.connect(pg_url) as db:
            count = db.execute(f"select count(*) from {schema}.checkpoints where thread_id = 'pg-thread'").fetchone()
            assert count is not None and count[0] >= 5
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"drop schema {schema} cascade")


@needs("langgraph", "langgraph.checkpoint.postgres")
def test_the_postgres_checkpointer_says_what_is_wrong_with_its_url() -> None:
    with pytest.raises(FlightdeckError, match="'mysql://root@localhost/test' is not a PostgreSQL URL"):
        postgres_checkpointer("mysql://root@localhost/test")
    with pytest.raises(FlightdeckError, match=r"cannot connect to postgresql://agent:\*\*\*@127.0.0.1:1/x") as info:
        postgres_checkpointer("postgresql://agent:s3cret@127.0.0.1:1/x?connect_timeout=2")
    assert "s3cret" not in str(info.value)


# ---------------------------------------------------------------------------------------------------- steps as nodes

class FakeStep:
    """A step of the core contract: hashes from its config, a result from its input; ``fail`` times it raises."""

    def __init__(self, name: str, log: list[tuple[str, str]], *, fail: int = 0) -> None:
        self.name, self.log, self.fail = name, log, fail

    def plan(self) -> tuple[str, str]:
        return stable_hash({"input": self.name}), stable_hash({"config": self.name})

    def run(self, run_id: str, reporter: Any) -> StepResult:
        self.log.append((self.name, run_id))
        if self.fail:
            self.fail -= 1
            raise RuntimeError(f"{self.name} failed")
        reporter.progress(self.name, 1, 1)
        return StepResult(stable_hash({"output": self.name, "run": run_id}), {"rows": len(self.name)})


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def event(self, name: str, **fields: Any) -> None:
        self.seen.append((name, fields))

    def progress(self, step: str, done: int, total: int) -> None:
        self.seen.append(("progress", {"step": step}))

    def close(self) -> None:
        pass


def test_steps_run_as_nodes_and_record_their_results_in_the_state() -> None:
    log: list[tuple[str, str]] = []
    events = Events()
    out = steps_graph([FakeStep("extract", log), FakeStep("load", log)], reporter=events).invoke({"run_id": "r1"})
    assert log == [("extract", "r1"), ("load", "r1")]
    records = out["step_results"]
    assert list(records) == ["extract", "load"]
    assert records["load"]["status"] == "succeeded" and records["load"]["counts"] == {"rows": 4}
    assert records["extract"]["output_hash"] == stable_hash({"output": "extract", "run": "r1"})
    assert (records["extract"]["input_hash"], records["extract"]["config_hash"]) == FakeStep("extract", []).plan()
    assert [name for name, _ in events.seen] == ["step_start", "progress", "step_end"] * 2


def test_step_nodes_fit_a_graph_of_their_own() -> None:
    """Two steps in parallel branches, then a node of the team's that reads both records."""
    from langgraph.graph import END, START, StateGraph

    class State(StepState, total=False):
        total_rows: int

    log: list[tuple[str, str]] = []
    builder = StateGraph(State)
    builder.add_node("left", step_node(FakeStep("left", log)))
    builder.add_node("right", step_node(FakeStep("right", log)))
    builder.add_node("sum", lambda state: {"total_rows": sum(r["counts"]["rows"]
                                                             for r in state["step_results"].values())})
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    builder.add_edge(["left", "right"], "sum")
    builder.add_edge("sum", END)
    out = builder.compile().invoke({"run_id": "r2"})
    assert sorted(log) == [("left", "r2"), ("right", "r2")]
    assert sorted(out["step_results"]) == ["left", "right"] and out["total_rows"] == 9


def test_a_failed_step_fails_the_graph_and_resuming_runs_only_that_step(tmp_path: Path) -> None:
    log: list[tuple[str, str]] = []
    events = Events()
    steps = [FakeStep("extract", log), FakeStep("load", log, fail=1)]
    saver = workspace_checkpointer(tmp_path)
    graph = steps_graph(steps, reporter=events, checkpointer=saver)
    config = {"configurable": {"thread_id": "steps"}}
    with pytest.raises(RuntimeError, match="load failed"):
        graph.invoke({"run_id": "r3"}, config)
    assert ("step_end", {"step": "load", "status": "failed", "error": "load failed", "counts": {}}) in events.seen
    out = graph.invoke(None, config)
    assert log == [("extract", "r3"), ("load", "r3"), ("load", "r3")]  # extract did not run again
    assert list(out["step_results"]) == ["extract", "load"]
    saver.conn.close()


def test_a_step_node_needs_a_run_id_and_steps_need_names_of_their_own() -> None:
    with pytest.raises(FlightdeckError, match="step extract: the graph state has no run_id"):
        step_node(FakeStep("extract", []))({})
    with pytest.raises(FlightdeckError, match="two steps are named extract"):
        steps_graph([FakeStep("extract", []), FakeStep("extract", [])])


SPEC = """\
project: graph-test
scoping: {use_case: agents, objective: agentic_workflow}
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval:
  system: [hybrid_search]
  search: {mode: hybrid, k: 3}
agents:
  tools:
    - {provider: file_search, k: 2}
"""


def test_the_projects_ingest_embed_and_index_run_as_a_graph_that_the_agent_graph_then_searches(
        tmp_path: Path) -> None:
    from flightdeck import Project

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "kettles.md").write_text(
        "# Kettles\n\nThe Aurora kettle boils 1.7 litres in three minutes.\n\n"
        "The Breeze kettle is a travel kettle that folds flat.\n", "utf-8")
    (tmp_path / "flightdeck.yaml").write_text(SPEC, "utf-8")
    model = ScriptedAgentModel([call("search_documents", query="Aurora kettle litres"),
                                answer("The Aurora kettle boils 1.7 litres.", 1)])
    project = Project.load(tmp_path).use(embedder=FakeEmbedder(dimension=64), agent_model=model)
    steps = project.steps()
    with project.workspace.writer_lock():
        out = steps_graph(steps).invoke({"run_id": uuid.uuid4().hex})
    records = out["step_results"]
    assert list(records) == ["ingest", "embed", "index"] and records["ingest"]["counts"]["documents"] == 1
    assert records["index"]["counts"]["vectors"] == records["embed"]["counts"]["embedded"] >= 1

    saver = workspace_checkpointer(project.workspace)  # a Workspace, or its folder
    graph = agent_graph(project.agent, checkpointer=saver)
    run = agent_run(graph.invoke({"question": "How much does the Aurora kettle hold?"},
                                 {"configurable": {"thread_id": "kettles"}}))
    saver.conn.close()
    assert (project.workspace.root / CHECKPOINT_FILE).is_file()
    assert run.status == "answered" and [s.tool for s in run.steps] == ["search_documents", None]
    cited = run.citations[0]
    assert cited["tool"] == "search_documents" and cited["source_uri"].endswith("kettles.md")
    assert "1.7 litres" in model.requests[1]["messages"][-1]["content"]  # the passage the graph's index gave

    # the runner, over the same data, records the outputs the graph's nodes recorded
    summary = Project.load(tmp_path).use(embedder=FakeEmbedder(dimension=64)).run()
    assert {r.step: r.output_hash for r in summary.steps} == {n: r["output_hash"] for n, r in records.items()}
