"""The RAG pipeline (use case ``rag``, objective ``retrieval_system``): ingest → (synthesize) → embed → index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flightdeck.pipeline.index_step import IndexStep
from flightdeck.pipeline.steps import EmbedStep, IngestStep
from flightdeck.registry import Category, registry

if TYPE_CHECKING:
    from flightdeck.project import Project

__all__ = ["build_rag_steps", "SPECIAL_TOKENS", "SYNTHETIC"]

SPECIAL_TOKENS = 2
SYNTHETIC = "synthetic"  # the data.sources provider that writes examples from chunks instead of reading documents


def build_rag_steps(project: Project) -> list[Any]:
    """The steps of the RAG path for ``project``'s spec, with its providers."""
    spec = project.spec
    chunk_ref = spec.data.chunking
    settings = project.provider_settings(chunk_ref)
    # The encoder adds its special tokens ([CLS], [SEP]) to every text: a chunk of `size` tokens plus those
    # must still fit the model's window, or the model silently cuts the chunk's end off.
    window = project.embedder.max_tokens - SPECIAL_TOKENS
    size = int(settings.get("size", 256))
    if size > window:
        settings["size"] = window
    chunker = registry().create(Category.CHUNKER, chunk_ref.provider, settings)
    if hasattr(chunker, "embedder"):  # the semantic chunker finds its breakpoints with the project's embedder
        chunker.embedder = project.embedder
    clean = "cleaning_normalization" in spec.data.preprocessing
    # IngestStep adds the data.cleaning settings to this hash when cleaning is on.
    pipeline_config = {"chunker": chunk_ref.provider, "chunking": chunker.config.model_dump(),
                       "tokenizer": project.embedder.model_id, "cleaning": clean}
    split_ref = spec.data.splits
    splitter = None if split_ref is None else registry().create(Category.SPLITTER, split_ref.provider,
                                                                project.provider_settings(split_ref))
    ws = project.workspace
    store_ref = spec.retrieval.vector_database
    steps: list[Any] = [
        IngestStep(ws, project.source_bindings(), chunker, project.tokenizer, pipeline_config, clean=clean,
                   cleaning=spec.data.cleaning, splitter=splitter, failure_limits=spec.data.failures),
        EmbedStep(ws, project.embedder),
        IndexStep(ws, project.embedder, project.store_factory(), store_ref.provider,
                  project.provider_settings(store_ref), project.keyword_index()),
    ]
    synthetic = [ref for ref in spec.data.sources if ref.provider == SYNTHETIC]
    if synthetic:  # validation allows one entry; it reads the chunks ingest wrote
        from flightdeck.pipeline.synthesize_step import SynthesizeStep

        settings = project.provider_settings(synthetic[0])
        settings.pop("name", None)
        source = registry().create(Category.SOURCE, SYNTHETIC, settings)
        steps.insert(1, SynthesizeStep(ws, source, project.generator, spec.model.generator.provider))
    return steps
