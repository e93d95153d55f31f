"""The Haystack retriever component over a real flightdeck index with real haystack-ai; filter translation."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # read when haystack is first imported
pytest.importorskip("haystack")

from haystack import Document, Pipeline  # noqa: E402
from haystack.components.builders import PromptBuilder  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.errors import FlightdeckError, MissingDependencyError  # noqa: E402
from flightdeck.integrations import haystack_retriever  # noqa: E402
from flightdeck.integrations.haystack import HaystackRetriever, haystack_filters_to_where  # noqa: E402
from flightdeck.retrieval.filters import FilterError, parse_filter  # noqa: E402
from flightdeck.testing.adapter_corpus import QUERY, build_adapter_project  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build_adapter_project(tmp_path_factory.mktemp("hs"))


def _ids(docs: list[Document]) -> list[str]:
    return [d.id for d in docs]


def _c(field: str, op: str, value: object) -> dict:
    return {"field": field, "operator": op, "value": value}


# --- against the real index ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.exercises("retrieval.system.haystack")
def test_pipeline_runs_and_survives_dumps_and_loads(built: Project) -> None:
    expected = built.search(QUERY, k=3).hits
    pipe = Pipeline()
    pipe.add_component("retriever", HaystackRetriever(project=built, top_k=3))
    pipe.add_component("prompt", PromptBuilder(
        template="{% for d in documents %}[{{ loop.index }}] {{ d.meta.title }}: {{ d.content }}\n{% endfor %}"
                 "Question: {{ question }}"))
    pipe.connect("retriever.documents", "prompt.documents")

    def run(p: Pipeline) -> dict:
        return p.run({"retriever": {"query": QUERY}, "prompt": {"question": QUERY}},
                     include_outputs_from={"retriever"})

    out = run(pipe)
    docs = out["retriever"]["documents"]
    assert _ids(docs) == [h.chunk_id for h in expected] and len(docs) == 3
    for doc, hit in zip(docs, expected, strict=True):
        assert isinstance(doc, Document) and doc.content == hit.text and doc.score == hit.score
        assert doc.meta == {**hit.metadata, "chunk_id": hit.chunk_id, "document_id": hit.document_id,
                            "source_uri": hit.source_uri, "title": hit.title, "heading": hit.heading,
                            "ranks": hit.ranks}
    prompt = out["prompt"]["prompt"]
    assert prompt.startswith(f"[1] {expected[0].title}: {expected[0].text}") and prompt.endswith(QUERY)

    text = pipe.dumps()
    assert str(built.spec_path.resolve()) in text and "Project" not in text  # the path, not the object
    # Haystack imports only allow-listed modules when it loads a pipeline
    reloaded = Pipeline.loads(text, allowed_modules=["flightdeck.*"])
    again = run(reloaded)
    assert _ids(again["retriever"]["documents"]) == _ids(docs) and again["prompt"]["prompt"] == prompt
    component = reloaded.get_component("retriever")
    assert isinstance(component, HaystackRetriever) and component.project.spec_path == built.spec_path.resolve()


@pytest.mark.integration
def test_run_top_k_mode_and_run_async(built: Project) -> None:
    retriever = haystack_retriever(built.loaded.base_dir, mode="keyword")
    assert _ids(retriever.run(QUERY)["documents"]) == [h.chunk_id for h in built.search(QUERY, mode="keyword").hits]
    two = retriever.run(QUERY, top_k=2)["documents"]
    assert _ids(two) == [h.chunk_id for h in built.search(QUERY, k=2, mode="keyword").hits]
    assert retriever.run(QUERY, top_k=0) == {"documents": []}
    assert _ids(asyncio.run(retriever.run_async(QUERY, top_k=2))["documents"]) == _ids(two)
    with pytest.raises(FlightdeckError, match="top_k must be a positive integer"):
        HaystackRetriever(project=built, top_k=0)
    with pytest.raises(FlightdeckError, match="unknown search mode 'bm25'"):
        HaystackRetriever(project=built, mode="bm25")


@pytest.mark.integration
def test_filters_select_like_project_search_with_replace_and_merge(built: Project) -> None:
    english = {"operator": "AND", "conditions": [_c("meta.lang", "==", "en"), _c("meta.year", ">=", 2020)]}
    where = {"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]}
    retriever = HaystackRetriever(project=built, top_k=6, filters=english)
    docs = retriever.run(QUERY)["documents"]
    assert docs and _ids(docs) == [h.chunk_id for h in built.search(QUERY, k=6, where=where).hits]
    assert {d.meta["document_id"] for d in docs} == {"docs/records.jsonl#r1", "docs/records.jsonl#r4"}

    faq = _c("meta.kind", "==", "faq")
    replaced = retriever.run(QUERY, filters=faq)["documents"]  # replace (default): only kind == faq
    assert {d.meta["document_id"] for d in replaced} == {f"docs/records.jsonl#r{i}" for i in (1, 2, 6)}
    merged = HaystackRetriever(project=built, top_k=6, filters=english, filter_policy="merge").run(
        QUERY, filters=faq)["documents"]
    assert [d.meta["document_id"] for d in merged] == ["docs/records.jsonl#r1"]
    # a raw flightdeck `where` is ANDed with the Haystack filters
    german_faq = HaystackRetriever(project=built, top_k=6, where={"lang": "de"}).run(QUERY, filters=faq)
    assert [d.meta["document_id"] for d in german_faq["documents"]] == ["docs/records.jsonl#r2"]


# --- serialisation -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_to_dict_from_dict_round_trip_keeps_filters_with_a_type_field(built: Project) -> None:
    filters = {"operator": "OR", "conditions": [_c("meta.type", "==", "faq"), _c("meta.year", "<", 2019)]}
    retriever = HaystackRetriever(spec=str(built.spec_path), top_k=4, mode="vector", filters=filters,
                                  filter_policy="merge", where={"type": "faq"})
    data = retriever.to_dict()
    assert data == {"type": "flightdeck.integrations.haystack.HaystackRetriever",
                    "init_parameters": {"spec": str(built.spec_path), "top_k": 4, "mode": "vector",
                                        "filters": filters, "filter_policy": "merge", "where": {"type": "faq"}}}
    copy = HaystackRetriever.from_dict(data)
    assert copy.to_dict() == data and copy.project is retriever.project
    with pytest.raises(Exception, match="unknown init parameters"):
        HaystackRetriever.from_dict({**data, "init_parameters": {**data["init_parameters"], "document_store": 1}})


# --- filter translation, every operator ----------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(("filters", "where"), [
    (_c("meta.lang", "==", "en"), {"lang": "en"}),
    (_c("meta.kind", "in", ["faq", "guide"]), {"kind": {"$in": ["faq", "guide"]}}),
    (_c("meta.year", ">", 2020), {"year": {"$gt": 2020}}),
    (_c("meta.year", ">=", 2020), {"year": {"$gte": 2020}}),
    (_c("meta.year", "<", 2020), {"year": {"$lt": 2020}}),
    (_c("meta.published", "<=", "2024-01-01T00:00:00Z"), {"published": {"$lte": "2024-01-01T00:00:00Z"}}),
    (_c("meta.author.name", "==", "Ada"), {"author__name": "Ada"}),
    ({"operator": "AND", "conditions": [_c("meta.lang", "==", "en"), _c("meta.year", ">=", 2020)]},
     {"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]}),
    ({"operator": "OR", "conditions": [_c("meta.lang", "==", "en"), _c("meta.lang", "==", "de")]},
     {"$or": [{"lang": "en"}, {"lang": "de"}]}),
    ({"operator": "AND", "conditions": [_c("meta.lang", "==", "en")]}, {"lang": "en"}),
    ({"operator": "AND", "conditions": [
        _c("meta.kind", "==", "faq"),
        {"operator": "OR", "conditions": [_c("meta.year", "<=", 2019), _c("meta.year", ">", 2022)]}]},
     {"$and": [{"kind": "faq"}, {"$or": [{"year": {"$lte": 2019}}, {"year": {"$gt": 2022}}]}]}),
    (None, None),
    ({}, None),
])
def test_haystack_filters_translate_to_flightdeck_filters(filters: dict | None, where: dict | None) -> None:
    assert haystack_filters_to_where(filters) == where
    if where is not None:
        parse_filter(where)  # and flightdeck accepts the translation


@pytest.mark.unit
@pytest.mark.parametrize(("filters", "op", "at"), [
    (_c("meta.lang", "!=", "en"), "!=", "filters.operator"),
    (_c("meta.lang", "not in", ["en"]), "not in", "filters.operator"),
    ({"operator": "NOT", "conditions": [_c("meta.lang", "==", "en")]}, "NOT", "filters.operator"),
    ({"operator": "AND", "conditions": [_c("meta.lang", "==", "en"), _c("meta.year", "!=", 2020)]}, "!=",
     "filters.conditions[1].operator"),
    ({"operator": "XOR", "conditions": [_c("meta.lang", "==", "en")]}, "XOR", "filters.operator"),
])
def test_unsupported_operators_are_named(filters: dict, op: str, at: str) -> None:
    with pytest.raises(FilterError) as info:
        haystack_filters_to_where(filters)
    message = str(info.value)
    assert message.startswith(f"{at}: the Haystack filter operator {op!r} is not supported")
    assert "==, in, >, >=, <, <=, AND, OR" in message


@pytest.mark.unit
def test_malformed_filters_and_non_metadata_fields_are_explained() -> None:
    with pytest.raises(FilterError, match="'content' is not a metadata field .flightdeck filters on metadata only"):
        haystack_filters_to_where(_c("content", "==", "x"))
    with pytest.raises(FilterError, match="write 'meta.lang'"):
        haystack_filters_to_where(_c("lang", "==", "en"))
    with pytest.raises(FilterError, match="not a Haystack filter"):
        haystack_filters_to_where({"lang": "en"})
    with pytest.raises(FilterError, match="needs 'field', 'operator' and 'value'"):
        haystack_filters_to_where({"field": "meta.lang", "operator": "=="})
    with pytest.raises(FilterError, match="conditions: expects a non-empty list"):
        haystack_filters_to_where({"operator": "AND", "conditions": []})


@pytest.mark.unit
def test_missing_haystack_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "haystack", None)
    monkeypatch.delitem(sys.modules, "flightdeck.integrations.haystack")
    with pytest.raises(MissingDependencyError) as info:
        importlib.import_module("flightdeck.integrations.haystack")
    assert "retrieval_feature 'haystack' needs: pip install 'flightdeck[haystack]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)
