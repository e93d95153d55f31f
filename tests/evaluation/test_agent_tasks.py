"""Agent task suites: the loader names each bad line, the checks score an answer as the module says, a scripted agent
over a real tiny project is scored task by task with the aggregates, and the demo's suite holds answers that its
own database and pages give (a wrong key would be a defect of the benchmark)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flightdeck import Project
from flightdeck.data.parsers.html import html_sections
from flightdeck.evaluation.agent_tasks import (
    AgentCheck,
    AgentTask,
    check_answer,
    load_agent_tasks,
    run_agent_tasks,
)
from flightdeck.evaluation.sets import EvalSetError
from flightdeck.testing import FakeEmbedder, ScriptedAgentModel
from needs import needs

pytestmark = pytest.mark.unit
DEMO = Path(__file__).resolve().parents[2] / "examples" / "python-docs"


def write_tasks(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


GOOD = {"id": "t1", "question": "When does 3.11 end?", "needs": ["sql"], "check": {"contains_any": ["2027"]}}


# loading -----------------------------------------------------------------------------------------------------------
def test_a_suite_loads_with_its_checks(tmp_path: Path) -> None:
    path = write_tasks(tmp_path / "tasks.jsonl", [
        GOOD, "",
        {"id": "t2", "question": " Which module? ", "needs": ["docs", "sql", "docs"], "adapted_from": "py-001",
         "check": {"regex": ["a+", "b"], "contains_all": ["x"], "cites_document": "tutorial/venv.html"}}])
    one, two = load_agent_tasks(path)
    assert one == AgentTask("t1", "When does 3.11 end?", ("sql",), AgentCheck(contains_any=("2027",)))
    assert two.question == "Which module?" and two.needs == ("docs", "sql") and two.needs_key == "docs+sql"
    assert two.check == AgentCheck(contains_all=("x",), regex=("a+", "b"), cites_document=("tutorial/venv.html",))
    assert two.adapted_from == "py-001"


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", r"tasks.jsonl:2: not JSON"),
    ({**GOOD, "id": "t2", "check": {}}, r"tasks.jsonl:2: check must be a JSON object with at least one of"),
    ({**GOOD, "id": "t2", "check": {"contains": ["x"]}}, r"tasks.jsonl:2: unknown check 'contains'; the checks are"),
    ({**GOOD, "id": "t2", "check": {"regex": "(unclosed"}}, r"tasks.jsonl:2: check.regex '\(unclosed' is not a"),
    ({**GOOD, "id": "t2", "check": {"contains_any": []}}, r"tasks.jsonl:2: check.contains_any must be a non-empty"),
    ({**GOOD, "id": "t2", "check": {"cites_document": "a.html"}}, r"tasks.jsonl:2: check needs a condition on the "),
    ({**GOOD, "id": "t2", "needs": []}, r"tasks.jsonl:2: needs must be a non-empty list"),
    ({**GOOD, "id": "t2", "needs": ["Docs"]}, r"tasks.jsonl:2: needs must be"),
    ({k: v for k, v in GOOD.items() if k != "check"} | {"id": "t2"}, r"tasks.jsonl:2: check is missing"),
    ({**GOOD, "id": "t2", "answer": "x"}, r"tasks.jsonl:2: unknown key 'answer'"),
    ({**GOOD, "question": "  "}, r"tasks.jsonl:2: question is missing or empty"),
    (GOOD, r"tasks.jsonl:2: id 't1' is already used on line 1"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: Any, message: str) -> None:
    path = write_tasks(tmp_path / "tasks.jsonl", [GOOD, line])
    with pytest.raises(EvalSetError, match=message):
        load_agent_tasks(path)


def test_every_bad_line_is_reported_and_a_missing_or_empty_file_says_what_to_write(tmp_path: Path) -> None:
    path = write_tasks(tmp_path / "tasks.jsonl", ["[1]", GOOD, {"id": "x"}])
    with pytest.raises(EvalSetError, match=r"2 bad line\(s\):\n.*tasks.jsonl:1: expected a JSON object\n.*"
                                           r"tasks.jsonl:3: question is missing"):
        load_agent_tasks(path)
    with pytest.raises(EvalSetError, match="agent task suite not found"):
        load_agent_tasks(tmp_path / "none.jsonl")
    with pytest.raises(EvalSetError, match="no tasks; write one JSON object per line"):
        load_agent_tasks(write_tasks(tmp_path / "empty.jsonl", [""]))


# checks ------------------------------------------------------------------------------------------------------------
def test_the_checks_compare_without_case_on_collapsed_whitespace() -> None:
    assert check_answer(AgentCheck(contains_any=("Cheese Shop",)), "It was the cheese\n  shop.") == []
    assert check_answer(AgentCheck(contains_any=("rmtree", "remove")), "Use os.rmdir.") == [
        "contains none of ['rmtree', 'remove']"]
    assert check_answer(AgentCheck(contains_all=("parents", "exist_ok")), "mkdir(parents=True)") == [
        "lacks ['exist_ok']"]
    assert check_answer(AgentCheck(contains_all=("3.10", "3.11"), contains_none=("3.8", "3.9")),
                        "3.9, 3.10 and 3.11") == ["contains ['3.9']"]
    assert check_answer(AgentCheck(regex=(r"\b3\.10\b",)), "Python 3.10 did") == []
    assert check_answer(AgentCheck(regex=(r"\b3\.10\b",)), "Python 3.100") == [r"does not match /\b3\.10\b/"]
    assert check_answer(AgentCheck(regex=(r"\b3\.13\b", r"2024-10-07|october 7,? 2024")),
                        "3.13, released on October 7, 2024") == []
    assert check_answer(AgentCheck(regex=(r"\b3\.13\b", r"2024-10-07")), "3.13") == ["does not match /2024-10-07/"]
    assert check_answer(AgentCheck(regex=(r"WARNING",)), "the default is warning") == []


# a scripted agent over a real tiny project ---------------------------------------------------------------------------
SPEC = """\
project: agent-tasks-test
scoping: {use_case: agents, objective: agentic_workflow}
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval:
  system: [hybrid_search]
  search: {mode: keyword, k: 3}
