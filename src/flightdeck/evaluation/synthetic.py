"""Retrieval evaluation on a stored synthetic set (``flightdeck eval retrieval --synthetic [SET]``).

Each synthetic question is searched against the project's current index. Its source chunk's document is the
one relevant document (the qrels), so nDCG@10, recall@100 and MRR@10 come from the same
:func:`~flightdeck.evaluation.beir.evaluate_run` as BEIR; the chunk itself gives a stricter chunk-level
hit@k. The scores are reported for all questions and per kind (``qa``, ``paraphrase``: how much rewording
costs). A set sampled from another dataset version than the index's is still scored, with a warning, and
examples whose chunk is no longer indexed are counted as ``stale`` (they can only miss at chunk level).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.beir import _percentiles, evaluate_run
from flightdeck.workspace import CURRENT_INDEX
from flightdeck.workspace.index_versions import get_index_version
from flightdeck.workspace.schema import chunks

__all__ = ["SyntheticRetrievalReport", "evaluate_synthetic", "HIT_KS"]

HIT_KS = (1, 5, 10)


@dataclass
class SyntheticRetrievalReport:
    """The scores of one synthetic set against the current index."""

    set_id: str
    dataset_version: str  # the set's
    index_version: str
    index_dataset_version: str
    mode: str
    queries: int
    metrics: dict[str, float]  # document level (evaluate_run) plus chunk-level hit@k
    by_kind: dict[str, dict[str, Any]]
    stale: int
    latency_ms: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scores(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], ranks: dict[str, int | None],
            ids: list[str]) -> dict[str, Any]:
    """Document-level metrics and chunk hit@k over the queries ``ids``."""
    if not ids:
        return {"queries": 0}
    out: dict[str, Any] = {"queries": len(ids), **evaluate_run({q: qrels[q] for q in ids}, {q: run[q] for q in ids})}
    for k in HIT_KS:
        out[f"chunk_hit@{k}"] = round(sum(ranks[q] is not None and ranks[q] < k for q in ids) / len(ids), 5)
    return out


def evaluate_synthetic(project: Any, set_id: str | None = None, mode: str = "hybrid", depth: int = 100,
                       chunk_depth: int = 300) -> SyntheticRetrievalReport:
    """Search every question of synthetic set ``set_id`` (default: the current set) and score the rankings."""
    from flightdeck.data.synthetic_sets import resolve_set, set_examples

    ws = project.workspace
    full_id = resolve_set(ws, set_id)
    examples = set_examples(ws, full_id)
    if not examples:
        raise FlightdeckError(f"synthetic set {full_id[:12]} has no examples (every generated item was dropped; "
                              "`flightdeck data synthetic --json` lists why); nothing to evaluate")
    set_version = next((s.dataset_version for s in project.synthetic_sets() if s.id == full_id), "")
    with ws.engine.connect() as conn:
        present = {r[0] for r in conn.execute(select(chunks.c.id))}
    current_index = ws.get_state(CURRENT_INDEX)
    built = None if current_index is None else get_index_version(ws, current_index)
    index_dataset = "" if built is None else built.dataset_version
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    ranks: dict[str, int | None] = {}
    latencies: list[float] = []
    index_version = current_index or ""
    for ex in examples:
        qid = f"{ex.ordinal}"
        t0 = time.perf_counter()
        result = project.search(ex.question, k=chunk_depth, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        index_version = result.index_version or index_version
        hit_ids = [h.chunk_id for h in result.hits]
        ranks[qid] = hit_ids.index(ex.chunk_id) if ex.chunk_id in hit_ids else None
        docs: dict[str, float] = {}
        for rank, hit in enumerate(result.hits):
            if hit.document_id not in docs:
                # a strictly decreasing score keeps the fused order: pytrec_eval sorts by score
                docs[hit.document_id] = float(chunk_depth - rank)
            if len(docs) >= depth:
                break
        run[qid] = docs
        qrels[qid] = {ex.document_id: 1}
    all_ids = list(qrels)
    by_kind = {kind: _scores(qrels, run, ranks, [f"{e.ordinal}" for e in examples if e.kind == kind])
               for kind in ("qa", "paraphrase")}
    overall = _scores(qrels, run, ranks, all_ids)
    overall.pop("queries")
    warnings = []
    if set_version and index_dataset and set_version != index_dataset:
        warnings.append(f"set {full_id[:12]} was sampled from dataset version {set_version[:12]}, the index holds "
                        f"{index_dataset[:12]}; `flightdeck run` makes a set of the current version")
    stale = sum(e.chunk_id not in present for e in examples)
    if stale:
        warnings.append(f"{stale} example(s) point at chunks that are no longer in the workspace")
    return SyntheticRetrievalReport(full_id, set_version, index_version, index_dataset, mode, len(examples),
                                    overall, by_kind, stale, _percentiles(latencies), warnings,
                                    {"depth": depth, "chunk_depth": chunk_depth, "relevance": "source document"})
