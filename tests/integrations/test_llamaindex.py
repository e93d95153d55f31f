"""The LlamaIndex retriever over a real flightdeck index with real llama-index-core; filter translation."""

from __future__ import annotations

import asyncio
import importlib
import sys

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Settings  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402
from llama_index.core.vector_stores import (  # noqa: E402
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from flightdeck import Project  # noqa: E402
from flightdeck.errors import FlightdeckError, MissingDependencyError  # noqa: E402
from flightdeck.integrations import llamaindex_retriever  # noqa: E402
from flightdeck.integrations.llamaindex import LlamaIndexRetriever, metadata_filters_to_where  # noqa: E402
from flightdeck.retrieval.filters import FilterError, parse_filter  # noqa: E402
from flightdeck.testing.adapter_corpus import QUERY, build_adapter_project  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build_adapter_project(tmp_path_factory.mktemp("li"))


def _ids(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.node_id for n in nodes]


# --- against the real index ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.exercises("retrieval.system.llamaindex")
def test_retrieve_returns_project_search_hits_as_scored_text_nodes(built: Project) -> None:
    expected = built.search(QUERY, k=4).hits
    retriever = LlamaIndexRetriever(project=built, k=4)
    nodes = retriever.retrieve(QUERY)
    assert _ids(nodes) == [h.chunk_id for h in expected] and len(nodes) == 4
    for item, hit in zip(nodes, expected, strict=True):
        assert isinstance(item, NodeWithScore) and isinstance(item.node, TextNode)
        assert item.score == hit.score and item.node.text == hit.text
        assert item.node.ref_doc_id == hit.document_id
        assert item.node.metadata == {**hit.metadata, "chunk_id": hit.chunk_id, "document_id": hit.document_id,
                                      "source_uri": hit.source_uri, "title": hit.title, "heading": hit.heading,
                                      "ranks": hit.ranks}
    # bookkeeping stays out of what an LLM reads; the citation material stays in
    for_llm = nodes[0].node.get_content(metadata_mode="llm")
    assert expected[0].chunk_id not in for_llm and expected[0].source_uri in for_llm and expected[0].text in for_llm
    # a QueryBundle and the async path give the same
    assert _ids(retriever.retrieve(QueryBundle(QUERY))) == _ids(nodes)
    assert _ids(asyncio.run(retriever.aretrieve(QUERY))) == _ids(nodes)


@pytest.mark.integration
def test_inside_a_retriever_query_engine(built: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # LlamaIndex counts prompt tokens with tiktoken, which downloads its vocabulary; offline, count words
    monkeypatch.setattr(Settings, "_tokenizer", str.split)
    retriever = llamaindex_retriever(built.spec_path, k=3, mode="vector")
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())  # MockLLM answers with its prompt
    response = engine.query("Where should widgets be stored?")
    hits = built.search("Where should widgets be stored?", k=3, mode="vector").hits
    assert [n.node.node_id for n in response.source_nodes] == [h.chunk_id for h in hits]
    prompt = str(response)
    assert "Where should widgets be stored?" in prompt
    assert all(h.text in prompt for h in hits)
    assert "dry place" in prompt


@pytest.mark.integration
def test_metadata_filters_select_like_project_search(built: Project) -> None:
    filters = MetadataFilters(filters=[
        MetadataFilter(key="kind", value="faq"),
        MetadataFilters(filters=[MetadataFilter(key="lang", value="en"),
                                 MetadataFilter(key="year", value=2020, operator=FilterOperator.LT)],
                        condition=FilterCondition.OR)])
    nodes = LlamaIndexRetriever(project=built, k=6, filters=filters).retrieve(QUERY)
    expected = built.search(QUERY, k=6, where={"$and": [{"kind": "faq"},
                                                        {"$or": [{"lang": "en"}, {"year": {"$lt": 2020}}]}]})
    assert nodes and _ids(nodes) == [h.chunk_id for h in expected.hits]
    meta = [n.node.metadata for n in nodes]
    assert {m["document_id"] for m in meta} == {"docs/records.jsonl#r1", "docs/records.jsonl#r2"}
    # `filters` and a raw `where` together are ANDed
    both = LlamaIndexRetriever(project=built, k=6, filters=filters, where={"lang": "de"}).retrieve(QUERY)
    assert [n.node.metadata["document_id"] for n in both] == ["docs/records.jsonl#r2"]


@pytest.mark.integration
def test_retriever_settings_are_checked(built: Project) -> None:
    with pytest.raises(FlightdeckError, match="unknown search mode 'dense'"):
        LlamaIndexRetriever(project=built, mode="dense")
    with pytest.raises(FlightdeckError, match="k must be a positive integer"):
        LlamaIndexRetriever(project=built, k=0)
    with pytest.raises(FilterError, match="'!='"):
        LlamaIndexRetriever(project=built, filters=MetadataFilters(filters=[
            MetadataFilter(key="lang", value="en", operator=FilterOperator.NE)]))
    assert LlamaIndexRetriever.from_spec(built.spec_path).project is LlamaIndexRetriever.from_spec(
        built.loaded.base_dir).project
    assert LlamaIndexRetriever.from_project(built).project is built


# --- filter translation, every operator ----------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(("flt", "where"), [
    (MetadataFilter(key="lang", value="en"), {"lang": "en"}),
    (MetadataFilter(key="lang", value="en", operator=FilterOperator.EQ), {"lang": "en"}),
    (ExactMatchFilter(key="year", value=2021), {"year": 2021}),
    (MetadataFilter(key="kind", value=["faq", "guide"], operator=FilterOperator.IN),
     {"kind": {"$in": ["faq", "guide"]}}),
    (MetadataFilter(key="year", value=2020, operator=FilterOperator.GT), {"year": {"$gt": 2020}}),
    (MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE), {"year": {"$gte": 2020}}),
    (MetadataFilter(key="year", value=2.5, operator=FilterOperator.LT), {"year": {"$lt": 2.5}}),
    (MetadataFilter(key="published", value="2024-01-01", operator=FilterOperator.LTE),
     {"published": {"$lte": "2024-01-01"}}),
    (MetadataFilters(filters=[MetadataFilter(key="lang", value="en")]), {"lang": "en"}),
    (MetadataFilters(filters=[MetadataFilter(key="lang", value="en"), MetadataFilter(key="kind", value="faq")]),
     {"$and": [{"lang": "en"}, {"kind": "faq"}]}),
    (MetadataFilters(filters=[MetadataFilter(key="lang", value="en"), MetadataFilter(key="lang", value="de")],
                     condition=FilterCondition.OR),
     {"$or": [{"lang": "en"}, {"lang": "de"}]}),
    (MetadataFilters(filters=[MetadataFilter(key="lang", value="en")], condition=None), {"lang": "en"}),
    (MetadataFilters(filters=[
        MetadataFilter(key="kind", value="faq"),
        MetadataFilters(filters=[MetadataFilter(key="year", value=2019, operator=FilterOperator.LTE),
                                 MetadataFilter(key="year", value=2023, operator=FilterOperator.GTE)],
                        condition=FilterCondition.OR)]),
     {"$and": [{"kind": "faq"}, {"$or": [{"year": {"$lte": 2019}}, {"year": {"$gte": 2023}}]}]}),
    (MetadataFilters(filters=[]), None),
    (None, None),
])
def test_metadata_filters_translate_to_flightdeck_filters(flt: object, where: dict | None) -> None:
    assert metadata_filters_to_where(flt) == where
    if where is not None:
        parse_filter(where)  # and flightdeck accepts the translation


