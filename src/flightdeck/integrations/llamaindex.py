"""A LlamaIndex retriever over a flightdeck index (checklist ``retrieval.system.llamaindex``).

``LlamaIndexRetriever`` is a ``llama_index.core.retrievers.BaseRetriever``: ``retrieve()``/``aretrieve()``
take a string or a ``QueryBundle``, and it plugs into ``RetrieverQueryEngine`` and every other place that
takes a retriever. Each result is a ``NodeWithScore`` around a ``TextNode`` whose ``id_`` is the chunk id,
whose ``text`` is the chunk, and whose ``metadata`` is the chunk's metadata plus ``chunk_id``,
``document_id``, ``source_uri``, ``title``, ``heading`` and ``ranks``; the node's SOURCE relationship
points at the document, so ``node.ref_doc_id`` is the flightdeck document id.

Filters: LlamaIndex ``MetadataFilters`` (operators ``==``, ``in``, ``>``, ``>=``, ``<``, ``<=``; conditions
``and``/``or``, nested) are translated to flightdeck's filter dict; a raw ``where`` dict is accepted too, and
both together are ANDed::

    from llama_index.core.vector_stores import MetadataFilters, MetadataFilter, FilterOperator
    retriever = LlamaIndexRetriever.from_spec("flightdeck.yaml", k=4, filters=MetadataFilters(filters=[
        MetadataFilter(key="lang", value="en"),
        MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE)]))
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from flightdeck.errors import FlightdeckError
from flightdeck.integrations._common import (
    MODES,
    all_of,
    check_where,
    hit_fields,
    resolve_project,
    search,
    unsupported_operator,
)
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import FilterError

_NEEDS = ("llamaindex", "retrieval_feature 'llamaindex'")  # the extra, and what the error says needs it
BaseRetriever = optional_import("llama_index.core.retrievers", *_NEEDS).BaseRetriever
_schema = optional_import("llama_index.core.schema", *_NEEDS)
_vtypes = optional_import("llama_index.core.vector_stores.types", *_NEEDS)
NodeWithScore, TextNode, QueryBundle = _schema.NodeWithScore, _schema.TextNode, _schema.QueryBundle
NodeRelationship, RelatedNodeInfo = _schema.NodeRelationship, _schema.RelatedNodeInfo
MetadataFilter, MetadataFilters = _vtypes.MetadataFilter, _vtypes.MetadataFilters
FilterOperator, FilterCondition = _vtypes.FilterOperator, _vtypes.FilterCondition

__all__ = ["LlamaIndexRetriever", "metadata_filters_to_where", "to_nodes"]

_OPS = {FilterOperator.EQ: "$eq", FilterOperator.IN: "$in", FilterOperator.GT: "$gt",
        FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte"}
_SUPPORTED = "==, in, >, >=, <, <= (conditions: and, or)"
# Bookkeeping that helps a program but not a language model: kept out of the text LlamaIndex sends to the LLM
# and to embedders (the title, heading and source stay in, they help an answer cite).
_HIDDEN_FROM_MODELS = ["chunk_id", "document_id", "ranks"]


def metadata_filters_to_where(filters: Any, where: str = "filters") -> dict[str, Any] | None:
    """flightdeck's filter dict for LlamaIndex ``MetadataFilters`` (or one ``MetadataFilter``).

    Raises :class:`~flightdeck.retrieval.filters.FilterError` naming any operator or condition that
    flightdeck's metadata filters cannot express (``!=``, ``nin``, ``contains``, ``not``...).
    """
    if filters is None:
        return None
    if isinstance(filters, MetadataFilter):
        op = _OPS.get(filters.operator)
        if op is None:
            raise unsupported_operator("LlamaIndex", _op_name(filters.operator), f"{where} (key {filters.key!r})",
                                       _SUPPORTED)
        value = list(filters.value) if op == "$in" and isinstance(filters.value, (list, tuple)) else filters.value
        return {filters.key: value} if op == "$eq" else {filters.key: {op: value}}
    if isinstance(filters, MetadataFilters):
        parts = [metadata_filters_to_where(f, f"{where}.filters[{i}]") for i, f in enumerate(filters.filters)]
        parts = [p for p in parts if p]
        condition = filters.condition or FilterCondition.AND
        if condition not in (FilterCondition.AND, FilterCondition.OR):
            raise unsupported_operator("LlamaIndex", _op_name(condition), f"{where}.condition", _SUPPORTED)
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return {"$and" if condition == FilterCondition.AND else "$or": parts}
    raise FilterError(f"{where}: expected LlamaIndex MetadataFilters or MetadataFilter, not {type(filters).__name__}")


def _op_name(op: Any) -> str:
    return str(getattr(op, "value", op))


def to_nodes(result: Any) -> list[Any]:
    """``NodeWithScore``s for the hits of a :class:`~flightdeck.retrieval.search.SearchResult`, in order."""
    nodes = []
    for hit in result.hits:
        node = TextNode(
            id_=hit.chunk_id, text=hit.text, metadata=hit_fields(hit, score=False),
            excluded_llm_metadata_keys=list(_HIDDEN_FROM_MODELS),
            excluded_embed_metadata_keys=list(_HIDDEN_FROM_MODELS),
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.document_id)})
        nodes.append(NodeWithScore(node=node, score=hit.score))
    return nodes


class LlamaIndexRetriever(BaseRetriever):
    """Retrieves chunks from a flightdeck project's current index with ``Project.search``.

    ``project`` (a :class:`~flightdeck.Project`) or ``spec`` (the path of flightdeck.yaml or its folder);
    ``k`` and ``mode`` default to the spec's ``retrieval.search``; ``filters`` (LlamaIndex
    ``MetadataFilters``) and ``where`` (a flightdeck filter dict) restrict the chunks by metadata.
    """

    def __init__(self, project: Any = None, spec: str | Path | None = None, k: int | None = None,
                 mode: str | None = None, filters: Any = None, where: dict[str, Any] | None = None,
                 callback_manager: Any = None, verbose: bool = False) -> None:
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise FlightdeckError(f"k must be a positive integer, not {k!r}")
        if mode is not None and mode not in MODES:
            raise FlightdeckError(f"unknown search mode {mode!r}; use {', '.join(MODES)}")
        self.project = resolve_project(project, spec)
        self.k = k
        self.mode = mode
        self.filters = filters
        self.where = check_where(all_of(metadata_filters_to_where(filters), check_where(where)),
                                 "filters and where")
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_spec(cls, spec: str | Path, **options: Any) -> LlamaIndexRetriever:
        """The retriever of the spec at ``spec`` (a flightdeck.yaml or its folder)."""
        return cls(spec=spec, **options)

    @classmethod
    def from_project(cls, project: Any, **options: Any) -> LlamaIndexRetriever:
        """The retriever of an already loaded :class:`~flightdeck.Project`."""
        return cls(project=project, **options)

    def _retrieve(self, query_bundle: Any) -> list[Any]:
        return to_nodes(search(self.project, query_bundle.query_str, self.k, self.mode, self.where))

    async def _aretrieve(self, query_bundle: Any) -> list[Any]:
        # the search is CPU-bound (query embedding, FAISS): keep it off the event loop
        return await asyncio.to_thread(self._retrieve, query_bundle)
