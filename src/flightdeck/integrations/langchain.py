"""A LangChain retriever over a flightdeck index (checklist ``retrieval.system.langchain``).

``LangChainRetriever`` is a ``langchain_core.retrievers.BaseRetriever``, so it is a Runnable: ``invoke``,
``batch``, ``ainvoke`` and LCEL composition (``retriever | format_docs | prompt | llm``) work as for any
LangChain retriever. Each ``Document`` holds the chunk text as ``page_content``; its ``metadata`` is the
chunk's metadata plus ``chunk_id``, ``document_id``, ``source_uri``, ``title``, ``heading``, ``score`` and
``ranks`` (the chunk's 1-based rank in the keyword and vector retrievers)::

    retriever = LangChainRetriever.from_spec("flightdeck.yaml", k=4, where={"lang": "en"})
    retriever.invoke("how do I align the sprockets?")
    retriever.invoke("...", k=2, where={"year": {"$gte": 2020}})   # per-call overrides
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from flightdeck.integrations._common import check_where, hit_fields, resolve_project, search
from flightdeck.registry.lookup import optional_import

_NEEDS = ("langchain", "retrieval_feature 'langchain'")  # the extra, and what the error says needs it
Document = optional_import("langchain_core.documents", *_NEEDS).Document
BaseRetriever = optional_import("langchain_core.retrievers", *_NEEDS).BaseRetriever
run_in_executor = optional_import("langchain_core.runnables.config", *_NEEDS).run_in_executor

__all__ = ["LangChainRetriever", "to_documents"]


def to_documents(result: Any) -> list[Any]:
    """LangChain ``Document``s for the hits of a :class:`~flightdeck.retrieval.search.SearchResult`, in order."""
    return [Document(page_content=hit.text, metadata=hit_fields(hit), id=hit.chunk_id) for hit in result.hits]


class LangChainRetriever(BaseRetriever):
    """Retrieves chunks from a flightdeck project's current index with ``Project.search``."""

    project: Any = Field(default=None, exclude=True,
                         description="the flightdeck.Project to search; or give `spec` instead")
    spec: str | None = Field(default=None, description="path of flightdeck.yaml (or its folder), loaded once")
    k: PositiveInt | None = Field(default=None, description="chunks per query; the spec's retrieval.search.k "
                                                            "when unset")
    mode: Literal["hybrid", "vector", "keyword"] | None = Field(
        default=None, description="search mode; the spec's retrieval.search.mode when unset")
    where: dict[str, Any] | None = Field(
        default=None, description='metadata filter, e.g. {"lang": "en", "year": {"$gte": 2020}}')

    @model_validator(mode="before")
    @classmethod
    def _spec_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("spec"), Path):
            data = {**data, "spec": str(data["spec"])}
        return data

    @model_validator(mode="after")
    def _resolve(self) -> LangChainRetriever:
        # object.__setattr__: BaseRetriever re-validates on assignment in some versions; these are resolved values
        object.__setattr__(self, "project", resolve_project(self.project, self.spec))
        object.__setattr__(self, "where", check_where(self.where))
        return self

    @classmethod
    def from_spec(cls, spec: str | Path, **options: Any) -> LangChainRetriever:
        """The retriever of the spec at ``spec`` (a flightdeck.yaml or its folder)."""
        return cls(spec=str(spec), **options)

    @classmethod
    def from_project(cls, project: Any, **options: Any) -> LangChainRetriever:
        """The retriever of an already loaded :class:`~flightdeck.Project`."""
        return cls(project=project, **options)

    def _get_relevant_documents(self, query: str, *, run_manager: Any, k: int | None = None,
                                mode: str | None = None, where: dict[str, Any] | None = None) -> list[Any]:
        # a per-call `where` replaces the retriever's (as `k` and `mode` do): callers pass the whole filter
        flt = check_where(where, "where (per call)") if where is not None else self.where
        return to_documents(search(self.project, query, k or self.k, mode or self.mode, flt))

    async def _aget_relevant_documents(self, query: str, *, run_manager: Any, k: int | None = None,
                                       mode: str | None = None, where: dict[str, Any] | None = None) -> list[Any]:
        # the search is CPU-bound (query embedding, FAISS): keep it off the event loop
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(),
                                     k=k, mode=mode, where=where)