agents:
  tools:
    - {provider: file_search, k: 2}
    - {provider: sql_database, url: "sqlite:///shop.db", tables: [products]}
  agent:
    budget: {max_steps: 4}
"""


def write_project(root: Path, spec: str = SPEC) -> Path:
    for page, text in {"tutorial/venv.md": "# Environments\n\nRun python -m venv to create an environment, then "
                                           "activate it.\n",
                       "library/venv.md": "# The venv module\n\nThe EnvBuilder class builds environments from "
                                          "code.\n"}.items():
        (root / "docs" / page).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / page).write_text(text, "utf-8")
    db = sqlite3.connect(root / "shop.db")
    db.executescript("create table products(name text, price_eur real);"
                     "insert into products values ('Aurora kettle', 49.0), ('Breeze kettle', 29.5);"
                     "create table staff(name text, salary integer); insert into staff values ('Ann', 90000);")
    db.commit()
    db.close()
    (root / "flightdeck.yaml").write_text(spec, "utf-8")
    return root


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


TASKS = [
    {"id": "docs-ok", "question": "Which command creates an environment?", "needs": ["docs"],
     "check": {"contains_any": ["venv"], "cites_document": "tutorial/venv.md"}},
    {"id": "sql-wrong", "question": "What does the Aurora kettle cost?", "needs": ["sql"],
     "check": {"regex": r"\b49(\.0)?\b"}},
    {"id": "both-half", "question": "What does the Aurora kettle cost, and how do I create an environment?",
     "needs": ["docs", "sql"], "check": {"contains_all": ["49", "venv"]}},
    {"id": "docs-uncited", "question": "Which class builds environments from code?", "needs": ["docs"],
     "check": {"contains_any": ["venv"], "cites_document": "library/venv.md"}},
]
SCRIPT = [
    # docs-ok: the search finds the tutorial page (keyword search, one hit), the answer cites it
    call("search_documents", query="activate create environment python", k=1),
    {"answer": "Run python -m venv.", "cites": [1]},
    # sql-wrong: a reply that is not JSON, then the right query, then the wrong price
    "not json at all",
    call("sql_query", query="SELECT price_eur FROM products WHERE name = 'Aurora kettle'"),
    {"answer": "It costs 29.5 euros.", "cites": [1]},
    # both-half: a query of a table off the allow-list (refused), then an answer with half the facts
    call("sql_query", query="SELECT * FROM staff"),
    {"answer": "Use venv.", "cites": []},
    # docs-uncited: the right words, but it cites the tutorial page, not the library page the task names
    call("search_documents", query="activate create environment python", k=1),
    {"answer": "The venv module.", "cites": [1]},
]


@needs("sql", "sqlglot")
def test_a_scripted_agent_is_scored_task_by_task_with_the_aggregates(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    tasks = load_agent_tasks(write_tasks(tmp_path / "tasks.jsonl", TASKS))
    model = ScriptedAgentModel(SCRIPT)
    project = Project.load(root).use(embedder=FakeEmbedder(dimension=64), agent_model=model)
    project.run()
    heard: list[str] = []
    report = run_agent_tasks(project, tasks, needs_tools={"docs": ["search_documents"], "sql": ["sql_query"]},
                             on_result=lambda r: heard.append(r.id))
    assert heard == ["docs-ok", "sql-wrong", "both-half", "docs-uncited"]
    assert len(model.requests) == len(SCRIPT)  # every scripted reply was asked for: the runs went as written
    ok, wrong, half, uncited = report.results
    assert report.model == "scripted"

    assert ok.success and ok.answer_ok and ok.cited_ok and ok.found_document and ok.picked_tools
    assert (ok.steps, ok.tool_calls, ok.tools, ok.invalid_replies, ok.refused_calls) == (2, 1, ["search_documents"],
                                                                                          0, 0)
    assert ok.completion_tokens == 20 and ok.prompt_tokens > 0 and ok.trace_id and ok.failed == []

    assert not wrong.success and not wrong.answer_ok and wrong.cited_ok is None and wrong.found_document is None
    assert wrong.failed == [r"does not match /\b49(\.0)?\b/"] and wrong.answer == "It costs 29.5 euros."
    assert (wrong.steps, wrong.tool_calls, wrong.invalid_replies, wrong.picked_tools) == (3, 1, 1, True)

    assert not half.success and half.failed == ["lacks ['49']"] and half.refused_calls == 1
    assert half.tools == ["sql_query"] and half.picked_tools is False  # the docs need got no search
    assert half.calls[0]["arguments"] == {"query": "SELECT * FROM staff"} and half.calls[0]["ok"] is False
    assert "staff" in half.calls[0]["error"]

    assert not uncited.success and uncited.answer_ok and uncited.cited_ok is False
    assert uncited.failed == ["cites no source of ['library/venv.md']"] and uncited.found_document is False

    s = report.summary
    assert s["tasks"] == 4 and s["success_rate"] == 0.25 and s["answer_correct_rate"] == 0.5
    assert s["by_needs"] == {"docs": {"tasks": 2, "success_rate": 0.5, "answer_correct_rate": 1.0},
                             "docs+sql": {"tasks": 1, "success_rate": 0.0, "answer_correct_rate": 0.0},
                             "sql": {"tasks": 1, "success_rate": 0.0, "answer_correct_rate": 0.0}}
    assert s["citation_rate"] == 0.5 and s["answered_rate"] == 1.0 and s["statuses"] == {"answered": 4}
    assert s["invalid_reply_rate"] == round(1 / 9, 4) and s["refused_call_rate"] == 0.25
    assert s["picked_tools_rate"] == 0.75 and s["found_document_rate"] == 0.5
    assert s["median_steps"] == 2 and s["median_tool_calls"] == 1
    tokens = sorted(r.tokens for r in report.results)
    assert s["median_tokens"] == (tokens[1] + tokens[2]) / 2 and s["tokens"] == sum(tokens)
    assert json.loads(json.dumps(report.to_dict()))["results"][0]["tokens"] == ok.tokens


@needs("sql", "sqlglot")
def test_a_limit_runs_the_first_tasks_and_a_run_that_cannot_be_made_is_a_failed_task(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    tasks = load_agent_tasks(write_tasks(tmp_path / "tasks.jsonl", TASKS))
    project = Project.load(root).use(embedder=FakeEmbedder(dimension=64), agent_model=ScriptedAgentModel(SCRIPT))
    project.run()
    report = run_agent_tasks(project, tasks, limit=1)
    assert [r.id for r in report.results] == ["docs-ok"] and report.summary["success_rate"] == 1.0
    with pytest.raises(ValueError, match="limit must be at least 1"):
        run_agent_tasks(project, tasks, limit=0)

    # a spec without tools: each run raises a FlightdeckError, which the suite records and goes past
    bare = write_project(tmp_path / "bare", SPEC.split("agents:")[0])
    project = Project.load(bare).use(embedder=FakeEmbedder(dimension=64), agent_model=ScriptedAgentModel([]))
    report = run_agent_tasks(project, tasks[:2])
    assert [r.status for r in report.results] == ["error", "error"]
    assert "agents.tools is empty" in report.results[0].error and report.results[0].cited_ok is False
    assert report.summary["success_rate"] == 0.0 and report.summary["answered_rate"] == 0.0


# the demo's suite --------------------------------------------------------------------------------------------------
def page_text(page: str) -> str:
    """What the index holds of a page (the agent reads only that): its sections' headings and text."""
    _, sections = html_sections((DEMO / "corpus" / page).read_text("utf-8"), page)
    return " ".join(" ".join([*s.heading_path, s.text]) for s in sections)


