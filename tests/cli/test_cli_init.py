"""``flightdeck init``: the RAG template without questions, overwriting, and the questionnaire."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck.cli.main import app
from flightdeck.spec.catalog import catalog
from flightdeck.spec.loader import check_spec
from flightdeck.spec.status import option_status, option_usable

pytestmark = pytest.mark.unit

runner = CliRunner()


def _valid(path: Path):
    loaded, problems = check_spec(path)
    assert problems == [], [str(p) for p in problems]
    return loaded.spec


def _answers(overrides: dict[str, list[str]]) -> str:
    """Stdin for the questionnaire: one line per section that has a ready option, in catalog order.

    Sections not in ``overrides`` get Enter (the default); an override is the lines typed, re-asks included.
    Built from the catalog so that a section becoming ready later does not shift the answers.
    """
    lines: list[str] = []
    for section in catalog().sections:
        # what the questionnaire asks: options usable in this build (init decides with option_usable, like
        # validate; an option implemented since the proof was last written is asked too)
        if any(option_usable(o.key).state == "ready" for o in section.options):
            lines += overrides.pop(section.path, [""])
    assert not overrides, f"not asked (nothing ready): {overrides}"
    return "\n".join(lines) + "\n"


def _number(section_path: str, option_id: str) -> str:
    section = catalog().section(section_path)
    return str(section.option_ids.index(option_id) + 1)


def _first_planned(section_path: str) -> str:
    section = catalog().section(section_path)
    planned = [o.id for o in section.options if option_usable(o.key).state == "planned"]
    assert planned, f"every option of {section_path} is ready now: pick a section that still has a planned one"
    return planned[0]


def _ready(section_path: str) -> list[str]:
    section = catalog().section(section_path)
    return [o.id for o in section.options if option_usable(o.key).state == "ready"]


def test_template_rag_yes_writes_a_valid_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "--template", "rag", "--yes"])
    assert result.exit_code == 0, result.output
    assert "next: flightdeck validate && flightdeck run" in result.output
    assert "flightdeck.yaml" in result.output
    assert "./docs does not exist yet" in result.output
    spec = _valid(tmp_path / "flightdeck.yaml")
    assert spec.project == tmp_path.name
    assert spec.scoping.use_case == "rag"
    assert [(s.provider, s.settings) for s in spec.data.sources] == [("files", {"path": "./docs"})]
    assert spec.retrieval.vector_database.provider == "faiss"
    text = (tmp_path / "flightdeck.yaml").read_text()
    assert "# 2.2 Choose Vector Database (Single-select)" in text
    validate = runner.invoke(app, ["validate"])
    assert validate.exit_code == 0, validate.output


def test_yes_asks_nothing_and_takes_project_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kb").mkdir()
    result = runner.invoke(app, ["init", "-y", "--project", "kb-bot", "--source", "./kb"], input="")
    assert result.exit_code == 0, result.output
    assert "does not exist" not in result.output
    spec = _valid(tmp_path / "flightdeck.yaml")
    assert spec.project == "kb-bot"
    assert spec.data.sources[0].settings == {"path": "./kb"}


def test_a_folder_argument_gets_flightdeck_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "svc").mkdir()
    result = runner.invoke(app, ["init", "svc", "--yes"])
    assert result.exit_code == 0, result.output
    assert _valid(tmp_path / "svc" / "flightdeck.yaml").project == "svc"


def test_refuses_to_overwrite_without_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text("project: mine\n")
    result = runner.invoke(app, ["init", "--template", "rag", "--yes"])
    assert result.exit_code == 1
    assert "already exists" in result.output and "--force" in result.output
    assert spec.read_text() == "project: mine\n"

    forced = runner.invoke(app, ["init", "--template", "rag", "--yes", "--force"])
    assert forced.exit_code == 0, forced.output
    assert _valid(spec).scoping.use_case == "rag"


def test_refuses_before_asking_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flightdeck.yaml").write_text("project: mine\n")
    result = runner.invoke(app, ["init"], input="")
    assert result.exit_code == 1
    assert "Project name" not in result.output


def test_unknown_template_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "--template", "nope", "--yes"])
    assert result.exit_code == 2
    assert not (tmp_path / "flightdeck.yaml").exists()


def test_questionnaire_reasks_after_a_planned_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # 0.1 (single-select) keeps planned use cases for a long time; rag, the template's, is always ready
    planned = _first_planned("scoping.use_case")
    answers = _answers({
        "scoping.use_case": [_number("scoping.use_case", planned), _number("scoping.use_case", "rag")],
        "data.preprocessing": ["99", "4, 3 2,1"],  # out of range, then the four ready steps in any order
        "retrieval.system": ["-"],  # none: search falls back to vector mode
    })
    result = runner.invoke(app, ["init"], input="kb-assistant\n./kb\n" + answers)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "0.1 Define AI Use Case (Single-select)" in out
    assert "2.2 Choose Vector Database (Single-select)" in out
    ready = _ready("scoping.use_case")
    assert "rag" in ready and planned not in ready

    reason = option_status(f"scoping.use_case.{planned}").detail  # the stated reason, as validate gives it
    assert (f"'{planned}' is planned: {reason}. Ready here: {', '.join(ready)}. Choose again.") in out
    assert "'99' is not a choice" in out
    assert out.count("0.1 Define AI Use Case") == 1  # the question is re-asked, not the section re-shown
    assert "nothing ready in this build yet" in out
    assert "next: flightdeck validate && flightdeck run" in out

    path = tmp_path / "flightdeck.yaml"
    spec = _valid(path)
    assert spec.project == "kb-assistant"
    assert spec.data.sources[0].settings == {"path": "./kb"}
    assert spec.data.preprocessing == ["cleaning_normalization", "tokenization", "embedding_generation", "chunking"]
    assert spec.retrieval.vector_database.provider == "faiss"
    assert spec.retrieval.system == []
    assert spec.retrieval.search.mode == "vector"
    text = path.read_text()
    assert "  system: []\n" in text
    assert "  # splits: train_validation_test" in text


def test_questionnaire_accepts_option_ids_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    answers = _answers({
        "scoping.use_case": ["-", "rag"],  # a single-select with a default needs a choice
        "retrieval.embedding_model": ["sentence_transformers"],
    })
    result = runner.invoke(app, ["init", "--template", "rag", "--project", "p", "--source", "./docs"],
                           input=answers)
    assert result.exit_code == 0, result.output
    assert "Project name" not in result.output and "Folder of documents" not in result.output
    assert "needs a choice here" in result.output
    spec = _valid(tmp_path / "flightdeck.yaml")
    assert spec.scoping.use_case == "rag"
    assert spec.data.preprocessing == ["cleaning_normalization", "tokenization", "chunking", "embedding_generation"]
    assert spec.retrieval.embedding_model.provider == "sentence_transformers"


def test_questionnaire_reports_a_spec_that_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    answers = _answers({"data.sources": ["-"]})  # RAG without a source: written, but the check fails
    result = runner.invoke(app, ["init"], input="p\n./docs\n" + answers)
    assert result.exit_code == 1
    assert "needs at least one source" in result.output
    assert "flightdeck validate" in result.output
    assert (tmp_path / "flightdeck.yaml").exists()


def test_running_out_of_answers_aborts_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init"], input="p\n")
    assert result.exit_code == 1
    assert not (tmp_path / "flightdeck.yaml").exists()
