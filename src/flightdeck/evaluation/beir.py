"""Retrieval evaluation on a BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

The corpus is indexed by the ordinary pipeline (cached in a workspace, so a second evaluation reuses it);
every query is searched, chunk hits are mapped to document ids (best chunk per document), and nDCG@10,
recall@100 and MRR@10 are computed with pytrec_eval (the trec_eval implementation), next to latency
percentiles of the search itself.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import

__all__ = ["BeirDataset", "RetrievalReport", "load_beir", "evaluate_run", "evaluate_project", "beir_spec",
           "trec_eval"]


@dataclass(frozen=True)
class BeirDataset:
    root: Path
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def corpus(self) -> Path:
        return self.root / "corpus.jsonl"


def load_beir(root: str | Path, split: str = "test") -> BeirDataset:
    """Read queries and the qrels of ``split``; only queries that have judgements are kept."""
    root = Path(root)
    qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.is_file():
            available = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
            hint = f" (splits here: {', '.join(available)})" if available and needed == qrels_path else ""
            raise FlightdeckError(f"{needed}: not found; a BEIR folder holds corpus.jsonl, queries.jsonl and "
                                  f"qrels/<split>.tsv{hint}")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for n, row in enumerate(reader, 1):
            if n == 1 and row and row[0] == "query-id":
                continue
            if len(row) < 3:
                raise FlightdeckError(f"{qrels_path}:{n}: expected query-id, corpus-id, score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries: dict[str, str] = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    q = json.loads(line)
                    if str(q["_id"]) in qrels:
                        queries[str(q["_id"])] = q["text"]
                except (ValueError, KeyError) as exc:
                    raise FlightdeckError(f"{root / 'queries.jsonl'}:{n}: {exc}") from exc
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise FlightdeckError(f"{qrels_path}: {len(missing)} judged queries are not in queries.jsonl "
                              f"(first: {missing[0]})")
    return BeirDataset(root, split, queries, qrels)


def beir_spec(dataset: BeirDataset, settings: dict[str, Any] | None = None) -> str:
    """A spec (YAML text) that indexes the BEIR corpus with the embedded stack, plus ``settings`` overrides."""
    settings = settings or {}
    spec: dict[str, Any] = {
        "project": f"beir-{dataset.root.name}",
        "data": {"sources": [{"provider": "files", "path": str(dataset.corpus.resolve()), "name": "corpus"}],
                 "chunking": settings.get("chunking", {"provider": "recursive", "size": 256, "overlap": 32})},
        "retrieval": {"search": settings.get("search", {"mode": "hybrid", "k": 10, "candidates": 100})},
    }
    for key in ("embedding_model", "vector_database", "system"):
        if key in settings:
            spec["retrieval"][key] = settings[key]
    return json.dumps(spec, indent=2)  # JSON is YAML


def _document_id(hit: Any) -> str:
    # document ids of records are "<source>/<file>#<record id>"
    return hit.document_id.rsplit("#", 1)[-1]


@dataclass
class RetrievalReport:
    dataset: str
    split: str
    mode: str
    queries: int
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    query_embedding_ms: dict[str, float]
    index_version: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"p50": round(statistics.median(ordered), 3), "p90": round(pct(90), 3), "p99": round(pct(99), 3),
            "mean": round(statistics.fmean(ordered), 3)}


def trec_eval() -> Any:
    """The ``pytrec_eval`` module, or :class:`MissingDependencyError` naming the ``eval`` extra.

    Callers that index or search before scoring call it first: a missing extra is said before minutes of work.
    """
    return optional_import("pytrec_eval", "eval", "retrieval evaluation")


def evaluate_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, recall@100 and MRR@10 (means over the judged queries) with pytrec_eval."""
    pytrec_eval = trec_eval()
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)
    # a query with no retrieved document scores 0 (pytrec_eval leaves it out)
    return {
        "ndcg@10": round(sum(full.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / n, 5),
        "recall@100": round(sum(full.get(q, {}).get("recall_100", 0.0) for q in qrels) / n, 5),
        "mrr@10": round(sum(mrr.get(q, {}).get("recip_rank", 0.0) for q in qrels) / n, 5),
    }


def evaluate_project(project: Any, dataset: BeirDataset, mode: str = "hybrid", depth: int = 100,
                     chunk_depth: int = 300) -> RetrievalReport:
    """Search every judged query and score the document ranking (best chunk per document)."""
    trec_eval()
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    embed_ms: list[float] = []
    index_version = ""
    for qid, text in dataset.queries.items():
        t0 = time.perf_counter()
        result = project.search(text, k=chunk_depth, mode=mode)
        elapsed = (time.perf_counter() - t0) * 1000
        embed = result.timings_ms.get("embed_query", 0.0)
        embed_ms.append(embed)
        latencies.append(elapsed - embed)
        index_version = result.index_version
        docs: dict[str, float] = {}
        for rank, hit in enumerate(result.hits):
            doc = _document_id(hit)
            if doc not in docs:
                # a strictly decreasing score keeps the fused order: pytrec_eval sorts by score
                docs[doc] = float(chunk_depth - rank)
            if len(docs) >= depth:
                break
        run[qid] = docs
    return RetrievalReport(dataset.root.name, dataset.split, mode, len(dataset.queries),
                           evaluate_run(dataset.qrels, run), _percentiles(latencies), _percentiles(embed_ms),
                           index_version, {"depth": depth, "chunk_depth": chunk_depth})
