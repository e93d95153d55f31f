"""Agent task suites: questions an agent answers with its tools, each with a mechanical check of the answer, and the
runner that scores a project's agent on them (success, steps, tool calls, tokens, seconds per task).

One task a line::

    {"id": "both-01", "question": "When does Python 3.11 reach its end of life, and which module creates virtual
     environments?", "needs": ["docs", "sql"], "check": {"contains_all": ["2027", "venv"]}}

``needs`` names what the answer takes (free labels such as ``docs`` or ``sql``): the report gives the success rate
for each combination, and, given which tools serve which need, whether the agent called them. ``check`` holds one
or more conditions, all of which must hold, compared without regard to case on the answer with its whitespace
collapsed:

- ``contains_any``: one of these strings is in the answer; ``contains_all``: each of them is;
  ``contains_none``: none of them is (a wrong alternative named beside the right one);
- ``regex``: a regular expression (or a list of them, each) found in the answer;
- ``cites_document``: the answer cites a source from this document (a path such as ``tutorial/venv.html``, matched
  against the end of the cited source's document id or URI; a list: any of them). Citations need a model that
  writes them, so the report also gives the answer checks alone (``answer_correct_rate``).

A task succeeds when the run ended ``answered`` and every condition holds. The checks are strings, not a judge: a
suite gives a yardstick that does not move when the model behind the agent changes, so that a stronger model
behind an OpenAI-compatible server shows its gain with no code change.

This module imports no facade or model: :func:`run_agent_tasks` is handed the project (anything with
``run_agent(question) -> AgentRun``).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.sets import EvalQuestion, read_jsonl_questions

__all__ = ["AgentCheck", "AgentTask", "AgentTaskResult", "AgentTaskReport", "load_agent_tasks", "check_answer",
           "score_run", "summarize", "run_agent_tasks", "needs_key"]

_TASK_KEYS = {"id", "question", "needs", "check", "adapted_from"}
_CHECK_KEYS = ("contains_any", "contains_all", "contains_none", "regex", "cites_document")
_NEED = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class AgentCheck:
    """What a right answer holds (see the module's docstring); an empty tuple is a condition not asked for."""

    contains_any: tuple[str, ...] = ()
    contains_all: tuple[str, ...] = ()
    contains_none: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    cites_document: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in asdict(self).items() if v}


@dataclass(frozen=True)
class AgentTask:
    """One task of a suite."""

    id: str
    question: str
    needs: tuple[str, ...]
    check: AgentCheck
    adapted_from: str = ""  # the evaluation set question it was taken from, if any

    @property
    def needs_key(self) -> str:
        return needs_key(self.needs)


def needs_key(needs: Sequence[str]) -> str:
    """The group a task is reported in: its needs, sorted, joined with ``+`` (``docs+sql``)."""
    return "+".join(sorted(set(needs)))


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"check.{key} must be a non-empty string or a non-empty list of non-empty strings")
    return tuple(v.strip() for v in value)


def _check(value: Any) -> AgentCheck:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"check must be a JSON object with at least one of {', '.join(_CHECK_KEYS)}")
    unknown = sorted(set(value) - set(_CHECK_KEYS))
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; the checks are {', '.join(_CHECK_KEYS)}")
    parts = {key: _strings(value[key], key) for key in _CHECK_KEYS if key in value}
    for pattern in parts.get("regex", ()):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"check.regex {pattern!r} is not a regular expression: {exc}") from exc
    if set(parts) == {"cites_document"}:
        raise ValueError("check needs a condition on the answer's text besides cites_document (contains_any, "
                         "contains_all, contains_none or regex)")
    return AgentCheck(**parts)


def _task(obj: Any, line: int) -> tuple[EvalQuestion, AgentTask]:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(obj) - _TASK_KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; a task has {', '.join(sorted(_TASK_KEYS))}")
    tid = obj.get("id")
    if not isinstance(tid, str) or not tid.strip():
        raise ValueError("id is missing or not a non-empty string")
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question is missing or empty")
    needs = obj.get("needs")
    if not isinstance(needs, list) or not needs or not all(isinstance(n, str) and _NEED.match(n) for n in needs):
        raise ValueError("needs must be a non-empty list of lower-case names such as [\"docs\", \"sql\"]")
    if "check" not in obj:
        raise ValueError("check is missing: say what a right answer holds, e.g. {\"contains_any\": [\"2027\"]}")
    adapted = obj.get("adapted_from", "")
    if not isinstance(adapted, str):
        raise ValueError("adapted_from must be a string")
    task = AgentTask(tid.strip(), question.strip(), tuple(dict.fromkeys(needs)), _check(obj["check"]), adapted)
    return EvalQuestion(task.id, task.question), task


