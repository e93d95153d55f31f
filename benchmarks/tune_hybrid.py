"""Tune flightdeck's hybrid search settings on a BEIR split, offline, over one built index.

The index is the one `flightdeck eval retrieval` builds and reuses (``--workspace``, by default
``.flightdeck-eval/<dataset>`` like the CLI); it is built first if it is missing. Each judged query is then
searched twice through the public API, ``project.search(q, k=DEPTH, mode="vector")`` and
``mode="keyword"``, and the two ranked chunk lists (with scores) are cached. Every configuration of the
grid is fused offline from that cache with flightdeck's own fusion functions
(``flightdeck.retrieval.search.reciprocal_rank_fusion`` and, where the spec has ``fusion: weighted``,
``weighted_score_fusion``), chunks become documents (best chunk per document, the first ``--depth`` = 100),
and flightdeck's ``evaluate_run`` (pytrec_eval) scores nDCG@10, recall@100 and MRR@10.

``candidates`` = c means each retriever contributes its top c chunks, as in a served query with k <= c
(the searcher takes max(candidates, k) from each). ``evaluate_project`` asks for k=300 chunks, so under
the eval API every c up to 300 behaves as 300: the row "eval API" reproduces that, and a check on the
first ``--verify-queries`` queries compares the offline fusion with ``project.search(k=300,
mode="hybrid")`` chunk for chunk.

The grid (under the spec's ``retrieval.search``): mode hybrid with fusion rrf, rrf_k in {10, 30, 60, 100},
keyword_weight : vector_weight in {0.5, 0.75, 1, 1.5, 2} : 1, candidates in {50, 100, 200}; fusion
weighted (min-max normalised scores) with the ratios {0.25, 0.5, 0.75, 1, 1.5, 2, 4} : 1 and the same
candidates, when ``SearchSettings`` has a ``fusion`` field; and vector-only and keyword-only. The best
configuration by nDCG@10 is named, and the recommended one is the simplest (fewest settings away from the
defaults) within ``--tolerance`` (0.002) of it, so as not to fit the noise of one split. Each query set is
also split in two halves (even/odd positions) to show how stable a gain is.

    python benchmarks/tune_hybrid.py                                   # SciFact train split, the CLI's workspace
    python benchmarks/tune_hybrid.py --workspace benchmarks/results/flightdeck-eval-scifact
    python benchmarks/tune_hybrid.py --limit-queries 100 --verify-queries 10

Tune and report on a training split only; keep the test split held out.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import hashlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, get_args  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import SCIFACT_DIR, log, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "tune_hybrid.json"
RRF_KS = (10, 30, 60, 100)
RRF_RATIOS = (0.5, 0.75, 1.0, 1.5, 2.0)
WEIGHTED_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)
CANDIDATES = (50, 100, 200)
EVAL_API_CHUNKS = 300  # evaluate_project's chunk_depth: what `flightdeck eval retrieval` searches


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def source_state() -> dict[str, Any]:
    """Which flightdeck code ran: the module's folder, and the checkout's commit and uncommitted files."""
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


# --------------------------------------------------------------------------------------------- the index
def open_dataset(args: argparse.Namespace) -> Any:
    from flightdeck.evaluation.beir import BeirDataset, load_beir  # noqa: PLC0415

    dataset = load_beir(args.beir, args.split)
    if args.limit_queries:
        qids = list(dataset.queries)[:args.limit_queries]
        dataset = BeirDataset(dataset.root, dataset.split, {q: dataset.queries[q] for q in qids},
                              {q: dataset.qrels[q] for q in qids})
    return dataset


def open_project(args: argparse.Namespace, dataset: Any) -> Any:
    """The eval workspace's project (as `flightdeck eval retrieval` sets it up), built if needed."""
    from flightdeck.evaluation.beir import beir_spec  # noqa: PLC0415
    from flightdeck.project import Project  # noqa: PLC0415

    folder = (args.workspace or Path(".flightdeck-eval") / dataset.root.resolve().name).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "flightdeck.yaml"
    spec_text = beir_spec(dataset)
    if not spec_path.is_file() or spec_path.read_text() != spec_text:
        spec_path.write_text(spec_text)
    project = Project.load(spec_path)
    t = time.perf_counter()
    summary = project.run()
    built = {s.step: s.status for s in summary.steps}
    log(f"index in {folder}: {built} ({time.perf_counter() - t:.1f}s)")
    if summary.status != "succeeded":
        raise SystemExit(f"{spec_path}: run {summary.status}: {built}")
    return project


