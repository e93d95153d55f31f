"""The LangChain retriever over a real flightdeck index (packaged MiniLM, FAISS, FTS5) with real langchain-core."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.errors import FlightdeckError, MissingDependencyError  # noqa: E402
from flightdeck.integrations import langchain_retriever  # noqa: E402
from flightdeck.integrations.langchain import LangChainRetriever  # noqa: E402
from flightdeck.retrieval.filters import FilterError  # noqa: E402
from flightdeck.testing.adapter_corpus import QUERY, build_adapter_project  # noqa: E402

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build_adapter_project(tmp_path_factory.mktemp("lc"))


def _ids(docs: list[Document]) -> list[str]:
    return [d.metadata["chunk_id"] for d in docs]


@pytest.mark.exercises("retrieval.system.langchain")
@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_invoke_returns_project_search_hits_in_order_with_metadata(built: Project, mode: str) -> None:
    expected = built.search(QUERY, k=4, mode=mode).hits
    assert len(expected) == 4
    docs = LangChainRetriever(project=built, k=4, mode=mode).invoke(QUERY)
    assert all(isinstance(d, Document) for d in docs)
    assert _ids(docs) == [h.chunk_id for h in expected]
    for doc, hit in zip(docs, expected, strict=True):
        assert doc.id == hit.chunk_id and doc.page_content == hit.text
        assert doc.metadata == {**hit.metadata, "chunk_id": hit.chunk_id, "document_id": hit.document_id,
                                "source_uri": hit.source_uri, "title": hit.title, "heading": hit.heading,
                                "score": hit.score, "ranks": hit.ranks}
    assert [d.metadata["score"] for d in docs] == sorted((d.metadata["score"] for d in docs), reverse=True)
    # the records' own columns travel as metadata
    record = next(d for d in docs if d.metadata["document_id"].startswith("docs/records.jsonl#"))
    assert {"lang", "year", "kind"} <= set(record.metadata)


def test_spec_path_retrievers_share_one_project_and_default_to_the_spec(built: Project) -> None:
    a = LangChainRetriever.from_spec(built.spec_path)
    b = langchain_retriever(str(built.loaded.base_dir), k=2)
    assert a.project is b.project  # one embedding model in memory for both
    assert a.project.spec_path.resolve() == built.spec_path.resolve()
    expected = [h.chunk_id for h in built.search(QUERY).hits]  # spec: k=5, hybrid
    assert _ids(a.invoke(QUERY)) == expected and len(expected) == 5
    assert _ids(b.invoke(QUERY)) == expected[:2]
    assert LangChainRetriever.from_project(built).project is built


def test_lcel_chain_batch_and_async(built: Project) -> None:
    retriever = LangChainRetriever(project=built, k=3)

    def cite(docs: list[Document]) -> str:
        return "\n".join(f"[{i}] {d.metadata['title']}: {d.page_content}" for i, d in enumerate(docs, 1))

    chain = retriever | RunnableLambda(cite)
    hits = built.search(QUERY, k=3).hits
    assert chain.invoke(QUERY) == "\n".join(f"[{i}] {h.title}: {h.text}" for i, h in enumerate(hits, 1))

    queries = [QUERY, "where should widgets be stored", "error W42"]
    batched = retriever.batch(queries)
    assert [_ids(docs) for docs in batched] == [[h.chunk_id for h in built.search(q, k=3).hits] for q in queries]
    assert chain.batch(queries[:2]) == [chain.invoke(q) for q in queries[:2]]

    async def both() -> list[list[Document]]:
        return list(await asyncio.gather(retriever.ainvoke(queries[1]), retriever.ainvoke(queries[2])))

    assert [_ids(d) for d in asyncio.run(both())] == [_ids(d) for d in batched[1:]]


def test_per_call_k_and_mode_override_the_fields(built: Project) -> None:
    retriever = LangChainRetriever(project=built, k=5, mode="hybrid")
    docs = retriever.invoke(QUERY, k=2, mode="keyword")
    assert _ids(docs) == [h.chunk_id for h in built.search(QUERY, k=2, mode="keyword").hits]
    assert all(set(d.metadata["ranks"]) == {"keyword"} for d in docs)


def test_where_filters_like_project_search(built: Project) -> None:
    where = {"lang": "en", "year": {"$gte": 2020}}
    docs = LangChainRetriever(project=built, k=5, where=where).invoke(QUERY)
    assert docs and _ids(docs) == [h.chunk_id for h in built.search(QUERY, k=5, where=where).hits]
    assert all(d.metadata["lang"] == "en" and d.metadata["year"] >= 2020 for d in docs)
    # a per-call filter replaces the field's
    german = LangChainRetriever(project=built, k=5, where=where).invoke(QUERY, where={"lang": "de"})
    assert german and {d.metadata["lang"] for d in german} == {"de"}


def test_a_bad_filter_or_setting_fails_when_the_retriever_is_built(built: Project) -> None:
    # pydantic wraps the FilterError (a ValueError) in its ValidationError, message intact
    with pytest.raises(ValidationError, match=r"where.lang.\$regex: unknown operator '\$regex'"):
        LangChainRetriever(project=built, where={"lang": {"$regex": "e.*"}})
    with pytest.raises(FilterError, match=r"where \(per call\).lang.\$in: expects a non-empty list"):
        LangChainRetriever(project=built).invoke(QUERY, where={"lang": {"$in": []}})
    with pytest.raises(ValidationError):
        LangChainRetriever(project=built, mode="semantic")
    with pytest.raises(ValidationError):
        LangChainRetriever(project=built, k=0)
    with pytest.raises(FlightdeckError, match="either `project` or `spec`"):
        LangChainRetriever(project=built, spec=str(built.spec_path))
    with pytest.raises(FlightdeckError, match="needs `project`"):
        LangChainRetriever()


def test_missing_langchain_core_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core.retrievers", None)  # makes `import` raise ImportError
    monkeypatch.delitem(sys.modules, "flightdeck.integrations.langchain")
    with pytest.raises(MissingDependencyError) as info:
        importlib.import_module("flightdeck.integrations.langchain")
    assert "retrieval_feature 'langchain' needs: pip install 'flightdeck[langchain]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_the_integrations_package_imports_no_framework() -> None:
    probe = ("import sys, json, flightdeck.integrations\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('langchain_core', 'langsmith', 'llama_index', 'haystack'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120,
                         cwd=Path(__file__).parent)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
