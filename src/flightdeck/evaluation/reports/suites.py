"""The validation suites of a report (``report["validations"]``: safety & prompt injection, bias & fairness…) as
every report shows them: per suite its name, its headline rates, the gates on its metrics, and the offending cases
(the attack and what got through, the pair whose answers differ).

The texts are kept as they came: answers and planted documents are untrusted, and each renderer makes them inert
for its own format (HTML escapes them, Markdown puts them in code spans, the terminal drops control characters).
Old, partial or odd reports give what they can: a missing field is empty, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flightdeck.evaluation.reports.values import as_dict as _dict
from flightdeck.evaluation.reports.values import as_list as _list
from flightdeck.evaluation.reports.values import as_text as _str
from flightdeck.evaluation.reports.values import finite_number as _num

__all__ = ["SuiteView", "Finding", "Rate", "suite_views", "plain", "SUITE_TITLES"]

#: how each known suite is called in a report
SUITE_TITLES = {"safety_prompt_injection": "Safety & prompt injection",
                "bias_fairness": "Bias & fairness (counterfactual pairs)",
                "refusal_fairness": "Refusal fairness by group"}
#: the rates a suite shows, in this order, with what each measures (other metrics of a suite follow, unlabelled)
_RATES: dict[str, tuple[tuple[str, str], ...]] = {
    "safety_prompt_injection": (
        ("injection_success_rate", "attacks that got through (all)"),
        ("injection_success_rate_direct", "direct injection (the question attacks)"),
        ("injection_success_rate_indirect", "indirect injection (a planted document attacks)"),
        ("prompt_leak_rate", "system prompt leaked"),
        ("pii_leak_rate", "planted personal data leaked"),
        ("benign_false_refusal_rate", "benign look-alikes refused")),
    "bias_fairness": (
        ("counterfactual_answer_divergence", "answers differ (1 − token F1)"),
        ("counterfactual_answer_embedding_divergence", "answers differ (1 − cosine)"),
        ("counterfactual_retrieval_divergence", "retrieved chunks differ (1 − Jaccard)"),
        ("counterfactual_retrieval_rbo_divergence", "retrieved order differs (1 − RBO)"),
        ("counterfactual_refusal_gap", "pairs with exactly one refusal"),
        ("fairness_refusal_accuracy_gap", "refusal accuracy gap between tag groups"),
        ("counterfactual_pairs", "pairs compared")),
    "refusal_fairness": (("fairness_refusal_accuracy_gap", "refusal accuracy gap between tag groups"),),
}
#: the safety metric of each category, and how a reader calls the category
_SAFETY_CATEGORIES = {"direct": ("injection_success_rate_direct", "direct injection"),
                      "indirect": ("injection_success_rate_indirect", "indirect injection"),
                      "prompt_leak": ("prompt_leak_rate", "prompt leak"), "pii": ("pii_leak_rate", "PII leak"),
                      "benign": ("benign_false_refusal_rate", "benign false refusal")}
_COUNTS = frozenset({"counterfactual_pairs"})  # metrics that are counts, not rates
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def plain(text: Any, limit: int | None = None) -> str:
    """``text`` on one line, without control characters (no terminal escape sequence, no bidi override), and
    shortened to ``limit`` characters with an ellipsis."""
    one = " ".join(_CONTROL.sub(" ", "" if text is None else str(text)).split())
    if limit is not None and len(one) > limit:
        one = one[: max(0, limit - 1)].rstrip() + "…"
    return one


def format_rate(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if name in _COUNTS else f"{value:.3f}"


@dataclass
class Rate:
    """One headline metric of a suite: its value, the cases behind it (``2/20``), and the gates on it."""

    metric: str
    label: str
    value: float | None
    text: str
    cases: str = ""
    gates: list[dict[str, Any]] = field(default_factory=list)  # {gate, passed, value, reason}

    @property
    def status(self) -> str | None:
        """``missed`` when a gate on it was missed, ``passed`` when all passed, None when none names it."""
        if not self.gates:
            return None
        return "passed" if all(g["passed"] for g in self.gates) else "missed"


@dataclass
class Finding:
    """An offending case: its id, its kind (category, dimension), what went wrong, the texts that show it as
    ``(name, text)`` pairs (the attack, the answer…) and a short note (the planted document, the swapped words);
    ``error`` is set when the case could not be measured."""

    id: str
    kind: str
    what: str
    texts: list[tuple[str, str]] = field(default_factory=list)
    error: bool = False
    note: str = ""
    leaked: str = ""  # the text that got through (a canary, a link, PII), to be marked where the answer holds it


@dataclass
class SuiteView:
    """One suite as the reports show it."""

    name: str
    title: str
    summary: str
    cases: int
    rates: list[Rate]
    findings: list[Finding]  # the offending cases, the worst first
    finding_label: str  # what a finding is ("attacks that got through", "pairs that differ")
    errors: list[Finding]  # cases that could not be measured
    groups: list[dict[str, Any]] = field(default_factory=list)  # refusal accuracy by tag group (fairness)

    @property
    def gates(self) -> list[dict[str, Any]]:
        return [g for r in self.rates for g in r.gates]

    @property
    def status(self) -> str | None:
        """``missed``: a gate on one of its metrics was missed; ``passed``: every such gate passed; None: none."""
        gates = self.gates
        if not gates:
            return None
        return "passed" if all(g["passed"] for g in gates) else "missed"


def suite_views(report: dict[str, Any]) -> list[SuiteView]:
    """The suites of ``report`` (its ``validations``), each with the gates of ``report["gates"]`` on its metrics; a
    suite with a missed gate first, the others in the order they ran."""
    gates = [_dict(g) for g in _list(_dict(report).get("gates"))]
    views = [_view(_dict(s), gates) for s in _list(_dict(report).get("validations"))]
    return sorted(views, key=lambda v: v.status != "missed")


def _view(suite: dict[str, Any], gates: list[dict[str, Any]]) -> SuiteView:
    name = _str(suite.get("name")) or "validation"
    metrics = {_str(k): _num(v) for k, v in _dict(suite.get("metrics")).items()}
    cases = [_dict(c) for c in _list(suite.get("cases"))]
    known = _RATES.get(name, ())
    order = [(m, label) for m, label in known if m in metrics] + [(m, "") for m in metrics
                                                                   if m not in dict(known)]
    counts = _safety_counts(cases) if name == "safety_prompt_injection" else {}
    rates = []
    for metric, label in order:
        on = [{"gate": _str(g.get("gate")) or metric, "passed": g.get("passed") is True,
               "value": _num(g.get("value")), "reason": _str(g.get("reason"))}
              for g in gates if _str(g.get("metric")) == metric]
        rates.append(Rate(metric, label, metrics[metric], format_rate(metric, metrics[metric]),
                          counts.get(metric, ""), on))
    if name == "safety_prompt_injection":
        findings, errors, label = _safety_findings(cases)
        groups: list[dict[str, Any]] = []
    elif name in ("bias_fairness", "refusal_fairness"):
        findings, errors, label = _fairness_findings(cases)
        groups = _groups(cases)
    else:
        findings, errors, label = _generic_findings(cases)
        groups = []
    measured = len(cases) - len(groups)  # a group's row (refusal accuracy by tag) is not a case that was asked
    return SuiteView(name, SUITE_TITLES.get(name, name.replace("_", " ").capitalize()), _str(suite.get("summary")),
                     measured, rates, findings, label, errors, groups)


def _safety_counts(cases: list[dict[str, Any]]) -> dict[str, str]:
    """``successes/measured`` per safety metric (a case that does not apply or failed is not measured)."""
    tally: dict[str, list[int]] = {}
    for c in cases:
        category = _str(c.get("category"))
        if c.get("success") is None or category not in _SAFETY_CATEGORIES:
            continue
        metrics = [_SAFETY_CATEGORIES[category][0]] + (["injection_success_rate"] if category != "benign" else [])
        for metric in metrics:
            t = tally.setdefault(metric, [0, 0])
            t[0] += c.get("success") is True
            t[1] += 1
    return {m: f"{hit}/{n}" for m, (hit, n) in tally.items()}


def _safety_findings(cases: list[dict[str, Any]]) -> tuple[list[Finding], list[Finding], str]:
    order = list(_SAFETY_CATEGORIES)
    found, errors = [], []
    for c in sorted(cases, key=lambda c: order.index(c["category"]) if c.get("category") in order else len(order)):
        category = _str(c.get("category"))
        kind = _SAFETY_CATEGORIES.get(category, ("", category or "case"))[1]
        if c.get("error"):
            errors.append(Finding(_str(c.get("id")), kind, _str(c.get("error")),
                                  [("attack" if category != "benign" else "question", _str(c.get("question")))],
                                  error=True))
            continue
        if c.get("success") is not True:
            continue
        note = ""
        if c.get("planted_doc"):
            rank = c.get("planted_rank")
            note = f"planted document {_str(c.get('planted_doc'))}, " + (
                f"retrieved at rank {rank}" if isinstance(rank, int) else "not retrieved")
        texts = [("question" if category == "benign" else "attack", _str(c.get("question"))),
                 ("answer", _str(c.get("answer")))]
        found.append(Finding(_str(c.get("id")), kind, _str(c.get("why")), texts, note=note,
                             leaked="" if category == "benign" else _quoted(_str(c.get("why")))))
    return found, errors, "attacks that got through and benign questions refused"


def _quoted(why: str) -> str:
    """The text a detector quoted in its reason (``canary 'CANARY-X' in the answer``), or ""."""
    match = re.search(r"'([^']+)'|\"([^\"]+)\"", why)
    return (match.group(1) or match.group(2)) if match else ""


def _fairness_findings(cases: list[dict[str, Any]]) -> tuple[list[Finding], list[Finding], str]:
    """The pairs where the person made a difference: one of the two refused first, then the answers that differ
    most (by 1 − token F1); pairs whose answers do not differ are not findings."""
    pairs = [c for c in cases if c.get("kind", "pair") == "pair" and ("original" in c or "counterfactual" in c)]
    errors = [Finding(_str(c.get("id")), _str(c.get("dimension")) or "pair", _str(c.get("error")),
                      [("question", _str(c.get("original"))), ("counterfactual", _str(c.get("counterfactual")))],
                      error=True) for c in pairs if c.get("error")]
    scored = [c for c in pairs if not c.get("error")]

    def severity(c: dict[str, Any]) -> tuple[bool, float]:
        return bool(c.get("refusal_gap")), _num(c.get("answer_divergence")) or 0.0

    found = []
    for c in sorted((c for c in scored if severity(c) > (False, 0.0)), key=severity, reverse=True):
        refused = _list(c.get("refused"))
        divergence = _num(c.get("answer_divergence"))
        if c.get("refusal_gap"):
            which = "the counterfactual" if len(refused) == 2 and refused[1] else "the original"
            what = f"only {which} was refused"
        else:
            what = f"answers differ: {format_rate('', divergence)} (1 − token F1)"
        swaps = ", ".join(f"{_str(a)} → {_str(b)}" for a, b in (s for s in _list(c.get("swaps")) if len(s) == 2))
        found.append(Finding(_str(c.get("id")), _str(c.get("dimension")) or "pair", what,
                             [("question", _str(c.get("original"))), ("answer", _str(c.get("answer"))),
                              ("counterfactual", _str(c.get("counterfactual"))),
                              ("its answer", _str(c.get("counterfactual_answer")))],
                             note=f"swapped {swaps}" if swaps else ""))
    return found, errors, "pairs where the person changed the answer"


def _groups(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"group": _str(c.get("group")), "questions": c.get("questions") if isinstance(c.get("questions"), int)
             else None, "accuracy": _num(c.get("accuracy")), "answered_rate": _num(c.get("answered_rate"))}
            for c in cases if c.get("kind") == "refusal_group" or ("group" in c and "accuracy" in c)]


def _generic_findings(cases: list[dict[str, Any]]) -> tuple[list[Finding], list[Finding], str]:
    """A suite this module does not know: a case is a finding when it says it succeeded (an attack) or did not
    pass; its question and answer are shown when it has them."""
    found, errors = [], []
    for n, c in enumerate(cases, 1):
        ident = _str(c.get("id") or c.get("name")) or f"case {n}"
        texts = [(k, _str(c.get(k))) for k in ("question", "answer") if c.get(k)]
        if c.get("error"):
            errors.append(Finding(ident, _str(c.get("category") or c.get("kind")), _str(c.get("error")), texts, True))
        elif c.get("success") is True or c.get("passed") is False:
            found.append(Finding(ident, _str(c.get("category") or c.get("kind")), _str(c.get("why") or c.get("reason")),
                                 texts))
    return found, errors, "cases that failed"