def keyword_indexes(search_settings: Any) -> list[str]:
    """The keyword indexes ``retrieval.search.keyword_index`` offers; FTS5 alone where it has no such field."""
    field = search_settings.model_fields.get("keyword_index")
    # postgres needs a server (keyword_url): benchmarks/keyword_postgres.py compares it with bm25
    return [o for o in get_args(field.annotation) if o != "postgres"] if field is not None else ["fts5"]


def searcher_for(project: Any, settings: Any) -> Any:
    """A searcher over ``project``'s index with other ``retrieval.search`` settings (its keyword index and fusion
    built from them, as the project builds its own)."""
    from flightdeck.retrieval.fusion import fusion_for  # noqa: PLC0415
    from flightdeck.retrieval.keyword import keyword_index_for  # noqa: PLC0415
    from flightdeck.retrieval.search import HybridSearcher  # noqa: PLC0415

    return HybridSearcher(project.workspace, project.embedder, project.store_factory(), settings,
                          keyword_index_for(settings, project.workspace, str(project.spec_path)),
                          fusion_for(settings))


def fetch_rankings(project: Any, dataset: Any, depth: int, cache: Path | None) -> dict[str, Any]:
    """Per query: the top ``depth`` chunks of each retriever, ``[chunk_id, document_id, score]``, best first.

    The keyword retriever is fetched once per keyword index the spec offers (``keyword:fts5``,
    ``keyword:bm25``), each through a searcher configured for it.
    """
    from flightdeck.spec.models import SearchSettings  # noqa: PLC0415

    version = project.searcher.index_version()
    options = keyword_indexes(SearchSettings)
    key = hashlib.sha256(json.dumps([version, depth, options, sorted(dataset.queries.items())]).encode()
                         ).hexdigest()[:16]
    if cache and cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            log(f"rankings from the cache {cache}")
            return data
    base = project.spec.retrieval.search
    searchers = {"vector": project.searcher}
    for option in options:
        searchers[f"keyword:{option}"] = (
            searcher_for(project, SearchSettings(**{**base.model_dump(), "keyword_index": option}))
            if "keyword_index" in SearchSettings.model_fields else project.searcher)
    project.search("warm-up query: cell biology", mode="hybrid")
    rankings: dict[str, dict[str, list[list[Any]]]] = {name: {} for name in searchers}
    t0 = time.perf_counter()
    loads = [os.getloadavg()[0]]
    for n, (qid, text) in enumerate(dataset.queries.items(), 1):
        for name, searcher in searchers.items():
            result = searcher.search(text, k=depth, mode=name.split(":")[0])
            rankings[name][qid] = [[h.chunk_id, h.document_id.rsplit("#", 1)[-1], h.score] for h in result.hits]
        if n % 100 == 0:
            loads.append(os.getloadavg()[0])
            log(f"fetched {n}/{len(dataset.queries)} queries, load {loads[-1]:.2f}")
    fetch_s = round(time.perf_counter() - t0, 1)
    if len(options) > 1:  # a searcher falls back to FTS5 where the index version has no BM25 index: drop twins
        first = rankings[f"keyword:{options[0]}"]
        for option in options[1:]:
            if rankings[f"keyword:{option}"] == first:
                log(f"warning: keyword_index {option} ranked exactly as {options[0]} (no {option} index in this "
                    "index version?); left out")
                del rankings[f"keyword:{option}"]
    data = {"key": key, "index_version": version, "depth": depth, "queries": list(dataset.queries),
            "default_keyword_index": getattr(base, "keyword_index", "fts5"),
            "keyword_indexes": [n.split(":", 1)[1] for n in rankings if n.startswith("keyword:")],
            "rankings": rankings, "fetch_s": fetch_s, "fetch_loadavg1": loads}
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(data))
    return data


