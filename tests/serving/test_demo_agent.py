"""The demo's agent (examples/python-docs/agent.yaml, `make agent-demo`) as issue #14 accepts it: a question that needs
both the pages' index and the SQL database of Python releases, answered with citations of both and its steps —
by `flightdeck agent`, and by the official openai SDK's Responses and Assistants calls against `flightdeck serve`.

The spec, its database and its pages are the demo's own files (copied, so the test writes nothing into the
checkout); the pages are a subset, embedded by the fake embedder, and the agent model is scripted: what the packaged
models choose is measured by benchmarks/agent_tasks.py, not here."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.testing import FakeEmbedder, ScriptedAgentModel
from needs import needs

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:.*Assistants API is deprecated"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

DEMO = Path(__file__).resolve().parents[2] / "examples" / "python-docs"
PAGES = ["library/venv.html", "tutorial/datastructures.html", "tutorial/inputoutput.html"]
QUESTION = ("When does the Python version these docs describe reach its end of life, and which module creates "
            "virtual environments?")
SQL = "SELECT version, end_of_life FROM python_releases WHERE version = '3.11'"
SCRIPT: list[Any] = [{"tool": "sql_query", "arguments": {"query": SQL}},
                     {"tool": "search_documents", "arguments": {"query": "venv create virtual environments"}},
                     {"answer": "Python 3.11 reaches its end of life on 2027-10-01; the venv module creates virtual "
                                "environments.", "cites": [1, 2]}]
ANSWER = SCRIPT[-1]["answer"]


def demo_copy(root: Path) -> Path:
    """agent.yaml, its database and a few of its pages, laid out as in the demo."""
    shutil.copy(DEMO / "agent.yaml", root / "agent.yaml")
    shutil.copytree(DEMO / "data", root / "data")
    for page in PAGES:
        (root / "corpus" / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO / "corpus" / page, root / "corpus" / page)
    return root / "agent.yaml"


def load(spec: Path, model: ScriptedAgentModel) -> Project:
    return Project.load(spec).use(embedder=FakeEmbedder(), agent_model=model)


def check_citations(citations: list[dict[str, Any]]) -> None:
    table, page = citations
    assert table["tool"] == "sql_query" and table["table"] == "python_releases"
    assert page["tool"] == "search_documents" and page["source_uri"].endswith("library/venv.html")


@needs("sql", "sqlglot")
def test_flightdeck_agent_answers_the_demo_question_from_the_database_and_the_pages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = demo_copy(tmp_path)
    load(spec, ScriptedAgentModel([])).run()
    model = ScriptedAgentModel(list(SCRIPT))
    load_spec = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load_spec(cls, path).use(
        embedder=FakeEmbedder(), agent_model=model)))
    res = CliRunner().invoke(app, ["agent", QUESTION, "--spec", str(spec)])
    assert res.exit_code == 0, res.output
    # the steps on stderr, the answer and what it cites on stdout
    assert "step 1 tool sql_query" in res.stderr and "step 2 tool search_documents" in res.stderr
    lines = [line.strip() for line in res.stdout.splitlines()]
    assert lines[0] == ANSWER
    assert "[1] sql_query: python_releases" in res.stdout
    assert any(line.startswith("[2] search_documents: file://") and line.endswith("library/venv.html")
               for line in lines), res.stdout
    # the model read the demo's instructions, the row of the demo database and the venv page's passage
    assert "python_releases table" in model.requests[0]["messages"][0]["content"]
    assert "2027-10-01" in model.requests[1]["messages"][-1]["content"]
    assert "venv" in model.requests[2]["messages"][-1]["content"]


@needs("serve", "fastapi")
@needs("sql", "sqlglot")
def test_the_openai_sdk_gets_the_same_cited_answer_through_responses_and_assistants(tmp_path: Path) -> None:
    from live_server import LiveServer, openai_client

    from flightdeck.governance.access import Role
    from flightdeck.monitoring.traces import TraceStore
    from flightdeck.serving.service import Service

    model = ScriptedAgentModel([])
    project = load(demo_copy(tmp_path), model)
    project.run()
    key = project.api_keys.create(Role.VIEWER).key
    with LiveServer(Service(project, project.api_keys)) as server:
        client = openai_client(server, key)
        # Responses: file_search runs the spec's agent with all its tools, the database's too
        model.add(*SCRIPT)
        response = client.responses.create(model="python-docs-agent", input=QUESTION,
                                           tools=[{"type": "file_search", "vector_store_ids": ["demo"]}])
        assert response.status == "completed" and response.output_text == ANSWER
        kinds = [item.type for item in response.output]
        assert kinds.count("file_search_call") == 1 and kinds[-1] == "message"
        [annotation] = response.output[-1].content[0].annotations  # the page; a table is not a file
        assert annotation.type == "file_citation" and annotation.filename == "venv.html"
        traces = TraceStore(project.workspace)
        trace = traces.get(response.model_extra["flightdeck"]["trace_id"])
        check_citations(trace.details["citations"])
        # Assistants: an assistant with file_search, a thread, a run
        model.add(*SCRIPT)
        assistant = client.beta.assistants.create(model="python-docs-agent", tools=[{"type": "file_search"}])
        thread = client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
        assert run.status == "completed", run.last_error
        text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
        assert [a.file_citation.file_id.endswith("venv.html") for a in text.annotations] == [True]
        assert text.value.replace(text.annotations[0].text, "") == ANSWER
        check_citations(traces.get(run.model_extra["flightdeck"]["trace_ids"][0]).details["citations"])
