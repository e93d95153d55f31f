"""Batch answers (checklist 0.3, batch tier): `flightdeck batch` beside a plain loop of `project.ask`.

The demo project (`make demo`) answers the same N questions (distinct section headings of its chunks) twice:

- **flightdeck batch**: `flightdeck batch questions.jsonl answers.jsonl` in its own process: each answer
  written as one JSONL line (fsynced: resumable after kill -9), a progress bar; its summary's
  questions/s counts from the first question (the model loaded and the index opened before), and the wall
  time of the whole command is recorded too;
- **plain loop**: `for q in questions: project.ask(q)` in this process, after one untimed warm-up question,
  writing nothing.

Their ratio is what resumability costs. Generator: the demo's (extractive).

    python benchmarks/batch_throughput.py --questions 400
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=400)
    args = parser.parse_args()
    if not (DEMO / ".flightdeck" / "metadata.db").exists():
        raise SystemExit("build the demo first: make demo")
    sys.path.insert(0, str(Path(__file__).parent))
    from serving_latency import queries

    from flightdeck import Project

    qs = queries(args.questions)
    work = Path(tempfile.mkdtemp(prefix="fd-batch-bench-"))
    (work / "in.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n"
                                           for i, q in enumerate(qs)), "utf-8")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flightdeck", "batch", str(work / "in.jsonl"),
                           str(work / "out.jsonl"), "--spec", str(DEMO), "--json"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    summary = json.loads(done.stdout)
    lines = (work / "out.jsonl").read_text("utf-8").splitlines()

    project = Project.load(DEMO)
    project.ask("warm up")
    t0 = time.perf_counter()
    found = sum(project.ask(q).found for q in qs)
    plain = time.perf_counter() - t0
    out = {"questions": len(qs), "answers_written": len(lines),
           "batch": {"questions_per_s": summary.get("questions_per_second"), "seconds": summary.get("seconds"),
                     "wall_s_with_model_load": round(wall, 1)},
           "plain_loop": {"questions_per_s": round(len(qs) / plain, 1), "seconds": round(plain, 1), "found": found},
           "loadavg": [load0, os.getloadavg()]}
    out["ratio_batch_over_plain"] = round(out["batch"]["questions_per_s"] / out["plain_loop"]["questions_per_s"], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
