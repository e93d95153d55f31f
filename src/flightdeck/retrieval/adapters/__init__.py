"""flightdeck as the retrieval layer of LangChain, LlamaIndex and Haystack (checklist 2.3 ``retrieval.system``).

Each framework gets one module with a ``FlightdeckRetriever`` written against that framework's own retriever
interface, so a team keeps its chains, query engines and pipelines and swaps only the retriever::

    from flightdeck.retrieval.adapters import langchain_retriever
    retriever = langchain_retriever("path/to/flightdeck.yaml", k=5, where={"lang": "en"})
    docs = retriever.invoke("how do I align the sprockets?")

Importing this package imports no framework: the functions below import their module on first call, and
a missing framework raises :class:`~flightdeck.errors.MissingDependencyError` naming the pip extra.
Filters are flightdeck's metadata filter dicts (``where=``, see :mod:`flightdeck.retrieval.filters`);
the LlamaIndex and Haystack retrievers also take their framework's own filter objects and translate them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["langchain_retriever", "llamaindex_retriever", "haystack_retriever"]


def langchain_retriever(project_or_spec: Any, **options: Any) -> Any:
    """A LangChain ``BaseRetriever`` over a :class:`~flightdeck.Project` or the spec at a path.

    ``options``: ``k``, ``mode`` (``hybrid``/``vector``/``keyword``), ``where`` (a metadata filter dict) and
    any ``BaseRetriever`` field (``tags``, ``metadata``).
    """
    from flightdeck.retrieval.adapters.langchain import FlightdeckRetriever

    return FlightdeckRetriever(**_source(project_or_spec), **options)


def llamaindex_retriever(project_or_spec: Any, **options: Any) -> Any:
    """A LlamaIndex ``BaseRetriever`` over a project or spec path; ``options``: ``k``, ``mode``, ``where``,
    ``filters`` (LlamaIndex ``MetadataFilters``)."""
    from flightdeck.retrieval.adapters.llamaindex import FlightdeckRetriever

    return FlightdeckRetriever(**_source(project_or_spec), **options)


def haystack_retriever(project_or_spec: Any, **options: Any) -> Any:
    """A Haystack component over a project or spec path; ``options``: ``top_k``, ``mode``, ``filters``
    (Haystack filter syntax), ``filter_policy``, ``where``."""
    from flightdeck.retrieval.adapters.haystack import FlightdeckRetriever

    return FlightdeckRetriever(**_source(project_or_spec), **options)


def _source(project_or_spec: Any) -> dict[str, Any]:
    if isinstance(project_or_spec, (str, Path)):
        return {"spec": project_or_spec}
    return {"project": project_or_spec}