def load_agent_tasks(path: str | Path) -> list[AgentTask]:
    """Read a JSONL task suite; :class:`~flightdeck.evaluation.sets.EvalSetError` lists every bad line
    (file:line: what is wrong), a task id used twice included."""
    items = read_jsonl_questions(
        Path(path), _task,
        missing="agent task suite not found; give a JSONL file of tasks (one JSON object per line with id, question, "
                "needs and check)",
        empty="no tasks; write one JSON object per line with id, question, needs and check")
    return [task for _, task in items]


# scoring -----------------------------------------------------------------------------------------------------------
def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _cites(run: Any, document: str) -> bool:
    want = "/" + document.strip("/").casefold()
    for cited in getattr(run, "citations", None) or ():
        for key in ("document_id", "source_uri"):
            value = str(cited.get(key) or "").casefold()
            if value and ("/" + value.lstrip("/")).endswith(want):
                return True
    return False


def check_answer(check: AgentCheck, answer: str) -> list[str]:
    """The conditions on the answer's text that ``answer`` fails, each in words (none: it passes)."""
    text = _fold(answer)
    failed: list[str] = []
    if check.contains_any and not any(_fold(s) in text for s in check.contains_any):
        failed.append(f"contains none of {list(check.contains_any)}")
    missing = [s for s in check.contains_all if _fold(s) not in text]
    if missing:
        failed.append(f"lacks {missing}")
    present = [s for s in check.contains_none if _fold(s) in text]
    if present:
        failed.append(f"contains {present}")
    failed += [f"does not match /{p}/" for p in check.regex if not re.search(p, text, re.IGNORECASE)]
    return failed


@dataclass
class AgentTaskResult:
    """How the agent did on one task."""

    id: str
    needs: list[str]
    success: bool
    answer_ok: bool  # the conditions on the answer's text hold (the run answered)
    cited_ok: bool | None  # it cites the document the task names; None: the task names none
    failed: list[str]  # why it did not succeed, in words
    status: str
    answer: str
    steps: int  # model turns
    tool_calls: int
    tools: list[str]  # the tools it called, in the order of their first call
    refused_calls: int  # calls a tool refused (bad arguments, SQL the checks refused…)
    invalid_replies: int  # turns whose reply was not a valid action
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    picked_tools: bool | None = None  # each need got a call of one of its tools; None: not known
    found_document: bool | None = None  # a search returned the document the task names; None: no document named
    stop_reason: str = ""
    trace_id: str | None = None
    error: str = ""  # the run could not be made (a FlightdeckError), not the model's answer
    calls: list[dict[str, Any]] = field(default_factory=list)  # each call: tool, arguments, ok, error (trimmed)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens}


def _offered(run: Any, document: str) -> bool:
    want = "/" + document.strip("/").casefold()
    return any(("/" + str(s.get(key) or "").casefold().lstrip("/")).endswith(want)
               for s in getattr(run, "sources", None) or () for key in ("document_id", "source_uri")
               if s.get(key))


def score_run(task: AgentTask, run: Any, *, needs_tools: Mapping[str, Collection[str]] | None = None
              ) -> AgentTaskResult:
    """Score an :class:`~flightdeck.agents.runtime.AgentRun` against ``task``. ``needs_tools`` maps a need to the
    tools that serve it (``{"docs": ["search_documents"], "sql": ["sql_query"]}``), for ``picked_tools``."""
    answered = run.status == "answered" and bool(run.answer.strip())
    failed = [] if answered else [f"not answered ({run.status}{': ' + run.stop_reason if run.stop_reason else ''})"]
    if answered:
        failed += check_answer(task.check, run.answer)
    answer_ok = not failed
    cited_ok = None
    if task.check.cites_document:
        cited_ok = answered and any(_cites(run, d) for d in task.check.cites_document)
        if not cited_ok:
            failed.append(f"cites no source of {list(task.check.cites_document)}")
    calls = [s for s in run.steps if s.kind in ("tool", "repeat", "error") and s.tool]
    tools = list(dict.fromkeys(s.tool for s in calls))
    picked = None
    if needs_tools is not None:
        picked = all(any(t in tools for t in needs_tools.get(need, ())) for need in task.needs)
    found = None
    if task.check.cites_document:
        found = any(_offered(run, d) for d in task.check.cites_document)
    return AgentTaskResult(
        task.id, list(task.needs), not failed, answer_ok, cited_ok, failed, run.status, run.answer,
        len(run.steps), run.tool_calls, tools, sum(1 for s in calls if s.kind == "tool" and not s.ok),
        sum(1 for s in run.steps if s.kind == "invalid"), int(run.usage.get("prompt_tokens", 0)),
        int(run.usage.get("completion_tokens", 0)), round(run.ms / 1000, 3), picked, found, run.stop_reason,
        getattr(run, "trace_id", None), calls=[{"tool": s.tool, "arguments": s.arguments, "ok": s.ok,
                                                "error": (s.error or "")[:200]} for s in calls])


