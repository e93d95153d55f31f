"""The Markdown summary of an evaluation report: gates, headline metrics with deltas, the worst questions."""

from __future__ import annotations

from typing import Any

__all__ = ["render_markdown", "HEADLINE", "format_value"]

#: the metrics a summary shows first, in this order (when measured)
HEADLINE = ("ndcg@{k}", "recall@{k}", "mrr@{k}", "hit_rate@{k}", "token_f1", "rougeL", "bleu", "answer_similarity",
            "citation_precision", "citation_recall", "groundedness", "supported_sentence_rate", "refusal_rate",
            "false_refusal_rate", "answerability_f1", "answerability_auroc", "latency_p50_ms", "latency_p95_ms")


def format_value(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name.endswith("_ms"):
        return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if name == "errors":
        return f"{value:.0f}"
    return f"{value:.3f}"


def _delta(name: str, report: dict[str, Any]) -> str:
    d = report.get("deltas", {}).get(name)
    if d is None:
        return ""
    if abs(d) < 5e-4 and not name.endswith("_ms"):
        return "±0"
    return f"{d:+,.0f} ms" if name.endswith("_ms") else f"{d:+.3f}"


def headline(report: dict[str, Any]) -> list[str]:
    k = report["options"]["k"]
    metrics = report["metrics"]
    return [m.format(k=k) for m in HEADLINE if m.format(k=k) in metrics]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render_markdown(report: dict[str, Any], worst: int = 5) -> str:
    run, s = report["run"], report["set"]
    lines = [f"## flightdeck eval: {s['name']} ({s['counts']['questions']} questions)", ""]
    verdict = report.get("passed")
    if report.get("gates"):
        lines.append("**Gates: " + ("passed**" if verdict else "FAILED**"))
        lines += ["", "| gate | measured | |", "|---|---:|---|"]
        for g in report["gates"]:
            measured = "—" if g["value"] is None else format_value(g["metric"], g["value"])
            verdict_cell = "pass" if g["passed"] else "MISSED: " + _cell(g["reason"])
            lines.append(f"| `{g['gate']}` | {measured} | {verdict_cell} |")
        lines.append("")
    prev = report.get("previous")
    lines += ["| metric | value | Δ vs previous |", "|---|---:|---:|"]
    for name in headline(report):
        lines.append(f"| {name} | {format_value(name, report['metrics'][name])} | {_delta(name, report)} |")
    lines += ["", f"Index `{(run.get('index_version') or '')[:12]}` · generator `{run.get('generator', '')}` · "
              f"run `{run['id']}`" + (f" · compared with `{prev['id']}`" if prev else " · no previous run"), ""]
    failures = [q for q in report["questions"] if q["outcome"] in ("wrongly_refused", "wrongly_answered", "error")
                or (q["answerable"] and q["scores"].get("token_f1", 1) < 0.2)]
    if failures:
        lines += [f"Worst questions ({len(failures)} of {len(report['questions'])} need a look):", ""]
        for q in failures[:worst]:
            why = q["error"] or q["outcome"].replace("_", " ")
            lines.append(f"- `{q['id']}` {_cell(q['question'])} — {why}")
        lines.append("")
    return "\n".join(lines)
