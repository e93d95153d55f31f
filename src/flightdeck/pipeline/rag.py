"""The RAG pipeline (use case ``rag``, objective ``retrieval_system``): ingest → embed → index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flightdeck.pipeline.steps import EmbedStep, IndexStep, IngestStep
from flightdeck.registry import Category, registry

if TYPE_CHECKING:
    from flightdeck.project import Project

__all__ = ["build_rag_steps"]


def build_rag_steps(project: Project) -> list[Any]:
    """The steps of the RAG path for ``project``'s spec, with its providers."""
    spec = project.spec
    chunk_ref = spec.data.chunking
    chunker = registry().create(Category.CHUNKER, chunk_ref.provider, project.provider_settings(chunk_ref))
    clean = "cleaning_normalization" in spec.data.preprocessing
    pipeline_config = {"chunker": chunk_ref.provider, "chunking": chunker.config.model_dump(),
                       "tokenizer": project.embedder.model_id, "cleaning": clean}
    ws = project.workspace
    store_ref = spec.retrieval.vector_database
    return [
        IngestStep(ws, project.source_bindings(), chunker, project.tokenizer, pipeline_config, clean=clean),
        EmbedStep(ws, project.embedder),
        IndexStep(ws, project.embedder, project.store_factory(), store_ref.provider,
                  project.provider_settings(store_ref)),
    ]
