"""The spec writer: a commented flightdeck.yaml that parses, validates and reads like the checklist."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from flightdeck.registry import Category
from flightdeck.spec import writer
from flightdeck.spec.catalog import catalog
from flightdeck.spec.loader import check_spec
from flightdeck.spec.status import OptionStatus, option_usable
from flightdeck.spec.writer import default_choices, default_sources, format_value, render_spec
from needs import needs_provider

pytestmark = pytest.mark.unit


def _rag(**overrides: object) -> dict[str, object]:
    choices = default_choices()
    choices.update(overrides)
    return choices


def _parse(text: str) -> dict:
    return YAML(typ="safe").load(text)


def _check(tmp_path: Path, text: str):
    path = tmp_path / "flightdeck.yaml"
    path.write_text(text, encoding="utf-8")
    return check_spec(path)


def _marks(text: str, heading: str) -> list[str]:
    """The options written next to a section's heading comment, its wrapped continuation lines included."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  # {heading}: "))
    body = lines[start][len(f"  # {heading}: "):]
    for line in lines[start + 1:]:
        if not line.startswith("  #     "):
            break
        body += " " + line[len("  #     "):]
    return [m.strip() for m in body.split(" | ")]


def _expected_mark(key: str, option_id: str) -> str:
    state = option_usable(key).state
    return option_id if state == "ready" else f"{option_id} ({state})"


def test_rag_template_parses_and_validates(tmp_path: Path) -> None:
    text = render_spec("docs-assistant", _rag(), sources=default_sources("./docs"))
    loaded, problems = _check(tmp_path, text)
    assert problems == []
    spec = loaded.spec
    assert spec.project == "docs-assistant"
    assert spec.scoping.use_case == "rag"
    assert spec.scoping.objective == "retrieval_system"
    assert [s.provider for s in spec.data.sources] == ["files"]
    assert spec.data.sources[0].settings == {"path": "./docs"}
    assert spec.data.preprocessing == ["cleaning_normalization", "tokenization", "chunking", "embedding_generation"]
    assert spec.data.chunking.provider == "recursive"
    assert spec.data.chunking.settings == {"size": 256, "overlap": 32}
    assert spec.retrieval.embedding_model.provider == "sentence_transformers"
    assert spec.retrieval.vector_database.provider == "faiss"
    assert spec.retrieval.system == ["hybrid_search"]
    assert (spec.retrieval.search.mode, spec.retrieval.search.k) == ("hybrid", 10)
    assert spec.model.generator.provider == "extractive"


def test_chosen_sections_are_real_yaml(tmp_path: Path) -> None:
    text = render_spec("p", _rag(), sources=default_sources())
    assert "  use_case: rag\n" in text
    assert "  preprocessing: [cleaning_normalization, tokenization, chunking, embedding_generation]\n" in text
    assert "  sources:\n    - {provider: files, path: ./docs}\n" in text
    assert "  chunking: {provider: recursive, size: 256, overlap: 32}\n" in text
    assert "  search: {mode: hybrid, k: 10}\n" in text
    assert "  generator: extractive\n" in text


def test_comments_carry_the_seed_wording_and_status() -> None:
    text = render_spec("p", _rag(), sources=default_sources())
    # every option of the section, in the seed's order, marked with its status in this build
    section = catalog().section("retrieval.vector_database")
    marks = _marks(text, section.heading)
    assert marks == [_expected_mark(o.key, o.id) for o in section.options]
    assert "# 1.3 Data Preprocessing (Multi-select): cleaning_normalization | tokenization" in text
    assert "image_augmentation (planned)" in text
    # ready options carry no mark
    assert "faiss" in marks and "faiss (" not in text
    for phase in catalog().phases:
        assert f"# {phase.heading}" in text
        for section in phase.sections:
            assert f"# {section.heading}: " in text, section.heading
    for hint in ("flightdeck validate", "flightdeck checklist", "flightdeck run"):
        assert hint in text


def test_comment_lines_stay_within_the_page_width() -> None:
    text = render_spec("p", _rag(), sources=default_sources())
    assert max(len(line) for line in text.splitlines()) <= 120


def test_unchosen_sections_are_commented_out() -> None:
    text = render_spec("p", _rag(), sources=default_sources())
    lines = text.splitlines()
    assert "  # splits: train_validation_test" in lines
    assert "  # versioning: [dvc]" in lines
    assert not any(line.lstrip().startswith("splits:") for line in lines)
    data = _parse(text)
    assert "splits" not in data["data"] and "versioning" not in data["data"]
    assert "type" not in data["model"]


def test_phases_with_nothing_chosen_are_empty_maps_with_their_sections_commented(tmp_path: Path) -> None:
    text = render_spec("p", _rag(), sources=default_sources())
    data = _parse(text)
    assert list(data) == ["project", *(p.key for p in catalog().phases)]
    for key in ("evaluation", "deployment", "agents", "monitoring", "governance", "improvement"):
        assert data[key] == {}
        assert f"\n{key}: {{}}\n" in text
    assert "  # packaging: [artifact_registry]" in text  # the first ready option is the example
    assert "  # strategy: serverless" in text
    loaded, problems = _check(tmp_path, text)
    assert problems == []
    assert loaded.spec.deployment.packaging == []


