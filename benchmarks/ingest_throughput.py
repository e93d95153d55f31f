"""Ingest throughput: ``flightdeck run`` against the raw sentence-transformers model, in the same process.

For each corpus (the 50-page demo corpus, BEIR SciFact) this script

1. writes a temporary spec with a fresh workspace and runs ``Project.load(spec).run()``, recording the
   seconds and counts of each step (ingest, embed, index);
2. with the same, already-loaded model, times ``model.encode(texts, batch_size=64,
   normalize_embeddings=True)`` on exactly the chunk texts flightdeck embedded, ``--repeats`` times, and
   reports the median (the peer: what the model alone does with no pipeline around it);
3. runs ``project.run()`` again with nothing changed (every step should be skipped).

It prints a Markdown table and the machine, and writes the figures as JSON (``--out``). Rules: see
benchmarks/README.md — medians and ratios, the peer measured in the same run, never as unit tests.

    python benchmarks/ingest_throughput.py                      # both corpora (what `make bench` runs)
    python benchmarks/ingest_throughput.py --corpus demo --repeats 3
    python benchmarks/ingest_throughput.py --corpus scifact --limit 1000 --repeats 1
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ruamel.yaml import YAML  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = ROOT / "examples" / "python-docs" / "flightdeck.yaml"
DEMO_CORPUS = ROOT / "examples" / "python-docs" / "corpus"
SCIFACT_DIR = ROOT.parent / "shared" / "data" / "scifact"  # ../shared beside the checkout
SCIFACT_CORPUS = Path(os.environ.get("FLIGHTDECK_SCIFACT", SCIFACT_DIR / "corpus.jsonl"))
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ingest_throughput.json"
RAW_BATCH_SIZE = 64  # the default batch_size of SentenceTransformersConfig: the same as flightdeck's


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- specs
def demo_spec(tmp: Path) -> Path:
    spec = YAML(typ="safe").load(DEMO_SPEC.read_text())
    for source in spec["data"]["sources"]:
        if source.get("provider") == "files":
            source["path"] = str(DEMO_CORPUS.resolve())
    return _write_spec(tmp, spec)


def scifact_spec(tmp: Path, limit: int | None) -> Path:
    if not SCIFACT_CORPUS.is_file():
        raise SystemExit(f"{SCIFACT_CORPUS}: not found; set FLIGHTDECK_SCIFACT to BEIR SciFact's corpus.jsonl")
    corpus = SCIFACT_CORPUS.resolve()
    if limit is not None:
        corpus = tmp / "corpus.jsonl"
        with SCIFACT_CORPUS.open("rb") as src, corpus.open("wb") as dst:
            for n, line in enumerate(src):
                if n >= limit:
                    break
                dst.write(line)
    spec = YAML(typ="safe").load(DEMO_SPEC.read_text())  # same pipeline as the demo: only the source differs
    spec["project"] = "scifact-throughput"
    spec["data"]["sources"] = [{"provider": "files", "path": str(corpus)}]
    spec["data"]["chunking"] = {"provider": "recursive", "size": 256, "overlap": 32}
    return _write_spec(tmp, spec)


def _write_spec(tmp: Path, spec: dict[str, Any]) -> Path:
    folder = tmp / "spec"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flightdeck.yaml"
    path.write_text(json.dumps(spec, indent=2))  # JSON is YAML
    return path


# ---------------------------------------------------------------------------------------- measurement
def embedded_texts(db: Path) -> list[str]:
    """The texts the embed step encoded: one ``indexed_text`` per distinct text hash (it deduplicates)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        texts: dict[str, str] = {}
        for text_hash, text in con.execute("SELECT text_hash, indexed_text FROM chunks"):
            texts.setdefault(text_hash, text)
    finally:
        con.close()
    return list(texts.values())


def step_map(summary: Any) -> dict[str, Any]:
    return {s.step: s for s in summary.steps}


