"""PostgreSQL full-text search against the BM25 index as flightdeck's keyword retriever, on a BEIR split.

The chunks (indexed text and filter payload) and the BM25 index are read, read-only, from a built workspace
(by default the one `flightdeck eval retrieval` builds for SciFact, ``.flightdeck-eval/scifact``); the
chunks are loaded into a fresh PostgreSQL keyword table through
:class:`~flightdeck.retrieval.postgres_fts.PostgresKeywordIndex`, as the index step loads them, and the table
is dropped at the end. Every judged query is then searched, keyword mode only, by

- ``bm25``: the index version's :class:`~flightdeck.retrieval.bm25.Bm25Index` (what ``keyword_index: bm25``
  searches);
- ``postgres (ts_rank_cd /N)``: the PostgreSQL table, once per ``ts_rank_cd`` normalisation in
  ``--normalizations`` (32: rank/(rank+1), the raw cover-density order; 1: divided by 1 + log(length)).

Each retriever returns its top ``--chunk-depth`` chunks (300, as ``flightdeck eval retrieval`` asks); chunks
become documents (best chunk per document, the first 100) and flightdeck's ``evaluate_run`` (pytrec_eval)
scores nDCG@10, recall@100 and MRR@10. Latency is one ``search`` call per query, in-process, timed with
``perf_counter``; the retrievers take turns query by query (rotating the order), so that the load of a
shared machine falls on all of them alike. Load averages are sampled throughout.

    python benchmarks/keyword_postgres.py                    # SciFact train, the local server
    python benchmarks/keyword_postgres.py --url postgresql://user@db:5432/kb --limit-queries 100

Choose settings on a training split only; keep the test split held out.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCIFACT_DIR = ROOT.parent / "shared" / "data" / "scifact"  # ../shared beside the checkout
DEFAULT_WORKSPACE = ROOT / ".flightdeck-eval" / "scifact"
DEFAULT_URL = os.environ.get("FLIGHTDECK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "keyword_postgres.json"
DOC_DEPTH = 100  # documents scored per query, as evaluate_project keeps


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"p50": round(statistics.median(ordered), 3), "p90": round(pct(90), 3), "p99": round(pct(99), 3),
            "mean": round(statistics.fmean(ordered), 3)}


def read_workspace(folder: Path) -> tuple[str, list[str], list[str], list[dict[str, Any]], dict[str, str]]:
    """The current index version and its chunks (ids, indexed texts, payloads, document of each), read-only."""
    db_path = folder / ".flightdeck" / "metadata.db"
    if not db_path.is_file():
        raise SystemExit(f"{db_path}: not found; build the workspace first (flightdeck eval retrieval)")
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM state WHERE key = 'current_index'").fetchone()
        if row is None:
            raise SystemExit(f"{folder}: no index yet")
        version = json.loads(row[0]) if row[0].startswith('"') else row[0]
        rows = db.execute("SELECT c.id, c.indexed_text, c.document_id, p.payload FROM chunks c "
                          "JOIN chunk_payloads p ON p.chunk_id = c.id ORDER BY c.id").fetchall()
    finally:
        db.close()
    ids = [r[0] for r in rows]
    payloads = [json.loads(r[3]) if isinstance(r[3], str) else r[3] for r in rows]
    # document ids of records are "<source>/<file>#<record id>"
    doc_of = {r[0]: r[2].rsplit("#", 1)[-1] for r in rows}
    return version, ids, [r[1] for r in rows], payloads, doc_of


def documents(hits: list[tuple[str, float]], doc_of: dict[str, str], chunk_depth: int) -> dict[str, float]:
    """Best chunk per document, the first DOC_DEPTH documents, scored by rank (as evaluate_project does)."""
    out: dict[str, float] = {}
    for rank, (cid, _) in enumerate(hits):
        doc = doc_of[cid]
        if doc not in out:
            out[doc] = float(chunk_depth - rank)
            if len(out) >= DOC_DEPTH:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE, help="a built workspace (read only)")
    parser.add_argument("--beir", type=Path, default=SCIFACT_DIR, help="the BEIR folder of its corpus")
    parser.add_argument("--split", default="train")
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL URL (a scratch table is made and dropped)")
    parser.add_argument("--language", default="english", help="text search configuration")
    parser.add_argument("--normalizations", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--chunk-depth", type=int, default=300)
    parser.add_argument("--limit-queries", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=20, help="queries run once per retriever before timing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import psycopg  # noqa: PLC0415

    from flightdeck.evaluation.beir import evaluate_run, load_beir  # noqa: PLC0415
    from flightdeck.retrieval.bm25 import KEYWORD_FOLDER, Bm25Index  # noqa: PLC0415
    from flightdeck.retrieval.postgres_fts import PostgresKeywordIndex  # noqa: PLC0415
    from flightdeck.retrieval.stores.pgvector import libpq_url  # noqa: PLC0415

    loads = [os.getloadavg()[0]]
    dataset = load_beir(args.beir, args.split)
    queries = list(dataset.queries.items())[:args.limit_queries or None]
    qrels = {q: dataset.qrels[q] for q, _ in queries}
    version, ids, texts, payloads, doc_of = read_workspace(args.workspace)
    bm25_folder = args.workspace / ".flightdeck" / "indexes" / version / KEYWORD_FOLDER
    if not Bm25Index.exists(bm25_folder):
        raise SystemExit(f"{bm25_folder}: no BM25 index in the current index version")
    bm25 = Bm25Index.load(bm25_folder)
    log(f"{len(ids)} chunks of index version {version[:12]}, {len(queries)} {args.split} queries")

    table = f"bench_fts_{uuid.uuid4().hex[:12]}"
    writer = PostgresKeywordIndex(args.url, table, args.language)
    retrievers: dict[str, Any] = {"bm25": bm25}
    try:
        t = time.perf_counter()
        for start in range(0, len(ids), 512):  # the index step's batch
            writer.upsert(ids[start:start + 512], texts[start:start + 512], payloads[start:start + 512])
        load_s = time.perf_counter() - t
        with psycopg.connect(libpq_url(args.url), autocommit=True) as conn:
            conn.execute(f"ANALYZE {table}")
            server = conn.execute("SHOW server_version").fetchone()[0]
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (table,)).fetchone()[0]
        log(f"loaded {len(writer)} rows into {table} in {load_s:.1f}s ({size} with indexes)")
        for n in args.normalizations:
            retrievers[f"postgres (ts_rank_cd /{n})"] = PostgresKeywordIndex(args.url, table, args.language,
                                                                             normalization=n)
        for _, text in queries[:args.warmup]:
            for r in retrievers.values():
                r.search(text, args.chunk_depth)
        names = list(retrievers)
        runs: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
        latency: dict[str, list[float]] = {n: [] for n in names}
        t0 = time.perf_counter()
        for i, (qid, text) in enumerate(queries):
            for name in names[i % len(names):] + names[:i % len(names)]:
                t = time.perf_counter()
                hits = retrievers[name].search(text, args.chunk_depth)
                latency[name].append((time.perf_counter() - t) * 1000)
                runs[name][qid] = documents(hits, doc_of, args.chunk_depth)
            if (i + 1) % 100 == 0:
                loads.append(os.getloadavg()[0])
                log(f"{i + 1}/{len(queries)} queries, load {loads[-1]:.2f}")
        search_s = time.perf_counter() - t0
    finally:
        for r in retrievers.values():
            if isinstance(r, PostgresKeywordIndex):
                r.close()
        writer.drop()
        writer.close()
    loads.append(os.getloadavg()[0])
    results = [{"retriever": n, **evaluate_run(qrels, runs[n]), "latency_ms": percentiles(latency[n])}
               for n in names]
    report = {"dataset": dataset.root.name, "split": args.split, "queries": len(queries), "chunks": len(ids),
              "index_version": version, "chunk_depth": args.chunk_depth, "language": args.language,
              "postgres": server, "psycopg": psycopg.__version__, "table_load_s": round(load_s, 1),
              "table_size": size, "search_s": round(search_s, 1), "cores": os.cpu_count(),
              "loadavg1": [round(x, 2) for x in loads], "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| keyword retriever | nDCG@10 | recall@100 | MRR@10 | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['retriever']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} | "
              f"{r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} |")
    print(f"\n{len(queries)} {args.split} queries, {len(ids)} chunks, PostgreSQL {server}, {os.cpu_count()} cores, "
          f"load average {min(loads):.2f}–{max(loads):.2f}; written to {args.out}")


if __name__ == "__main__":
    main()
