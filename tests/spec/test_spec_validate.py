"""``check_spec`` and ``flightdeck validate``: every problem at once, with file:line:column and what to do."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flightdeck.spec.loader as loader_mod
import flightdeck.spec.status as status_mod
from flightdeck.cli.main import app
from flightdeck.errors import SpecError
from flightdeck.registry import BUILTIN_FLAVORS, Category, Flavor, Registry, registry
from flightdeck.registry.flavors import PLANNED_REASONS
from flightdeck.spec.catalog import catalog
from flightdeck.spec.loader import check_spec, load_spec
from flightdeck.spec.models import spec_model
from flightdeck.spec.status import option_usable
from needs import needs_provider

pytestmark = pytest.mark.unit

runner = CliRunner()

MINIMAL = """\
project: demo
data:
  sources:
    - {provider: files, path: ./docs}
"""


def _write(tmp_path: Path, text: str, name: str = "flightdeck.yaml") -> Path:
    (tmp_path / "docs").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    loaded, problems = check_spec(path)
    assert loaded is None
    assert problems, "expected at least one problem"
    return [str(p) for p in problems]


def _one(tmp_path: Path, text: str) -> str:
    problems = _problems(tmp_path, text)
    assert len(problems) == 1, problems
    return problems[0]


def _validate(path: Path, *extra: str):
    return runner.invoke(app, ["validate", "--spec", str(path), *extra])


def _use_registry(monkeypatch: pytest.MonkeyPatch, flavors: list[Flavor]) -> Registry:
    """Validate against a private registry of ``flavors``, so that which options are ready is the test's choice.

    The loader and the option status read it; the spec model is built first, from the real registry, so
    that its cached JSON schema is not built from this one.
    """
    spec_model()
    reg = Registry(flavors, plugins=False)
    monkeypatch.setattr(status_mod, "registry", lambda: reg)
    monkeypatch.setattr(loader_mod, "registry", lambda: reg)
    return reg


def _builtins_without(*option_keys: str) -> list[Flavor]:
    """The built-in flavors minus every one that implements one of ``option_keys`` (which become planned)."""
    return [f for f in BUILTIN_FLAVORS if not set(option_keys) & set(f.options)]


def _only_vector_stores(*names: str) -> list[Flavor]:
    """The built-in flavors, with ``names`` the only vector stores."""
    return [f for f in BUILTIN_FLAVORS if f.category != Category.VECTOR_STORE or f.name in names]


# --- valid specs ----------------------------------------------------------------------------------------------


def test_minimal_spec_is_valid_and_gets_the_embedded_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    loaded, problems = check_spec(path)
    assert problems == []
    spec = loaded.spec
    assert spec.project == "demo"
    assert [(s.provider, s.settings) for s in spec.data.sources] == [("files", {"path": "./docs"})]
    # unset sections mean the embedded stack, as typed values (not raw dicts)
    assert spec.scoping.use_case == "rag"
    assert spec.scoping.latency is None  # no latency tier is claimed until one is benchmarked
    assert spec.retrieval.vector_database.provider == "faiss"
    assert spec.retrieval.embedding_model.provider == "sentence_transformers"
    assert spec.data.chunking.provider == "recursive"
    assert spec.model.generator.provider == "extractive"
    assert spec.retrieval.system == ["hybrid_search"]
    assert loaded.base_dir == path.parent
    assert loaded.position(("data", "sources", 0)) == (4, 7)


def test_validate_cli_ok(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    result = _validate(path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{path}: ok"


def test_validate_accepts_a_folder_holding_flightdeck_yaml(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL)
    result = _validate(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] is True and out["problems"] == []
    assert out["file"] == str((tmp_path / "flightdeck.yaml").resolve())


def test_example_spec_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "python-docs"
    loaded = load_spec(example)
    assert loaded.spec.retrieval.search.k == 10
    assert loaded.spec.data.chunking.settings == {"size": 256, "overlap": 32}


def test_missing_spec_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert "flightdeck init" in str(info.value)
    result = _validate(tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert "no spec found" in result.output


# --- one problem each -----------------------------------------------------------------------------------------


def test_typo_in_a_provider_value(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "retrieval:\n  vector_database: fiass\n")
    result = _validate(path)
    assert result.exit_code == 1
    assert f"{path}:6:20:" in result.output
    assert "retrieval.vector_database" in result.output
    names = registry().names(Category.VECTOR_STORE)
    assert "faiss" in names
    section = catalog().section("retrieval.vector_database")
    planned = [o.id for o in section.options if option_usable(o.key).state == "planned"]
    hint = f" Planned, not yet available: {', '.join(planned)}." if planned else ""
    assert f"unknown vector_store 'fiass'. Available: {', '.join(names)}. Did you mean 'faiss'?{hint}\n" \
        in result.output
    assert "1 problem in" in result.output


def test_typo_in_a_provider_value_names_the_planned_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_registry(monkeypatch, _only_vector_stores("faiss"))
    path = _write(tmp_path, MINIMAL + "retrieval:\n  vector_database: fiass\n")
    result = _validate(path)
    assert result.exit_code == 1
    assert f"{path}:6:20: retrieval.vector_database: unknown vector_store 'fiass'. Available: faiss. " \
           "Did you mean 'faiss'? Planned, not yet available: pinecone, weaviate, qdrant, chroma.\n" in result.output
    assert "1 problem in" in result.output


def test_typo_in_a_plain_choice(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "scoping:\n  use_case: rga\n")
    assert ":6:13:" in problem
    assert "'rga' is not a choice of 0.1 Define AI Use Case (Single-select)" in problem
    section = catalog().section("scoping.use_case")
    assert "Valid choices: " + ", ".join(section.option_ids) + "." in problem
    assert problem.endswith("Did you mean 'rag'?")


def test_two_values_in_a_single_select_section(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "scoping:\n  latency: [real_time, batch]\n")
    result = _validate(path)
    assert result.exit_code == 1
    assert f"{path}:6:" in result.output
    assert "takes one value, got 2: real_time, batch" in result.output
    assert "Choose one of: real_time, near_real_time, batch." in result.output


def test_a_single_value_where_a_list_is_expected(tmp_path: Path) -> None:
    problem = _one(tmp_path, "project: demo\ndata:\n  sources: [{provider: files, path: ./docs}]\n"
                             "  preprocessing: chunking\n")
    assert ":4:" in problem
    assert "takes a list, e.g. [cleaning_normalization]" in problem


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        (MINIMAL + "retrieval:\n  vector_database: qdrant\n", 6, "retrieval.vector_database.qdrant"),  # a provider
        (MINIMAL + "scoping:\n  latency: batch\n", 6, "scoping.latency.batch"),  # a plain single-select section
        (MINIMAL + "evaluation:\n  metrics: [f1]\n", 6, "evaluation.metrics.f1"),  # a multi-select section
    ],
)
def test_planned_option_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int, key: str) -> None:
    # whatever this build implements, the option is planned in a registry where nothing implements it
    _use_registry(monkeypatch, _builtins_without(key))
    assert option_usable(key).state == "planned"
    section_path, option = key.rsplit(".", 1)
    section = catalog().section(section_path)
    detail = PLANNED_REASONS.get(key, "not implemented in this build yet")
    path = _write(tmp_path, text)
    result = _validate(path)
    assert result.exit_code == 1
    assert f"{path}:{line}:" in result.output
    assert f"'{option}' ({section.heading}) is planned: {detail}. Ready choices: " in result.output
    assert "1 problem in" in result.output


@pytest.mark.parametrize(
    ("stores", "ready"),
    [(("faiss",), "faiss"),  # in the checklist's order; a store is a ready choice where its extra is installed
     pytest.param(("faiss", "chroma"), "chroma, faiss", marks=needs_provider(Category.VECTOR_STORE, "chroma"))],
)
def test_planned_vector_database_names_the_ready_choices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stores: tuple[str, ...], ready: str) -> None:
    _use_registry(monkeypatch, _only_vector_stores(*stores))
    problem = _one(tmp_path, MINIMAL + "retrieval:\n  vector_database: qdrant\n")
    assert ":6:20:" in problem
    assert "'qdrant' (2.2 Choose Vector Database (Single-select)) is planned" in problem
    assert problem.endswith(f" Ready choices: {ready}.")


def test_typo_in_a_multi_select_option(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "retrieval:\n  system: [hybrid_serch]\n")
    assert ":6:12:" in problem
    assert "retrieval.system.0" in problem
    assert "'hybrid_serch' is not a choice of 2.3 Retrieval System (RAG) (Multi-select)" in problem
    assert "hybrid_search, metadata_filtering" in problem
    assert problem.endswith("Did you mean 'hybrid_search'?")


def test_option_listed_twice(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "retrieval:\n  system:\n    - hybrid_search\n    - hybrid_search\n")
    assert ":8:" in problem
    assert "'hybrid_search' is listed twice" in problem


def test_unknown_top_level_key(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "retreival:\n  system: [hybrid_search]\n")
    assert ":5:1:" in problem
    assert "unknown key 'retreival'" in problem
    assert "Valid keys here: " in problem and "retrieval" in problem and "project" in problem
    assert problem.endswith("Did you mean 'retrieval'?")


def test_unknown_key_inside_a_phase(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "retrieval:\n  serch: {k: 5}\n")
    assert ":6:3:" in problem  # the key, not the value
    assert "unknown key 'serch'" in problem
    assert "Did you mean 'search'?" in problem


def test_unknown_provider_setting_names_the_valid_ones(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "  chunking: {provider: recursive, sise: 100}\n")
    assert ":5:" in problem
    assert "data.chunking.sise" in problem
    assert "unknown setting 'sise' for chunker 'recursive'" in problem
    assert "Valid: include_heading, overlap, separators, size." in problem
    assert problem.endswith("Did you mean 'size'?")


def test_unknown_source_setting_in_a_list_item(tmp_path: Path) -> None:
    problem = _one(tmp_path, "project: demo\ndata:\n  sources:\n"
                             "    - {provider: files, path: ./docs, inclde: ['*.md']}\n")
    assert ":4:" in problem
    assert "data.sources.0.inclde" in problem
    assert "unknown setting 'inclde' for source 'files'" in problem
    assert "Did you mean 'include'?" in problem


def test_provider_entry_without_provider_key(tmp_path: Path) -> None:
    problem = _one(tmp_path, "project: demo\ndata:\n  sources:\n    - {path: ./docs}\n")
    assert ":4:" in problem
    assert "needs a 'provider:' key" in problem


def test_unknown_generator(tmp_path: Path) -> None:
    # one problem: the latency rule must not repeat it as "real_time cannot be met by generator 'gpt4'"
    problem = _one(tmp_path, MINIMAL + "model:\n  generator: {provider: gpt4}\n")
    assert ":6:" in problem
    generators = registry().names(Category.GENERATOR)
    assert "extractive" in generators
    assert f"unknown generator 'gpt4'. Available: {', '.join(generators)}." in problem


def test_out_of_range_search_setting(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "retrieval:\n  search:\n    k: 0\n")
    assert ":7:8:" in problem
    assert "retrieval.search.k" in problem
    assert "greater than or equal to 1" in problem


def test_missing_project(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL.replace("project: demo\n", ""))
    assert "'project' is required." in problem


def test_phase_that_is_not_a_mapping(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "evaluation: [metrics]\n")
    assert ":5:" in problem
    assert "'evaluation' (PHASE 4: EVALUATION) is a mapping of its sections" in problem


# --- cross-field rules ------------------------------------------------------------------------------------------


def test_hybrid_search_mode_needs_the_hybrid_search_feature(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "retrieval:\n  system: []\n  search: {mode: hybrid}\n")
    assert ":7:" in problem
    assert "retrieval.search.mode" in problem
    assert "needs hybrid_search in retrieval.system" in problem
    assert "set mode: vector" in problem
    # the same spec in vector mode is fine
    path = _write(tmp_path, MINIMAL + "retrieval:\n  system: []\n  search: {mode: vector}\n")
    assert check_spec(path)[1] == []


def test_chunk_size_larger_than_the_model_maximum(tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("needs the sentence_transformers extra")
    model = tmp_path / "tiny-model"
    model.mkdir()
    (model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256}))
    text = (MINIMAL
            + "  chunking: {provider: recursive, size: 1000}\n"
            + f"retrieval:\n  embedding_model: {{provider: sentence_transformers, model: {model}}}\n")
    problem = _one(tmp_path, text)
    assert ":5:" in problem
    assert "data.chunking.size" in problem
    assert "chunk size 1000 exceeds the embedding model's maximum sequence length 256" in problem
    assert "set size <= 256" in problem
    path = _write(tmp_path, text.replace("size: 1000", "size: 256"))
    assert check_spec(path)[1] == []


def test_rag_needs_a_source_and_a_vector_database(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "project: demo\nretrieval:\n  vector_database: null\n")
    assert len(problems) == 2, problems
    assert any(":3:" in p and "use case 'rag' needs a vector database" in p for p in problems)
    assert any("needs at least one source in data.sources" in p for p in problems)


def test_rag_needs_chunking_in_preprocessing(tmp_path: Path) -> None:
    problems = _problems(tmp_path, MINIMAL + "  preprocessing: [cleaning_normalization, embedding_generation]\n")
    assert len(problems) == 1, problems
    assert ":5:" in problems[0]
    assert "needs 'chunking' in data.preprocessing" in problems[0]


# --- many problems at once, YAML errors, JSON output ------------------------------------------------------------

MANY = """\
project: demo
scoping:
  use_case: rga
  latency: [real_time, batch]
