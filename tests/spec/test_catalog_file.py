"""Shape checks for the checklist catalog (src/flightdeck/spec/checklist.yaml).

The catalog is the seed checklist transcribed as data; these tests pin its
size and structure so that an accidental edit shows up at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

CATALOG = Path(__file__).resolve().parents[2] / "src" / "flightdeck" / "spec" / "checklist.yaml"

KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
URL_RE = re.compile(r"^https?://\S+$")

PHASE_KEYS = [
    "scoping",
    "data",
    "retrieval",
    "model",
    "evaluation",
    "deployment",
    "agents",
    "monitoring",
    "governance",
    "improvement",
]

# section number -> (section key, number of options in the seed)
SECTIONS = {
    "0.1": ("use_case", 8),
    "0.2": ("objective", 6),
    "0.3": ("latency", 3),
    "1.1": ("sources", 7),
    "1.2": ("versioning", 4),
    "1.3": ("preprocessing", 6),
    "1.4": ("splits", 3),
    "2.1": ("embedding_model", 4),
    "2.2": ("vector_database", 5),
    "2.3": ("system", 6),
    "3.1": ("type", 5),
    "3.2": ("frameworks", 5),
    "3.3": ("agent_frameworks", 4),
    "3.4": ("experiment_tracking", 4),
    "3.5": ("hyperparameter_optimization", 4),
    "4.1": ("metrics", 7),
    "4.2": ("tools", 4),
    "4.3": ("validations", 5),
    "5.1": ("packaging", 4),
    "5.2": ("strategy", 4),
    "5.3": ("serving_apis", 5),
    "5.4": ("model_registry", 4),
    "6.1": ("tools", 6),
    "6.2": ("memory", 4),
    "6.3": ("orchestration", 4),
    "7.1": ("model_monitoring", 5),
    "7.2": ("drift_tools", 2),
    "7.3": ("rag_monitoring", 4),
    "7.4": ("logging", 4),
    "8.1": ("model_governance", 4),
    "8.2": ("responsible_ai", 4),
    "8.3": ("access_control", 3),
    "9.1": ("optimization", 5),
    "9.2": ("ci_cd", 4),
    "9.3": ("future_proofing", 4),
}

# Option ids that other parts of flightdeck (and users' spec files) rely on.
REQUIRED_IDS = {
    "0.1": "classification regression nlp_llms vision forecasting recommendations rag agents",
    "0.2": "predictive_model generative_model embedding_model agentic_workflow retrieval_system reinforcement_learning",
    "0.3": "real_time near_real_time batch",
    "1.1": "sql_databases data_warehouses data_lakes apis pdf_doc_ingestion web_scraping synthetic_data_generation",
    "1.2": "dvc lakefs pachyderm datahub",
    "1.3": "cleaning_normalization tokenization embedding_generation chunking ocr image_augmentation",
    "1.4": "train_validation_test k_fold time_series_split",
    "2.1": "openai huggingface sentence_transformers cohere",
    "2.2": "pinecone weaviate qdrant chroma faiss",
    "2.3": "langchain llamaindex haystack hybrid_search metadata_filtering query_transformation",
}


@pytest.fixture(scope="module")
def catalog() -> dict:
    with CATALOG.open(encoding="utf-8") as fh:
        return YAML(typ="safe").load(fh)


def _sections(catalog: dict):
    for phase in catalog["phases"]:
        for section in phase["sections"]:
            yield phase, section


def _options(catalog: dict):
    for phase, section in _sections(catalog):
        for option in section["options"]:
            yield phase, section, option


def _by_number(catalog: dict) -> dict:
    return {section["number"]: section for _, section in _sections(catalog)}


def test_header(catalog):
    assert catalog["title"] == "AI ENGINEERING MASTER WORKFLOW CHECKLIST"
    assert catalog["subtitle"] == (
        "LLM Development → Retrieval → Agents → Deployment → Monitoring → Governance"
    )


def test_totals(catalog):
    assert len(catalog["phases"]) == 10
    assert len(list(_sections(catalog))) == 35
    assert len(list(_options(catalog))) == 160


def test_phase_keys_and_numbers(catalog):
    assert [p["key"] for p in catalog["phases"]] == PHASE_KEYS
    assert [p["number"] for p in catalog["phases"]] == list(range(10))
    for phase in catalog["phases"]:
        assert isinstance(phase["title"], str) and phase["title"].strip()


def test_sections_in_seed_order(catalog):
    numbers = [section["number"] for _, section in _sections(catalog)]
    assert numbers == list(SECTIONS)
    for phase, section in _sections(catalog):
        assert section["number"].split(".")[0] == str(phase["number"])
        assert section["key"] == SECTIONS[section["number"]][0]
        assert isinstance(section["title"], str) and section["title"].strip()
        assert "select)" not in section["title"]


def test_per_section_option_counts(catalog):
    counts = {number: len(section["options"]) for number, section in _by_number(catalog).items()}
    assert counts == {number: count for number, (_, count) in SECTIONS.items()}


def test_keys_are_snake_case(catalog):
    for phase in catalog["phases"]:
        assert KEY_RE.match(phase["key"]), phase["key"]
    for _, section in _sections(catalog):
        assert KEY_RE.match(section["key"]), section["key"]
    for _, section, option in _options(catalog):
        assert KEY_RE.match(option["id"]), (section["key"], option["id"])


def test_phase_keys_unique(catalog):
    keys = [p["key"] for p in catalog["phases"]]
    assert len(keys) == len(set(keys))


def test_section_keys_unique_within_phase(catalog):
    for phase in catalog["phases"]:
        keys = [s["key"] for s in phase["sections"]]
        assert len(keys) == len(set(keys)), phase["key"]


def test_option_ids_unique_within_section(catalog):
    for phase, section in _sections(catalog):
        ids = [o["id"] for o in section["options"]]
        assert len(ids) == len(set(ids)), f"{phase['key']}.{section['key']}"


def test_select_mode(catalog):
    for _, section in _sections(catalog):
        assert section["select"] in ("single", "multi"), section["key"]


def test_section_without_select_mode_in_seed_has_note(catalog):
    drift = _by_number(catalog)["7.2"]
    assert drift["select"] == "multi"
    assert drift["note"] == "The seed gives no select mode; treated as multi-select."


def test_labels_non_empty(catalog):
    for _, section, option in _options(catalog):
        label = option.get("label")
        assert isinstance(label, str) and label.strip(), (section["key"], option["id"])
        assert "→" not in label and "http" not in label, (section["key"], option["id"])


def test_links_are_urls(catalog):
    seen = 0
    for _, section, option in _options(catalog):
        for link in option.get("links", []):
            seen += 1
            assert isinstance(link["name"], str) and link["name"].strip(), option["id"]
            assert isinstance(link["url"], str) and URL_RE.match(link["url"]), (
                section["key"],
                option["id"],
                link["url"],
            )
    assert seen > 0


def test_only_known_fields(catalog):
    assert set(catalog) == {"title", "subtitle", "phases"}
    for phase in catalog["phases"]:
        assert set(phase) == {"key", "number", "title", "sections"}
    for _, section in _sections(catalog):
        assert {"key", "number", "title", "select", "options"} <= set(section)
        assert set(section) <= {"key", "number", "title", "select", "note", "options"}
    for _, _, option in _options(catalog):
        assert {"id", "label"} <= set(option) <= {"id", "label", "links"}


def test_required_ids(catalog):
    sections = _by_number(catalog)
    for number, ids in REQUIRED_IDS.items():
        assert [o["id"] for o in sections[number]["options"]] == ids.split(), number


def test_llm_option_keeps_unlinked_names(catalog):
    llm = _by_number(catalog)["3.1"]["options"][0]
    assert llm["id"] == "llm"
    assert llm["label"] == "LLM (OpenAI, Anthropic, GPT-NeoX, Llama3)"
    assert llm["links"] == [
        {"name": "OpenAI", "url": "https://platform.openai.com"},
        {"name": "Anthropic", "url": "https://anthropic.com"},
    ]