def bench_corpus(name: str, spec_path: Path, repeats: int) -> dict[str, Any]:
    from flightdeck import Project  # noqa: PLC0415 - after the environment is set

    project = Project.load(spec_path)
    embedder = project.embedder

    # Time the model load separately: the embed step loads the model on its first batch.
    load_seconds: list[float] = []
    load_cpu: list[float] = []
    original_warm_up = embedder.warm_up

    def timed_warm_up() -> Any:
        if embedder._model is not None:
            return embedder._model
        t0, c0 = time.perf_counter(), time.process_time()
        model = original_warm_up()
        load_seconds.append(time.perf_counter() - t0)
        load_cpu.append(time.process_time() - c0)
        return model

    embedder.warm_up = timed_warm_up

    # Time the encoder calls inside the embed step (wall and process CPU), so that the step's overhead
    # around the model (reading chunks, sorting, committing vectors) shows apart from the encoding itself.
    encode_wall: list[float] = []
    encode_cpu: list[float] = []
    original_embed_documents = embedder.embed_documents

    def timed_embed_documents(texts: list[str]) -> Any:
        # a model load inside the call (older embed steps load lazily on the first batch) is not encoding
        lw, lc = sum(load_seconds), sum(load_cpu)
        w, c = time.perf_counter(), time.process_time()
        out = original_embed_documents(texts)
        encode_wall.append(time.perf_counter() - w - (sum(load_seconds) - lw))
        encode_cpu.append(time.process_time() - c - (sum(load_cpu) - lc))
        return out

    embedder.embed_documents = timed_embed_documents

    log(f"{name}: flightdeck run (fresh workspace {project.workspace.root})")
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    summary = project.run()
    wall, run_cpu = time.perf_counter() - t0, time.process_time() - c0
    load_after_run = os.getloadavg()[0]
    embedder.embed_documents = original_embed_documents
    embedder.warm_up = original_warm_up
    if summary.status != "succeeded":
        raise SystemExit(f"{name}: run {summary.status}")
    steps = step_map(summary)
    for s in summary.steps:
        if s.status != "succeeded":
            raise SystemExit(f"{name}: step {s.step} was {s.status} on a fresh workspace")
    ingest, embed, index = steps["ingest"], steps["embed"], steps["index"]
    docs = int(ingest.counts["documents"])
    n_chunks = int(ingest.counts["chunks"])
    n_embedded = int(embed.counts["embedded"])
    model_load = sum(load_seconds)
    log(f"{name}: {docs} docs, {n_chunks} chunks; ingest {ingest.seconds:.2f}s, embed {embed.seconds:.2f}s "
        f"(model load {model_load:.2f}s), index {index.seconds:.2f}s, total {summary.seconds:.2f}s")

    # The peer: the same loaded model, on exactly the texts flightdeck embedded.
    model = embedder.warm_up()
    texts = embedded_texts(project.workspace.root / "metadata.db")
    if len(texts) != n_embedded:
        log(f"{name}: warning: {len(texts)} distinct chunk texts in the workspace, embed step reported "
            f"{n_embedded}")
    raw_seconds: list[float] = []
    raw_cpu: list[float] = []
    raw_load: list[float] = []
    for r in range(repeats):
        raw_load.append(os.getloadavg()[0])
        t, c = time.perf_counter(), time.process_time()
        model.encode(texts, batch_size=RAW_BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False,
                     convert_to_numpy=True)
        raw_seconds.append(time.perf_counter() - t)
        raw_cpu.append(time.process_time() - c)
        log(f"{name}: raw encode {r + 1}/{repeats}: {raw_seconds[-1]:.2f}s "
            f"({len(texts) / raw_seconds[-1]:.1f} chunks/s), cpu {raw_cpu[-1]:.2f}s, load1 {raw_load[-1]:.2f}")
    raw_median = statistics.median(raw_seconds)
    raw_cps = len(texts) / raw_median

    log(f"{name}: no-change re-run")
    rerun = project.run()
    rerun_steps = {s.step: s.status for s in rerun.steps}
    if any(v != "skipped" for v in rerun_steps.values()):
        log(f"{name}: warning: no-change re-run did not skip every step: {rerun_steps}")

    encode_cpu_s = sum(encode_cpu)
    embed_cps = n_embedded / embed.seconds if embed.seconds else float("nan")
    embed_wo_load = embed.seconds - model_load
    result = {
        "corpus": name,
        "docs": docs,
        "chunks": n_chunks,
        "embedded_texts": n_embedded,
        "ingest_s": ingest.seconds,
        "embed_s": embed.seconds,
        "model_load_s": model_load,
        "index_s": index.seconds,
        "total_s": summary.seconds,
        "wall_s": wall,
        "chunks_per_s_total": n_chunks / summary.seconds,
        "embed_chunks_per_s": embed_cps,
        "embed_chunks_per_s_excl_load": n_embedded / embed_wo_load if embed_wo_load > 0 else float("nan"),
        "raw_encode_s": raw_seconds,
        "raw_encode_s_median": raw_median,
        "raw_chunks_per_s_median": raw_cps,
        "raw_batch_size": RAW_BATCH_SIZE,
        "ratio_embed_vs_raw": embed_cps / raw_cps,
        "ratio_embed_excl_load_vs_raw": (n_embedded / embed_wo_load) / raw_cps if embed_wo_load > 0 else None,
        "rerun_s": rerun.seconds,
        "rerun_ratio_of_full": rerun.seconds / summary.seconds,
        "rerun_steps": rerun_steps,
        "flightdeck_embed_commit_rows": _commit_rows(),
        # diagnostics: where the embed step's time went, process CPU seconds, and the 1-minute load
        # average (other processes on the machine skew wall-clock figures; compare the CPU ratio too)
        "embed_encode_calls": len(encode_wall),
        "embed_encode_wall_s": sum(encode_wall),  # model load excluded
        "embed_encode_cpu_s": encode_cpu_s,
        "embed_overhead_s": embed.seconds - sum(encode_wall) - model_load,  # outside load and encoder calls
        "run_cpu_s": run_cpu,
        "raw_encode_cpu_s": raw_cpu,
        "raw_encode_cpu_s_median": statistics.median(raw_cpu),
        "ratio_encode_cpu_raw_vs_flightdeck": statistics.median(raw_cpu) / encode_cpu_s if encode_cpu_s else None,
        "loadavg1_before_run": load_before,
        "loadavg1_after_run": load_after_run,
        "loadavg1_before_raw": raw_load,
    }
    project.workspace.close()
    return result