# Where each answer comes from: a query of the demo database (its rows, as text), a page of the corpus, or both.
EVIDENCE: dict[str, tuple[str, str | None]] = {
    "sql-01": ("SELECT released FROM python_releases WHERE version = '3.11'", None),
    "sql-02": ("SELECT end_of_life FROM python_releases WHERE version = '3.9'", None),
    "sql-03": ("SELECT version FROM python_releases WHERE headline LIKE '%pattern matching%'", None),
    "sql-04": ("SELECT version FROM python_releases WHERE headline LIKE '%walrus%'", None),
    "sql-05": ("SELECT pep FROM python_releases WHERE version = '3.12'", None),
    "sql-06": ("SELECT count(*) FROM python_releases WHERE end_of_life < '2026-01-01'", None),
    "sql-07": ("SELECT version, released FROM python_releases ORDER BY released DESC LIMIT 1", None),
    "sql-08": ("SELECT version FROM python_releases WHERE headline LIKE '%dict union%'", None),
    "sql-09": ("SELECT substr(end_of_life, 1, 4) FROM python_releases WHERE version = '3.13'", None),
    "sql-10": ("SELECT version FROM python_releases WHERE released LIKE '2023-10-%'", None),
    "sql-11": ("SELECT version FROM python_releases WHERE end_of_life > '2026-06-01'", None),
    "both-01": ("SELECT end_of_life FROM python_releases WHERE version = '3.11'", "tutorial/venv.html"),
    "both-02": ("SELECT released FROM python_releases WHERE version = '3.9'", "library/collections.html"),
    "both-03": ("SELECT released FROM python_releases WHERE version = '3.12'", "library/datetime.html"),
    "both-04": ("SELECT released FROM python_releases WHERE version = '3.11'", "library/pathlib.html"),
    "both-05": ("SELECT end_of_life FROM python_releases WHERE version = '3.10'", "library/subprocess.html"),
    "both-06": ("SELECT pep FROM python_releases WHERE version = '3.11'", "howto/logging.html"),
    "both-07": ("SELECT version FROM python_releases WHERE headline LIKE '%exception groups%'", "tutorial/errors.html"),
    "both-08": ("SELECT end_of_life FROM python_releases WHERE version = '3.8'", "library/venv.html"),
}


