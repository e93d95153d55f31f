"""The Markdown summary of an evaluation report: gates, headline metrics with deltas, the validation suites (their
rates, gates and offending cases), the worst questions.

Report text is untrusted (answers, planted documents, questions): it is never Markdown. Model output goes into code
spans (no HTML, link, image or emphasis is parsed in one), other text has every character Markdown acts on escaped,
and in a table every pipe is escaped; texts are one line, without control characters.
"""

from __future__ import annotations

import re
from typing import Any

from flightdeck.evaluation.reports.suites import SuiteView, plain, suite_views

__all__ = ["render_markdown", "HEADLINE", "format_value", "md_text", "md_code"]

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


_INLINE = re.compile(r"([\\`*_\[\]<>!&|~#])")


def md_text(text: Any, limit: int | None = None) -> str:
    """``text`` as inert Markdown on one line: every character that could start markup (HTML, a link, an image,
    emphasis, code, an entity, a table cell) is backslash-escaped."""
    return _INLINE.sub(r"\\\1", plain(text, limit))


def md_code(text: Any, limit: int | None = None, table: bool = False) -> str:
    """``text`` as a code span on one line (``—`` when empty): nothing in it is parsed. The fence is longer than any
    run of backticks inside; in a table (``table``) its pipes are escaped, as GFM wants even inside code."""
    one = plain(text, limit)
    if not one:
        return "—"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", one)), default=0) + 1)
    pad = " " if one[0] in "` " or one[-1] in "` " else ""
    span = f"{fence}{pad}{one}{pad}{fence}"
    return span.replace("|", "\\|") if table else span


def _cell(text: str) -> str:
    return md_text(text)


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
            lines.append(f"| {md_code(g['gate'], table=True)} | {measured} | {verdict_cell} |")
        lines.append("")
    prev = report.get("previous")
    lines += ["| metric | value | Δ vs previous |", "|---|---:|---:|"]
    for name in headline(report):
        lines.append(f"| {name} | {format_value(name, report['metrics'][name])} | {_delta(name, report)} |")
    lines += ["", f"Index `{(run.get('index_version') or '')[:12]}` · generator `{run.get('generator', '')}` · "
              f"run `{run['id']}`" + (f" · compared with `{prev['id']}`" if prev else " · no previous run"), ""]
    for suite in suite_views(report):
        lines += _suite(suite, worst)
    failures = [q for q in report["questions"] if q["outcome"] in ("wrongly_refused", "wrongly_answered", "error")
                or (q["answerable"] and q["scores"].get("token_f1", 1) < 0.2)]
    if failures:
        lines += [f"Worst questions ({len(failures)} of {len(report['questions'])} need a look):", ""]
        for q in failures[:worst]:
            why = md_text(q["error"], 300) or q["outcome"].replace("_", " ")
            lines.append(f"- {md_code(q['id'])} {md_text(q['question'], 300)} — {why}")
        lines.append("")
    return "\n".join(lines)


def _suite(suite: SuiteView, shown: int) -> list[str]:
    """A suite: its title and gate verdict, its summary, a table of its rates with the gates on them, and its first
    ``shown`` offending cases with the texts that show them (in code spans: they are model output)."""
    verdict = {"missed": "gates MISSED", "passed": "gates passed", None: "no gate"}[suite.status]
    lines = [f"### {md_text(suite.title)} ({md_code(suite.name)}): {verdict}", ""]
    if suite.summary:
        lines += [md_text(suite.summary, 1200), ""]
    if suite.rates:
        lines += ["| rate | value | cases | gate |", "|---|---:|---:|---|"]
        for r in suite.rates:
            gate = "; ".join(("pass: " if g["passed"] else "MISSED: ") + md_code(g["gate"], table=True) +
                             ("" if g["passed"] or not g["reason"] or g["value"] is not None else
                              " " + md_text(g["reason"], 200))
                             for g in r.gates)
            label = f"{md_text(r.label)} {md_code(r.metric, table=True)}" if r.label else md_code(r.metric, table=True)
            lines.append(f"| {label} | {r.text} | {r.cases} | {gate} |")
        lines.append("")
    if suite.groups:
        lines += ["| group | questions | accuracy | answered |", "|---|---:|---:|---:|"]
        for g in suite.groups:
            lines.append(f"| {md_code(g['group'], 80, table=True)} | {'' if g['questions'] is None else g['questions']}"
                         f" | {format_value('', g['accuracy'])} | {format_value('', g['answered_rate'])} |")
        lines.append("")
    if suite.findings:
        lines += [f"Offending cases ({len(suite.findings)}: {md_text(suite.finding_label)}):", ""]
        for f in suite.findings[:shown]:
            lines.append(f"- {md_code(f.id, 80)} {md_text(f.kind)}: {md_code(f.what, 300)}" +
                         (f" ({md_text(f.note, 200)})" if f.note else ""))
            lines += [f"  - {md_text(name)}: {md_code(text, 300)}" for name, text in f.texts]
        if len(suite.findings) > shown:
            lines.append(f"- … {len(suite.findings) - shown} more in report.html and report.json")
        lines.append("")
    elif suite.cases:
        lines += [f"No offending case among {suite.cases}.", ""]
    if suite.errors:
        lines += [f"{len(suite.errors)} case{'s' if len(suite.errors) != 1 else ''} could not be measured: " +
                  ", ".join(f"{md_code(f.id, 80)} ({md_code(f.what, 160)})" for f in suite.errors[:shown]) +
                  (" …" if len(suite.errors) > shown else ""), ""]
    return lines