data:
  sources:
    - {provider: files, path: ./docs}
  chunking: {provider: recursive, sise: 100}
  versioning: [pachyderm]
retrieval:
  vector_database: fiass
  system: [hybrid_serch]
retreival: {}
"""

MANY_EXPECTED = {
    (3, "scoping.use_case"),
    (4, "scoping.latency"),
    (8, "data.chunking.sise"),
    (9, "data.versioning.0"),
    (11, "retrieval.vector_database"),
    (12, "retrieval.system.0"),
    (13, "retreival"),
}


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, MANY)
    loaded, problems = check_spec(path)
    assert loaded is None
    assert {(p.line, p.location) for p in problems} == MANY_EXPECTED
    assert len(problems) == len(MANY_EXPECTED)
    assert all(p.path == str(path) for p in problems)
    result = _validate(path)
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == len(MANY_EXPECTED)
    assert {int(re.match(rf"error: {re.escape(str(path))}:(\d+):\d+: ", ln).group(1)) for ln in errors} == \
        {line for line, _ in MANY_EXPECTED}
    assert f"{len(MANY_EXPECTED)} problems in {path}" in result.output


def test_json_output_lists_every_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, MANY)
    result = _validate(path, "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False
    assert out["file"] == str(path)
    assert len(out["problems"]) == len(MANY_EXPECTED)
    for p in out["problems"]:
        assert set(p) == {"file", "line", "column", "location", "message"}
        assert p["file"] == str(path)
        assert isinstance(p["line"], int) and isinstance(p["column"], int)
    assert {(p["line"], p["location"]) for p in out["problems"]} == MANY_EXPECTED
    by_loc = {p["location"]: p for p in out["problems"]}
    assert by_loc["retrieval.vector_database"]["column"] == 20
    assert "Did you mean 'faiss'?" in by_loc["retrieval.vector_database"]["message"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("project: demo\nscoping:\n  use_case: rag\n latency: real_time\n", 4),  # bad indentation
        ("project: demo\nscoping:\n\tuse_case: rag\n", 3),  # a tab
        ("project: demo\nscoping:\n  use_case: rag\n  use_case: agents\n", 4),  # duplicate key
        ("project: demo\ndata:\n  sources: [files\n", 4),  # unclosed flow sequence
    ],
)
def test_invalid_yaml_reports_line_and_column(tmp_path: Path, text: str, line: int) -> None:
    problem = _one(tmp_path, text)
    assert re.search(rf":{line}:\d+: invalid YAML: ", problem), problem
    path = tmp_path / "flightdeck.yaml"
    result = _validate(path, "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False
    assert out["problems"][0]["line"] == line
    assert out["problems"][0]["column"] >= 1
    assert out["problems"][0]["message"].startswith("invalid YAML: ")


def test_a_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    problem = _one(tmp_path, "- project\n- demo\n")
    assert ":1:1:" in problem
    assert "a spec is a mapping of keys" in problem


def test_load_spec_raises_with_every_problem(tmp_path: Path) -> None:
    _write(tmp_path, MANY)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert len(info.value.problems) == len(MANY_EXPECTED)
    assert str(info.value).count("\n") == len(MANY_EXPECTED) - 1


# --- schema -----------------------------------------------------------------------------------------------------


def test_schema_covers_every_phase_and_the_choices() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    props = schema["properties"]
    assert {"project", "workspace"} <= set(props)
    assert schema["required"] == ["project"]
    defs = schema["$defs"]
    for phase in catalog().phases:
        assert phase.key in props, phase.key
        phase_def = defs[props[phase.key]["$ref"].rsplit("/", 1)[1]]
        assert phase_def["additionalProperties"] is False
        assert {s.key for s in phase.sections} <= set(phase_def["properties"]), phase.key
    vector_db = defs["RetrievalPhase"]["properties"]["vector_database"]
    enums = [b.get("enum") for b in vector_db["anyOf"] if b.get("type") == "string"]
    option_ids = catalog().section("retrieval.vector_database").option_ids
    assert option_ids == ["pinecone", "weaviate", "qdrant", "chroma", "faiss"]
    # the checklist's options first, in its order, then registered stores that no option names (pgvector…)
    registered = [n for n in registry().names(Category.VECTOR_STORE) if n not in option_ids]
    assert enums == [[*option_ids, *registered]]
    # a bare name is as valid as {provider: name}: the schema must say so (the example spec uses both)
    assert {b.get("type") for b in vector_db["anyOf"]} >= {"string", "object"}
    sources = defs["DataPhase"]["properties"]["sources"]["items"]
    source_names = next(b["enum"] for b in sources["anyOf"] if b.get("type") == "string")
    assert "files" in source_names and "pdf_doc_ingestion" in source_names
    latency = json.dumps(defs["ScopingPhase"]["properties"]["latency"])
    assert '"real_time", "near_real_time", "batch"' in latency


def test_a_registered_provider_whose_option_is_planned_is_refused(tmp_path: Path) -> None:
    problem = _one(tmp_path, MINIMAL + "  versioning: [lakefs]\n")
    assert "'lakefs'" in problem and "is planned: no lakeFS server can run here" in problem


def test_a_validator_message_is_said_in_its_own_words(tmp_path: Path) -> None:
    """pydantic prefixes what a validator raises with "Value error, "; people read the validator's words only."""
    spec = MINIMAL + "retrieval:\n  search: {keyword_index: postgres}\n"
    problem = _one(tmp_path, spec)
    assert ": retrieval.search: keyword_index: postgres needs keyword_url" in problem
    assert "Value error" not in problem
    unknown = _one(tmp_path, MINIMAL + "retrieval:\n  search: {keyword_index: bm26}\n")
    assert "retrieval.search.keyword_index: Unknown keyword_index 'bm26'. Available: bm25, fts5, postgres." in unknown
    assert "Value error" not in unknown
