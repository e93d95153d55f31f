"""A Haystack retriever component (haystack-ai 3.x) over a flightdeck index (checklist ``retrieval.system.haystack``).

``HaystackRetriever`` is a ``@component`` with ``run(query, top_k=None, filters=None) -> {"documents": [...]}``
(and ``run_async``), so it takes the place of a document-store retriever in a ``Pipeline``. Each ``Document``
has the chunk id as ``id``, the chunk text as ``content``, the fused score as ``score``, and as ``meta`` the
chunk's metadata plus ``chunk_id``, ``document_id``, ``source_uri``, ``title``, ``heading`` and ``ranks``.

Filters use Haystack's syntax and are translated to flightdeck's filter dict::

    {"operator": "AND", "conditions": [
        {"field": "meta.lang", "operator": "==", "value": "en"},
        {"field": "meta.year", "operator": ">=", "value": 2020}]}

Operators ``==``, ``in``, ``>``, ``>=``, ``<``, ``<=`` and ``AND``/``OR``; nested metadata ``meta.a.b`` is
flightdeck's ``a__b``. Run-time ``filters`` replace the init ``filters`` (``filter_policy="replace"``, the
Haystack default) or are ANDed with them (``"merge"``).

Serialisation stores the spec path, never the project, so a pipeline that holds the retriever survives
``Pipeline.dumps()``/``Pipeline.loads()``. Haystack only imports classes from modules on its deserialisation
allowlist: load with ``Pipeline.loads(text, allowed_modules=["flightdeck.*"])`` (or set
``HAYSTACK_DESERIALIZATION_ALLOWLIST=flightdeck.*``).
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
    spec_location,
    unsupported_operator,
)
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import FilterError

_NEEDS = ("haystack", "retrieval_feature 'haystack'")  # the extra, and what the error says needs it
_haystack = optional_import("haystack", *_NEEDS)
_policy = optional_import("haystack.document_stores.types", *_NEEDS)
Document, component, DeserializationError = _haystack.Document, _haystack.component, _haystack.DeserializationError
FilterPolicy, apply_filter_policy = _policy.FilterPolicy, _policy.apply_filter_policy

__all__ = ["HaystackRetriever", "haystack_filters_to_where", "to_documents"]

_COMPARISONS = {"==": "$eq", "in": "$in", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}
_LOGICAL = {"AND": "$and", "OR": "$or"}
_SUPPORTED = "==, in, >, >=, <, <=, AND, OR"
_DOCUMENT_FIELDS = ("id", "content", "score", "embedding", "sparse_embedding", "blob")


def haystack_filters_to_where(filters: dict[str, Any] | None, where: str = "filters") -> dict[str, Any] | None:
    """flightdeck's filter dict for a Haystack filter; a :class:`~flightdeck.retrieval.filters.FilterError`
    names any operator flightdeck cannot express (``!=``, ``not in``, ``NOT``) and where it is."""
    if not filters:
        return None
    if not isinstance(filters, dict) or "operator" not in filters:
        raise FilterError(f"{where}: not a Haystack filter; expected {{'field': 'meta.x', 'operator': '==', "
                          f"'value': ...}} or {{'operator': 'AND', 'conditions': [...]}}, got {filters!r}")
    op = filters["operator"]
    if "conditions" in filters:
        if op not in _LOGICAL:
            raise unsupported_operator("Haystack", op, f"{where}.operator", _SUPPORTED)
        conditions = filters["conditions"]
        if not isinstance(conditions, list) or not conditions:
            raise FilterError(f"{where}.conditions: expects a non-empty list of filters")
        parts = [haystack_filters_to_where(c, f"{where}.conditions[{i}]") for i, c in enumerate(conditions)]
        parts = [p for p in parts if p]
        return parts[0] if len(parts) == 1 else {_LOGICAL[op]: parts}
    if "field" not in filters or "value" not in filters:
        raise FilterError(f"{where}: a comparison needs 'field', 'operator' and 'value'; got {filters!r}")
    if op not in _COMPARISONS:
        raise unsupported_operator("Haystack", op, f"{where}.operator", _SUPPORTED)
    key = _meta_key(filters["field"], f"{where}.field")
    value = filters["value"]
    return {key: value} if op == "==" else {key: {_COMPARISONS[op]: value}}


def _meta_key(field: Any, where: str) -> str:
    if not isinstance(field, str) or not field:
        raise FilterError(f"{where}: expects a field name such as 'meta.lang', not {field!r}")
    if not field.startswith("meta."):
        hint = ("flightdeck filters on metadata only" if field in _DOCUMENT_FIELDS
                else "metadata fields start with meta.")
        raise FilterError(f"{where}: {field!r} is not a metadata field ({hint}); write 'meta.{field}'")
    return "__".join(field[len("meta."):].split("."))


def to_documents(result: Any) -> list[Any]:
    """Haystack ``Document``s for the hits of a :class:`~flightdeck.retrieval.search.SearchResult`, in order."""
    return [Document(id=hit.chunk_id, content=hit.text, meta=hit_fields(hit, score=False), score=hit.score)
            for hit in result.hits]


@component
class HaystackRetriever:
    """Retrieves chunks from a flightdeck project's current index with ``Project.search``.

    :param spec: path of flightdeck.yaml (or its folder); what ``to_dict`` stores.
    :param project: an already loaded :class:`~flightdeck.Project`, instead of ``spec``.
    :param top_k: chunks per query; the spec's ``retrieval.search.k`` when unset.
    :param mode: ``hybrid``, ``vector`` or ``keyword``; the spec's ``retrieval.search.mode`` when unset.
    :param filters: Haystack filters applied to every query.
    :param filter_policy: ``replace`` (run-time filters replace ``filters``) or ``merge`` (ANDed with them).
    :param where: a flightdeck filter dict applied to every query, ANDed with the Haystack filters.
    """

    def __init__(self, spec: str | None = None, top_k: int | None = None, mode: str | None = None,
                 filters: dict[str, Any] | None = None, filter_policy: str | Any = "replace",
                 where: dict[str, Any] | None = None, project: Any = None) -> None:
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise FlightdeckError(f"top_k must be a positive integer, not {top_k!r}")
        if mode is not None and mode not in MODES:
            raise FlightdeckError(f"unknown search mode {mode!r}; use {', '.join(MODES)}")
        self.project = resolve_project(project, str(spec) if isinstance(spec, Path) else spec)
        self.spec = str(spec) if spec is not None else spec_location(self.project)
        self.top_k = top_k
        self.mode = mode
        self.filters = filters
        self.filter_policy = (filter_policy if isinstance(filter_policy, FilterPolicy)
                              else FilterPolicy.from_str(filter_policy))
        self.where = check_where(where)
        check_where(haystack_filters_to_where(filters), "filters")  # a bad filter fails now, not at the first query

    @classmethod
    def from_spec(cls, spec: str | Path, **options: Any) -> HaystackRetriever:
        """The retriever of the spec at ``spec`` (a flightdeck.yaml or its folder)."""
        return cls(spec=str(spec), **options)

    @classmethod
    def from_project(cls, project: Any, **options: Any) -> HaystackRetriever:
        """The retriever of an already loaded :class:`~flightdeck.Project`."""
        return cls(project=project, **options)

    def to_dict(self) -> dict[str, Any]:
        """The component as Haystack serialises it: the spec path and the options, never the project."""
        return {"type": f"{type(self).__module__}.{type(self).__qualname__}",
                "init_parameters": {"spec": self.spec, "top_k": self.top_k, "mode": self.mode,
                                    "filters": self.filters, "filter_policy": self.filter_policy.value,
                                    "where": self.where}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HaystackRetriever:
        """Rebuild the component from ``to_dict``'s output (loading the spec it names)."""
        expected = f"{cls.__module__}.{cls.__qualname__}"
        if data.get("type") != expected:
            raise DeserializationError(f"Class '{data.get('type')}' can't be deserialized as '{expected}'")
        params = dict(data.get("init_parameters") or {})
        unknown = sorted(set(params) - {"spec", "top_k", "mode", "filters", "filter_policy", "where"})
        if unknown:
            raise DeserializationError(f"{expected}: unknown init parameters {unknown}")
        # built directly, not with default_from_dict: that would try to deserialise any filter dict holding a
        # "type" key (a metadata field called type) as a class
        return cls(**params)

    def _search(self, query: str, top_k: int | None, filters: dict[str, Any] | None) -> dict[str, list[Any]]:
        if top_k is not None and top_k < 0:
            raise FlightdeckError(f"top_k must be 0 or more, not {top_k}")
        if top_k == 0:
            return {"documents": []}
        haystack_filters = apply_filter_policy(self.filter_policy, self.filters, filters)
        where = check_where(all_of(haystack_filters_to_where(haystack_filters), self.where), "filters")
        result = search(self.project, query, top_k or self.top_k, self.mode, where)
        return {"documents": to_documents(result)}

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None, filters: dict[str, Any] | None = None
            ) -> dict[str, list[Any]]:
        """The ``top_k`` chunks (the init ``top_k`` when None) that best match ``query`` and pass ``filters``.

        :returns: ``{"documents": [Document, ...]}``, best first.
        """
        return self._search(query, top_k, filters)

    @component.output_types(documents=list[Document])
    async def run_async(self, query: str, top_k: int | None = None, filters: dict[str, Any] | None = None
                        ) -> dict[str, list[Any]]:
        """``run`` for ``AsyncPipeline``; the search runs in a worker thread, off the event loop."""
        return await asyncio.to_thread(self._search, query, top_k, filters)
