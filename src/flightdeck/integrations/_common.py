"""What the three framework integrations share: finding the project, searching it, and shaping a hit.

Light on purpose (no framework import), so that each integration module is the only place its framework appears.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from pathlib import Path
from typing import Any

from flightdeck.errors import FlightdeckError
from flightdeck.project import Project
from flightdeck.retrieval.filters import FilterError, parse_filter

__all__ = ["MODES", "resolve_project", "spec_location", "search", "hit_fields", "all_of", "check_where",
           "unsupported_operator"]

MODES = ("hybrid", "vector", "keyword")


# Projects loaded from a spec path are shared by every retriever on that path (one embedding model in
# memory, not one per retriever); the key holds the file's mtime so an edited spec is loaded afresh.
_PROJECTS: dict[tuple[str, int], Any] = {}
_PROJECTS_LOCK = threading.Lock()
# Searches on one project run one at a time: the searcher loads its model and index lazily on first use,
# and LangChain's batch() and async paths call from worker threads.
_SEARCH_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


def resolve_project(project: Any, spec: str | Path | None) -> Any:
    """The :class:`~flightdeck.Project` to search: the one given, or the one of the spec at ``spec``."""
    if project is not None and spec is not None:
        raise FlightdeckError("give a flightdeck retriever either `project` or `spec` (a spec path), not both")
    if project is not None:
        if not isinstance(project, Project):
            raise FlightdeckError(f"`project` must be a flightdeck.Project, not {type(project).__name__}; "
                                  "to use a spec file pass spec='path/to/flightdeck.yaml'")
        return project
    if spec is None:
        raise FlightdeckError("a flightdeck retriever needs `project` (a flightdeck.Project) or `spec` "
                              "(the path of flightdeck.yaml or of its folder)")
    loaded = Project.load(spec)
    key = (str(loaded.spec_path.resolve()), loaded.spec_path.stat().st_mtime_ns)
    with _PROJECTS_LOCK:
        return _PROJECTS.setdefault(key, loaded)


def spec_location(project: Any) -> str:
    """The spec path to serialise in place of a project (frameworks save paths, never live objects)."""
    return str(project.spec_path.resolve())


def check_where(where: Any, origin: str = "where") -> dict[str, Any] | None:
    """Validate a flightdeck filter dict now, so a bad filter fails when the retriever is built."""
    if where is None or where == {}:
        return None
    parse_filter(where, origin)
    return dict(where)


def all_of(*wheres: dict[str, Any] | None) -> dict[str, Any] | None:
    """The AND of several filter dicts, leaving out the empty ones."""
    parts = [w for w in wheres if w]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def unsupported_operator(framework: str, op: Any, where: str, supported: str) -> FilterError:
    return FilterError(f"{where}: the {framework} filter operator {op!r} is not supported by flightdeck's "
                       f"metadata filters; use one of {supported}")


def search(project: Any, query: str, k: int | None, mode: str | None, where: dict[str, Any] | None) -> Any:
    """``project.search`` with ``where`` passed only when set, one search at a time per project."""
    if not isinstance(query, str) or not query.strip():
        raise FlightdeckError(f"a retriever query must be a non-empty string, not {query!r}")
    if mode is not None and mode not in MODES:
        raise FlightdeckError(f"unknown search mode {mode!r}; use {', '.join(MODES)}")
    kwargs: dict[str, Any] = {"k": k, "mode": mode}
    if where:
        if "where" not in inspect.signature(project.search).parameters:
            raise FlightdeckError("this flightdeck version's Project.search() takes no metadata filter (where=); "
                                  "upgrade flightdeck or drop the filter")
        kwargs["where"] = where
    with _PROJECTS_LOCK:
        lock = _SEARCH_LOCKS.setdefault(project, threading.Lock())
    with lock:
        return project.search(query, **kwargs)


def hit_fields(hit: Any, *, score: bool = True) -> dict[str, Any]:
    """A hit's metadata for a framework document: the chunk's metadata plus where the chunk came from (these
    fields win over metadata keys of the same name)."""
    fields = {**(hit.metadata or {}), "chunk_id": hit.chunk_id, "document_id": hit.document_id,
              "source_uri": hit.source_uri, "title": hit.title, "heading": hit.heading,
              "ranks": dict(hit.ranks)}
    if score:
        fields["score"] = hit.score
    return fields