def test_nothing_chosen_still_parses() -> None:
    data = _parse(render_spec("p", {}))
    assert data["scoping"] == {}
    assert "sources" not in data["data"]
    assert "  # sources: [{provider: files, path: ./docs}]" in render_spec("p", {})
    assert data["data"]["chunking"]["provider"] == "recursive"


def test_an_empty_list_is_written_as_explicitly_none() -> None:
    data = _parse(render_spec("p", _rag(**{"data.versioning": []}), sources=[]))
    assert data["data"]["versioning"] == []
    assert data["data"]["sources"] == []


def test_search_mode_follows_hybrid_search(tmp_path: Path) -> None:
    text = render_spec("p", _rag(**{"retrieval.system": []}), sources=default_sources())
    assert "  search: {mode: vector, k: 10}\n" in text
    loaded, problems = _check(tmp_path, text)
    assert problems == []
    assert loaded.spec.retrieval.search.mode == "vector"


def test_settings_can_be_given(tmp_path: Path) -> None:
    choices = _rag(**{"data.chunking": {"provider": "recursive", "size": 128, "overlap": 16},
                      "retrieval.search": {"mode": "keyword", "k": 5}})
    loaded, problems = _check(tmp_path, render_spec("p", choices, sources=default_sources()))
    assert problems == []
    assert loaded.spec.data.chunking.settings == {"size": 128, "overlap": 16}
    assert (loaded.spec.retrieval.search.mode, loaded.spec.retrieval.search.k) == ("keyword", 5)


def test_values_are_written_as_given_never_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_TOKEN", "s3cret")
    sources = [{"provider": "files", "path": "${KB_PATH}", "include": ["**/*.md", "**/*.html"]},
               {"provider": "sql", "url": "${KB_TOKEN}", "text": ["title", "body"]}]
    text = render_spec("p", _rag(), sources=sources)
    assert "s3cret" not in text
    assert _parse(text)["data"]["sources"] == sources


@pytest.mark.parametrize("value", [
    "yes", "No", "on", "null", "~", "true", "1", "1.0", "0x1f", "", " padded ", "a: b", "#hash", "- dash",
    "quote\"d", "it's", "[x]", "{x}", "*star", "&amp", "!tag", "%pct", "@at", "`tick", "|", ">", "tab\there",
    "multi\nline", "ünïcode", "${ENV_VAR}", "./docs", "**/*.md", "2024-01-01",
])
def test_format_value_round_trips_strings(value: str) -> None:
    assert _parse(f"k: {format_value(value)}\n")["k"] == value


def test_format_value_round_trips_structures() -> None:
    value = {"a": [1, 2.5, True, None, "x y"], "b": {"c": "d"}, "e": []}
    assert _parse(f"k: {format_value(value)}\n")["k"] == value


def test_project_names_are_quoted_when_needed(tmp_path: Path) -> None:
    loaded, problems = _check(tmp_path, render_spec("my project: v2", _rag(), sources=default_sources()))
    assert problems == []
    assert loaded.spec.project == "my project: v2"


def test_unknown_choice_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="retrieval.vector_db"):
        render_spec("p", {"retrieval.vector_db": "faiss"})


def test_needs_extra_options_are_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    real = writer.option_usable

    def fake(key: str) -> OptionStatus:
        if key == "retrieval.vector_database.faiss":
            return OptionStatus("needs extra", "pip install 'flightdeck[faiss]'")
        return real(key)

    monkeypatch.setattr(writer, "option_usable", fake)
    text = render_spec("p", _rag(), sources=default_sources())
    marks = _marks(text, "2.2 Choose Vector Database (Single-select)")
    assert marks[-1] == "faiss (needs extra)"  # faiss is the section's last option
    assert "faiss" not in marks
    assert [m.split(" ")[0] for m in marks] == catalog().section("retrieval.vector_database").option_ids


@needs_provider(Category.GENERATOR, "llama_cpp")  # the LLM the written spec chooses: validates where it is installed
def test_choosing_query_transformation_writes_a_spec_that_validates(tmp_path: Path) -> None:
    from flightdeck.spec.loader import check_spec

    choices = {**_rag(), "retrieval.system": ["hybrid_search", "query_transformation"]}
    path = tmp_path / "flightdeck.yaml"
    path.write_text(render_spec("p", choices, sources=default_sources()))
    assert check_spec(path)[1] == []
    text = path.read_text()
    assert "\n  query_transformation: {provider: multi_query, queries: 3}\n" in text
    assert "\n  generator: llama_cpp\n" in text  # the transformation needs an LLM; extractive cannot write