def _failed_run(task: AgentTask, error: str, seconds: float) -> AgentTaskResult:
    return AgentTaskResult(task.id, list(task.needs), False, False, False if task.check.cites_document else None,
                           [f"the run failed: {error}"], "error", "", 0, 0, [], 0, 0, 0, 0, round(seconds, 3),
                           error=error)


# the report --------------------------------------------------------------------------------------------------------
def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def _median(values: Sequence[float]) -> float | None:
    return round(float(statistics.median(values)), 3) if values else None


def summarize(results: Sequence[AgentTaskResult]) -> dict[str, Any]:
    """The aggregates of a run of a suite: success overall and for each ``needs`` group, the answer checks alone,
    citations, answered and invalid-reply rates, tool choice, and median steps, tool calls, tokens and seconds."""
    n = len(results)
    groups: dict[str, list[AgentTaskResult]] = {}
    for r in results:
        groups.setdefault(needs_key(r.needs), []).append(r)
    cite = [r for r in results if r.cited_ok is not None]
    picked = [r for r in results if r.picked_tools is not None]
    found = [r for r in results if r.found_document is not None]
    turns = sum(r.steps for r in results)
    return {
        "tasks": n,
        "success_rate": _rate(sum(r.success for r in results), n),
        "by_needs": {key: {"tasks": len(rs), "success_rate": _rate(sum(r.success for r in rs), len(rs)),
                           "answer_correct_rate": _rate(sum(r.answer_ok for r in rs), len(rs))}
                     for key, rs in sorted(groups.items())},
        "answer_correct_rate": _rate(sum(r.answer_ok for r in results), n),
        "citation_rate": _rate(sum(bool(r.cited_ok) for r in cite), len(cite)),
        "answered_rate": _rate(sum(r.status == "answered" and bool(r.answer.strip()) for r in results), n),
        "invalid_reply_rate": _rate(sum(r.invalid_replies for r in results), turns),
        "picked_tools_rate": _rate(sum(bool(r.picked_tools) for r in picked), len(picked)),
        "found_document_rate": _rate(sum(bool(r.found_document) for r in found), len(found)),
        "refused_call_rate": _rate(sum(r.refused_calls for r in results), sum(r.tool_calls for r in results)),
        "statuses": {s: sum(r.status == s for r in results) for s in sorted({r.status for r in results})},
        "median_steps": _median([r.steps for r in results]),
        "median_tool_calls": _median([r.tool_calls for r in results]),
        "median_tokens": _median([r.tokens for r in results]),
        "median_seconds": _median([r.seconds for r in results]),
        "total_seconds": round(sum(r.seconds for r in results), 3),
        "tokens": sum(r.tokens for r in results),
    }


@dataclass
class AgentTaskReport:
    """Each task's result and the aggregates (:func:`summarize`)."""

    model: str
    results: list[AgentTaskResult]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "summary": self.summary, "results": [r.to_dict() for r in self.results]}


class AgentProject(Protocol):
    """What the runner needs of a project: its agent, run on one question."""

    def run_agent(self, question: str) -> Any:
        """An :class:`~flightdeck.agents.runtime.AgentRun`."""
        ...


def run_agent_tasks(project: AgentProject, tasks: Sequence[AgentTask], limit: int | None = None, *,
                    needs_tools: Mapping[str, Collection[str]] | None = None,
                    on_result: Callable[[AgentTaskResult], None] | None = None,
                    clock: Callable[[], float] = time.perf_counter) -> AgentTaskReport:
    """Run the first ``limit`` of ``tasks`` (all: None) through ``project.run_agent``, one at a time, and score each.

    A run the project cannot make (a :class:`~flightdeck.errors.FlightdeckError`: the model server down, a spec
    without tools) is recorded as a failed task with its error and the suite goes on; any other exception is a bug
    and is raised. ``on_result`` hears each task's result as it ends (a long suite can be followed and kept)."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1 (or None for every task)")
    chosen = list(tasks)[:limit] if limit is not None else list(tasks)
    results: list[AgentTaskResult] = []
    model = ""
    for task in chosen:
        t0 = clock()
        try:
            run = project.run_agent(task.question)
        except FlightdeckError as exc:
            result = _failed_run(task, f"{type(exc).__name__}: {exc}"[:500], clock() - t0)
        else:
            model = model or str(getattr(run, "model", ""))
            result = score_run(task, run, needs_tools=needs_tools)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return AgentTaskReport(model, results, summarize(results))

