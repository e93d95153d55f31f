"""`flightdeck tune --set` on the demo's hand-written evaluation set: the search settings tuned for the extractive
answers on the set's tune part, the tuned configuration scored once on the held-out questions beside the demo's own.

The commands it runs (and records) are the CLI itself, on a copy of the demo spec written to the results folder:

    flightdeck run  --spec <results>/tune-demo
    flightdeck tune --set python-docs --spec <results>/tune-demo --patch <results>/tune-demo/tuned.yaml --json

The copy is examples/python-docs/flightdeck.yaml with the corpus and the set read from the example, its own
workspace, ``precompute_sentences: true`` on the extractive generator (each sentence is embedded once at index time
instead of once per question per trial: the same vectors, so the same answers, in a fraction of the time), and
under model.tuning:

- ``objective: token_f1`` (the answers against the reference answers; a refused answerable question counts 0);
- the query-time search settings: ``mode: [hybrid, vector, keyword]``, ``fusion: [rrf, weighted]``,
  ``candidates: [20, 50, 200]``, ``keyword_weight: {low: 0.2, high: 2.0}``; ``k`` stays 10.

20 % of the 91 questions (by hashed question id) are held out and read twice in all: once for the demo's settings,
once for the best trial's.

    python benchmarks/tune_demo.py                      # ~10-20 min on 2 cores
    python benchmarks/tune_demo.py --trials 4 --out /tmp/tune-demo.json
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
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import DEMO_SPEC, log, machine  # noqa: E402
from tune_scifact import _settings, loadavg  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OUT = RESULTS / "tune_demo.json"
SPACE = {"mode": ["hybrid", "vector", "keyword"], "fusion": ["rrf", "weighted"], "candidates": [20, 50, 200],
         "keyword_weight": {"low": 0.2, "high": 2.0}}


def write_spec(folder: Path, trials: int, seed: int, tuner: str) -> Path:
    import yaml

    spec = yaml.safe_load(DEMO_SPEC.read_text())
    demo = DEMO_SPEC.parent
    for source in spec["data"]["sources"]:
        source["path"] = str((demo / source["path"]).resolve())
    for entry in spec["evaluation"]["sets"]:
        entry["path"] = str((demo / entry["path"]).resolve())
    spec["model"]["generator"]["precompute_sentences"] = True
    spec["model"]["hyperparameter_optimization"] = [tuner]
    spec["model"]["tuning"] = {"objective": "token_f1", "trials": trials, "seed": seed, "holdout": 0.2,
                               "space": SPACE}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flightdeck.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cli(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flightdeck.cli.main", *args], cwd=ROOT, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:] + proc.stdout[-4000:])
        raise SystemExit(f"flightdeck {args[0]} exited {proc.returncode}")
    return proc, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tuner", default="optuna")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folder", type=Path, default=RESULTS / "tune-demo",
                    help="the spec copy, its workspace (kept for a rerun: the index is built once) and the patch")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    started = _dt.datetime.now()
    folder = args.folder.resolve()
    spec = write_spec(folder, args.trials, args.seed, args.tuner)
    rel = os.path.relpath(folder, ROOT)
    m = machine()
    load_start = loadavg()
    log(f"running: flightdeck run --spec {rel}")
    _, run_wall = cli(["run", "--spec", str(spec)])
    patch = folder / "tuned.yaml"
    shown = f"flightdeck tune --set python-docs --spec {rel} --patch {rel}/tuned.yaml --json"
    log(f"running: {shown}")
    proc, wall = cli(["tune", "--set", "python-docs", "--spec", str(spec), "--patch", str(patch), "--json"])
    report = json.loads(proc.stdout)
    out = {"benchmark": "tune_demo", "started": started.isoformat(timespec="seconds"), "wall_s": round(wall, 1),
           "index_wall_s": round(run_wall, 1), "command": shown,
           "script": "python benchmarks/tune_demo.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
           "machine": m, "loadavg_start": load_start, "loadavg_end": loadavg(), "spec": spec.read_text(),
           "report": report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    md = markdown(out)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    log(f"wrote {args.out} and {args.out.with_suffix('.md')} ({wall:.0f}s)")
    return 0


def markdown(out: dict[str, Any]) -> str:
    r, m = out["report"], out["machine"]
    h, best, base = r["holdout"], r["best"], r["baseline"]
    seconds = [t["seconds"] for t in r["trials"] if t["value"] is not None]
    trials = sorted(r["trials"], key=lambda t: -(t["value"] if t["value"] is not None else -1))
    bm, tm = h["baseline_metrics"], h["best_metrics"]
    rows = [(name, bm.get(name), tm.get(name)) for name in
            ("token_f1", "rougeL", "ndcg@10", "recall@10", "citation_recall", "groundedness", "refusal_rate",
             "false_refusal_rate")]
    search = base["search"]
    lines = [
        f"## `flightdeck tune --set` on the demo's evaluation set ({r['tuner']}, {len(r['trials'])} trials, "
        f"{r['objective']})",
        "",
        "Commands, from the repository root (the spec copy is written by `python benchmarks/tune_demo.py`):",
        "",
        "```",
        f"flightdeck run --spec {out['command'].split('--spec ')[1].split(' ')[0]}",
        out["command"],
        "```",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores); load average {out['loadavg_start'][0]} at the start, "
        f"{out['loadavg_end'][0]} at the end. Index build {out['index_wall_s']:.0f} s; the study "
        f"{out['wall_s'] / 60:.1f} min, median {statistics.median(seconds):.1f} s a trial "
        f"({r['queries']['tune']} questions each). {r['queries']['tune']} questions tune, "
        f"{r['queries']['holdout']} held out (hashed question id; {h['queries']} of them with a reference answer, "
        "which token F1 is measured on).",
        "",
        f"| | settings | {r['objective']} tune | {r['objective']} holdout |",
        "|---|---|---|---|",
        f"| baseline (the demo's spec) | mode {search['mode']}, fusion {search['fusion']}, candidates "
        f"{search['candidates']}, keyword_weight {search['keyword_weight']} | {base['tune']:.4f} | "
        f"{h['baseline']:.4f} |",
        f"| best (trial {best['trial']}) | {_settings(best['params'])} | {best['tune']:.4f} | {h['best']:.4f} |",
        "",
        f"Gain on the held-out questions, scored once: **{h['gain']:+.4f}** {r['objective']}, paired bootstrap 95 % "
        f"CI [{h['ci95'][0]:+.4f}, {h['ci95'][1]:+.4f}] ({h['resamples']} resamples; {h['improved']} questions "
        f"better, {h['worsened']} worse).",
        "",
        "Held-out part, the run's metrics (`flightdeck eval`'s means: answer metrics over the answered questions):",
        "",
        "| metric | baseline | best |",
        "|---|---:|---:|",
        *[f"| {n} | {'—' if a is None else f'{a:.3f}'} | {'—' if b is None else f'{b:.3f}'} |" for n, a, b in rows],
        "",
        "The spec patch it wrote:",
        "",
        "```yaml",
        r["patch_yaml"].rstrip(),
        "```",
        "",
        "Trials (tune part), best first:",
        "",
        f"| trial | {r['objective']} | seconds | settings |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t['number']} | {t['value']:.4f} | {t['seconds']:.1f} | {_settings(t['params'])} |"
              if t["value"] is not None else f"| {t['number']} | failed | {t['seconds']:.1f} | {t['error']} |"
              for t in trials]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