@pytest.mark.unit
@pytest.mark.parametrize("op", [FilterOperator.NE, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL,
                                FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE,
                                FilterOperator.CONTAINS, FilterOperator.IS_EMPTY])
def test_unsupported_operators_are_named(op: FilterOperator) -> None:
    value = ["a"] if op in (FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL) else "a"
    nested = MetadataFilters(filters=[MetadataFilter(key="lang", value="en"),
                                      MetadataFilter(key="kind", value=value, operator=op)])
    with pytest.raises(FilterError) as info:
        metadata_filters_to_where(nested)
    message = str(info.value)
    assert f"LlamaIndex filter operator '{op.value}'" in message and "filters.filters[1] (key 'kind')" in message
    assert "==, in, >, >=, <, <=" in message


@pytest.mark.unit
def test_not_condition_and_foreign_objects_are_refused() -> None:
    with pytest.raises(FilterError, match="filters.condition: the LlamaIndex filter operator 'not'"):
        metadata_filters_to_where(MetadataFilters(filters=[MetadataFilter(key="lang", value="en")],
                                                  condition=FilterCondition.NOT))
    with pytest.raises(FilterError, match="expected LlamaIndex MetadataFilters"):
        metadata_filters_to_where({"lang": "en"})


@pytest.mark.unit
def test_missing_llama_index_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_index.core.retrievers", None)
    monkeypatch.delitem(sys.modules, "flightdeck.integrations.llamaindex")
    with pytest.raises(MissingDependencyError) as info:
        importlib.import_module("flightdeck.integrations.llamaindex")
    assert "retrieval_feature 'llamaindex' needs: pip install 'flightdeck[llamaindex]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)