def _commit_rows() -> int:
    from flightdeck.pipeline import steps  # noqa: PLC0415

    return int(steps.EMBED_COMMIT_ROWS)


# ------------------------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    import sentence_transformers  # noqa: PLC0415
    import torch  # noqa: PLC0415

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def markdown(results: list[dict[str, Any]], m: dict[str, Any]) -> str:
    head = ["corpus", "docs", "chunks", "ingest s", "embed s", "index s", "total s", "chunks/s total",
            "embed chunks/s", "raw model chunks/s (median)", "ratio embed/raw", "no-change re-run s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r["corpus"], str(r["docs"]), str(r["chunks"]), f"{r['ingest_s']:.2f}",
               f"{r['embed_s']:.2f} (load {r['model_load_s']:.2f})", f"{r['index_s']:.2f}",
               f"{r['total_s']:.2f}", f"{r['chunks_per_s_total']:.1f}", f"{r['embed_chunks_per_s']:.1f}",
               f"{r['raw_chunks_per_s_median']:.1f} (n={len(r['raw_encode_s'])})",
               f"{r['ratio_embed_vs_raw']:.3f}",
               f"{r['rerun_s']:.3f} ({100 * r['rerun_ratio_of_full']:.2f}% of full)"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Where the embed step's time went (diagnostics; CPU = this process's CPU seconds):", "",
              "| corpus | embed s | model load s | encoder calls s | outside load+encoder s | encoder CPU s "
              "| raw CPU s (median) | CPU ratio raw/flightdeck | load avg (run; raw) |",
              "|" + "---|" * 9]
    for r in results:
        raw_load = ", ".join(f"{x:.1f}" for x in r["loadavg1_before_raw"])
        lines.append(
            f"| {r['corpus']} | {r['embed_s']:.2f} | {r['model_load_s']:.2f} | {r['embed_encode_wall_s']:.2f} "
            f"| {r['embed_overhead_s']:.2f} | {r['embed_encode_cpu_s']:.1f} | {r['raw_encode_cpu_s_median']:.1f} "
            f"| {r['ratio_encode_cpu_raw_vs_flightdeck']:.3f} "
            f"| {r['loadavg1_before_run']:.1f}->{r['loadavg1_after_run']:.1f}; {raw_load} |")
    lines.append("")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, "
                 f"torch {m['torch']}, sentence-transformers {m['sentence_transformers']}, "
                 f"Python {m['python']}. flightdeck EMBED_COMMIT_ROWS={results[0]['flightdeck_embed_commit_rows']}"
                 if results else "")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", choices=["demo", "scifact", "both"], default="both")
    p.add_argument("--limit", type=int, default=None, help="first N SciFact documents (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the raw model encode (median reported)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")

    results = []
    names = ["demo", "scifact"] if args.corpus == "both" else [args.corpus]
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"flightdeck-bench-{name}-") as tmp:
            spec = demo_spec(Path(tmp)) if name == "demo" else scifact_spec(Path(tmp), args.limit)
            label = name if name == "demo" or args.limit is None else f"scifact (first {args.limit})"
            res = bench_corpus(label, spec, args.repeats)
            results.append(res)

    m = machine()
    print(markdown(results, m))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "ingest_throughput",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "args": {"corpus": args.corpus, "limit": args.limit, "repeats": args.repeats},
        "machine": m,
        "results": results,
    }, indent=2))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
