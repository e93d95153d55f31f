"""The demo's evaluation files are what the issue and the README say: a hand-written set of at least 60 questions
from the tutorial, HOWTO and library pages (at least 10 that the pages do not answer), and 100 hand-labelled answers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from flightdeck.evaluation.sets import load_eval_set

pytestmark = pytest.mark.unit
DEMO = Path(__file__).resolve().parents[2] / "examples" / "python-docs"


def test_the_demo_set_is_written_from_the_pages_it_names() -> None:
    s = load_eval_set(DEMO / "eval" / "questions.jsonl")
    assert s.counts["questions"] >= 60 and s.counts["unanswerable"] >= 10
    sources = Counter(src for q in s.questions for src in q.reference_sources)
    assert all((DEMO / "corpus" / src).is_file() for src in sources), sources
    assert not any(src.startswith("faq/") for src in sources)
    assert {src.split("/")[0] for src in sources} == {"tutorial", "howto", "library"}
    assert all(q.reference_answer and q.reference_sources for q in s.questions if q.answerable)


def test_the_judge_labels_are_100_answers_labelled_twice() -> None:
    rows = [json.loads(line) for line in (DEMO / "eval" / "judge-labels.jsonl").read_text().splitlines() if line]
    assert len(rows) == 100 and len({r["id"] for r in rows}) == 100
    assert all(isinstance(r["labels"]["correct"], bool) and isinstance(r["labels"]["faithful"], bool) for r in rows)
    assert {r["generator"].split(":")[0] for r in rows} == {"extractive", "llama_cpp"}
    assert all(r["question"] and r["note"] for r in rows)
