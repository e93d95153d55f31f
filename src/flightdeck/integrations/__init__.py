"""flightdeck as the retrieval layer of LangChain, LlamaIndex and Haystack (checklist 2.3 ``retrieval.system``).

Integrations sit on top of the public API (:class:`~flightdeck.Project`), beside the CLI and the service
shells: nothing below imports them. Each framework gets one module with a retriever named for it and written
against that framework's own retriever interface (:class:`~flightdeck.integrations.langchain.LangChainRetriever`,
:class:`~flightdeck.integrations.llamaindex.LlamaIndexRetriever`,
:class:`~flightdeck.integrations.haystack.HaystackRetriever`), so a team keeps its chains, query engines and
pipelines and swaps only the retriever::

    from flightdeck.integrations import langchain_retriever
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
    from flightdeck.integrations.langchain import LangChainRetriever

    return LangChainRetriever(**_source(project_or_spec), **options)


def llamaindex_retriever(project_or_spec: Any, **options: Any) -> Any:
    """A LlamaIndex ``BaseRetriever`` over a project or spec path; ``options``: ``k``, ``mode``, ``where``,
    ``filters`` (LlamaIndex ``MetadataFilters``)."""
    from flightdeck.integrations.llamaindex import LlamaIndexRetriever

    return LlamaIndexRetriever(**_source(project_or_spec), **options)


def haystack_retriever(project_or_spec: Any, **options: Any) -> Any:
    """A Haystack component over a project or spec path; ``options``: ``top_k``, ``mode``, ``filters``
    (Haystack filter syntax), ``filter_policy``, ``where``."""
    from flightdeck.integrations.haystack import HaystackRetriever

    return HaystackRetriever(**_source(project_or_spec), **options)


def _source(project_or_spec: Any) -> dict[str, Any]:
    if isinstance(project_or_spec, (str, Path)):
        return {"spec": project_or_spec}
    return {"project": project_or_spec}
