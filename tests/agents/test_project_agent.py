"""An agent from the spec (checklist 0.1 agents, 6.1): `agents.tools` builds the tools (the project's own search, a
SQL database, the team's functions), `flightdeck agent` runs them, and each run is a trace with every step and an
audit entry. The model is scripted here (the loop's own tests run the packaged GGUF model)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import FlightdeckError
from flightdeck.monitoring.traces import TraceStore
from flightdeck.spec.loader import check_spec
from flightdeck.testing import FakeEmbedder, ScriptedAgentModel
from needs import needs

pytestmark = pytest.mark.unit

SPEC = """\
project: agent-test
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
    - {provider: sql_database, url: "sqlite:///shop.db", tables: [products]}
  agent:
    instructions: Prices are in euros.
    budget: {max_steps: 4}
"""


def write_project(root: Path, spec: str = SPEC) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "kettles.md").write_text(
        "# Kettles\n\nThe Aurora kettle boils 1.7 litres in three minutes.\n\n"
        "The Breeze kettle is a travel kettle that folds flat.\n", "utf-8")
    db = sqlite3.connect(root / "shop.db")
    db.executescript("create table products(name text, price_eur real, stock integer);"
                     "insert into products values ('Aurora kettle', 49.0, 12), ('Breeze kettle', 29.5, 0);"
                     "create table staff(name text, salary integer); insert into staff values ('Ann', 90000);")
    db.commit()
    db.close()
    (root / "flightdeck.yaml").write_text(spec, "utf-8")
    return root


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


SCRIPT = [call("search_documents", query="Aurora kettle litres"),
          call("sql_query", query="SELECT name, price_eur FROM products WHERE name = 'Aurora kettle'"),
          {"answer": "The Aurora kettle boils 1.7 litres and costs 49 euros.", "cites": [1, 2]}]


def load(root: Path, script: list[Any]) -> tuple[Project, ScriptedAgentModel]:
    model = ScriptedAgentModel(script)
    project = Project.load(root).use(embedder=FakeEmbedder(dimension=64), agent_model=model)
    return project, model


@needs("sql", "sqlglot")
@pytest.mark.exercises("agents.tools.file_search")
@pytest.mark.exercises("agents.tools.sql_database")
@pytest.mark.exercises("scoping.use_case.agents")
@pytest.mark.exercises("scoping.objective.agentic_workflow")
def test_an_agent_answers_from_the_index_and_the_database_with_citations_a_trace_and_an_audit_entry(
        tmp_path: Path) -> None:
    project, model = load(write_project(tmp_path), SCRIPT)
    project.run()
    assert [t.spec.name for t in project.agent.tools.values()] == ["search_documents", "sql_schema", "sql_query"]
    run = project.run_agent("What does the Aurora kettle hold, and what does it cost?", actor="user:alice")
    assert run.status == "answered", run.stop_reason
    assert [(s.kind, s.tool, s.ok) for s in run.steps] == [
        ("tool", "search_documents", True), ("tool", "sql_query", True), ("answer", None, True)]
    # the search's passage (the page is one chunk) is source 1, the query's table 2: the answer cites both
    assert run.steps[0].sources == [1] and run.steps[1].sources == [2]
    chunk, table = run.citations
    assert chunk["number"] == 1 and chunk["tool"] == "search_documents" and chunk["source_uri"].endswith("kettles.md")
    assert table == {"number": 2, "tool": "sql_query", "step": 2, "id": "sql:products", "table": "products"}
    assert "Aurora kettle" in model.requests[1]["messages"][-1]["content"]  # the passage the model read
    assert "49.0" in model.requests[2]["messages"][-1]["content"]  # the row it read
    assert model.requests[0]["messages"][0]["content"].endswith("Prices are in euros.")
    # the trace keeps every step; the audit entry names the tools, the question redacted like every query's
    trace = TraceStore(project.workspace).get(run.trace_id or "")
    assert trace.operation == "agent" and trace.answer == run.answer and trace.found is True
    assert [s["tool"] for s in trace.details["agent"]["steps"]] == ["search_documents", "sql_query", None]
    # lineage follows the cited chunk back to its file, as for `ask`
    graph = project.lineage_graph(run.trace_id or "").to_dict()
    assert any(n["kind"] == "source" and n["id"].endswith("kettles.md") for n in graph["nodes"]), graph
    assert any(e["relation"] == "cited" for e in graph["edges"]), graph["edges"]
    entry = project.audit.last("agent.run")
    assert entry is not None and entry.target == run.trace_id and entry.actor == "user:alice"
    assert entry.details["tools"] == ["search_documents", "sql_query"] and entry.details["status"] == "answered"


@needs("sql", "sqlglot")
def test_the_database_tool_never_reads_a_table_off_the_allow_list(tmp_path: Path) -> None:
    script = [call("sql_query", query="SELECT * FROM staff"), call("sql_schema", tables=["staff"]),
              {"answer": "I could not find it.", "cites": []}]
    project, model = load(write_project(tmp_path), script)
    project.run()
    run = project.run_agent("What does Ann earn?")
    assert [s.ok for s in run.steps[:2]] == [False, False]
    assert "90000" not in json.dumps([r["messages"] for r in model.requests])
    assert "staff" in (run.steps[0].error or "")


def test_an_agent_with_no_tools_says_what_to_add(tmp_path: Path) -> None:
    root = write_project(tmp_path, SPEC.split("agents:")[0])
    project, _ = load(root, [])
    with pytest.raises(FlightdeckError, match=r"agents.tools is empty, .* e.g. agents: \{tools: \[file_search\]\}"):
        project.run_agent("anything?")


def test_the_spec_names_a_bad_agent_setting(tmp_path: Path) -> None:
    root = write_project(tmp_path, SPEC.replace("max_steps: 4", "max_step: 4").replace(
        "tables: [products]", "tables: []"))
    problems = [str(p) for p in check_spec(root / "flightdeck.yaml")[1]]
    assert any("agents.agent.budget" in p and "max_step" in p for p in problems), problems
    assert any("agents.tools" in p and "tables" in p for p in problems), problems


@needs("sql", "sqlglot")
def test_flightdeck_agent_prints_the_steps_then_the_cited_answer(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path)
    Project.load(root).use(embedder=FakeEmbedder(dimension=64)).run()
    scripts = [list(SCRIPT), list(SCRIPT), [call("sql_query", query="SELECT 1; DROP TABLE products")] * 5]
    load_spec = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load_spec(cls, path).use(
        embedder=FakeEmbedder(dimension=64), agent_model=ScriptedAgentModel(scripts.pop(0)))))
    runner = CliRunner()
    res = runner.invoke(app, ["agent", "What does the Aurora kettle cost?", "--spec", str(root)])
    assert res.exit_code == 0, res.output
    assert "step 1 tool search_documents" in res.stderr and "step 2 tool sql_query" in res.stderr
    assert res.stdout.splitlines()[0] == "The Aurora kettle boils 1.7 litres and costs 49 euros."
    assert "[2] sql_query: products" in res.stdout and "[1] search_documents: file://" in res.stdout
    res = runner.invoke(app, ["agent", "price?", "--json", "--spec", str(root)])
    out = json.loads(res.stdout)
    assert out["status"] == "answered" and out["tool_calls"] == 2 and out["trace_id"].startswith("tr_")
    # refused statements, then the budget: exit 1, the database untouched
    res = runner.invoke(app, ["agent", "drop it", "--spec", str(root)])
    assert res.exit_code == 1 and "refused" in res.stderr
    assert sqlite3.connect(root / "shop.db").execute("select count(*) from products").fetchone() == (2,)


def test_the_agent_section_is_in_the_written_spec_schema() -> None:
    from flightdeck.spec.models import spec_model

    fields = spec_model().model_fields["agents"].annotation.model_fields  # type: ignore[union-attr]
    assert {"tools", "agent", "generator", "memory", "orchestration"} <= set(fields)


@needs("sql", "sqlglot")
@pytest.mark.exercises("agents.tools.file_search")
def test_a_conversation_continues_from_memory_and_each_user_keeps_their_own(tmp_path: Path) -> None:
    first = [{"answer": "The Aurora kettle costs 49 euros.", "cites": []}]
    second = [{"answer": "It holds 1.7 litres.", "cites": []}]
    project, model = load(write_project(tmp_path), first + second)
    project.run()
    project.run_agent("What does the Aurora kettle cost?", conversation="c1", actor="user:alice")
    project.run_agent("And how much does it hold?", conversation="c1", actor="user:alice")
    roles = [(m["role"], m["content"]) for m in model.requests[1]["messages"][1:]]
    assert roles == [("user", "What does the Aurora kettle cost?"), ("assistant", "The Aurora kettle costs 49 euros."),
                     ("user", "And how much does it hold?")]
    memory = project.agent_memory
    assert [m["content"] for m in memory.history("user:alice", "c1")][-1] == "It holds 1.7 litres."
    assert memory.history("user:bob", "c1") == []  # the same conversation id, another user: nothing


@needs("sql", "sqlglot")
@pytest.mark.exercises("agents.memory.vector_store")
def test_with_agents_memory_the_agent_remembers_and_recalls_facts_for_its_user_only(tmp_path: Path) -> None:
    spec = SPEC.replace("  agent:\n", "  memory: [vector_store]\n  agent:\n")
    script = [call("remember", fact="Alice prefers travel kettles."), {"answer": "Noted.", "cites": []},
              call("recall", query="which kettles does the user prefer"), {"answer": "travel kettles", "cites": [1]},
              call("recall", query="which kettles does the user prefer"), {"answer": "I do not know.", "cites": []}]
    project, model = load(write_project(tmp_path, spec), script)
    project.run()
    project.run_agent("Remember that I prefer travel kettles.", actor="user:alice")
    offered = [alt["properties"]["tool"]["const"] for alt in model.requests[0]["schema"]["anyOf"]
               if "tool" in alt["properties"]]
    assert offered == ["search_documents", "sql_schema", "sql_query", "remember", "recall"]
    alice = project.run_agent("Which kettles do I prefer?", actor="user:alice")
    assert alice.citations[0]["id"].startswith("memory:")
    assert "Alice prefers travel kettles." in model.requests[3]["messages"][-1]["content"]
    bob = project.run_agent("Which kettles do I prefer?", actor="user:bob")
    assert "no fact kept matches" in bob.steps[0].content
    assert "Alice" not in json.dumps(model.requests[5]["messages"])
    assert type(project.agent_memory).__name__ == "VectorMemory"


TEAM = """\
  agent:
    team:
      - {name: librarian, description: answers from the kettle documents, tools: [search_documents]}
      - {name: analyst, description: answers from the shop database, tools: [sql_schema, sql_query], max_steps: 2}
