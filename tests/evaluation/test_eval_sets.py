"""Evaluation sets: JSONL questions read with every bad line named by file and line, hashed, and stored once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flightdeck.evaluation.sets import EvalSetError, load_eval_set, store_set
from flightdeck.workspace import Workspace

pytestmark = pytest.mark.unit


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


def test_a_set_reads_questions_references_and_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path / "qa.jsonl", [
        {"id": "q1", "question": "How do I sort?", "reference_answer": "Use sorted().",
         "reference_sources": ["howto/sorting.html"], "tags": ["howto"]},
        {"question": "What is the capital of Mars?"},
        "",
        {"id": 7, "question": "Which chunk?", "reference_chunks": ["c-1"]},
    ])
    s = load_eval_set(path)
    assert s.name == "qa" and len(s.questions) == 3 and len(s.sha256) == 64
    q1, q2, q3 = s.questions
    assert q1.answerable and q1.reference_sources == ("howto/sorting.html",) and q1.tags == ("howto",)
    assert not q2.answerable and q2.id == "line-2"  # no reference: unanswerable by default
    assert q3.id == "7" and q3.answerable and q3.reference_chunks == ("c-1",)
    assert s.counts == {"questions": 3, "answerable": 2, "unanswerable": 1, "tags": {"howto": 1}}


def test_every_bad_line_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [
        {"id": "a", "question": "fine"},
        "{not json",
        {"id": "b"},
        {"id": "a", "question": "duplicate id"},
        {"question": "x", "answerable": False, "reference_answer": "but here is one"},
        {"question": "x", "surprise": 1},
        {"question": "x", "reference_sources": "ok as a string"},
        {"question": "x", "reference_sources": [1]},
    ])
    with pytest.raises(EvalSetError) as exc:
        load_eval_set(path)
    text = str(exc.value)
    assert "6 bad line(s)" in text
    for line, words in [(2, "not JSON"), (3, "question is missing"), (4, "id 'a' is already used on line 1"),
                        (5, "an unanswerable question has no reference"), (6, "unknown key 'surprise'"),
                        (8, "reference_sources must be a list")]:
        assert f"{path}:{line}: {words}" in text, text


def test_an_empty_or_missing_set_says_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="not found"):
        load_eval_set(tmp_path / "nope.jsonl")
    with pytest.raises(EvalSetError, match="no questions"):
        load_eval_set(_write(tmp_path / "empty.jsonl", [""]))
    (tmp_path / "latin1.jsonl").write_bytes('{"question": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(EvalSetError, match="not UTF-8"):
        load_eval_set(tmp_path / "latin1.jsonl")


def test_the_hash_follows_the_content_not_the_formatting(tmp_path: Path) -> None:
    rows = [{"id": "q1", "question": "How do I sort?", "reference_answer": "Use sorted()."}]
    a = load_eval_set(_write(tmp_path / "a.jsonl", rows))
    spaced = tmp_path / "b.jsonl"
    spaced.write_text('{ "reference_answer" : "Use sorted().",  "question": "How do I sort?", "id": "q1" }\n\n')
    assert load_eval_set(spaced).sha256 == a.sha256
    rows[0]["reference_answer"] = "Use list.sort()."
    assert load_eval_set(_write(tmp_path / "c.jsonl", rows)).sha256 != a.sha256


def test_a_stored_set_is_kept_once_with_its_canonical_text(tmp_path: Path) -> None:
    s = load_eval_set(_write(tmp_path / "qa.jsonl", [{"question": "q?", "reference_answer": "a"}]))
    ws = Workspace(tmp_path / ".flightdeck")
    try:
        assert store_set(ws, s) == s.sha256 == store_set(ws, s)
        from sqlalchemy import select

        from flightdeck.workspace.schema import eval_sets

        with ws.engine.connect() as conn:
            rows = conn.execute(select(eval_sets)).all()
        assert len(rows) == 1 and rows[0].question_count == 1
        assert ws.artifacts.get_bytes(rows[0].artifact).decode() == s.canonical()
    finally:
        ws.close()
