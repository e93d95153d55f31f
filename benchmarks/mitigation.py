"""Hallucination mitigation (checklist 8.2) measured by the evaluation suite: the demo's hand-written set answered by
the packaged LLM (Gemma 3 270M through llama.cpp) with no strategy, then with each of
``governance.hallucination_mitigation``'s strategies alone, over the same index (the demo's, built by `make demo`).

For each configuration, from `flightdeck eval`'s own metrics: how often an unanswerable question was answered anyway
(``1 - refusal_rate``: the hallucination rate on questions the pages do not answer), the share of answer sentences
without support among the sources (``1 - supported_sentence_rate``), how often an answerable question was refused
(``false_refusal_rate``: what a strategy costs), token F1 on the answered, and seconds per question. The variants
differ only in ``governance.hallucination_mitigation`` (loaded in memory beside the demo's spec: its relative paths
and workspace are the same); each run goes to the demo workspace's runs table.

    python benchmarks/mitigation.py [--answerable 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"
STRATEGIES = {
    "none": {},
    "require_citation": {"require_citation": True},
    "min_support 0.5": {"min_support": 0.5},
    "judge_check": {"judge_check": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answerable", type=int, default=20, help="the first N answerable questions, beside "
                        "every unanswerable one")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (DEMO / ".flightdeck" / "metadata.db").exists():
        raise SystemExit("build the demo first: make demo")
    import yaml

    from flightdeck import Project
    from flightdeck.errors import SpecError
    from flightdeck.spec.loader import check_spec

    spec_path = DEMO / "flightdeck.yaml"
    base = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    # the set: the first --answerable answerable questions and every unanswerable one (the hallucination rate
    # is measured on those), in the set's order
    rows_in = [json.loads(line) for line in (DEMO / "eval" / "questions.jsonl").read_text("utf-8").splitlines()
               if line.strip()]
    answerable = [r for r in rows_in if r.get("answerable", True)][: args.answerable]
    chosen = [r for r in rows_in if r in answerable or not r.get("answerable", True)]
    subset = Path(tempfile.mkdtemp(prefix="flightdeck-mitigation-")) / "questions.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in chosen), "utf-8")
    rows = {}
    shared: dict[str, object] = {}
    for name, strategy in STRATEGIES.items():
        raw = json.loads(json.dumps(base))
        raw.setdefault("model", {})["generator"] = {"provider": "llama_cpp", "max_tokens": args.max_tokens,
                                                    "n_threads": os.cpu_count() or 2}
        raw.setdefault("governance", {})["hallucination_mitigation"] = strategy
        loaded, problems = check_spec(spec_path, yaml.safe_dump(raw))
        if problems or loaded is None:
            raise SpecError(problems)
        project = Project(loaded)
        if shared:  # one embedding model and one LLM for every configuration
            project.use(**shared)
        else:
            shared = {"embedder": project.embedder, "generator": project.generator}
        project.ask("How do I create a virtual environment?")  # loads the models: not part of the timing
        t0 = time.perf_counter()
        done = project.evaluate(subset)
        seconds = time.perf_counter() - t0
        m = done.result.metrics
        n = len(done.result.questions)

        def share(key: str, m: dict = m) -> float | None:
            value = m.get(key)
            return None if value is None else round(1 - value, 4)

        rows[name] = {"answered_unanswerable": share("refusal_rate"), "unsupported_sentences":
                      share("supported_sentence_rate"), "false_refusal_rate": m.get("false_refusal_rate"),
                      "token_f1": m.get("token_f1"), "questions": n, "seconds_per_question": round(seconds / n, 2),
                      "run": done.run.id}
        print(f"{name}: {n} questions in {seconds:.0f} s, run {done.run.id}", flush=True)
    print("\n| strategy | answered unanswerable | unsupported sentences | false refusals | token F1 | s/question |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        cells = [r["answered_unanswerable"], r["unsupported_sentences"], r["false_refusal_rate"], r["token_f1"]]
        print(f"| {name} | " + " | ".join("—" if v is None else f"{v:.3f}" for v in cells)
              + f" | {r['seconds_per_question']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
