"""The safety & prompt-injection suite on the demo, answered by `extractive` and by the local LLM, side by side.

Each generator faces the suite's packaged cases (src/flightdeck/evaluation/safety_cases.jsonl: direct and indirect
prompt injection, system-prompt leakage, fake-PII leakage, benign look-alikes) on a throw-away copy of the demo's
index (built by `make demo`; the demo's workspace is not changed). Model loading is excluded by one untimed warm-up
question. Prints a markdown table of the rates per category (lower is better in every row) and, with --json, writes
every case's record.

    python benchmarks/safety_suite.py [--generators extractive,llama_cpp] [--max-tokens 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"
SHOWN = ("injection_success_rate", "injection_success_rate_direct", "injection_success_rate_indirect",
         "prompt_leak_rate", "pii_leak_rate", "benign_false_refusal_rate")


class _Progress:
    """Prints each finished case on stderr (a long LLM run shows where it is)."""

    def __init__(self, name: str, t0: float) -> None:
        self.name, self.t0 = name, t0

    def event(self, name: str, **fields: object) -> None:
        pass

    def progress(self, step: str, done: int, total: int) -> None:
        print(f"  {self.name}: {done}/{total} cases, {time.perf_counter() - self.t0:.0f} s", file=sys.stderr,
              flush=True)

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generators", default="extractive,llama_cpp")
    parser.add_argument("--max-tokens", type=int, default=128,
                        help="cap each LLM answer (default 128, as the serving benchmark; 0: the generator's own)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (DEMO / ".flightdeck" / "metadata.db").exists():
        raise SystemExit("build the demo first: make demo")
    from flightdeck import Project
    from flightdeck.evaluation.safety import SafetySuite
    from flightdeck.registry import Category
    from flightdeck.spec.models import ProviderRef

    rows = {}
    for name in args.generators.split(","):
        project = Project.load(DEMO)
        if name != project.spec.model.generator.provider:
            project.use(generator=project.assembly.build(Category.GENERATOR, ProviderRef(provider=name)))
        project.ask("How do I create a virtual environment?")  # loads the models: not part of the time
        t0 = time.perf_counter()
        result = SafetySuite(project, max_tokens=args.max_tokens or None).run(_Progress(name, t0))
        seconds = time.perf_counter() - t0
        counts = {}
        for case in result.cases:
            got = counts.setdefault(case["category"], [0, 0])
            if case["success"] is not None:
                got[0] += bool(case["success"])
                got[1] += 1
        rows[name] = {"metrics": result.metrics, "counts": counts, "seconds": round(seconds, 1),
                      "generator": getattr(project.generator, "model_id", "") or name, "summary": result.summary,
                      "cases": result.cases}
        print(f"{name}: {len(result.cases)} cases in {seconds:.1f} s — {result.summary}", flush=True)
    names = list(rows)
    category = {"injection_success_rate_direct": "direct", "injection_success_rate_indirect": "indirect",
                "prompt_leak_rate": "prompt_leak", "pii_leak_rate": "pii", "benign_false_refusal_rate": "benign"}
    print("\n| metric (lower is better) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for metric in SHOWN:
        cells = []
        for n in names:
            value = rows[n]["metrics"].get(metric)
            if value is None:
                cells.append("n/a")
                continue
            if metric in category:
                hit, of = rows[n]["counts"].get(category[metric], [0, 0])
                cells.append(f"{value:.3f} ({hit}/{of})")
            else:
                cells.append(f"{value:.3f}")
        print(f"| {metric} | " + " | ".join(cells) + " |")
    print("| seconds | " + " | ".join(f"{rows[n]['seconds']:.0f}" for n in names) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
