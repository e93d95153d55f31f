"""The RAG pipeline (use case ``rag``, objective ``retrieval_system``): ingest → (synthesize) → embed → index."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flightdeck.core import DEFAULT_CHUNK_SIZE, Step, fit_chunk_size
from flightdeck.pipeline.index_step import IndexStep
from flightdeck.pipeline.steps import EmbedStep, IngestStep
from flightdeck.registry import Category

if TYPE_CHECKING:
    from flightdeck.pipeline.assembly import Assembly

__all__ = ["build_rag_steps"]


def build_rag_steps(parts: Assembly) -> list[Step]:
    """The steps of the RAG path for the spec of ``parts``, with its providers."""
    spec = parts.spec
    chunk_ref = spec.data.chunking
    settings = parts.settings(chunk_ref)
    # A chunk plus the encoder's special tokens must fit the model's window (the one rule: fit_chunk_size);
    # `validate` refuses a size over the model's maximum, and the last two tokens are taken off here.
    settings["size"] = fit_chunk_size(int(settings.get("size", DEFAULT_CHUNK_SIZE)), parts.embedder.max_tokens)
    chunker = parts.build(Category.CHUNKER, chunk_ref, settings)
    clean = "cleaning_normalization" in spec.data.preprocessing
    # IngestStep adds the data.cleaning settings to this hash when cleaning is on.
    pipeline_config = {"chunker": chunk_ref.provider, "chunking": chunker.config.model_dump(),
                       "tokenizer": parts.embedder.model_id, "cleaning": clean}
    split_ref = spec.data.splits
    splitter = None if split_ref is None else parts.build(Category.SPLITTER, split_ref, parts.settings(split_ref))
    ws = parts.workspace
    store_ref = spec.retrieval.vector_database
    steps: list[Step] = [
        IngestStep(ws, parts.source_bindings(), chunker, parts.tokenizer, pipeline_config, clean=clean,
                   cleaning=spec.data.cleaning, splitter=splitter, failure_limits=spec.data.failures,
                   snapshots=parts.snapshots),
        EmbedStep(ws, parts.embedder),
        IndexStep(ws, parts.embedder, parts.vector_store_factory(), store_ref.provider,
                  parts.settings(store_ref), parts.keyword_index()),
    ]
    generator_ref = spec.model.generator
    precompute = parts.settings(generator_ref).get("precompute_sentences")
    if precompute is None:  # auto: for the real-time tier, which needs it
        precompute = spec.scoping.latency == "real_time"
    if generator_ref.provider == "extractive" and precompute:
        from flightdeck.models.generators.extractive import SPLIT_VERSION, split_sentences
        from flightdeck.pipeline.sentence_step import SentenceVectorsStep

        steps.append(SentenceVectorsStep(ws, parts.embedder, split_sentences, SPLIT_VERSION))
    synthesizer = parts.synthesizer()
    if synthesizer is not None:  # it reads the chunks ingest wrote
        from flightdeck.pipeline.synthesize_step import SynthesizeStep

        steps.insert(1, SynthesizeStep(ws, synthesizer, parts.generator, spec.model.generator.provider))
    return steps
