"""The catalog drives the spec model and ``flightdeck checklist``: every option is a spec value with a status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from flightdeck.cli.main import app
from flightdeck.spec.catalog import catalog
from flightdeck.spec.models import EMBEDDED_DEFAULTS, PROVIDER_SECTIONS, PROVIDER_SETTINGS, ProviderRef, spec_model
from flightdeck.spec.report import checklist_report
from flightdeck.spec.status import option_status

pytestmark = pytest.mark.unit

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-docs"
STATES = {"ready", "needs extra", "planned"}

SECTIONS = catalog().sections
PLAIN = [s for s in SECTIONS if s.path not in PROVIDER_SECTIONS]
PROVIDERS = [s for s in SECTIONS if s.path in PROVIDER_SECTIONS]


def _ids(sections) -> list[str]:
    return [s.path for s in sections]


# --- the catalog --------------------------------------------------------------------------------------------


def test_catalog_size() -> None:
    cat = catalog()
    assert len(cat.phases) == 10
    assert len(cat.sections) == 35
    assert len(cat.options) == 160
    assert [p.number for p in cat.phases] == list(range(10))
    assert len({o.key for o in cat.options}) == 160  # keys are unique


def test_catalog_lookups() -> None:
    cat = catalog()
    section = cat.section("retrieval.vector_database")
    assert section is not None and section.number == "2.2" and not section.multi
    assert section.heading == "2.2 Choose Vector Database (Single-select)"
    assert cat.option("retrieval.vector_database.faiss").label == "Faiss"
    assert cat.option("retrieval.vector_database.nope") is None
    assert cat.section("retrieval.nope") is None
    assert cat.phase("retrieval").heading == "PHASE 2: VECTOR & RETRIEVAL SYSTEMS"
    assert section.option("faiss").key == "retrieval.vector_database.faiss"


def test_provider_sections_exist_in_the_catalog() -> None:
    assert {s.path for s in PROVIDERS} == set(PROVIDER_SECTIONS)
    for path in PROVIDER_SETTINGS:
        assert catalog().section(path) is None, f"{path} is a settings key, not a checklist section"


# --- every option id is a spec value -------------------------------------------------------------------------


@pytest.mark.parametrize("section", PLAIN, ids=_ids(PLAIN))
def test_every_option_of_a_plain_section_is_accepted(section) -> None:
    model = spec_model()
    for option_id in section.option_ids:
        value = [option_id] if section.multi else option_id
        spec = model.model_validate({"project": "x", section.phase: {section.key: value}})
        assert getattr(getattr(spec, section.phase), section.key) == value
    if section.multi:
        spec = model.model_validate({"project": "x", section.phase: {section.key: section.option_ids}})
        assert getattr(getattr(spec, section.phase), section.key) == section.option_ids


@pytest.mark.parametrize("section", PLAIN, ids=_ids(PLAIN))
def test_a_plain_section_refuses_the_wrong_form_and_unknown_ids(section) -> None:
    model = spec_model()
    first = section.option_ids[0]
    wrong_form = first if section.multi else [first]
    with pytest.raises(ValidationError):
        model.model_validate({"project": "x", section.phase: {section.key: wrong_form}})
    bad = ["not_an_option"] if section.multi else "not_an_option"
    with pytest.raises(ValidationError):
        model.model_validate({"project": "x", section.phase: {section.key: bad}})


@pytest.mark.parametrize("section", PROVIDERS, ids=_ids(PROVIDERS))
def test_every_option_of_a_provider_section_is_accepted_in_both_forms(section) -> None:
    model = spec_model()
    for option_id in section.option_ids:
        for form in (option_id, {"provider": option_id, "some_setting": 1}):
            value = [form] if section.multi else form
            spec = model.model_validate({"project": "x", section.phase: {section.key: value}})
            got = getattr(getattr(spec, section.phase), section.key)
            ref = got[0] if section.multi else got
            assert isinstance(ref, ProviderRef)
            assert ref.provider == option_id
            assert ref.settings == ({} if isinstance(form, str) else {"some_setting": 1})


def test_spec_model_is_strict_about_keys() -> None:
    model = spec_model()
    with pytest.raises(ValidationError):
        model.model_validate({"project": "x", "retreival": {}})
    with pytest.raises(ValidationError):
        model.model_validate({"project": "x", "retrieval": {"serch": {}}})
    with pytest.raises(ValidationError):
        model.model_validate({"retrieval": {}})  # project is required
    with pytest.raises(ValidationError):
        model.model_validate({"project": ""})


def test_unset_sections_are_the_embedded_defaults() -> None:
    spec = spec_model().model_validate({"project": "x"})
    for path, default in EMBEDDED_DEFAULTS.items():
        phase, key = path.split(".")
        value = getattr(getattr(spec, phase), key)
        if path in PROVIDER_SECTIONS or path in PROVIDER_SETTINGS:
            assert isinstance(value, ProviderRef), path
            assert value.provider == default
            assert value.settings == {}
        else:
            assert value == default, path
    assert spec.data.sources == []
    assert spec.workspace == ".flightdeck"


def test_embedded_defaults_are_ready_options() -> None:
    for path, default in EMBEDDED_DEFAULTS.items():
        section = catalog().section(path)
        if section is None:
            continue  # settings keys (chunking, generator) are not checklist options
        for option_id in default if isinstance(default, list) else [default]:
            assert option_status(f"{path}.{option_id}").state == "ready", f"{path}.{option_id}"


# --- flightdeck checklist ------------------------------------------------------------------------------------


def _checklist(*args: str):
    result = runner.invoke(app, ["checklist", *args])
    assert result.exit_code == 0, result.output
    return result


def test_checklist_json_without_a_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = json.loads(_checklist("--format", "json").stdout)
    assert report["sections"] == 35
    assert report["options"] == 160
    assert len(report["phases"]) == 10
    options = [o for p in report["phases"] for s in p["sections"] for o in s["options"]]
    assert len(options) == 160
    assert len([s for p in report["phases"] for s in p["sections"]]) == 35
    assert {o["status"] for o in options} <= STATES
    assert all(o["selected"] is False for o in options)
    assert sum(report["counts"].values()) == 160
    for state in STATES:
        assert report["counts"][state] == sum(o["status"] == state for o in options)
    by_key = {o["key"]: o for o in options}
    assert by_key["retrieval.vector_database.faiss"]["status"] in {"ready", "needs extra"}
    assert by_key["retrieval.vector_database.faiss"]["providers"] == ["vector_store:faiss"]
    assert by_key["retrieval.vector_database.pinecone"]["status"] == "planned"
    assert by_key["retrieval.vector_database.pinecone"]["providers"] == []
    assert by_key["retrieval.system.hybrid_search"]["status"] == "ready"
    # the statuses come from the registry, option by option
    for key, o in by_key.items():
        assert o["status"] == option_status(key).state, key


def test_checklist_json_with_the_example_spec() -> None:
    report = json.loads(_checklist("--spec", str(EXAMPLE), "--format", "json").stdout)
    selected = {o["key"] for p in report["phases"] for s in p["sections"] for o in s["options"] if o["selected"]}
    assert {
        "retrieval.vector_database.faiss",
        "retrieval.embedding_model.sentence_transformers",
        "retrieval.system.hybrid_search",
        "scoping.use_case.rag",
    } <= selected
    # the files source implements PDF/Doc ingestion; the example's other choices are ticked too
    assert {"data.sources.pdf_doc_ingestion", "scoping.objective.retrieval_system",
            "data.preprocessing.chunking"} <= selected
    assert not any(k.startswith("scoping.latency.") for k in selected)
    assert "retrieval.vector_database.pinecone" not in selected
    assert "scoping.use_case.agents" not in selected


def test_checklist_json_flag_is_the_same_as_format_json() -> None:
    a = json.loads(_checklist("--spec", str(EXAMPLE), "--json").stdout)
    b = json.loads(_checklist("--spec", str(EXAMPLE), "--format", "json").stdout)
    assert a == b


def test_checklist_ticks_the_embedded_defaults_of_a_minimal_spec(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "flightdeck.yaml").write_text("project: demo\ndata:\n  sources: [{provider: files, path: ./docs}]\n")
    from flightdeck.spec.loader import load_spec

    report = checklist_report(load_spec(tmp_path).spec)
    selected = {o["key"] for p in report["phases"] for s in p["sections"] for o in s["options"] if o["selected"]}
    assert {"retrieval.vector_database.faiss", "retrieval.embedding_model.sentence_transformers",
            "scoping.use_case.rag", "data.sources.pdf_doc_ingestion"} <= selected


def test_checklist_markdown() -> None:
    out = _checklist("--spec", str(EXAMPLE), "--format", "markdown").stdout
    assert "# PHASE 0: " in out
    assert "# PHASE 2: VECTOR & RETRIEVAL SYSTEMS" in out
    assert "## 2.2 Choose Vector Database (Single-select)" in out
    assert "## 2.3 Retrieval System (RAG) (Multi-select)" in out
    faiss_line = next(ln for ln in out.splitlines() if "`faiss`" in ln)
    assert faiss_line.startswith("- [x] Faiss")
    pinecone_line = next(ln for ln in out.splitlines() if "`pinecone`" in ln)
    assert pinecone_line.startswith("- [ ] Pinecone")
    assert "planned" in pinecone_line
    assert out.count("- [") == 160


def test_checklist_text_without_a_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = _checklist().stdout
    assert "PHASE 9: " in out
    assert "[x]" not in out
    assert "160 options in 35 sections" in out


def test_checklist_with_a_broken_spec_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flightdeck.yaml").write_text("project: demo\nretrieval:\n  vector_database: fiass\n")
    result = runner.invoke(app, ["checklist", "--format", "json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False
    assert any(p["line"] == 3 and "fiass" in p["message"] for p in out["problems"])
