"""Qdrant's two embedded modes side by side: Edge (Qdrant's Rust engine in-process) and qdrant-client's local mode.

Both run through :class:`~flightdeck.retrieval.stores.qdrant.QdrantStore`, as the index step and the searcher
use it, on the same synthetic collection: ``--size`` unit vectors of ``--dim`` floats (seeded Gaussian, a
hard case for HNSW since nothing clusters), each with a payload like a chunk's (``kind``, ``year``, ``flag``).
Measured per mode, in one process, on one run:

- ``add``: ``upsert`` of the whole collection in the store's batches, then ``flush`` (for Edge that runs
  Qdrant's optimizers: vacuum, merge, and the HNSW build of a segment past the indexing threshold);
- ``search``: ``--queries`` top-10 searches, plain and with a filter (``kind == "faq" and year >= 2015``),
  the modes taking turns query by query so that the load of a shared machine falls on both alike;
- ``recall@10`` against exact numpy search (the plain-library baseline, also timed).

    python benchmarks/qdrant_modes.py                       # 2,000 and 10,000 vectors of 384 floats
    python benchmarks/qdrant_modes.py --sizes 5000 --dim 768 --queries 300
    python benchmarks/qdrant_modes.py --vectors .flightdeck-eval/scifact/.flightdeck/metadata.db --sizes 10000

``--vectors`` takes real embeddings (a flightdeck workspace's ``embeddings`` table, e.g. the index of
``flightdeck eval retrieval`` on SciFact) instead of random ones: the first ``size`` rows are the collection,
the next ``--queries`` rows, held out, are the queries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from flightdeck.retrieval.filters import parse_filter  # noqa: E402
from flightdeck.retrieval.stores.base import StoreLocation  # noqa: E402
from flightdeck.retrieval.stores.qdrant import QdrantConfig, QdrantStore  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "qdrant_modes.json"
MODES = ("edge", "local")
KINDS = ("faq", "guide", "note")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms_stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(v * 1000 for v in values)
    return {"p50": round(statistics.median(ordered), 3),
            "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
            "mean": round(statistics.fmean(ordered), 3)}


def real_vectors(db: Path) -> np.ndarray:
    """The embeddings of a flightdeck workspace (float32 rows), in a fixed order, unit length."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("select vector from embeddings order by text_hash").fetchall()
    vectors = np.stack([np.frombuffer(r[0], dtype="<f4") for r in rows]).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def collection(size: int, dim: int, seed: int = 7,
               real: np.ndarray | None = None) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    if real is not None:
        vectors = real[:size]
    else:
        rng = np.random.default_rng(seed)
        vectors = rng.normal(size=(size, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"docs/doc-{i:07d}.md#{i % 4}" for i in range(size)]
    payloads = [{"kind": KINDS[i % 3], "year": float(2010 + i % 12), "flag": i % 2 == 0} for i in range(size)]
    return ids, vectors, payloads


def exact_top(vectors: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[int]:
    scores = vectors @ q if rows is None else vectors[rows] @ q
    top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top.tolist() if rows is None else rows[top].tolist()


def run_size(size: int, dim: int, queries: int, workdir: Path, real: np.ndarray | None = None) -> dict[str, Any]:
    if real is not None:
        if len(real) < size + queries:
            raise SystemExit(f"--vectors holds {len(real)} rows: fewer than {size} + {queries} queries")
        dim = real.shape[1]
    ids, vectors, payloads = collection(size, dim, real=real)
    where = parse_filter({"kind": "faq", "year": {"$gte": 2015}})
    allowed = np.array([i for i, p in enumerate(payloads) if p["kind"] == "faq" and p["year"] >= 2015])
    stores: dict[str, QdrantStore] = {}
    out: dict[str, Any] = {"size": size, "dim": dim, "queries": queries, "modes": {},
                           "vectors": "real (held-out rows as queries)" if real is not None else "random"}
    for mode in MODES:
        store = QdrantStore(QdrantConfig(mode=mode))  # type: ignore[arg-type]
        store.open(StoreLocation(workdir / f"{mode}-{size}", f"bench_{size}", dim))
        t0 = time.perf_counter()
        for start in range(0, size, 512):  # the index step's batch
            store.upsert(ids[start:start + 512], vectors[start:start + 512], payloads[start:start + 512])
        t1 = time.perf_counter()
        store.flush()
        t2 = time.perf_counter()
        stores[mode] = store
        out["modes"][mode] = {"upsert_s": round(t1 - t0, 3), "flush_s": round(t2 - t1, 3),
                              "add_vectors_per_s": round(size / (t2 - t0), 1)}
        log(f"{size}: {mode} add {t2 - t0:.2f}s (flush {t2 - t1:.2f}s)")
    if real is not None:
        qs = real[size:size + queries]
    else:
        rng = np.random.default_rng(11)
        qs = rng.normal(size=(queries, dim)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    timings: dict[str, list[float]] = {f"{m}{f}": [] for m in (*MODES, "numpy") for f in ("", "_filtered")}
    recall: dict[str, list[float]] = {f"{m}{f}": [] for m in MODES for f in ("", "_filtered")}
    order = [*MODES, "numpy"]
    for n, q in enumerate(qs):
        for who in order[n % 3:] + order[:n % 3]:  # rotate who goes first
            for filtered in (False, True):
                key = who + ("_filtered" if filtered else "")
                t = time.perf_counter()
                if who == "numpy":
                    exact_top(vectors, q, 10, allowed if filtered else None)
                    timings[key].append(time.perf_counter() - t)
                    continue
                got = stores[who].search(q, 10, where if filtered else None)
                timings[key].append(time.perf_counter() - t)
                truth = {ids[i] for i in exact_top(vectors, q, 10, allowed if filtered else None)}
                recall[key].append(len(truth & {c for c, _ in got}) / len(truth))
    for key, values in timings.items():
        mode, _, filtered = key.partition("_")
        entry = out["modes"].setdefault(mode, {})
        entry[f"search_ms{'_filtered' if filtered else ''}"] = ms_stats(values)
        if key in recall:
            entry[f"recall@10{'_filtered' if filtered else ''}"] = round(statistics.fmean(recall[key]), 4)
    for store in stores.values():
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--vectors", type=Path, help="a flightdeck workspace's metadata.db: real embeddings")
    args = parser.parse_args()
    real = real_vectors(args.vectors) if args.vectors else None
    machine = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "load_1m_before": round(os.getloadavg()[0], 2),
               "qdrant-edge-py": version("qdrant-edge-py"), "qdrant-client": version("qdrant-client")}
    results = []
    with tempfile.TemporaryDirectory(prefix="fd-qdrant-bench-") as tmp:
        for size in args.sizes:
            results.append(run_size(size, args.dim, args.queries, Path(tmp), real))
    machine["load_1m_after"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2), encoding="utf-8")
    print(f"machine: {machine}\n")
    print("| vectors | mode | add (vectors/s) | flush s | search p50 ms | filtered p50 ms | recall@10 | "
          "filtered recall@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for mode, m in r["modes"].items():
            print(f"| {r['size']:,} | {mode} | {m.get('add_vectors_per_s', '—')} | {m.get('flush_s', '—')} | "
                  f"{m['search_ms']['p50']} | {m['search_ms_filtered']['p50']} | {m.get('recall@10', 1.0)} | "
                  f"{m.get('recall@10_filtered', 1.0)} |")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
