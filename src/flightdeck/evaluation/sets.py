"""Evaluation sets: JSONL files of questions with what a right answer looks like, versioned by content hash.

One line per question::

    {"id": "py-001", "question": "…", "reference_answer": "…", "reference_sources": ["library/bisect.html"],
     "answerable": true, "tags": ["library", "bisect"]}

Only ``question`` is required. ``reference_sources`` name documents (a path inside a source, matched against the
end of each hit's document id or source URI); ``reference_chunks`` name chunk ids instead (exact, but tied to one
chunking). ``answerable`` defaults to true when a reference is given and false when there is none. A bad line is
reported with the file and line number; every bad line is reported, not only the first.

:func:`store_set` keeps the set's canonical JSONL in the workspace's artifact store and a row in ``eval_sets``,
so a run says exactly which questions it scored (its id is the sha256 of that canonical text).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from flightdeck.errors import FlightdeckError

__all__ = ["EvalQuestion", "EvalSet", "load_eval_set", "store_set", "EvalSetError", "read_jsonl_questions", "hashed"]

T = TypeVar("T")

_KNOWN = {"id", "question", "reference_answer", "reference_sources", "reference_chunks", "answerable", "tags"}
MAX_QUESTION_CHARS = 4000


class EvalSetError(FlightdeckError):
    """An evaluation set that cannot be read: every problem with its file and line."""


@dataclass(frozen=True)
class EvalQuestion:
    """One question of a set and what a right answer looks like."""

    id: str
    question: str
    reference_answer: str = ""
    reference_sources: tuple[str, ...] = ()
    reference_chunks: tuple[str, ...] = ()
    answerable: bool = True
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @property
    def has_references(self) -> bool:
        return bool(self.reference_sources or self.reference_chunks)


@dataclass(frozen=True)
class EvalSet:
    """A named, hashed list of questions."""

    name: str
    path: str
    questions: tuple[EvalQuestion, ...]
    sha256: str = field(default="")

    def canonical(self) -> str:
        """The set as JSONL with sorted keys: what the hash covers and the workspace keeps."""
        return "".join(json.dumps(q.to_dict(), sort_keys=True, ensure_ascii=False) + "\n" for q in self.questions)

    @property
    def counts(self) -> dict[str, Any]:
        tags = Counter(t for q in self.questions for t in q.tags)
        answerable = sum(q.answerable for q in self.questions)
        return {"questions": len(self.questions), "answerable": answerable,
                "unanswerable": len(self.questions) - answerable, "tags": dict(sorted(tags.items()))}


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{key} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _question(obj: Any, line: int) -> EvalQuestion:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(obj) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; a question has {', '.join(sorted(_KNOWN))}")
    text = obj.get("question")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("question is missing or empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValueError(f"question is longer than {MAX_QUESTION_CHARS} characters")
    reference = obj.get("reference_answer") or ""
    if not isinstance(reference, str):
        raise ValueError("reference_answer must be a string")
    sources = _strings(obj.get("reference_sources"), "reference_sources")
    chunks = _strings(obj.get("reference_chunks"), "reference_chunks")
    answerable = obj.get("answerable")
    if answerable is None:
        answerable = bool(reference.strip() or sources or chunks)
    elif not isinstance(answerable, bool):
        raise ValueError("answerable must be true or false")
    if not answerable and (reference.strip() or sources or chunks):
        raise ValueError("an unanswerable question has no reference_answer, reference_sources or reference_chunks")
    qid = obj.get("id", f"line-{line}")
    if not isinstance(qid, str | int) or not str(qid).strip():
        raise ValueError("id must be a non-empty string")
    return EvalQuestion(str(qid).strip(), text.strip(), reference.strip(), sources, chunks, answerable,
                        _strings(obj.get("tags"), "tags"))


def read_jsonl_questions(path: Path, parse: Callable[[Any, int], tuple[EvalQuestion, T]], *, missing: str,
                         empty: str) -> list[tuple[EvalQuestion, T]]:
    """Each line of a JSONL file parsed by ``parse(obj, line)`` into a question (and what else it carries).

    Blank lines are skipped; a line that is not JSON, that ``parse`` refuses (ValueError) or whose question id is
    taken is a problem, and :class:`EvalSetError` lists every problem with file:line. ``missing`` and ``empty`` are
    what to say when the file is not there or holds nothing.
    """
    if not path.is_file():
        raise EvalSetError(f"{path}: {missing}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise EvalSetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    problems: list[str] = []
    items: list[tuple[EvalQuestion, T]] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            q, extra = parse(json.loads(raw), n)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{n}: not JSON ({exc.msg}, column {exc.colno})")
            continue
        except ValueError as exc:
            problems.append(f"{path}:{n}: {exc}")
            continue
        if q.id in seen:
            problems.append(f"{path}:{n}: id {q.id!r} is already used on line {seen[q.id]}")
            continue
        seen[q.id] = n
        items.append((q, extra))
    if problems:
        shown = problems[:20] + ([f"… and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise EvalSetError(f"{path}: {len(problems)} bad line(s):\n  " + "\n  ".join(shown))
    if not items:
        raise EvalSetError(f"{path}: {empty}")
    return items


def hashed(eval_set: EvalSet) -> str:
    """The sha256 of the set's canonical JSONL: its id."""
    return hashlib.sha256(eval_set.canonical().encode()).hexdigest()


def load_eval_set(path: str | Path, name: str | None = None) -> EvalSet:
    """Read a JSONL evaluation set; :class:`EvalSetError` lists every bad line (file:line: what is wrong)."""
    path = Path(path)
    items = read_jsonl_questions(
        path, lambda obj, n: (_question(obj, n), None),
        missing="evaluation set not found; give a JSONL file of questions (one JSON object per line with at least "
                "a \"question\")",
        empty="no questions; write one JSON object per line with at least a \"question\"")
    unhashed = EvalSet(name or path.stem, str(path), tuple(q for q, _ in items))
    return EvalSet(unhashed.name, unhashed.path, unhashed.questions, hashed(unhashed))


def store_set(workspace: Any, eval_set: EvalSet) -> str:
    """Keep the set in the workspace (artifact + ``eval_sets`` row, once per content) and return its id."""
    from sqlalchemy import select

    from flightdeck.workspace.schema import eval_sets

    with workspace.engine.begin() as conn:
        if conn.execute(select(eval_sets.c.id).where(eval_sets.c.id == eval_set.sha256)).first() is None:
            artifact = workspace.artifacts.put_bytes(eval_set.canonical().encode())
            conn.execute(eval_sets.insert().values(
                id=eval_set.sha256, name=eval_set.name, path=eval_set.path, created_at=time.time(),
                question_count=len(eval_set.questions), counts=eval_set.counts, artifact=artifact))
    return eval_set.sha256
