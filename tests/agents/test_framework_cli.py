"""`model.agent_frameworks` in the spec (checklist 3.3): `flightdeck agent` runs LangChain's or LlamaIndex's agent on
the spec's tools, its model reached through flightdeck's own endpoint (served on 127.0.0.1 for the run with a key
made for it and revoked after), and the run is traced like flightdeck's own. The model is scripted; the frameworks'
own tests (test_frameworks.py) go deep, with the packaged model too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.monitoring.traces import TraceStore
from flightdeck.testing import FakeEmbedder, ScriptedAgentModel

pytestmark = pytest.mark.integration

SPEC = """\
project: frameworks
model:
  agent_frameworks: [{framework}]
data:
  sources: [{{provider: files, path: ./docs}}]
  chunking: {{provider: recursive, size: 64, overlap: 8}}
agents:
  tools: [{{provider: file_search, k: 1}}]
"""
SCRIPT = [{"tool": "search_documents", "arguments": {"query": "Aurora kettle"}},
          {"answer": "It boils 1.7 litres [1].", "cites": []}]


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, framework: str) -> tuple[Any, Path, ScriptedAgentModel]:
    pytest.importorskip("uvicorn")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "kettles.md").write_text("# Kettles\n\nThe Aurora kettle boils 1.7 litres.\n", "utf-8")
    (tmp_path / "flightdeck.yaml").write_text(SPEC.format(framework=framework), "utf-8")
    Project.load(tmp_path).use(embedder=FakeEmbedder(dimension=32)).run()
    model = ScriptedAgentModel(list(SCRIPT))
    load = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load(cls, path).use(
        embedder=FakeEmbedder(dimension=32), agent_model=model)))
    res = CliRunner().invoke(app, ["agent", "What does the Aurora kettle hold?", "--json", "--spec", str(tmp_path)])
    return res, tmp_path, model


def _check(res: Any, root: Path, model: ScriptedAgentModel, framework: str) -> None:
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)
    assert run["status"] == "answered" and run["answer"] == "It boils 1.7 litres [1]."
    assert [s["tool"] for s in run["steps"] if s["kind"] == "tool"] == ["search_documents"]
    assert run["citations"][0]["source_uri"].endswith("kettles.md")
    # the framework's second turn read the passage the flightdeck tool returned, through the endpoint
    assert "1.7 litres" in json.dumps(model.requests[1]["messages"])
    project = Project.load(root)
    trace = TraceStore(project.workspace).get(run["trace_id"])
    assert trace.operation == "agent" and trace.details["framework"] == framework
    assert all(k.revoked_at is not None for k in project.api_keys.list() if k.name == f"agent-{framework}")


@pytest.mark.exercises("model.agent_frameworks.langchain")
def test_flightdeck_agent_runs_langchains_agent_when_the_spec_chooses_it(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain_openai")
    _check(*_run(tmp_path, monkeypatch, "langchain"), "langchain")


@pytest.mark.exercises("model.agent_frameworks.llamaindex")
def test_flightdeck_agent_runs_llamaindexs_agent_when_the_spec_chooses_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_index.core")
    _check(*_run(tmp_path, monkeypatch, "llamaindex"), "llamaindex")
