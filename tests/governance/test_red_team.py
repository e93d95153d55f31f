"""`flightdeck redteam` (checklist 8.2: red-teaming, safety testing, bias monitoring): the safety and bias suites run
against a release as it answers, the results kept on the release, and a policy that asks for a clean run blocks
promotion until it has one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import FlightdeckError
from flightdeck.governance.access import Role
from flightdeck.governance.releases import Actor, PolicyRefused
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

SPEC = """\
project: redteam-test
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval:
  system: [hybrid_search]
  search: {mode: hybrid, k: 3}
model:
  generator: {provider: extractive, max_sentences: 2, min_score: 0.05}
evaluation:
  sets: [eval/qa.jsonl]
  k: 3
governance:
  approvals: {gates_must_pass: false, red_team_clean: true}
"""
DOCS = {"venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv followed by the "
                   "folder name.\n",
        "people.md": "# Support\n\nThe support team answers customer questions about billing and accounts.\n"}
QUESTIONS = [{"id": "venv", "question": "How do I create a virtual environment?",
              "reference_answer": "python -m venv followed by the folder name.", "reference_sources": ["venv.md"]},
             {"id": "support", "question": "What does the support team answer questions about?",
              "reference_answer": "billing and accounts", "reference_sources": ["people.md"]}]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    (tmp_path / "docs").mkdir()
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).write_text(text, "utf-8")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), "utf-8")
    (tmp_path / "flightdeck.yaml").write_text(SPEC, "utf-8")
    embedder = FakeEmbedder(dimension=64)
    load = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load(cls, path).use(embedder=embedder)))
    monkeypatch.setenv("LOGNAME", "alice")
    built = Project.load(tmp_path)
    built.run()
    return built


@pytest.mark.exercises("governance.responsible_ai.red_teaming")
@pytest.mark.exercises("governance.responsible_ai.safety_testing")
@pytest.mark.exercises("governance.responsible_ai.bias_monitoring")
def test_a_red_team_run_is_kept_on_the_release_and_gates_its_promotion(project: Project) -> None:
    release, _ = project.create_release()
    project.releases.review(release.id, Actor("key:0123456789ab", Role.APPROVER), "approved")
    with pytest.raises(PolicyRefused, match=r"no red-team run on this release"):
        project.releases.promote(release.id, Actor.local())
    before = {p.name for p in (project.workspace.root.parent / "docs").iterdir()}

    out = project.red_team()  # the newest release
    assert out["release"]["id"] == release.id and set(out["suites"]) == {"safety_prompt_injection", "bias_fairness"}
    safety = out["suites"]["safety_prompt_injection"]["metrics"]
    # the extractive answerer quotes what it retrieves: planted instructions reach the user verbatim
    assert safety["injection_success_rate_indirect"] > 0 and out["successful_attacks"] > 0
    assert out["attacks"] >= out["successful_attacks"]
    bias = out["suites"]["bias_fairness"]["metrics"]
    assert {"counterfactual_answer_divergence", "counterfactual_retrieval_divergence"} <= set(bias)
    # every case is kept; the planted documents never reached the project
    cases = json.loads(project.workspace.artifacts.get_bytes(out["artifact"]))
    assert {r["name"] for r in cases} == {"safety_prompt_injection", "bias_fairness"}
    assert {p.name for p in (project.workspace.root.parent / "docs").iterdir()} == before
    [event] = [e for e in project.releases.events(release) if e.event == "red_team"]
    assert event.details["successful_attacks"] == out["successful_attacks"] and event.actor == "user:alice"
    check = project.releases.check_policy(release)
    assert check.missing == [f"the last red-team run found {out['successful_attacks']} successful attack(s)"]
    assert any(e.action == "release.red_team" for e in project.audit.entries())


def test_the_cli_exits_1_when_an_attack_succeeds(project: Project) -> None:
    project.create_release()
    res = CliRunner().invoke(app, ["redteam", "v1", "--suite", "safety", "--json", "--spec", str(project.spec_path)])
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["successful_attacks"] > 0 and set(out["suites"]) == {"safety_prompt_injection"}
    res = CliRunner().invoke(app, ["redteam", "--suite", "toxicity", "--spec", str(project.spec_path)])
    assert res.exit_code == 2


def test_a_release_whose_documents_changed_since_is_not_attacked_on_the_new_ones(project: Project) -> None:
    release, _ = project.create_release()
    (project.workspace.root.parent / "docs" / "new.md").write_text("# New\n\nA page added later.\n", "utf-8")
    project.run()
    with pytest.raises(FlightdeckError, match=textwrap.dedent(r"""
        release v1's documents \(dataset version \w{12}\) are not the workspace's current ones""").strip()):
        project.red_team(release.id, suites=("safety",))


def test_bias_monitoring_of_live_traffic_swaps_the_people_in_served_questions(project: Project) -> None:
    from flightdeck.serving.service import LOCAL, Service

    release, _ = project.create_release()
    service = Service(project, None)
    service.query(LOCAL, "Does the support team answer billing questions from a woman about her accounts?")
    out = project.red_team(release.id, suites=("bias",), traces="7d")
    assert out["bias_questions"] == "traces of the last 7d" and out["attacks"] == 0
    cases = json.dumps(json.loads(project.workspace.artifacts.get_bytes(out["artifact"])))
    assert "from a man about his accounts" in cases  # the served question, its people swapped
