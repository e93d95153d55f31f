"""File search / RAG tools (checklist 6.1): the project's own hybrid search as a tool, with metadata filters when the
spec turns them on. The tool is handed the search to call (``search(query, k, where)`` returning a
:class:`~flightdeck.retrieval.search.SearchResult`); the facade gives it the project's searcher, pinned to a release's
index when the agent serves one.

Each hit becomes a source the answer may cite: its chunk id, document, source URI and title, so that an agent's
answer traces back to the files exactly like ``flightdeck ask``'s (``flightdeck lineage``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.agents.tools.base import ToolResult, ToolSpec
from flightdeck.errors import FlightdeckError

__all__ = ["SearchToolConfig", "SearchTool"]


class SearchToolConfig(BaseModel):
    """``agents.tools: [{provider: file_search, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field("search_documents", description="the tool's name as the model sees it")
    k: int = Field(4, ge=1, le=20, description="hits returned per search")
    max_k: int = Field(10, ge=1, le=50, description="the most hits the model may ask for")
    chars_per_hit: int = Field(600, ge=80, description="characters of each hit's text the model reads")
    filters: bool = Field(False, description="let the model pass a metadata filter (needs metadata_filtering in "
                                             "retrieval.system)")


class SearchTool:
    """Searches the project's index; each hit a citable source."""

    def __init__(self, config: SearchToolConfig | None = None, *, search: Callable[..., Any],
                 description: str = "") -> None:
        self.config = config or SearchToolConfig()
        self._search = search
        properties: dict[str, Any] = {
            "query": {"type": "string", "description": "what to look for, in words"},
            "k": {"type": "integer", "minimum": 1, "maximum": self.config.max_k,
                  "description": f"how many passages (default {self.config.k})"}}
        if self.config.filters:
            properties["where"] = {"type": "object", "description": "a metadata filter, e.g. {\"lang\": \"en\"}"}
        self.spec = ToolSpec(self.config.name, description or (
            "Search the project's documents and return the passages that best match the query, each with its "
            "source."), {"type": "object", "properties": properties, "required": ["query"]})

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolResult.refused("query must be a non-empty string")
        k = arguments.get("k", self.config.k)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.config.max_k:
            return ToolResult.refused(f"k must be a whole number from 1 to {self.config.max_k}")
        where = arguments.get("where")
        if where is not None and (not self.config.filters or not isinstance(where, dict)):
            return ToolResult.refused("this tool takes no filter" if not self.config.filters
                                      else "where must be a JSON object")
        unknown = sorted(set(arguments) - {"query", "k", "where"})
        if unknown:
            return ToolResult.refused(f"unknown argument(s) {', '.join(unknown)}: query, k"
                                      + (", where" if self.config.filters else ""))
        try:
            result = self._search(query.strip(), k=k, where=where or None)
        except (FlightdeckError, ValueError) as exc:  # a bad filter, a query the keyword index cannot read
            return ToolResult.refused(str(exc)[:500])
        if not result.hits:
            return ToolResult(content="no passage matched", data={"query": query, "hits": []})
        lines, sources = [], []
        for hit in result.hits:
            text = " ".join(hit.text.split())
            if len(text) > self.config.chars_per_hit:
                text = text[: self.config.chars_per_hit] + "…"
            passage = f"{hit.title or hit.source_uri}{' — ' + hit.heading if hit.heading else ''}: {text}"
            lines.append(passage)
            sources.append({"id": hit.chunk_id, "chunk_id": hit.chunk_id, "document_id": hit.document_id,
                            "source_uri": hit.source_uri, "title": hit.title, "score": round(hit.score, 6),
                            "text": passage})
        return ToolResult(content="\n".join(lines), sources=sources,
                          data={"query": query, "index_version": result.index_version,
                                "hits": [{"chunk_id": h.chunk_id, "score": h.score} for h in result.hits]})