"""


@needs("sql", "sqlglot")
@pytest.mark.exercises("improvement.future_proofing.agent_orchestration")
def test_a_supervisor_hands_sub_tasks_to_its_team_and_cites_what_they_cited(tmp_path: Path) -> None:
    spec = SPEC.split("  agent:\n")[0] + TEAM + "improvement: {future_proofing: [agent_orchestration]}\n"
    script = [call("ask_librarian", task="How much does the Aurora kettle hold?"),
              call("search_documents", query="Aurora kettle litres"),          # the librarian's own loop
              {"answer": "1.7 litres", "cites": [1]},
              call("ask_analyst", task="What does the Aurora kettle cost?"),
              call("sql_query", query="SELECT price_eur FROM products WHERE name = 'Aurora kettle'"),
              {"answer": "49 euros", "cites": [1]},
              {"answer": "It holds 1.7 litres and costs 49 euros.", "cites": [1, 2]}]
    project, model = load(write_project(tmp_path, spec), script)
    project.run()
    assert list(project.agent.tools) == ["ask_librarian", "ask_analyst"]
    run = project.run_agent("What does the Aurora kettle hold and cost?")
    assert run.status == "answered" and [s.tool for s in run.steps] == ["ask_librarian", "ask_analyst", None]
    # the supervisor cites what its members cited: the page's chunk and the table
    assert run.citations[0]["source_uri"].endswith("kettles.md") and run.citations[1]["table"] == "products"
    # each member saw only its own tools and its own sub-task
    librarian_turn = model.requests[1]
    offered = [alt["properties"]["tool"]["const"] for alt in librarian_turn["schema"]["anyOf"]
               if "tool" in alt["properties"]]
    assert offered == ["search_documents"] and librarian_turn["messages"][-1]["content"] == (
        "How much does the Aurora kettle hold?")
    assert "ask_librarian" in model.requests[0]["messages"][0]["content"]
    # the trace keeps the members' runs
    trace = TraceStore(project.workspace).get(run.trace_id or "")
    assert "sql_query" in json.dumps(trace.details["agent"]["steps"][1])
    graph = project.lineage_graph(run.trace_id or "").to_dict()
    assert any(e["relation"] == "cited" for e in graph["edges"])


def test_a_team_without_the_option_or_with_an_unknown_tool_is_a_spec_error(tmp_path: Path) -> None:
    spec = SPEC.split("  agent:\n")[0] + TEAM.replace("[sql_schema, sql_query]", "[sql_query, web]")
    root = write_project(tmp_path, spec)
    problems = [str(p) for p in check_spec(root / "flightdeck.yaml")[1]]
    assert any("agent_orchestration" in p for p in problems), problems
    (root / "flightdeck.yaml").write_text(spec + "improvement: {future_proofing: [agent_orchestration]}\n", "utf-8")
    project, _ = load(root, [])
    with pytest.raises(FlightdeckError, match=r"team member analyst: no tool 'web' in agents.tools"):
        project.agent  # noqa: B018 - building it is the check


def test_a_long_conversation_is_summarised_to_fit_its_token_budget(tmp_path: Path) -> None:
    spec = SPEC.replace("  agent:\n", "  agent:\n    history_tokens: 120\n")
    long = "The Aurora kettle was bought in March with a two-year warranty and a spare lid. " * 8
    script = [{"answer": long, "cites": []}, {"answer": "noted", "cites": []}, {"answer": "March", "cites": []}]
    project, model = load(write_project(tmp_path, spec), script)
    project.run()
    project.run_agent("Tell me about my kettle.", conversation="c", actor="user:alice")
    project.run_agent("I also own a toaster.", conversation="c", actor="user:alice")
    project.run_agent("When was the kettle bought?", conversation="c", actor="user:alice")
    read = model.requests[2]["messages"]
    assert model.summaries and "Tell me about my kettle." in model.summaries[0]
    assert read[1]["role"] == "user" and read[1]["content"].startswith("Earlier in this conversation (summary): ")
    assert sum(len(m["content"]) for m in read[1:-1]) // 4 <= 120
    assert read[-1]["content"] == "When was the kettle bought?"


@needs("sql", "sqlglot", "langgraph")
@pytest.mark.exercises("agents.orchestration.langgraph")
def test_with_langgraph_the_agent_runs_as_a_checkpointed_graph_with_the_same_result(tmp_path: Path) -> None:
    spec = SPEC + "  orchestration: [langgraph]\n"
    project, model = load(write_project(tmp_path, spec), list(SCRIPT))
    project.run()
    seen: list[str] = []
    run = project.run_agent("What does the Aurora kettle hold, and what does it cost?",
                            on_step=lambda step: seen.append(step.kind))
    assert run.status == "answered" and [c["number"] for c in run.citations] == [1, 2]
    assert seen == ["tool", "tool", "answer"]
    # the same script through flightdeck's own loop gives the same steps and citations
    plain, _ = load(write_project(tmp_path / "plain"), list(SCRIPT))
    plain.run()
    own = plain.run_agent("What does the Aurora kettle hold, and what does it cost?")
    assert [(s.kind, s.tool, s.arguments, s.sources) for s in run.steps] == [
        (s.kind, s.tool, s.arguments, s.sources) for s in own.steps]
    assert [(c["number"], c["tool"]) for c in run.citations] == [(c["number"], c["tool"]) for c in own.citations]
    assert (tmp_path / ".flightdeck" / "agent_checkpoints.db").is_file()
    assert type(project.assembly.agent_runner).__name__ == "LanggraphRunner"
