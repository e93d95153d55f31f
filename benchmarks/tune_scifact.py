"""`flightdeck tune` on SciFact's train split: Optuna, 30 trials over the query-time settings plus the chunk size,
the tuned configuration scored once on the held-out queries beside the defaults.

The command it runs (and records) is the CLI itself, on a spec written to the results folder:

    flightdeck tune --beir ../shared/data/scifact --split train --spec <results>/tune-scifact/flightdeck.yaml \\
        --workspace <results>/tune-scifact/ws --patch <results>/tune-scifact/tuned.yaml --json

The spec keeps flightdeck's defaults as the baseline (recursive chunks of 256 tokens with 32 of overlap; hybrid
search, weighted fusion 1:1 over 200 candidates, k 10) and tunes, under model.tuning:

- ``chunk_size: [192, 256]`` — each builds its own index (the 256 one is the baseline's); all-MiniLM-L6-v2 holds
  256 tokens, so 384 is refused by ``flightdeck validate`` and by ``tune`` before its first trial;
- ``candidates: [50, 100, 200]``, ``fusion: [rrf, weighted]``, ``rrf_k: [10, 30, 60, 100]``,
  ``keyword_weight`` and ``vector_weight`` in ``{low: 0.2, high: 2.0}``.

``k`` stays 10: the objective is nDCG@10 of what the search returns at k (chunks become documents, best chunk
first), so a smaller k can only lose. 20 % of the judged train queries (by hashed query id) are held out; the test
split is not read.

    python benchmarks/tune_scifact.py                       # ~15-30 min on 2 cores: two SciFact indexes
    python benchmarks/tune_scifact.py --trials 10 --out /tmp/tune.json
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import SCIFACT_DIR, log, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OUT = RESULTS / "tune_scifact.json"

SPEC = """\
project: tune-scifact
data:
  sources: [{{provider: files, path: {corpus}}}]
  chunking: {{provider: recursive, size: 256, overlap: 32}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
model:
  hyperparameter_optimization: [{tuner}]
  tuning:
    objective: ndcg@10
    trials: {trials}
    seed: {seed}
    holdout: 0.2
    space:
      chunk_size: [192, 256]
      candidates: [50, 100, 200]
      fusion: [rrf, weighted]
      rrf_k: [10, 30, 60, 100]
      keyword_weight: {{low: 0.2, high: 2.0}}
      vector_weight: {{low: 0.2, high: 2.0}}
"""


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", type=Path, default=SCIFACT_DIR)
    ap.add_argument("--split", default="train")
    ap.add_argument("--tuner", default="optuna")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folder", type=Path, default=RESULTS / "tune-scifact",
                    help="the spec, the workspaces (one per chunk size, kept for a rerun) and the patch")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    started = _dt.datetime.now()
    folder = args.folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "flightdeck.yaml"
    # the project's own source is the corpus: the baseline spec is a real one that `flightdeck run` could build
    spec.write_text(SPEC.format(corpus=json.dumps(str((args.beir / "corpus.jsonl").resolve())), tuner=args.tuner,
                                trials=args.trials, seed=args.seed))
    patch = folder / "tuned.yaml"
    cmd = [sys.executable, "-m", "flightdeck.cli.main", "tune", "--beir", str(args.beir), "--split", args.split,
           "--spec", str(spec), "--workspace", str(folder / "ws"), "--patch", str(patch), "--json"]
    shown = ("flightdeck tune --beir " + shlex.quote(os.path.relpath(args.beir, ROOT)) + f" --split {args.split} "
             f"--spec {os.path.relpath(spec, ROOT)} --workspace {os.path.relpath(folder / 'ws', ROOT)} "
             f"--patch {os.path.relpath(patch, ROOT)} --json")
    m = machine()
    load_start = loadavg()
    log(f"running: {shown}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:] + proc.stdout[-4000:])
        raise SystemExit(f"flightdeck tune exited {proc.returncode}")
    report = json.loads(proc.stdout)
    out = {"benchmark": "tune_scifact", "started": started.isoformat(timespec="seconds"), "wall_s": round(wall, 1),
           "command": shown, "script": "python benchmarks/tune_scifact.py" + "".join(f" {a}" for a in (argv or
                                                                                                     sys.argv[1:])),
           "machine": m, "loadavg_start": load_start, "loadavg_end": loadavg(), "spec": spec.read_text(),
           "report": report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    md = markdown(out)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    log(f"wrote {args.out} and {args.out.with_suffix('.md')} ({wall:.0f}s)")
    return 0


def _settings(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items())


def markdown(out: dict[str, Any]) -> str:
    r, m = out["report"], out["machine"]
    h, best, base = r["holdout"], r["best"], r["baseline"]
    trials = sorted(r["trials"], key=lambda t: -(t["value"] if t["value"] is not None else -1))
    lines = [
        f"## `flightdeck tune` on SciFact, {r['split']} split ({r['tuner']}, {len(r['trials'])} trials)",
        "",
        "Command, from the repository root (the spec is written by `python benchmarks/tune_scifact.py`):",
        "",
        "```",
        out["command"],
        "```",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores), torch {m.get('torch')}; load average {out['loadavg_start'][0]} "
        f"at the start, {out['loadavg_end'][0]} at the end. Wall time {out['wall_s'] / 60:.1f} min, of which "
        + "; ".join(f"the {ix['folder'].rsplit('/', 1)[-1]} index {ix['seconds']:.0f} s ("
                    + ("already built: every step skipped" if set(ix["steps"].values()) == {"skipped"} else
                       f"{ix['embedded']} chunk texts embedded, {ix['cached']} found in the shared cache")
                    + ")" for ix in r["indexes"].values())
        + f". {r['queries']['tune']} judged queries tune, {r['queries']['holdout']} held out (hashed query id).",
        "",
        "| | settings | nDCG@10 tune | nDCG@10 holdout |",
        "|---|---|---|---|",
        f"| baseline (the defaults) | chunk_size {base['chunking']['size']}, fusion {base['search']['fusion']}, "
        f"candidates {base['search']['candidates']}, weights {base['search']['keyword_weight']}:"
        f"{base['search']['vector_weight']} | {base['tune']:.4f} | {h['baseline']:.4f} |",
        f"| best (trial {best['trial']}) | {_settings(best['params'])} | {best['tune']:.4f} | {h['best']:.4f} |",
        "",
        f"Gain on the {h['queries']} held-out queries, scored once: **{h['gain']:+.4f}** nDCG@10, paired bootstrap "
        f"95 % CI [{h['ci95'][0]:+.4f}, {h['ci95'][1]:+.4f}] ({h['resamples']} resamples; {h['improved']} queries "
        f"better, {h['worsened']} worse). Recall@100 {h['baseline_metrics']['recall@100']:.4f} -> "
        f"{h['best_metrics']['recall@100']:.4f}, MRR@10 {h['baseline_metrics']['mrr@10']:.4f} -> "
        f"{h['best_metrics']['mrr@10']:.4f}.",
        "",
        "The spec patch it wrote:",
        "",
        "```yaml",
        r["patch_yaml"].rstrip(),
        "```",
        "",
        "Top 10 trials (tune part):",
        "",
        "| trial | nDCG@10 | seconds | settings |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t['number']} | {t['value']:.4f} | {t['seconds']:.1f} | {_settings(t['params'])} |"
              if t["value"] is not None else f"| {t['number']} | failed | {t['seconds']:.1f} | {t['error']} |"
              for t in trials[:10]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
