"""Measure flightdeck's query transformations (rewrite, multi_query, hyde) against the untransformed query.

The index is the one `flightdeck eval retrieval` builds and reuses (``--workspace``, by default
``.flightdeck-eval/<dataset>`` like the CLI); it is built first if it is missing. A seeded sample of the
split's judged queries (``--queries``, by sha256 of the query id) is searched through the public API,
``project.search(q, k=300)``, once per transformation with the default hybrid settings; chunk hits become
document hits (best chunk per document, first 100) exactly as ``flightdeck eval retrieval`` does, and
pytrec_eval scores nDCG@10, recall@100 and MRR@10 per query. Each transformation is compared with the
untransformed baseline on the same queries: the mean difference of nDCG@10 with a 95 % paired-bootstrap
interval, and how many queries it helped or hurt.

The generator is flightdeck's ``llama_cpp`` provider (default: the packaged Gemma 3 270M, a base model, so
prompts are few-shot completions) with the transformations' default prompts and examples: what a user gets
from the spec without writing a prompt. Latency is the transformation's LLM time per query (p50/p99) and
the whole search; the LLM dominates it.

    python benchmarks/query_transformation.py                      # SciFact train, 100 queries
    python benchmarks/query_transformation.py --queries 300 --transforms hyde

Tune and report on a training split only; keep the test split held out.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import SCIFACT_DIR, log, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "query_transformation.json"
TRANSFORMS = ("none", "rewrite", "multi_query", "hyde")
CHUNK_DEPTH, DOC_DEPTH = 300, 100


def sample_queries(dataset: Any, n: int, seed: int) -> list[str]:
    ids = sorted(dataset.queries, key=lambda q: hashlib.sha256(f"{seed}:{q}".encode()).hexdigest())
    return ids[:n]


def open_project(dataset: Any, workspace: Path) -> Any:
    from flightdeck.evaluation.beir import beir_spec
    from flightdeck.pipeline.progress import RichReporter
    from flightdeck.project import Project

    workspace.mkdir(parents=True, exist_ok=True)
    spec_path = workspace / "flightdeck.yaml"
    text = beir_spec(dataset)
    if not spec_path.is_file() or spec_path.read_text() != text:
        spec_path.write_text(text)
    project = Project.load(spec_path)
    reporter = RichReporter()
    try:
        project.run(reporter)  # a no-op when the index is current
    finally:
        reporter.close()
    return project


def per_query_metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, dict]:
    import pytrec_eval

    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {q: {"ndcg@10": full.get(q, {}).get("ndcg_cut_10", 0.0),
                "recall@100": full.get(q, {}).get("recall_100", 0.0),
                "mrr@10": mrr.get(q, {}).get("recip_rank", 0.0)} for q in qrels}


def paired_bootstrap(deltas: list[float], seed: int, rounds: int = 10000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    arr = np.asarray(deltas)
    means = arr[rng.integers(0, len(arr), size=(rounds, len(arr)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def run_transform(project: Any, name: str, generator: Any, dataset: Any, qids: list[str]) -> dict[str, Any]:
    from flightdeck.registry import Category, registry

    searcher = project.searcher
    searcher.transform = None
    if name != "none":
        searcher.transform = registry().create(Category.QUERY_TRANSFORMATION, name, {})
        searcher.transform.generator = generator
    run: dict[str, dict[str, float]] = {}
    transform_ms: list[float] = []
    total_ms: list[float] = []
    variants: dict[str, list[dict]] = {}
    for i, qid in enumerate(qids, 1):
        t0 = time.perf_counter()
        result = project.search(dataset.queries[qid], k=CHUNK_DEPTH)
        total_ms.append((time.perf_counter() - t0) * 1000)
        transform_ms.append(result.timings_ms.get("transform", 0.0))
        variants[qid] = result.queries
        docs: dict[str, float] = {}
        for rank, hit in enumerate(result.hits):
            doc = hit.document_id.rsplit("#", 1)[-1]
            if doc not in docs:
                docs[doc] = float(CHUNK_DEPTH - rank)
            if len(docs) >= DOC_DEPTH:
                break
        run[qid] = docs
        if i % 25 == 0:
            log(f"  {name}: {i}/{len(qids)} queries, transform p50 {statistics.median(transform_ms):.0f} ms")
    qrels = {q: dataset.qrels[q] for q in qids}
    per_query = per_query_metrics(qrels, run)
    means = {m: round(statistics.fmean(v[m] for v in per_query.values()), 5)
             for m in ("ndcg@10", "recall@100", "mrr@10")}

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))], 1)

    return {"transform": name, "metrics": means, "per_query": per_query,
            "transform_ms": {"p50": round(statistics.median(transform_ms), 1), "p99": pct(transform_ms, 99)},
            "search_total_ms": {"p50": round(statistics.median(total_ms), 1), "p99": pct(total_ms, 99)},
            "examples": {q: variants[q] for q in qids[:5]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", type=Path, default=SCIFACT_DIR)
    ap.add_argument("--split", default="train")
    ap.add_argument("--workspace", type=Path, default=None,
                    help="the eval index (default: ./.flightdeck-eval/<dataset>, as the CLI)")
    ap.add_argument("--queries", type=int, default=100, help="judged queries sampled (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transforms", default=",".join(TRANSFORMS))
    ap.add_argument("--gguf", default=None, help="a GGUF for the llama_cpp generator (default: packaged Gemma)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    from flightdeck.evaluation.beir import load_beir
    from flightdeck.models.generators.llama_cpp import LlamaCppConfig, LlamaCppGenerator

    dataset = load_beir(args.beir, args.split)
    workspace = (args.workspace or Path(".flightdeck-eval") / dataset.root.resolve().name).resolve()
    project = open_project(dataset, workspace)
    qids = sample_queries(dataset, args.queries, args.seed)
    generator = LlamaCppGenerator(LlamaCppConfig(model_path=args.gguf, n_threads=args.threads))
    log(f"{dataset.root.name} {args.split}: {len(qids)} of {len(dataset.queries)} queries; generator "
        f"{generator.model_id} ({generator.prompt_format})")
    results = []
    for name in args.transforms.split(","):
        t0 = time.perf_counter()
        results.append(run_transform(project, name, generator, dataset, qids))
        results[-1]["wall_s"] = round(time.perf_counter() - t0, 1)
    base = next((r for r in results if r["transform"] == "none"), None)
    print(f"\n{'transform':<12} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'ΔnDCG (95% CI)':>26} "
          f"{'helped/hurt':>11} {'LLM p50/p99 ms':>15}")
    for r in results:
        delta = ""
        if base is not None and r is not base:
            deltas = [r["per_query"][q]["ndcg@10"] - base["per_query"][q]["ndcg@10"] for q in qids]
            lo, hi = paired_bootstrap(deltas, args.seed)
            r["vs_none"] = {"delta_ndcg@10": round(statistics.fmean(deltas), 5), "ci95": [round(lo, 5), round(hi, 5)],
                            "helped": sum(d > 1e-9 for d in deltas), "hurt": sum(d < -1e-9 for d in deltas)}
            v = r["vs_none"]
            delta = f"{v['delta_ndcg@10']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            r["helped_hurt"] = f"{v['helped']}/{v['hurt']}"
        m = r["metrics"]
        print(f"{r['transform']:<12} {m['ndcg@10']:>8.4f} {m['recall@100']:>7.4f} {m['mrr@10']:>7.4f} {delta:>26} "
              f"{r.get('helped_hurt', ''):>11} {r['transform_ms']['p50']:>7.0f}/{r['transform_ms']['p99']:<7.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {"machine": machine(), "dataset": dataset.root.name, "split": args.split, "queries": len(qids),
           "seed": args.seed, "generator": generator.model_id, "prompt_format": generator.prompt_format,
           "results": [{k: v for k, v in r.items() if k != "per_query"} for r in results]}
    args.out.write_text(json.dumps(out, indent=2))
    log(f"wrote {args.out}")
    generator.close()


if __name__ == "__main__":
    main()
