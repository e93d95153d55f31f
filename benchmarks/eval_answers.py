"""The demo's hand-written evaluation set answered by `extractive` and by the local LLM, side by side.

Each generator answers all questions of examples/python-docs/eval/questions.jsonl over the same index (the
demo's, built by `make demo`), scored by `flightdeck eval` (retrieval, token F1, BLEU/ROUGE, answer similarity,
citations, judge-free groundedness, refusals), and the evaluation's throughput (questions/s, model loading
excluded by one untimed warm-up question) is recorded. Each run goes to the demo workspace's runs table.

    python benchmarks/eval_answers.py [--generators extractive,llama_cpp] [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"
SHOWN = ("ndcg@10", "recall@10", "token_f1", "rougeL", "bleu", "answer_similarity", "citation_precision",
         "citation_recall", "groundedness", "supported_sentence_rate", "refusal_rate", "false_refusal_rate",
         "answerability_f1", "answerability_auroc", "latency_p50_ms", "latency_p95_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generators", default="extractive,llama_cpp")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (DEMO / ".flightdeck" / "metadata.db").exists():
        raise SystemExit("build the demo first: make demo")
    from flightdeck import Project
    from flightdeck.registry import Category
    from flightdeck.spec.models import ProviderRef

    rows = {}
    for name in args.generators.split(","):
        project = Project.load(DEMO)
        if name != project.spec.model.generator.provider:
            project.use(generator=project.assembly.build(Category.GENERATOR, ProviderRef(provider=name)))
        project.ask("How do I create a virtual environment?")  # loads the model: not part of the throughput
        t0 = time.perf_counter()
        done = project.evaluate(limit=args.limit)
        seconds = time.perf_counter() - t0
        n = len(done.result.questions)
        rows[name] = {"metrics": done.result.metrics, "questions": n, "seconds": round(seconds, 1),
                      "questions_per_s": round(n / seconds, 3), "run": done.run.id,
                      "generator": done.report["run"]["generator"], "report": str(done.files["html"])}
        print(f"{name}: {n} questions in {seconds:.1f} s ({n / seconds:.2f} q/s), run {done.run.id}", flush=True)
    names = list(rows)
    print("\n| metric | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for metric in SHOWN:
        values = [rows[n]["metrics"].get(metric) for n in names]
        print(f"| {metric} | " + " | ".join("—" if v is None else f"{v:.3f}" if not metric.endswith("_ms")
                                          else f"{v:,.0f}" for v in values) + " |")
    print("| questions/s | " + " | ".join(f"{rows[n]['questions_per_s']:.2f}" for n in names) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