# ------------------------------------------------------------------------------------------------ fusion
def documents(chunks: list[tuple[str, float]], doc_of: dict[str, str], depth: int) -> dict[str, float]:
    """Best chunk per document, the first ``depth`` documents, scored by rank (as evaluate_project does)."""
    out: dict[str, float] = {}
    for cid, _ in chunks:
        doc = doc_of[cid]
        if doc not in out:
            out[doc] = float(depth - len(out))
            if len(out) >= depth:
                break
    return out


def fuse(config: dict[str, Any], ranked: dict[str, list[list[Any]]]) -> list[tuple[str, float]]:
    """One query's fused chunk list under ``config``, with flightdeck's own fusion functions."""
    from flightdeck.retrieval import search as fd_search  # noqa: PLC0415

    mode, c = config["mode"], config["candidates"]
    lists = {"vector": ranked["vector"], "keyword": ranked.get(f"keyword:{config.get('keyword_index')}", [])}
    if mode != "hybrid":
        return [(cid, score) for cid, _, score in lists[mode][:c]]
    weights = {"keyword": config["keyword_weight"], "vector": config["vector_weight"]}
    if config.get("fusion", "rrf") == "weighted":
        return fd_search.weighted_score_fusion(
            {n: [(cid, score) for cid, _, score in hits[:c]] for n, hits in lists.items()}, weights)
    return fd_search.reciprocal_rank_fusion({n: [cid for cid, _, _ in hits[:c]] for n, hits in lists.items()},
                                            weights, config["rrf_k"])


def grid(has_fusion: bool, indexes: list[str], default_index: str) -> list[dict[str, Any]]:
    """The configurations; the first is the eval API's own (300 chunks per retriever, the spec's defaults)."""
    configs = [{"mode": "hybrid", "k": 10, "keyword_index": default_index, "label": "eval API (300 chunks per "
                "retriever)", "candidates": EVAL_API_CHUNKS, "rrf_k": 60, "keyword_weight": 1.0, "vector_weight": 1.0}]
    for index in indexes:
        base = {"mode": "hybrid", "k": 10, "keyword_index": index}
        for rrf_k, ratio, c in itertools.product(RRF_KS, RRF_RATIOS, CANDIDATES):
            configs.append({**base, "candidates": c, "rrf_k": rrf_k, "keyword_weight": ratio, "vector_weight": 1.0})
        if has_fusion:
            for ratio, c in itertools.product(WEIGHTED_RATIOS, CANDIDATES):
                configs.append({**base, "fusion": "weighted", "candidates": c, "keyword_weight": ratio,
                                "vector_weight": 1.0})
        for c in (100, EVAL_API_CHUNKS):
            configs.append({"mode": "keyword", "k": 10, "keyword_index": index, "candidates": c})
    if has_fusion:
        for row in configs:
            if row["mode"] == "hybrid":
                row.setdefault("fusion", "rrf")
    for c in (100, EVAL_API_CHUNKS):
        configs.append({"mode": "vector", "k": 10, "candidates": c})
    return configs


def distance_from_default(config: dict[str, Any], default: dict[str, Any]) -> int:
    """How many settings differ from the defaults: the measure of "simple" when picking among near-ties."""
    keys = ("keyword_index", "fusion", "candidates", "keyword_weight", "vector_weight")
    n = sum(1 for key in keys if key in config and config[key] != default.get(key))
    if config.get("fusion", "rrf") == "rrf" and config.get("rrf_k") != default.get("rrf_k"):
        n += 1
    return n


def settings_of(config: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k in fields}


def describe(c: dict[str, Any], show_index: bool) -> str:
    index = f" ({c['keyword_index']})" if show_index and "keyword_index" in c else ""
    if c["mode"] != "hybrid":
        return f"{c['mode']} only{index if c['mode'] == 'keyword' else ''}, {c['candidates']} chunks"
    ratio = c["keyword_weight"] / c["vector_weight"] if c["vector_weight"] else float("inf")
    if c.get("fusion", "rrf") == "weighted":
        return f"weighted{index}, keyword:vector {ratio:g}:1, candidates {c['candidates']}"
    return f"rrf k={c['rrf_k']}{index}, keyword:vector {ratio:g}:1, candidates {c['candidates']}"


