"""Hybrid retrieval latency at scale (100k and 1M chunks), one query at a time, query embedding excluded.

For each ``--sizes`` N the script builds a real flightdeck workspace with N synthetic chunks:

- texts of 40–120 words drawn from the word frequencies of BEIR SciFact's corpus (so BM25 sees a realistic
  Zipfian vocabulary), written to the chunks table and the SQLite FTS5 keyword index as the pipeline does;
- 384-dimensional unit vectors from a mixture of 2,000 Gaussian clusters (all-MiniLM-L6-v2's dimension),
  put in the default FAISS store (``index: auto``: exact below 50k vectors, HNSW above) through the same
  store API the index step uses;
- a payload per chunk (year, lang) for a filtered run;
- the BM25 keyword index of the index version (bm25s, tokens as FTS5 makes them).

Then it runs the SciFact queries one at a time through :class:`HybridSearcher` (BM25 + vectors, RRF,
hydration of the hits from SQLite) with a precomputed query vector, so that the figure is retrieval only;
the query-embedding time of the real model is measured separately. Beside it, the plain libraries on the
same data: FAISS ``index.search`` alone, bm25s ``get_scores`` + top 100 alone, and one SQLite FTS5
``MATCH … ORDER BY bm25`` query (the keyword index flightdeck used before this index existed).

    python benchmarks/retrieval_latency.py --sizes 100000 1000000
    python benchmarks/retrieval_latency.py --sizes 20000 --queries 100      # a quick look
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import SCIFACT_CORPUS, log, machine  # noqa: E402

from flightdeck.pipeline.index_step import chunk_payload  # noqa: E402
from flightdeck.pipeline.runner import stable_hash  # noqa: E402
from flightdeck.retrieval.bm25 import KEYWORD_FOLDER, Bm25Index, tokenize  # noqa: E402
from flightdeck.retrieval.fusion import fusion_for  # noqa: E402
from flightdeck.retrieval.keyword import Fts5Index, fts_query, keyword_index_for  # noqa: E402
from flightdeck.retrieval.search import HybridSearcher  # noqa: E402
from flightdeck.retrieval.stores.base import StoreLocation  # noqa: E402
from flightdeck.retrieval.stores.faiss import FaissConfig, FaissStore  # noqa: E402
from flightdeck.spec.models import SearchSettings  # noqa: E402
from flightdeck.workspace import Workspace  # noqa: E402
from flightdeck.workspace.schema import chunk_payloads, chunks, documents, index_versions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCIFACT_QUERIES = SCIFACT_CORPUS.parent / "queries.jsonl"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "retrieval_latency.json"
DIM = 384
CLUSTERS = 2000
CHUNKS_PER_DOC = 50
_WORD = re.compile(r"\w+")


class PrecomputedQueries:
    """Stands in for the embedder at search time: returns the vector prepared for each query text."""

    def __init__(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        self.model_id = model_id
        self.dimension = DIM
        self._vectors = vectors

    def embed_query(self, query: str) -> np.ndarray:
        return self._vectors[query]


def vocabulary() -> tuple[list[str], np.ndarray]:
    counts: collections.Counter[str] = collections.Counter()
    with SCIFACT_CORPUS.open() as fh:
        for line in fh:
            row = json.loads(line)
            counts.update(w.lower() for w in _WORD.findall(f"{row.get('title', '')} {row['text']}"))
    words, freq = zip(*counts.most_common(), strict=True)
    p = np.asarray(freq, dtype=np.float64)
    return list(words), p / p.sum()


def build(root: Path, n: int, seed: int) -> tuple[Workspace, np.ndarray, dict[str, float]]:
    rng = np.random.default_rng(seed)
    words, p = vocabulary()
    ws = Workspace(root)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    lengths = rng.integers(40, 121, size=n)
    word_ids = rng.choice(len(words), size=int(lengths.sum()), p=p)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    batch = 20_000
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        doc_rows, chunk_rows, fts_rows, payload_rows = [], [], [], []
        for i in range(start, stop):
            doc_id = f"synthetic/doc-{i // CHUNKS_PER_DOC:07d}"
            if i % CHUNKS_PER_DOC == 0:
                doc = {"id": doc_id, "source_uri": f"file:///synthetic/{i // CHUNKS_PER_DOC}.txt",
                       "content_hash": "0" * 64, "pipeline_hash": "0" * 64, "media_type": "text/plain",
                       "title": doc_id, "metadata": {"year": 2000 + (i // CHUNKS_PER_DOC) % 25,
                                                     "lang": "en" if i % 3 else "de"},
                       "chunk_count": CHUNKS_PER_DOC, "run_id": "bench"}
                doc_rows.append(doc)
            body = " ".join(words[w] for w in word_ids[offsets[i]:offsets[i + 1]])
            cid = f"{doc_id}#{i % CHUNKS_PER_DOC}"
            chunk_rows.append({"id": cid, "document_id": doc_id, "ordinal": i % CHUNKS_PER_DOC, "text": body,
                               "indexed_text": body, "heading": "", "token_count": int(lengths[i]),
                               "text_hash": f"{i:064d}", "metadata": {}})
            fts_rows.append((cid, body))
            meta = {"year": 2000 + (i // CHUNKS_PER_DOC) % 25, "lang": "en" if i % 3 else "de"}
            payload = chunk_payload({"id": doc_id, "source_uri": "", "title": doc_id, "media_type": "text/plain",
                                     "metadata": meta}, {"heading": "", "metadata": {}})
            payload_rows.append({"chunk_id": cid, "payload": payload, "payload_hash": stable_hash(payload)})
        with ws.engine.begin() as conn:
            if doc_rows:
                conn.execute(insert(documents), doc_rows)
            conn.execute(insert(chunks), chunk_rows)
            Fts5Index.add(conn, fts_rows)
            conn.execute(insert(chunk_payloads), payload_rows)
    timings["write_texts_s"] = time.perf_counter() - t
    t = time.perf_counter()
    centroids = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    vectors = centroids[rng.integers(0, CLUSTERS, size=n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with ws.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, indexed_text FROM chunks ORDER BY id")).fetchall()
        ids, texts = [r[0] for r in rows], [r[1] for r in rows]
        payloads = {r[0]: json.loads(r[1]) for r in conn.execute(text("SELECT chunk_id, payload FROM chunk_payloads"))}
    timings["make_vectors_s"] = time.perf_counter() - t
    index_id = f"bench{n}"
    t = time.perf_counter()
    keyword = Bm25Index()
    keyword.build(ids, texts, [payloads[c] for c in ids])
    keyword.save(root / "indexes" / index_id / KEYWORD_FOLDER)
    timings["bm25_build_s"] = time.perf_counter() - t
    del texts, keyword
    t = time.perf_counter()
    store = FaissStore(FaissConfig())
    store.open(StoreLocation(root / "indexes" / index_id, index_id, DIM))
    store.upsert(ids, vectors, [payloads[c] for c in ids])
    store.flush()
    timings["faiss_build_s"] = time.perf_counter() - t
    timings["faiss_kind"] = store.kind  # type: ignore[assignment]
    with ws.engine.begin() as conn:
        conn.execute(insert(index_versions).values(
            id=index_id, created_at=time.time(), run_id="bench", dataset_version="", embedder="synthetic",
            dim=DIM, store="faiss", chunk_count=n, index_artifact="", ids_artifact="", collection=None))
        ws.set_state(conn, "current_index", index_id)
    return ws, centroids, timings


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_size(n: int, queries: list[str], seed: int, workdir: Path, fts_queries: int) -> dict[str, Any]:
    root = workdir / f"ws-{n}"
    built = root / "build.json"
    if built.is_file():  # --workdir kept from an earlier run: measure again without rebuilding
        ws = Workspace(root)
        saved = json.loads(built.read_text())
        build_t, centroids = saved["build"], np.load(root / "centroids.npy")
        log(f"[{n:,}] reusing the workspace built earlier: {build_t}")
    else:
        log(f"[{n:,}] building the workspace (texts, FTS5, vectors, FAISS)…")
        ws, centroids, build_t = build(root, n, seed)
        np.save(root / "centroids.npy", centroids)
        built.write_text(json.dumps({"build": build_t}))
        log(f"[{n:,}] built: {build_t}")
    rng = np.random.default_rng(seed + 1)
    qv = {}
    for q in queries:
        v = centroids[rng.integers(0, CLUSTERS)] + 0.6 * rng.normal(size=DIM).astype(np.float32)
        qv[q] = (v / np.linalg.norm(v)).astype(np.float32)
    settings = SearchSettings(k=10, candidates=100)
    searcher = HybridSearcher(ws, PrecomputedQueries("synthetic", qv), lambda: FaissStore(FaissConfig()), settings,
                              keyword_index_for(settings, ws), fusion_for(settings))
    searcher.search(queries[0])  # opens the index (load from disk), as a long-lived service does once
    t = time.perf_counter()
    searcher.search(queries[0], where={"lang": "en"})  # the first filter reads the payloads into columns
    results_warm = {"first_filter_ms": (time.perf_counter() - t) * 1000}
    results: dict[str, Any] = {"n": n, "build": build_t, **results_warm}
    for label, where in (("hybrid", None), ("hybrid_filtered", {"lang": "en", "year": {"$gte": 2010}})):
        totals, parts = [], collections.defaultdict(list)
        for q in queries:
            t = time.perf_counter()
            res = searcher.search(q, where=where)
            totals.append((time.perf_counter() - t) * 1000 - res.timings_ms.get("embed_query", 0.0))
            for name, ms in res.timings_ms.items():
                parts[name].append(ms)
        results[label] = {"p50_ms": percentile(totals, 50), "p99_ms": percentile(totals, 99),
                          "parts_p50_ms": {k: percentile(v, 50) for k, v in parts.items() if k != "embed_query"}}
        log(f"[{n:,}] {label}: p50 {results[label]['p50_ms']:.1f} ms, p99 {results[label]['p99_ms']:.1f} ms, "
            f"parts {results[label]['parts_p50_ms']}")
    # the plain libraries on the same data
    store = searcher._vector_store(searcher.index_version())
    index = store._index
    raw_faiss, raw_fts = [], []
    for q in queries:
        t = time.perf_counter()
        index.search(qv[q].reshape(1, -1), 100)
        raw_faiss.append((time.perf_counter() - t) * 1000)
    match_sql = text("SELECT chunk_id, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH :q "
                     "ORDER BY s LIMIT 100")
    with ws.engine.connect() as conn:
        for q in queries[:fts_queries]:
            t = time.perf_counter()
            conn.execute(match_sql, {"q": fts_query(q)}).fetchall()
            raw_fts.append((time.perf_counter() - t) * 1000)
    bm25 = searcher._keyword_search(searcher.index_version())[0]._retriever  # the index version's BM25 index
    raw_bm25 = []
    for q in queries:
        t = time.perf_counter()
        s = bm25.get_scores([w for w in tokenize(q) if w in bm25.vocab_dict])
        np.argpartition(-s, 100)[:100]
        raw_bm25.append((time.perf_counter() - t) * 1000)
    results["plain_bm25s"] = {"p50_ms": percentile(raw_bm25, 50), "p99_ms": percentile(raw_bm25, 99)}
    results["plain_faiss"] = {"p50_ms": percentile(raw_faiss, 50), "p99_ms": percentile(raw_faiss, 99)}
    results["plain_fts5"] = {"p50_ms": percentile(raw_fts, 50), "p99_ms": percentile(raw_fts, 99)}
    log(f"[{n:,}] plain faiss p50/p99 {results['plain_faiss']}, plain bm25s {results['plain_bm25s']}, "
        f"plain FTS5 {results['plain_fts5']}")
    ws.close()
    return results


def query_embedding_ms(queries: list[str]) -> dict[str, float]:
    from flightdeck.retrieval.embedders.sentence_transformers import SentenceTransformersEmbedder

    embedder = SentenceTransformersEmbedder()
    embedder.embed_query("warm up")
    times = []
    for q in queries:
        t = time.perf_counter()
        embedder.embed_query(q)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=300, help="SciFact queries run per size (one at a time)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--fts-queries", type=int, default=50,
                    help="queries for the plain FTS5 baseline (about a second each at 1M chunks)")
    ap.add_argument("--workdir", type=Path, help="keep the workspaces here (default: a temporary folder); a "
                    "later run with the same --workdir measures them again without rebuilding")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    queries = [json.loads(line)["text"] for line in SCIFACT_QUERIES.read_text().splitlines()][: args.queries]
    report: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "queries": len(queries),
                              "sizes": []}
    with tempfile.TemporaryDirectory(prefix="fd-latency-") as tmp:
        workdir = args.workdir or Path(tmp)
        for n in args.sizes:
            report["sizes"].append(run_size(n, queries, args.seed, workdir, args.fts_queries))
    report["query_embedding"] = query_embedding_ms(queries[:100])
    report["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("\n| chunks | index | hybrid p50 | hybrid p99 | filtered p50 | filtered p99 | plain FAISS p50 | "
          "plain bm25s p50 | plain FTS5 p50 | build s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in report["sizes"]:
        b = r["build"]
        print(f"| {r['n']:,} | {b['faiss_kind']} | {r['hybrid']['p50_ms']:.1f} ms | {r['hybrid']['p99_ms']:.1f} ms | "
              f"{r['hybrid_filtered']['p50_ms']:.1f} ms | {r['hybrid_filtered']['p99_ms']:.1f} ms | "
              f"{r['plain_faiss']['p50_ms']:.2f} ms | {r['plain_bm25s']['p50_ms']:.2f} ms | "
              f"{r['plain_fts5']['p50_ms']:.1f} ms | {b['bm25_build_s'] + b['faiss_build_s']:.0f} |")
    qe = report["query_embedding"]
    print(f"\nquery embedding (all-MiniLM-L6-v2, CPU): p50 {qe['p50_ms']:.1f} ms, p99 {qe['p99_ms']:.1f} ms")
    print(f"machine: {report['machine']}")


if __name__ == "__main__":
    main()
