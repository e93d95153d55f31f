"""The HTML report of an evaluation run: one self-contained file that needs no network.

It shows, for an engineer deciding whether a build is good: the verdict of the gates, the headline metrics with
their change since the previous run, inline SVG charts (drawn here, in Python: no chart library), and a
per-question table that filters, sorts and expands to show what was retrieved and how each answer sentence is
supported. Every string that comes from the report (questions, answers, documents, errors) is data: Jinja2
escapes it in the page, and the JSON the script reads is embedded with ``<``, ``>`` and ``&`` written as
``\\u003c`` etc., so no text can close the ``<script>`` element. The page's Content-Security-Policy allows only
its own inline style and script (by hash) and no network at all.

Long texts are shortened so that a report of 500 questions stays under ~2 MB; the JSON report keeps them whole.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
from markupsafe import Markup, escape

from flightdeck.core import __version__
from flightdeck.evaluation.reports.markdown import format_value, headline
from flightdeck.evaluation.reports.suites import suite_views
from flightdeck.evaluation.reports.values import as_dict as _dict
from flightdeck.evaluation.reports.values import as_list as _list
from flightdeck.evaluation.reports.values import as_text as _str
from flightdeck.evaluation.reports.values import finite_number as _num

__all__ = ["render_html"]

_HERE = Path(__file__).parent
OUTCOMES = ("answered", "refused", "wrongly_refused", "wrongly_answered", "error")
FAILURES = ("error", "wrongly_answered", "wrongly_refused")  # the default order puts these first, in this order
OUTCOME_LABELS = {"answered": "answered", "refused": "refused", "wrongly_refused": "wrongly refused",
                  "wrongly_answered": "wrongly answered", "error": "error", "unknown": "unknown"}
OUTCOME_COLOURS = {"answered": "#15803d", "refused": "#0e7490", "wrongly_refused": "#c2410c",
                   "wrongly_answered": "#b91c1c", "error": "#6d28d9"}
#: per-question scores the table shows as sortable columns, in this order, when some question has them
SCORE_COLUMNS = ("ndcg@{k}", "token_f1", "rougeL", "answer_similarity", "groundedness", "citation_recall")
MAX_SCORE_COLUMNS = 5
#: offending cases shown per validation suite (report.json has them all)
MAX_FINDINGS = 25
#: the page's size budget; texts are shortened step by step until the page fits
MAX_BYTES = 1_900_000


class _Limits(NamedTuple):
    """How much of each text the page keeps, at one step of shortening."""

    hit_text: int
    evidence: int
    answer: int  # answers, reference answers, answer sentences
    question: int
    meta: int  # titles, headings, document ids
    texts_of: int  # hits (best first) that keep their text; relevant hits always do


_STEPS = (_Limits(400, 300, 2000, 600, 160, 100), _Limits(260, 200, 1200, 400, 120, 100),
          _Limits(160, 140, 700, 300, 80, 100), _Limits(100, 90, 400, 200, 60, 5),
          _Limits(60, 60, 240, 160, 40, 3), _Limits(40, 40, 160, 120, 32, 1))


# ---------------------------------------------------------------------------------------------------- helpers
def _clip(text: Any, limit: int) -> str:
    text = _str(text)
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def _when(ts: Any) -> str:
    t = _num(ts)
    if t is None:
        return "—"
    try:
        return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "—"


def _duration(start: Any, end: Any) -> str:
    a, b = _num(start), _num(end)
    if a is None or b is None or b < a:
        return ""
    s = b - a
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _fmt(name: str, value: float | None) -> str:
    try:
        return format_value(name, value)
    except (TypeError, ValueError):
        return "—"


def _fmt_delta(name: str, d: float) -> str:
    if name.endswith("_ms"):
        return "±0 ms" if abs(d) < 0.5 else f"{d:+,.0f} ms"
    if name == "errors":
        return "±0" if abs(d) < 0.5 else f"{d:+.0f}"
    return "±0" if abs(d) < 5e-4 else f"{d:+.3f}"


def _delta(name: str, deltas: dict[str, Any], lower: set[str]) -> dict[str, str] | None:
    """The change since the previous run: text, and whether it is better, worse or the same."""
    d = _num(deltas.get(name))
    if d is None:
        return None
    text = _fmt_delta(name, d)
    if text.startswith("±"):
        return {"text": text, "cls": "same", "word": "unchanged"}
    better = (d < 0) if name in lower else (d > 0)
    return {"text": text, "cls": "better" if better else "worse", "word": "better" if better else "worse"}


def _script_json(data: Any) -> Markup:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` can end it or start a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                     ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return Markup(text)


def _marked(text: Any, needle: Any, limit: int) -> Markup:
    """``text`` shortened to ``limit`` and escaped, with every occurrence of ``needle`` (any case) in ``<mark>``."""
    text, needle = _clip(text, limit), _str(needle)
    if not needle:
        return escape(text)
    out, lower, low_needle, at = [], text.lower(), needle.lower(), 0
    while (found := lower.find(low_needle, at)) >= 0:
        out += [escape(text[at:found]), Markup("<mark>"), escape(text[found:found + len(needle)]), Markup("</mark>")]
        at = found + len(needle)
    out.append(escape(text[at:]))
    return Markup("").join(out)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _static(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------------ charts
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
                  f'xmlns="http://www.w3.org/2000/svg" {_FONT} font-size="12">' + "".join(body) + "</svg>")


def _empty(text: str) -> Markup:
    return Markup('<p class="muted empty-chart">') + escape(text) + Markup("</p>")


def _metric_bars(metrics: dict[str, float | None], previous: dict[str, Any], gates: list[dict[str, Any]],
                 lower: set[str]) -> Markup:
    """Horizontal bars of the 0–1 metrics, with the previous run's value (a black tick) and gate thresholds
    (red dashes); the values stand in their own column, where no tick or dash can cross them."""
    rows = [(n, v) for n, v in metrics.items()
            if v is not None and not n.endswith("_ms") and n != "errors" and 0.0 <= v <= 1.0]
    if not rows:
        return _empty("No 0–1 metric was measured.")
    thresholds: dict[str, float] = {}
    for g in gates:
        t = _num(g.get("threshold"))
        if t is not None and 0 <= t <= 1:
            thresholds[_str(g.get("metric"))] = t
    label_w, bar_w, row_h, top = 180, 330, 22, 22
    value_x = label_w + bar_w + 14
    width, height = value_x + 50, top + row_h * len(rows) + 8
    body = []
    for i in range(5):
        x = label_w + bar_w * i / 4
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#e5e7eb"/>'
                    f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill="#4b5563" font-size="11">'
                    f'{i / 4:g}</text>')
    for i, (name, value) in enumerate(rows):
        y = top + i * row_h
        shown = _clip(name, 26) + (" ↓" if name in lower else "")
        body.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#1f2937">{escape(shown)}'
                    f'{"<title>lower is better</title>" if name in lower else ""}</text>'
                    f'<rect x="{label_w}" y="{y + 4}" width="{max(bar_w * value, 1.5):.1f}" height="{row_h - 8}" '
                    f'rx="2" fill="#2563eb"><title>{escape(name)}: {escape(_fmt(name, value))}</title></rect>'
                    f'<text x="{value_x}" y="{y + 15}" fill="#1f2937" font-variant-numeric="tabular-nums">'
                    f'{escape(_fmt(name, value))}</text>')
        before = _num(previous.get(name))
        if before is not None and 0 <= before <= 1:
            x = label_w + bar_w * before
            body.append(f'<line x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + row_h - 1}" stroke="#111827" '
                        f'stroke-width="2.5"><title>previous run: {escape(_fmt(name, before))}</title></line>')
        if name in thresholds:
            x = label_w + bar_w * thresholds[name]
            body.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + row_h}" stroke="#dc2626" '
                        f'stroke-width="2" stroke-dasharray="3 2"><title>gate: {thresholds[name]:g}</title></line>')
    return _svg(width, height, body, "0–1 metrics")


def _nice_max(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ) at or above ``value``."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= m * exp * (1 + 1e-9):
            return m * exp
    return 10 * exp


def _histogram(series: list[tuple[str, str, list[int]]], edges: list[str], label: str,
               markers: list[tuple[float, str]] = (), label_every: int = 1) -> Markup:
    """Vertical grouped bars: ``series`` of (name, colour, counts per bin); ``edges`` label the bin bounds;
    ``markers`` are (position 0–1 along the axis, text) dashed lines (percentiles), labelled above the plot."""
    bins = len(edges) - 1
    peak = max((c for _, _, counts in series for c in counts), default=0)
    top_count = 2 * math.ceil(_nice_max(peak) / 2) if peak > 1 else 2  # even: the middle gridline is a count
    left, right, top, bottom = 40, 16, 44 if markers else 28, 30
    width, height = 560, 240
    plot_w, plot_h = width - left - right, height - top - bottom
    body = []
    for i in range(3):
        v = top_count * i // 2
        y = top + plot_h - plot_h * i / 2
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#4b5563" font-size="11">'
                    f'{v}</text>')
    slot = plot_w / bins
    bar = (slot - 4) / max(1, len(series))
    for s, (name, colour, counts) in enumerate(series):
        for b, c in enumerate(counts):
            if not c:
                continue
            h = plot_h * c / top_count
            x = left + b * slot + 2 + s * bar
            body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar - 1, 1):.1f}" '
                        f'height="{h:.1f}" fill="{colour}"><title>{escape(name)} {escape(edges[b])}–'
                        f'{escape(edges[b + 1])}: {c}</title></rect>')
    for b in range(0, bins + 1, label_every):
        x = left + b * slot
        anchor = "end" if b == bins and len(edges[b]) > 4 else "middle"
        body.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" fill="#4b5563" '
                    f'font-size="11">{escape(edges[b])}</text>')
    for pos, text in markers:
        x = left + plot_w * min(max(pos, 0.0), 1.0)
        anchor, dx = ("end", -4) if pos > 0.6 else ("start", 4)
        body.append(f'<line x1="{x:.1f}" y1="{top - 14}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#111827" '
                    f'stroke-dasharray="4 3"/>')
        if text:
            body.append(f'<text x="{x + dx:.1f}" y="{top - 4}" text-anchor="{anchor}" fill="#111827" '
                        f'font-size="11">{escape(text)}</text>')
    lx = left
    for name, colour, _ in series:
        body.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{colour}"/>'
                    f'<text x="{lx + 14}" y="13" fill="#1f2937" font-size="11">{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    body.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#6b7280"/>')
    return _svg(width, height, body, label)


def _score_histogram(questions: list[dict[str, Any]]) -> Markup:
    series = []
    for name, colour in (("token_f1", "#2563eb"), ("groundedness", "#0d9488")):
        values = [v for q in questions if (v := _num(q["scores"].get(name))) is not None]
        if values:
            counts = [0] * 10
            for v in values:
                counts[min(9, max(0, int(v * 10)))] += 1
            series.append((f"{name} (n={len(values)})", colour, counts))
    if not series:
        return _empty("No question has a token_f1 or groundedness score.")
    return _histogram(series, [f"{i / 10:g}" for i in range(11)], "per-question scores")


def _latency_histogram(latencies: list[float], p50: float | None, p95: float | None) -> Markup:
    if not latencies:
        return _empty("No latency was measured.")
    top = _nice_max(max(latencies))
    bins = 10
    counts = [0] * bins
    for v in latencies:
        counts[min(bins - 1, max(0, int(v / top * bins)))] += 1
    unit, scale = ("s", 1000.0) if top >= 10_000 else ("ms", 1.0)
    edges = [f"{top * i / bins / scale:,.6g}" for i in range(bins + 1)]
    edges[-1] += f" {unit}"
    markers = [(v / top, f"{name} {_fmt('latency_ms', v)}") for name, v in (("p50", p50), ("p95", p95))
               if v is not None]
    if len(markers) == 2 and abs(markers[0][0] - markers[1][0]) < 0.3:  # one label for both: they would overlap
        markers = [(markers[0][0], ""), (markers[1][0], f"p50 {_fmt('latency_ms', p50)} · p95 "
                                                         f"{_fmt('latency_ms', p95)}")]
    return _histogram([(f"answers (n={len(latencies)})", "#7c3aed", counts)], edges, "latencies", markers,
                      label_every=2)


def _outcome_bars(counts: Counter[str]) -> Markup:
    total = sum(counts.values())
    if not total:
        return _empty("No question was scored.")
    names = list(OUTCOMES) + sorted(n for n in counts if n not in OUTCOMES)
    label_w, bar_w, row_h = 130, 340, 26
    width, height = label_w + bar_w + 90, row_h * len(names) + 6
    peak = max(counts.values())
    body = []
    for i, name in enumerate(names):
        c = counts.get(name, 0)
        y = 3 + i * row_h
        w = bar_w * c / peak if peak else 0
        body.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" fill="#1f2937">'
                    f'{escape(OUTCOME_LABELS.get(name, name))}</text>'
                    f'<rect x="{label_w}" y="{y + 4}" width="{max(w, 1.5 if c else 0):.1f}" height="{row_h - 8}" '
                    f'rx="2" fill="{OUTCOME_COLOURS.get(name, "#6b7280")}"/>'
                    f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" fill="#1f2937">{c} '
                    f'({100 * c / total:.0f}%)</text>')
    return _svg(width, height, body, "outcomes")


# ------------------------------------------------------------------------------------------------- the model
def _outcome(q: dict[str, Any]) -> str:
    outcome = _str(q.get("outcome"))
    if outcome in OUTCOMES:
        return outcome
    if q.get("error"):
        return "error"
    return outcome or "unknown"


def _question(q: dict[str, Any]) -> dict[str, Any]:
    """One question of the report with every field present and of the expected type."""
    scores = {k: v for k, v in _dict(q.get("scores")).items() if _num(v) is not None}
    latency = _num(q.get("latency_ms"))
    if q.get("error") and not latency:  # a failed question was never timed
        latency = None
    return {"id": _str(q.get("id")), "question": _str(q.get("question")),
            "tags": [_str(t) for t in _list(q.get("tags"))], "answerable": q.get("answerable"),
            "reference_answer": _str(q.get("reference_answer")),
            "reference_sources": [_str(s) for s in _list(q.get("reference_sources"))],
            "answer": _str(q.get("answer")), "found": q.get("found"),
            "citations": [_dict(c) for c in _list(q.get("citations"))],
            "retrieved": [_dict(h) for h in _list(q.get("retrieved"))],
            "sentences": [_dict(s) for s in _list(q.get("sentences"))],
            "scores": {k: float(v) for k, v in scores.items()}, "latency_ms": latency,
            "flags": [_dict(f) for f in _list(q.get("flags"))], "error": _str(q.get("error")),
            "outcome": _outcome(q), "index_version": _str(q.get("index_version"))}


def _first_relevant(q: dict[str, Any]) -> int | None:
    ranks = [_num(h.get("rank")) for h in q["retrieved"] if h.get("relevant")]
    ranks = [int(r) for r in ranks if r is not None]
    return min(ranks) if ranks else None


def _detail(q: dict[str, Any], lim: _Limits) -> dict[str, Any]:
    """What the script shows when a row opens, texts shortened to ``lim``. Hits and sentences are arrays (their
    keys would be a third of the page): hit = [rank, relevant, score, title, heading, document id, text];
    sentence = [sentence, support, supported, chunk id, evidence]."""
    hits = []
    for n, h in enumerate(q["retrieved"]):
        keep = n < lim.texts_of or bool(h.get("relevant"))
        hits.append([_str(h.get("rank")), int(bool(h.get("relevant"))), _num(h.get("score")),
                     _clip(h.get("title"), lim.meta), _clip(h.get("heading"), lim.meta),
                     _clip(h.get("document_id"), lim.meta),
                     _clip(" ".join(_str(h.get("text")).split()), lim.hit_text) if keep else None])
    return {
        "ref": _clip(q["reference_answer"], lim.answer), "refsrc": [_clip(s, lim.meta) for s in q["reference_sources"]],
        "answer": _clip(q["answer"], lim.answer), "found": q["found"], "answerable": q["answerable"],
        "cit": [{"n": _str(c.get("number")), "doc": _clip(c.get("document_id"), lim.meta),
                 "title": _clip(c.get("title"), lim.meta), "heading": _clip(c.get("heading"), lim.meta)}
                for c in q["citations"]],
        "hits": hits,
        "sents": [[_clip(s.get("sentence"), lim.answer), _num(s.get("support")), int(bool(s.get("supported"))),
                   _clip(s.get("chunk_id"), 24), _clip(" ".join(_str(s.get("evidence")).split()), lim.evidence)]
                  for s in q["sentences"]],
        "flags": [{"source": _clip(f.get("source"), lim.meta), "chunk": _clip(f.get("chunk_id"), 24),
                   "reasons": [_clip(r, 300) for r in _list(f.get("reasons"))]} for f in q["flags"]],
        "error": _clip(q["error"], 2000), "version": _clip(q["index_version"], 24),
    }


def _model(report: dict[str, Any]) -> dict[str, Any]:
    """Everything the template needs, from a report that may be old, partial or hostile."""
    run, the_set, options = _dict(report.get("run")), _dict(report.get("set")), _dict(report.get("options"))
    counts = _dict(the_set.get("counts"))
    k = options.get("k") if isinstance(options.get("k"), int) else 10
    metrics = {_str(n): _num(v) for n, v in _dict(report.get("metrics")).items()}
    deltas = _dict(report.get("deltas"))
    lower = {_str(n) for n in _list(report.get("lower_is_better"))}
    previous = report.get("previous") if isinstance(report.get("previous"), dict) else None
    prev_metrics = _dict(previous.get("metrics")) if previous else {}
    questions = [_question(_dict(q)) for q in _list(report.get("questions"))]

    try:
        names = headline({"options": {"k": k}, "metrics": metrics})
    except (KeyError, TypeError, AttributeError):
        names = []
    cards = []
    for name in names:
        value = metrics.get(name)
        before = _num(prev_metrics.get(name))
        cards.append({"name": name, "value": _fmt(name, value), "measured": value is not None,
                      "delta": _delta(name, deltas, lower), "lower": name in lower,
                      "previous": None if before is None else _fmt(name, before)})
    others = [{"name": n, "value": _fmt(n, v), "previous": _fmt(n, _num(prev_metrics.get(n))) if previous else "",
               "delta": _delta(n, deltas, lower)} for n, v in sorted(metrics.items()) if n not in names]

    gates = []
    for g in _list(report.get("gates")):
        g = _dict(g)
        metric = _str(g.get("metric"))
        gates.append({"gate": _str(g.get("gate")) or metric, "passed": g.get("passed") is True,
                      "value": _fmt(metric, _num(g.get("value"))), "reason": _str(g.get("reason"))})
    passed = report.get("passed")
    if gates and not isinstance(passed, bool):
        passed = all(g["passed"] for g in gates)

    suites = suite_views(report)
    # the suites' rates are charted in their own section, beside their gates: the bars are the question set's
    in_suites = {r.metric for s in suites for r in s.rates}
    outcome_counts = Counter(q["outcome"] for q in questions)
    present = {name for q in questions for name in q["scores"]}
    score_cols = [c.format(k=k) for c in SCORE_COLUMNS if c.format(k=k) in present][:MAX_SCORE_COLUMNS]
    order = sorted(range(len(questions)), key=lambda i: (
        FAILURES.index(questions[i]["outcome"]) if questions[i]["outcome"] in FAILURES else len(FAILURES), i))
    tags = Counter(t for q in questions for t in q["tags"])
    latencies = [v for v in (_num(x) for x in _list(report.get("latencies_ms"))) if v is not None and v >= 0]
    any_retrieved = any(q["retrieved"] for q in questions)
    rows = [{"i": i, "q": questions[i], "first_rel": _first_relevant(questions[i]),
             "scores": [(c, questions[i]["scores"].get(c)) for c in score_cols]} for i in order]
    return {
        "title": _str(the_set.get("name")) or "evaluation",
        "run": {"id": _str(run.get("id")) or "—", "index": (_str(run.get("index_version")) or "—")[:12],
                "index_full": _str(run.get("index_version")), "generator": _str(run.get("generator")) or "—",
                "embedder": _str(run.get("embedder")), "project": _str(run.get("project")),
                "when": _when(run.get("finished_at") or run.get("started_at")),
                "took": _duration(run.get("started_at"), run.get("finished_at")),
                "spec_hash": _str(run.get("spec_hash")) or "—", "git_commit": _str(run.get("git_commit")) or "—",
                "dataset_version": _str(run.get("dataset_version"))},
        "set": {"id": _str(the_set.get("id"))[:12],
                "questions": counts.get("questions") if isinstance(counts.get("questions"), int) else len(questions),
                "answerable": counts.get("answerable"), "unanswerable": counts.get("unanswerable")},
        "options": {"k": k, "families": ", ".join(_str(f) for f in _list(options.get("families"))) or "—",
                    "support_threshold": _str(options.get("support_threshold")) or "—",
                    "limit": options.get("limit")},
        "previous": None if previous is None else {"id": _str(previous.get("id")) or "—",
                                                   "when": _when(previous.get("started_at"))},
        "gates": gates, "passed": passed if gates else None,
        "missed": [g for g in gates if not g["passed"]],
        "cards": cards, "others": others, "score_cols": score_cols, "any_retrieved": any_retrieved,
        "rows": rows, "questions": questions, "outcome_counts": outcome_counts,
        "failures": sum(outcome_counts.get(o, 0) for o in FAILURES),
        "outcomes": [(o, OUTCOME_LABELS.get(o, o), outcome_counts[o]) for o in
                     list(OUTCOMES) + sorted(o for o in outcome_counts if o not in OUTCOMES) if outcome_counts[o]],
        "tags": sorted(tags.items()),
        "suites": suites,
        "charts": {"metrics": _metric_bars({n: v for n, v in metrics.items() if n not in in_suites}, prev_metrics,
                                           [_dict(g) for g in _list(report.get("gates"))], lower),
                   "scores": _score_histogram(questions),
                   "latency": _latency_histogram(latencies, metrics.get("latency_p50_ms"),
                                                 metrics.get("latency_p95_ms")),
                   "outcomes": _outcome_bars(outcome_counts)},
        "version": __version__,
    }


# ---------------------------------------------------------------------------------------------------- template
_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["fmt"] = _fmt
_ENV.filters["clip"] = _clip
_ENV.filters["marked"] = _marked
_ENV.filters["fmt_ms"] = lambda v: _fmt("latency_ms", v)
_ENV.globals["OUTCOME_LABELS"] = OUTCOME_LABELS

_TEMPLATE = _ENV.from_string("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src {{ style_hash }}; \
script-src {{ script_hash }}; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>flightdeck eval · {{ m.title }} · {{ 'no gates' if m.passed is none else ('PASSED' if m.passed else 'FAILED') }}\
</title>
<style>{{ css }}</style>
</head>
<body>
<main>
<header class="top">
  <div class="headline">
    <div>
      <p class="kicker">flightdeck eval</p>
      <h1>{{ m.title }}</h1>
      <p class="sub">{{ m.set.questions }} questions
        {%- if m.set.answerable is not none %} · {{ m.set.answerable }} answerable{% endif %}
        {%- if m.set.unanswerable is not none %} · {{ m.set.unanswerable }} unanswerable{% endif %}
        {%- if m.options.limit %} · first {{ m.options.limit }} only{% endif %}</p>
    </div>
    {% if m.passed is none %}
    <div class="badge none" title="the spec sets no evaluation.gates">no gates</div>
    {% elif m.passed %}
    <div class="badge pass">PASSED</div>
    {% else %}
    <div class="badge fail">FAILED</div>
    {% endif %}
  </div>
  <dl class="facts">
    <div><dt>run</dt><dd><code>{{ m.run.id }}</code></dd></div>
    <div><dt>index</dt><dd><code title="{{ m.run.index_full }}">{{ m.run.index }}</code></dd></div>
    <div><dt>generator</dt><dd>{{ m.run.generator }}</dd></div>
    {% if m.run.embedder %}<div><dt>embedder</dt><dd>{{ m.run.embedder }}</dd></div>{% endif %}
    <div><dt>finished</dt><dd>{{ m.run.when }}{% if m.run.took %} <span class="muted">({{ m.run.took }})</span>\
{% endif %}</dd></div>
    <div><dt>compared with</dt><dd>{% if m.previous %}<code>{{ m.previous.id }}</code> <span class="muted">\
({{ m.previous.when }})</span>{% else %}<span class="muted">no previous run</span>{% endif %}</dd></div>
  </dl>
  {% if m.gates %}
  <section class="gates {{ 'ok' if m.passed else 'missed' }}" aria-label="gates">
    {% if m.missed %}
    <p><strong>{{ m.missed | length }} of {{ m.gates | length }} gate{{ 's' if m.gates | length != 1 }} missed:
    </strong></p>
    {% else %}
    <p><strong>All {{ m.gates | length }} gate{{ 's' if m.gates | length != 1 }} passed.</strong></p>
    {% endif %}
    <ul class="gate-list">
    {% for g in m.gates %}
      <li class="{{ 'pass' if g.passed else 'fail' }}"><span class="mark">{{ '✓' if g.passed else '✗' }}</span>
        <code>{{ g.gate }}</code>{% if g.value != '—' %} <span class="muted">measured</span> {{ g.value }}\
{% elif g.reason %} <span class="reason">{{ g.reason }}</span>{% endif %}</li>
    {% endfor %}
    </ul>
  </section>
  {% endif %}
</header>

<section aria-label="headline metrics">
  <h2>Metrics</h2>
  {% if m.cards %}
  <div class="cards">
  {% for c in m.cards %}
    <div class="card{{ '' if c.measured else ' unmeasured' }}">
      <div class="name">{{ c.name }}{% if c.lower %} <span class="muted" title="lower is better">↓</span>{% endif %}\
</div>
      <div class="value"{% if not c.measured %} title="not measured"{% endif %}>{{ c.value }}</div>
      {% if c.delta %}
      <div class="delta {{ c.delta.cls }}" title="{{ c.delta.word }} than the previous run ({{ c.previous }})">\
{{ c.delta.text }} <span class="word">{{ c.delta.word }}</span></div>
      {% elif m.previous and c.measured %}
      <div class="delta none">no previous value</div>
      {% elif not m.previous %}
      <div class="delta none">no previous run</div>
      {% else %}
      <div class="delta none">&nbsp;</div>
      {% endif %}
    </div>
  {% endfor %}
  </div>
  {% else %}
  <p class="muted">No headline metric in this report.</p>
  {% endif %}
  {% if m.others %}
  <details class="all-metrics">
    <summary>{{ m.others | length }} more metric{{ 's' if m.others | length != 1 }}</summary>
    <div class="scroll"><table class="plain">
      <thead><tr><th>metric</th><th class="num">value</th>{% if m.previous %}<th class="num">previous</th>\
<th class="num">Δ</th>{% endif %}</tr></thead>
      <tbody>
      {% for o in m.others %}
        <tr><td>{{ o.name }}</td><td class="num"{% if o.value == '—' %} title="not measured"{% endif %}>{{ o.value }}\
</td>{% if m.previous %}<td class="num">{{ o.previous }}</td><td class="num {{ o.delta.cls if o.delta else '' }}">\
{{ o.delta.text if o.delta else '' }}</td>{% endif %}</tr>
      {% endfor %}
      </tbody>
    </table></div>
  </details>
  {% endif %}
</section>

{% if m.suites %}
<section aria-label="validation suites" id="suites">
  <h2>Validation suites <span class="muted count">{{ m.suites | length }}</span></h2>
  {% for s in m.suites %}
  <article class="suite {{ s.status or 'nogate' }}" aria-label="{{ s.title }}">
    <div class="suite-head">
      <h3>{{ s.title }} <code class="muted">{{ s.name | clip(60) }}</code></h3>
      {% if s.status == 'missed' %}<span class="suite-badge fail">gate missed</span>
      {% elif s.status == 'passed' %}<span class="suite-badge pass">gates passed</span>
      {% else %}<span class="suite-badge none" title="no gate in evaluation.gates names a metric of this suite">\
no gate</span>{% endif %}
    </div>
    {% if s.summary %}<p class="suite-summary">{{ s.summary | clip(1500) }}</p>{% endif %}
    {% if s.rates %}
    <div class="scroll"><table class="plain rates">
      <thead><tr><th>rate</th><th class="num">value</th><th class="num">cases</th><th>gate</th></tr></thead>
      <tbody>
      {% for r in s.rates %}
        <tr class="{{ 'missed' if r.status == 'missed' else '' }}">
          <td>{% if r.label %}{{ r.label }} {% endif %}<code class="metric">{{ r.metric | clip(60) }}</code></td>
          <td class="num value"{% if r.value is none %} title="not measured"{% endif %}>{{ r.text }}</td>
          <td class="num">{{ r.cases }}</td>
          <td class="gate-cell">{% for g in r.gates %}<div class="{{ 'pass' if g.passed else 'fail' }}">\
<span class="mark">{{ '✓' if g.passed else '✗' }}</span> <code>{{ g.gate }}</code>\
{% if not g.passed and g.reason and g.value is none %} <span class="reason">{{ g.reason }}</span>{% endif %}</div>\
{% else %}<span class="muted">—</span>{% endfor %}</td>
        </tr>
      {% endfor %}
      </tbody>
    </table></div>
    {% endif %}
    {% if s.groups %}
    <h4>Refusal accuracy by tag group</h4>
    <div class="scroll"><table class="plain groups">
      <thead><tr><th>group</th><th class="num">questions</th><th class="num">accuracy</th>\
<th class="num">answered</th></tr></thead>
      <tbody>
      {% for g in s.groups %}<tr><td>{{ g.group | clip(80) }}</td><td class="num">{{ '' if g.questions is none \
else g.questions }}</td><td class="num">{{ '—' if g.accuracy is none else '%.3f' | format(g.accuracy) }}</td>\
<td class="num">{{ '—' if g.answered_rate is none else '%.3f' | format(g.answered_rate) }}</td>\
</tr>{% endfor %}
      </tbody>
    </table></div>
    {% endif %}
    {% if s.findings %}
    <details class="findings-box"{% if s.status == 'missed' or s.findings | length <= 5 %} open{% endif %}>
      <summary><strong>{{ s.findings | length }} offending case{{ 's' if s.findings | length != 1 }}</strong>
        <span class="muted">· {{ s.finding_label }}</span></summary>
      <ol class="findings">
      {% for f in s.findings[:max_findings] %}
        <li>
          <div class="finding-head"><code>{{ f.id | clip(80) }}</code>{% if f.kind %} <span class="tag">\
{{ f.kind | clip(40) }}</span>{% endif %} <span class="what">{{ f.what | clip(400) }}</span>\
{% if f.note %} <span class="muted">· {{ f.note | clip(300) }}</span>{% endif %}</div>
          <dl class="finding-texts">
          {% for name, text in f.texts %}
            <div><dt>{{ name }}</dt><dd class="box{{ ' empty' if not text }}">{% if not text %}(empty)\
{% elif name == 'answer' and f.leaked %}{{ text | marked(f.leaked, alim) }}{% else %}{{ text | clip(alim) }}\
{% endif %}</dd></div>
          {% endfor %}
          </dl>
        </li>
      {% endfor %}
      </ol>
      {% if s.findings | length > max_findings %}<p class="muted note">{{ s.findings | length - max_findings }} \
more in report.json.</p>{% endif %}
    </details>
    {% elif s.cases %}
    <p class="muted">No offending case among {{ s.cases }}.</p>
    {% endif %}
    {% if s.errors %}
    <details class="errors-box">
      <summary>{{ s.errors | length }} case{{ 's' if s.errors | length != 1 }} could not be measured</summary>
      <ul>{% for f in s.errors[:max_findings] %}<li><code>{{ f.id | clip(80) }}</code> <span class="reason">\
{{ f.what | clip(400) }}</span></li>{% endfor %}</ul>
    </details>
    {% endif %}
  </article>
  {% endfor %}
</section>
{% endif %}

<section aria-label="charts">
  <h2>Charts</h2>
  <div class="charts">
    <figure><figcaption>Metrics (0–1){% if m.previous %} · <span class="key tick"></span> previous run{% endif %}\
{% if m.gates %} · <span class="key gate"></span> gate{% endif %}</figcaption>{{ m.charts.metrics }}</figure>
    <figure><figcaption>Outcomes</figcaption>{{ m.charts.outcomes }}</figure>
    <figure><figcaption>Per-question scores</figcaption>{{ m.charts.scores }}</figure>
    <figure><figcaption>Answer latency</figcaption>{{ m.charts.latency }}</figure>
  </div>
</section>

<section aria-label="questions">
  <h2>Questions <span class="muted count">{{ m.questions | length }}{% if m.failures %} · \
<span class="bad-text">{{ m.failures }} failure{{ 's' if m.failures != 1 }}</span>{% endif %}</span></h2>
  {% if shortened %}<p class="muted note">Long texts are shortened here to keep this file small; report.json has \
them in full.</p>{% endif %}
  <div class="controls">
    <label>Filter <input id="filter" type="search" placeholder="question, answer or id" autocomplete="off"></label>
    <label>Outcome <select id="outcome">
      <option value="">all</option>
      {% if m.failures %}<option value="failures">failures ({{ m.failures }})</option>{% endif %}
      {% for value, label, n in m.outcomes %}<option value="{{ value }}">{{ label }} ({{ n }})</option>{% endfor %}
    </select></label>
    {% if m.tags %}
    <label>Tag <select id="tag">
      <option value="">all</option>
      {% for tag, n in m.tags %}<option value="{{ tag }}">{{ tag }} ({{ n }})</option>{% endfor %}
    </select></label>
    {% endif %}
    <button type="button" id="reset-order" title="failures first, then the set's order">default order</button>
    <button type="button" id="expand-all">expand shown</button>
    <button type="button" id="collapse-all">collapse all</button>
    <span id="shown" class="muted" aria-live="polite">{{ m.questions | length }} of {{ m.questions | length }} shown\
</span>
  </div>
  <noscript><p class="muted">Filtering, sorting and the details of each question need JavaScript.</p></noscript>
  <div class="scroll table-wrap">
  <table id="questions" class="questions">
    <thead><tr>
      <th class="toggle-col"><span class="sr">details</span></th>
      <th>id</th><th class="qcol">question</th><th>outcome</th>
      {% if m.any_retrieved %}<th class="num"><button type="button" class="sort" data-sort="first_rel" \
title="rank of the first relevant hit (lower is better)">1st rel.</button></th>{% endif %}
      {% for c in m.score_cols %}<th class="num"><button type="button" class="sort" data-sort="{{ c }}">{{ c }}\
</button></th>{% endfor %}
      <th class="num"><button type="button" class="sort" data-sort="latency">latency</button></th>
    </tr></thead>
    {% for r in m.rows %}
    <tbody data-i="{{ r.i }}" data-order="{{ loop.index0 }}" class="{{ r.q.outcome }}">
      <tr class="row">
        <td class="toggle-col"><button type="button" class="toggle" aria-expanded="false" \
aria-label="show details of {{ r.q.id | clip(40) }}">▸</button></td>
        <td class="id"><code>{{ r.q.id | clip(40) }}</code></td>
        <td class="qcol">{{ r.q.question | clip(qlimit) }}
          {% for t in r.q.tags %}<span class="tag">{{ t | clip(40) }}</span>{% endfor %}</td>
        <td><span class="outcome {{ r.q.outcome }}">{{ OUTCOME_LABELS.get(r.q.outcome, r.q.outcome) }}</span></td>
        {% if m.any_retrieved %}<td class="num{{ ' lo' if r.q.retrieved and r.first_rel is none }}">\
{{ r.first_rel if r.first_rel is not none else ('none' if r.q.retrieved else '—') }}</td>{% endif %}
        {% for c, v in r.scores %}<td class="num {{ '' if v is none else ('lo' if v < 0.2 else ('mid' if v < 0.5 \
else '')) }}">{{ '—' if v is none else '%.3f' | format(v) }}</td>{% endfor %}
        <td class="num">{{ '—' if r.q.latency_ms is none else (r.q.latency_ms | fmt_ms) }}</td>
      </tr>
    </tbody>
    {% endfor %}
  </table>
  </div>
  {% if not m.rows %}<p class="muted">No question in this report.</p>{% endif %}
</section>

<footer>
  <dl class="facts small">
    <div><dt>spec hash</dt><dd><code>{{ m.run.spec_hash }}</code></dd></div>
    <div><dt>git commit</dt><dd><code>{{ m.run.git_commit }}</code></dd></div>
    <div><dt>k</dt><dd>{{ m.options.k }}</dd></div>
    <div><dt>families</dt><dd>{{ m.options.families }}</dd></div>
    <div><dt>support threshold</dt><dd>{{ m.options.support_threshold }}</dd></div>
    {% if m.set.id %}<div><dt>set</dt><dd><code>{{ m.set.id }}</code></dd></div>{% endif %}
    {% if m.run.dataset_version %}<div><dt>dataset</dt><dd><code>{{ m.run.dataset_version | clip(24) }}</code>\
</dd></div>{% endif %}
    {% if m.run.project %}<div><dt>project</dt><dd>{{ m.run.project }}</dd></div>{% endif %}
  </dl>
  <p class="muted">generated by flightdeck {{ m.version }}</p>
</footer>
</main>
<script type="application/json" id="data">{{ data }}</script>
<script>{{ js }}</script>
</body>
</html>
""")


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS, script and SVG; no network).

    Robust to old or partial reports: a missing field shows as "—". Long texts are shortened, step by step,
    until the page is under ~2 MB.
    """
    m = _model(report if isinstance(report, dict) else {})
    css, js = _static("report.css"), _static("report.js")
    lower = sorted({_str(n) for n in _list(_dict(report).get("lower_is_better"))})
    page = ""
    for step, lim in enumerate(_STEPS):
        data = {"questions": [{"id": q["id"], "question": _clip(q["question"], lim.question), "tags": q["tags"],
                               "outcome": q["outcome"], "latency": q["latency_ms"], "first_rel": _first_relevant(q),
                               "scores": q["scores"], **_detail(q, lim)} for q in m["questions"]],
                "score_cols": m["score_cols"], "lower_is_better": lower}
        page = _TEMPLATE.render(m=m, css=Markup(css), js=Markup(js), data=_script_json(data),
                                style_hash=Markup(_csp_hash(css)), script_hash=Markup(_csp_hash(js)),
                                qlimit=lim.question, alim=lim.answer, max_findings=MAX_FINDINGS,
                                shortened=step > 0)
        if len(page.encode("utf-8")) <= MAX_BYTES:
            break
    return page