# ------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--beir", type=Path, default=SCIFACT_DIR, help="a BEIR folder (default: ../shared/data/scifact)")
    p.add_argument("--split", default="train", help="the qrels split to tune on (default train; never test)")
    p.add_argument("--workspace", type=Path, default=None,
                   help="the eval workspace (default: ./.flightdeck-eval/<dataset>, as flightdeck eval retrieval)")
    p.add_argument("--limit-queries", type=int, default=None, help="only the first N judged queries")
    p.add_argument("--depth", type=int, default=100, help="documents per query in the scored run (recall@100)")
    p.add_argument("--verify-queries", type=int, default=25,
                   help="compare the offline fusion with project.search on this many queries (0: skip)")
    p.add_argument("--tolerance", type=float, default=0.002, help="nDCG@10 within which a simpler setting wins")
    p.add_argument("--cache", type=Path, default=None,
                   help="cache of the per-retriever rankings (default: --out with _rankings.json)")
    p.add_argument("--from-cache", action="store_true",
                   help="fuse from the rankings cache alone (no index opened, no check against project.search)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--md", type=Path, default=None, help="Markdown section (default: --out with .md)")
    args = p.parse_args(argv)
    if args.split == "test":
        log("warning: tuning on the test split makes its figures worthless as a held-out check")

    from flightdeck.evaluation.beir import evaluate_project, evaluate_run  # noqa: PLC0415
    from flightdeck.spec.models import SearchSettings  # noqa: PLC0415

    m = machine()
    started = _dt.datetime.now(_dt.UTC)
    t_all = time.perf_counter()
    fields = set(SearchSettings.model_fields)
    has_fusion = "fusion" in fields
    default = SearchSettings().model_dump()
    dataset = open_dataset(args)
    fetch_depth = max(EVAL_API_CHUNKS, *CANDIDATES)
    cache = args.cache or args.out.with_name(args.out.stem + "_rankings.json")
    project = None
    if args.from_cache:  # fuse from the cached rankings alone: no index, no check against project.search
        if not cache.is_file():
            raise SystemExit(f"{cache}: no rankings cache; run once without --from-cache (or pass --cache)")
        data = json.loads(cache.read_text())
        if data.get("queries") != list(dataset.queries) or data.get("depth", 0) < fetch_depth:
            raise SystemExit(f"{cache}: made for other queries or a smaller depth; run without --from-cache")
        log(f"rankings from {cache} (index {data['index_version'][:12]}), no project opened")
    else:
        project = open_project(args, dataset)
        data = fetch_rankings(project, dataset, fetch_depth, cache)
    rankings = data["rankings"]
    if "keyword" in rankings:  # a cache from before keyword indexes were told apart: FTS5
        rankings["keyword:fts5"] = rankings.pop("keyword")
    indexes = [n.split(":", 1)[1] for n in rankings if n.startswith("keyword:")]
    default_index = data.get("default_keyword_index", "fts5")
    default.setdefault("keyword_index", "fts5")
    ref_index = default["keyword_index"] if default["keyword_index"] in indexes else default_index
    doc_of = {cid: doc for mode in rankings.values() for hits in mode.values() for cid, doc, _ in hits}
    qids = list(dataset.queries)
    halves = {"even": {q: dataset.qrels[q] for q in qids[0::2]}, "odd": {q: dataset.qrels[q] for q in qids[1::2]}}

    # the offline fusion must be the searcher's own: compare on the first queries, chunk for chunk
    verify: dict[str, Any] = {"queries": 0, "identical": 0}
    if args.verify_queries and project is not None:
        checks: list[tuple[dict[str, Any], Any, int]] = [
            (grid(has_fusion, indexes, default_index)[0], project.searcher, EVAL_API_CHUNKS)]
        if has_fusion:  # the weighted fusion through a searcher configured for it, k = candidates = 100
            wcfg = {"mode": "hybrid", "k": 10, "fusion": "weighted", "candidates": 100, "keyword_weight": 1.0,
                    "vector_weight": 1.0, "keyword_index": default_index}
            checks.append((wcfg, searcher_for(project, SearchSettings(**settings_of(wcfg, fields))), 100))
        for cfg, searcher, k in checks:
            name = cfg.get("fusion", "rrf")
            verify[name] = {"queries": 0, "identical": 0, "same_top10": 0, "first_difference_at": []}
            for qid in qids[:args.verify_queries]:
                live = [h.chunk_id for h in searcher.search(dataset.queries[qid], k=k, mode="hybrid").hits]
                offline = [cid for cid, _ in fuse(cfg, {n: rankings[n][qid] for n in rankings})][:k]
                verify[name]["queries"] += 1
                verify[name]["identical"] += live == offline
                verify[name]["same_top10"] += live[:10] == offline[:10]
                if live != offline:
                    pairs = enumerate(zip(live, offline, strict=False))
                    verify[name]["first_difference_at"].append(
                        next((i for i, (a, b) in pairs if a != b), min(len(live), len(offline))))
            verify["queries"] += verify[name]["queries"]
            verify["identical"] += verify[name]["identical"]
            log(f"verify {name}: offline fusion = project.search on {verify[name]['identical']}/"
                f"{verify[name]['queries']} queries (top 10: {verify[name]['same_top10']})")
        # SearchHit rounds scores to 6 decimals, so the cached scores can reorder near-ties deep in a weighted
        # list; a different top 10 would mean the offline fusion is not the searcher's
        if any(v["same_top10"] != v["queries"] for k_, v in verify.items() if isinstance(v, dict)):
            log("warning: the offline fusion differs from project.search in the top 10; the grid's figures are "
                "not the searcher's")

    rows = []
    t = time.perf_counter()
    for config in grid(has_fusion, indexes, default_index):
        settings = settings_of(config, fields)
        SearchSettings(**settings)  # every row is a valid retrieval.search setting
        run = {q: documents(fuse(config, {n: rankings[n][q] for n in rankings}), doc_of, args.depth) for q in qids}
        row = {"label": config.get("label") or describe(config, len(indexes) > 1), "settings": settings,
               "keyword_index": config.get("keyword_index"),
               "metrics": evaluate_run(dataset.qrels, run),
               "halves_ndcg@10": {h: evaluate_run(qr, {q: run[q] for q in qr})["ndcg@10"] for h, qr in halves.items()},
               "distance_from_default": distance_from_default(config, default)}
        rows.append(row)
    log(f"{len(rows)} configurations scored in {time.perf_counter() - t:.1f}s")

    # the eval API's own figures for the reference row (one more pass through evaluate_project)
    eval_api = None
    if project is not None:
        t = time.perf_counter()
        report = evaluate_project(project, dataset, mode="hybrid", depth=args.depth)
        eval_api = {"metrics": report.metrics, "latency_ms": report.latency_ms,
                    "s": round(time.perf_counter() - t, 1)}
        if report.metrics != rows[0]["metrics"]:
            log(f"warning: evaluate_project scored {report.metrics}, the offline eval-API row {rows[0]['metrics']}")
        project.workspace.close()

    hybrid = [r for r in rows if r["settings"]["mode"] == "hybrid"]
    best = max(hybrid, key=lambda r: r["metrics"]["ndcg@10"])
    near = [r for r in hybrid if r["metrics"]["ndcg@10"] >= best["metrics"]["ndcg@10"] - args.tolerance]
    chosen = min(near, key=lambda r: (r["distance_from_default"], -r["metrics"]["ndcg@10"]))
    singles = {mode: max((r for r in rows if r["settings"]["mode"] == mode), key=lambda r: r["metrics"]["ndcg@10"])
               for mode in ("vector", "keyword")}
    default_row = next(r for r in hybrid[1:] if r["settings"].get("candidates") == default["candidates"]
                       and r["keyword_index"] == ref_index
                       and r["settings"].get("rrf_k") == default["rrf_k"]
                       and r["settings"].get("keyword_weight") == default["keyword_weight"]
                       and r["settings"].get("fusion", "rrf") == "rrf")
    beats = {mode: {m_: round(chosen["metrics"][m_] - s["metrics"][m_], 5) for m_ in chosen["metrics"]}
             for mode, s in singles.items()}
    out = {"benchmark": "tune_hybrid", "started": started.isoformat(timespec="seconds"),
           "wall_s": round(time.perf_counter() - t_all, 1),
           "command": "python benchmarks/tune_hybrid.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
           "machine": m, "source": source_state(), "loadavg_end": loadavg(), "dataset": str(dataset.root),
           "split": dataset.split, "queries": len(qids), "index_version": data["index_version"],
           "fetch": {"depth": data["depth"], "s": data.get("fetch_s"), "loadavg1": data.get("fetch_loadavg1")},
           "search_settings_fields": sorted(fields), "has_fusion_field": has_fusion, "verify": verify,
           "keyword_indexes": indexes, "spec_keyword_index_at_fetch": default_index,
           "eval_api": eval_api, "default_settings": default, "best": best, "chosen": chosen,
           "default_row": default_row, "single_retrievers": singles, "chosen_minus_single": beats,
           "tolerance": args.tolerance, "out": str(args.out), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    md = markdown(out)
    md_path = args.md or args.out.with_suffix(".md")
    md_path.write_text(md)
    print(md)
    log(f"wrote {args.out} and {md_path} ({out['wall_s']:.0f}s)")
    return 0


def display_path(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def markdown(out: dict[str, Any]) -> str:
    rows = sorted(out["rows"], key=lambda r: -r["metrics"]["ndcg@10"])
    m, src = out["machine"], out["source"]
    best, chosen, default_row = out["best"], out["chosen"], out["default_row"]

    def line(r: dict[str, Any], mark: str = "") -> str:
        mt, h = r["metrics"], r["halves_ndcg@10"]
        return (f"| {r['label']}{mark} | {mt['ndcg@10']:.4f} | {mt['recall@100']:.4f} | {mt['mrr@10']:.4f} | "
                f"{h['even']:.4f} / {h['odd']:.4f} |")

    def mark(r: dict[str, Any]) -> str:
        tags = [t for t, x in (("best", best), ("chosen", chosen), ("default", default_row)) if r is x
                or r["settings"] == x["settings"]]
        return f" **({', '.join(tags)})**" if tags else ""

    fusion_note = ("`fusion: weighted` (min-max normalised scores) is in the grid." if out["has_fusion_field"] else
                   "`SearchSettings` had no `fusion` field when this ran, so only RRF is in the grid.")
    idx = out["keyword_indexes"]
    fusion_note += (f" Keyword retrievers: {' and '.join(idx)} (`keyword_index`), each in the grid." if len(idx) > 1
                    else f" The keyword retriever is {'SQLite FTS5' if idx == ['fts5'] else idx[0]}.")
    fetch = out["fetch"]
    loads = fetch.get("loadavg1") or []
    lines = [
        f"## Tuning hybrid search on SciFact, {out['split']} split (issue #4)",
        "",
        "Command, from the repository root (the index of `flightdeck eval retrieval`, built once and reused):",
        "",
        "```",
        out["command"],
        "```",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores), torch {m['torch']}. "
        + (f"flightdeck at commit {src['snapshot_commit'][:7]} (a snapshot of `src/`). " if "snapshot_commit" in src
           else f"flightdeck from the checkout at {src['checkout_commit'][:7]} with {src['checkout_dirty_files']} "
           "uncommitted files. ")
        + f"{out['queries']} judged queries of the "
        f"{out['split']} split; the test split stays held out. Each retriever's top {fetch['depth']} chunks per "
        f"query were fetched once through `project.search` ({fetch['s']} s"
        + (f", load average {statistics.median(loads):.1f}" if loads else "") + "); the "
        f"{len(out['rows'])} configurations were fused offline with flightdeck's own fusion functions. "
        f"{fusion_note} `candidates` is each retriever's depth before fusion, as in a served query with "
        "k ≤ candidates; the eval API searches 300 chunks, so its row uses 300. "
        + ("The offline fusion was checked against `project.search` on the first queries: " + "; ".join(
            f"{n}: {v['identical']}/{v['queries']} identical chunk lists, {v['same_top10']}/{v['queries']} identical "
            "top 10" for n, v in out["verify"].items() if isinstance(v, dict)) + " (the cached scores are "
           "rounded to 6 decimals, as SearchHit gives them, which can swap near-ties deep in a weighted list). "
           if out["verify"]["queries"] else "")
        + (f"`evaluate_project` (the eval API) scored nDCG@10 {out['eval_api']['metrics']['ndcg@10']:.4f} in the "
           "same run, as the eval-API row does." if out.get("eval_api") else ""),
        "",
        "Top 15 by nDCG@10, then the reference rows (halves: the queries at even / odd positions):",
        "",
        "| configuration | nDCG@10 | recall@100 | MRR@10 | nDCG@10 halves |",
        "|---|---|---|---|---|",
    ]
    shown = rows[:15]
    lines += [line(r, mark(r)) for r in shown]
    refs = [default_row, out["rows"][0], *(r for r in out["rows"] if r["settings"]["mode"] != "hybrid"
                                           and r["settings"]["candidates"] == 100)]
    for r in refs:
        if not any(r["settings"] == s["settings"] for s in shown):
            lines.append(line(r, mark(r)))
    families: dict[tuple[str, str], dict[str, Any]] = {}
    for r in out["rows"]:
        if r["settings"]["mode"] == "hybrid" and not r["label"].startswith("eval API"):
            fam = (r["settings"].get("fusion", "rrf"), r.get("keyword_index") or "fts5")
            if fam not in families or r["metrics"]["ndcg@10"] > families[fam]["metrics"]["ndcg@10"]:
                families[fam] = r
    if len(families) > 1:
        lines += ["", "The best row of each fusion and keyword index:", "",
                  "| fusion | keyword index | best configuration | nDCG@10 | recall@100 | MRR@10 |",
                  "|---|---|---|---|---|---|"]
        for (fusion, index), r in sorted(families.items(), key=lambda kv: -kv[1]["metrics"]["ndcg@10"]):
            mt = r["metrics"]
            lines.append(f"| {fusion} | {index} | {r['label']} | {mt['ndcg@10']:.4f} | {mt['recall@100']:.4f} | "
                         f"{mt['mrr@10']:.4f} |")
    gain = chosen["metrics"]["ndcg@10"] - default_row["metrics"]["ndcg@10"]
    cs = {k: v for k, v in chosen["settings"].items() if k != "k"}
    beats = out["chosen_minus_single"]
    wins = [mode for mode in ("vector", "keyword") if beats[mode]["ndcg@10"] > 0]
    verdict = ("It beats both parts" if len(wins) == 2 else
               f"It does not beat {' or '.join(m_ for m_ in ('vector', 'keyword') if m_ not in wins)}-only search")
    bs = best["settings"]
    edges = []
    if bs.get("fusion", "rrf") == "rrf" and bs.get("rrf_k") in (min(RRF_KS), max(RRF_KS)):
        edges.append(f"rrf_k {bs['rrf_k']}")
    ratio_grid = WEIGHTED_RATIOS if bs.get("fusion") == "weighted" else RRF_RATIOS
    if bs["keyword_weight"] in (min(ratio_grid), max(ratio_grid)):
        edges.append(f"keyword:vector {bs['keyword_weight']:g}:1")
    if bs["candidates"] in (min(CANDIDATES), max(CANDIDATES), EVAL_API_CHUNKS):
        edges.append(f"candidates {bs['candidates']}")
    lines += [
        "",
        f"- **Best by nDCG@10:** {best['label']} ({best['metrics']['ndcg@10']:.4f}).",
        f"- **Chosen** (the simplest within {out['tolerance']} of the best): {chosen['label']} "
        f"({chosen['metrics']['ndcg@10']:.4f}; {gain:+.4f} over the default "
        f"{default_row['metrics']['ndcg@10']:.4f}). As a spec: `retrieval: {{search: {json.dumps(cs)}}}`.",
        f"- {verdict}: nDCG@10 {beats['vector']['ndcg@10']:+.4f} against the best vector-only row and "
        f"{beats['keyword']['ndcg@10']:+.4f} against the best keyword-only row; recall@100 "
        f"{beats['vector']['recall@100']:+.4f} / {beats['keyword']['recall@100']:+.4f}.",
        f"- On each half of the queries the chosen setting scores {chosen['halves_ndcg@10']['even']:.4f} / "
        f"{chosen['halves_ndcg@10']['odd']:.4f} against the default's "
        f"{default_row['halves_ndcg@10']['even']:.4f} / {default_row['halves_ndcg@10']['odd']:.4f}.",
        "",
        f"The full table ({len(out['rows'])} rows) is in `{display_path(out['out'])}`.",
    ]
    if edges:
        lines.insert(-2, f"- The best row sits at the edge of the grid ({', '.join(edges)}): a wider grid might "
                     "find more, on this split.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