def test_the_demo_suite_mixes_sql_docs_and_both_and_each_answer_is_in_its_database_or_page() -> None:
    tasks = load_agent_tasks(DEMO / "eval" / "agent_tasks.jsonl")
    kinds = [t.needs_key for t in tasks]
    assert len(tasks) >= 30 and kinds.count("sql") >= 10 and kinds.count("docs") >= 12
    assert kinds.count("docs+sql") >= 8
    db = sqlite3.connect(f"file:{DEMO / 'data' / 'python_releases.db'}?mode=ro", uri=True)
    questions = {json.loads(line)["id"]: json.loads(line) for line in
                 (DEMO / "eval" / "questions.jsonl").read_text("utf-8").splitlines() if line}
    for task in tasks:
        text_check = AgentCheck(task.check.contains_any, task.check.contains_all, task.check.contains_none,
                                task.check.regex)
        if task.needs == ("docs",):  # the page it must cite states the fact; the task comes from the hand-written set
            (page,) = task.check.cites_document
            assert check_answer(text_check, page_text(page)) == [], task.id
            assert page in questions[task.adapted_from]["reference_sources"], task.id
            continue
        query, page = EVIDENCE[task.id]
        rows = " ".join(str(v) for row in db.execute(query) for v in row)
        assert rows, (task.id, query)
        evidence = rows + (" " + page_text(page) if page else "")
        assert check_answer(text_check, evidence) == [], (task.id, evidence[:200])
        if page:  # and the database alone does not answer it, nor the page alone
            assert check_answer(text_check, rows) and check_answer(text_check, page_text(page)), task.id
    assert set(EVIDENCE) == {t.id for t in tasks if t.needs != ("docs",)}
