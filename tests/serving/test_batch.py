"""Batch inference over a real project (FakeEmbedder, the extractive generator): bad lines recorded, failures
contained, torn output lines repaired on resume, and the API's background jobs."""

from __future__ import annotations

import fcntl
import json
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flightdeck import Project
from flightdeck.errors import WorkspaceError
from flightdeck.serving.batch import (
    BatchBusyError,
    BatchError,
    BatchFileError,
    BatchJobs,
    BatchRunner,
    UnknownBatchJob,
    read_batch_input,
)
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv, then activate it.\n",
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key.\n",
}
SORT = "How do I sort records by a key?"
VENV = "Create a virtual environment with venv"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("batch")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: batch
        data:
          sources: [{provider: files, path: ./docs}]
          chunking: {provider: recursive, size: 64, overlap: 8}
        """), "utf-8")
    project = Project.load(root).use(embedder=FakeEmbedder())
    project.run()
    return project


def _answer(project: Project, asked: list[str] | None = None) -> Callable[[str], dict[str, Any]]:
    def answer(question: str) -> dict[str, Any]:
        if asked is not None:
            asked.append(question)
        return project.ask(question).to_dict()

    return answer


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text("utf-8")
    assert text == "" or text.endswith("\n"), "every record ends its line"
    return [json.loads(line) for line in text.splitlines()]


def _write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8")
    return path


def test_every_line_gets_one_record_in_order_and_bad_lines_lose_nothing_else(project: Project, tmp_path: Path) -> None:
    src = _write_lines(tmp_path / "in.jsonl", [
        {"question": SORT, "id": "sort", "team": "data", "priority": 2},
        {"question": VENV},
        "not json {",
        "",
        '["a list"]',
        {"id": "no-question"},
        {"question": "   "},
        {"question": 42},
        {"question": "x" * 4001},
        {"question": VENV, "id": "sort"},
        {"question": VENV, "id": True},
        {"question": VENV, "id": 7},
    ])
    (tmp_path / "in.jsonl").write_bytes(src.read_bytes() + b'{"question": "caf\xe9"}\n')
    out = tmp_path / "out.jsonl"
    summary = BatchRunner(_answer(project)).run(src, out)
    records = _records(out)
    assert [r["line"] for r in records] == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]  # the blank line 4 is skipped
    assert [r["id"] for r in records] == ["sort", "line-2", "line-3", "line-5", "no-question", "line-7", "line-8",
                                          "line-9", "sort", "line-11", 7, "line-13"]
    first, second = records[0], records[1]
    assert first["question"] == SORT and first["found"] and first["citations"][0]["document_id"] == "docs/sorting.md"
    assert first["meta"] == {"team": "data", "priority": 2}
    assert first["index_version"] == project.workspace.get_state("current_index") and first["timings_ms"]["total"] > 0
    assert second["citations"][0]["document_id"] == "docs/venv.md" and second["meta"] == {}
    assert records[10]["answer"] and records[10]["meta"] == {}
    errors = {r["line"]: r["error"] for r in records if "error" in r}
    assert set(records[2]) == {"id", "line", "error"}
    assert errors == {
        3: "line 3: not JSON (Expecting value at column 1)",
        5: 'line 5: an array, not an object like {"question": "..."}',
        6: 'line 6: no "question"',
        7: 'line 7: "question" is empty',
        8: 'line 8: "question" must be a string, not 42',
        9: 'line 9: "question" has 4001 characters; at most 4000',
        10: 'line 10: duplicate id "sort" (first on line 1)',
        11: 'line 11: "id" must be a string or an integer, not true',
        13: "line 13: not UTF-8 text (byte 18)",
    }
    assert (summary.total, summary.answered, summary.failed, summary.skipped) == (12, 3, 9, 0)
    assert not summary.complete and [f["line"] for f in summary.failures] == sorted(errors)
    assert summary.questions_per_second > 0


def test_a_failing_question_is_recorded_and_the_batch_goes_on(project: Project, tmp_path: Path) -> None:
    def answer(question: str) -> dict[str, Any]:
        if "explode" in question:
            raise RuntimeError("the model ran out of memory")
        return project.ask(question).to_dict()

    src = _write_lines(tmp_path / "in.jsonl", [{"question": SORT}, {"question": "explode", "id": "boom"},
                                               {"question": VENV}])
    summary = BatchRunner(answer).run(src, tmp_path / "out.jsonl")
    records = _records(tmp_path / "out.jsonl")
    assert records[1] == {"id": "boom", "line": 2, "error": "line 2: RuntimeError: the model ran out of memory"}
    assert records[0]["found"] and records[2]["found"]
    assert (summary.answered, summary.failed) == (2, 1)


def test_a_project_error_stops_the_batch_and_a_rerun_goes_on(project: Project, tmp_path: Path) -> None:
    broken = [True]

    def answer(question: str) -> dict[str, Any]:
        if question == VENV and broken[0]:
            raise WorkspaceError("no index yet; run `flightdeck run` first")
        return project.ask(question).to_dict()

    src = _write_lines(tmp_path / "in.jsonl", [{"question": SORT}, {"question": VENV}, {"question": SORT, "id": 3}])
    out = tmp_path / "out.jsonl"
    with pytest.raises(WorkspaceError, match="no index yet"):
        BatchRunner(answer).run(src, out)
    assert [r["line"] for r in _records(out)] == [1]  # nothing recorded for the line that hit it
    broken[0] = False
    asked: list[str] = []
    summary = BatchRunner(lambda q: asked.append(q) or answer(q)).run(src, out)
    assert asked == [VENV, SORT] and (summary.skipped, summary.answered) == (1, 2) and summary.complete
    assert [r["id"] for r in _records(out)] == ["line-1", "line-2", 3]


def test_a_torn_last_line_is_dropped_and_only_the_missing_lines_are_asked(project: Project, tmp_path: Path) -> None:
    questions = [{"question": q, "id": f"q{i}"} for i, q in enumerate([SORT, VENV, SORT, VENV, SORT])]
    src = _write_lines(tmp_path / "in.jsonl", questions)
    out = tmp_path / "out.jsonl"
    BatchRunner(_answer(project)).run(src, out)
    full = out.read_bytes().splitlines(keepends=True)
    torn = full[3][: len(full[3]) // 2]
    out.write_bytes(b"".join(full[:3]) + torn)  # a kill in the middle of writing the 4th record
    asked: list[str] = []
    summary = BatchRunner(_answer(project, asked)).run(src, out)
    assert asked == [VENV, SORT]
    assert (summary.skipped, summary.answered, summary.failed) == (3, 2, 0) and summary.complete
    records = _records(out)
    assert [r["id"] for r in records] == ["q0", "q1", "q2", "q3", "q4"]
    assert all(r["answer"] and r["citations"] for r in records)
    again: list[str] = []
    assert BatchRunner(_answer(project, again)).run(src, out).skipped == 5 and again == []


def test_an_output_of_another_input_or_in_use_is_refused(project: Project, tmp_path: Path) -> None:
    first = _write_lines(tmp_path / "a.jsonl", [{"question": SORT, "id": "a"}])
    other = _write_lines(tmp_path / "b.jsonl", [{"question": SORT, "id": "b"}])
    out = tmp_path / "out.jsonl"
    BatchRunner(_answer(project)).run(first, out)
    with pytest.raises(BatchFileError, match=r'record for line 1 has id "a", but line 1 of .*b.jsonl has id "b"'):
        BatchRunner(_answer(project)).run(other, out)
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"hello": 1}\n', "utf-8")
    with pytest.raises(BatchFileError, match="line 1 is not a record written by a flightdeck batch"):
        BatchRunner(_answer(project)).run(first, junk)
    with out.open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(BatchBusyError, match="another batch is writing this file"):
            BatchRunner(_answer(project)).run(first, out)
    with pytest.raises(BatchFileError, match="cannot read the batch input"):
        BatchRunner(_answer(project)).run(tmp_path / "missing.jsonl", out)


def test_read_batch_input_skips_blank_lines_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"question": "one"}\r\n\r\n  \n{"question": "two", "id": "line-1"}')
    items = read_batch_input(path)
    assert [(i.line, i.id, i.question, i.error) for i in items] == [
        (1, "line-1", "one", None), (4, "line-1", None, 'line 4: duplicate id "line-1" (first on line 1)')]


def test_jobs_run_in_the_background_with_status_results_and_owners(project: Project, tmp_path: Path) -> None:
    jobs = BatchJobs(tmp_path / "ws", _answer(project))
    try:
        first = jobs.submit([{"question": SORT, "id": "s"}, {"question": VENV, "ref": 9}, {"nope": 1}], owner="key1")
        second = jobs.submit(b'{"question": "How do I sort records by a key?"}', owner="key2")
        done = jobs.wait(first, timeout=30)
        assert jobs.wait(second, timeout=30)["state"] == "done"
    finally:
        jobs.close()
    assert done["state"] == "done" and done["owner"] == "key1" and done["error"] is None
    assert (done["total"], done["answered"], done["failed"], done["skipped"]) == (3, 2, 1, 0)
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]
    folder = tmp_path / "ws" / "batch" / first
    assert sorted(p.name for p in folder.iterdir()) == ["input.jsonl", "output.jsonl", "status.json"]
    assert json.loads((folder / "status.json").read_text()) == done
    results = jobs.results(first)
    assert results == folder / "output.jsonl"
    records = _records(results)
    assert [r["id"] for r in records] == ["s", "line-2", "line-3"] and records[1]["meta"] == {"ref": 9}
    assert records[2]["error"] == 'line 3: no "question"'
    assert [s["id"] for s in jobs.list("key1")] == [first]
    assert {s["id"] for s in jobs.list()} == {first, second}
    assert jobs.status(first, owner="key1")["id"] == first
    for bad in ["../../etc", "x" * 16, first[:-1], "", None]:
        with pytest.raises(UnknownBatchJob, match="no batch job"):
            jobs.status(bad)  # type: ignore[arg-type]
    with pytest.raises(UnknownBatchJob):
        jobs.results(first, owner="key2")  # another key's job is not there for it
    assert str(UnknownBatchJob("no batch job \"x\"")) == 'no batch job "x"'
    for empty in (b"", b"\n  \n", []):
        with pytest.raises(BatchError, match="the batch has no lines"):
            jobs.submit(empty, owner="key1")
    with pytest.raises(BatchError, match="needs an owner"):
        jobs.submit([{"question": SORT}], owner="")


def test_a_job_left_running_by_a_killed_server_resumes_where_it_stopped(project: Project, tmp_path: Path) -> None:
    jobs = BatchJobs(tmp_path, _answer(project))
    lines = [{"question": q, "id": i} for i, q in enumerate([SORT, VENV, SORT, VENV])]
    job = jobs.submit(lines, owner="key1")
    jobs.wait(job, timeout=30)
    jobs.close()
    folder = tmp_path / "batch" / job
    full = (folder / "output.jsonl").read_bytes().splitlines(keepends=True)
    (folder / "output.jsonl").write_bytes(b"".join(full[:2]) + full[2][:10])  # killed while writing line 3
    status = json.loads((folder / "status.json").read_text())
    (folder / "status.json").write_text(json.dumps({**status, "state": "running", "finished_at": None}))
    asked: list[str] = []
    restarted = BatchJobs(tmp_path, _answer(project, asked))
    try:
        resumed = restarted.wait(job, timeout=30)
    finally:
        restarted.close()
    assert asked == [SORT, VENV]
    assert resumed["state"] == "done" and (resumed["answered"], resumed["skipped"]) == (4, 2)
    assert [r["id"] for r in _records(folder / "output.jsonl")] == [0, 1, 2, 3]


def test_close_stops_between_questions_and_the_next_start_finishes_the_job(project: Project, tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def blocking(question: str) -> dict[str, Any]:
        started.set()
        assert release.wait(10)
        return project.ask(question).to_dict()

    jobs = BatchJobs(tmp_path, blocking)
    job = jobs.submit([{"question": SORT}, {"question": VENV}, {"question": SORT}], owner="k")
    assert started.wait(10)
    jobs.close(timeout=0)
    release.set()
    assert jobs._thread is not None
    jobs._thread.join(10)
    stopped = jobs.status(job)
    assert stopped["state"] == "queued" and stopped["answered"] == 1
    asked: list[str] = []
    again = BatchJobs(tmp_path, _answer(project, asked))
    try:
        assert again.wait(job, timeout=30)["state"] == "done"
    finally:
        again.close()
    assert asked == [VENV, SORT] and len(_records(tmp_path / "batch" / job / "output.jsonl")) == 3


def test_a_job_whose_project_cannot_answer_fails_with_the_reason(tmp_path: Path) -> None:
    def no_index(question: str) -> dict[str, Any]:
        raise WorkspaceError("no index yet; run `flightdeck run` first")

    jobs = BatchJobs(tmp_path, no_index)
    try:
        status = jobs.wait(jobs.submit([{"question": SORT}], owner="k"), timeout=30)
    finally:
        jobs.close()
    assert status["state"] == "failed" and status["error"] == "no index yet; run `flightdeck run` first"
    assert status["finished_at"] is not None


def test_the_warm_up_runs_before_the_clock_and_only_when_a_question_is_left(project: Project, tmp_path: Path) -> None:
    src = _write_lines(tmp_path / "in.jsonl", [{"question": SORT, "id": "a"}, {"question": VENV, "id": "b"}])
    out = tmp_path / "out.jsonl"
    events: list[str] = []

    def answer(question: str) -> dict[str, Any]:
        events.append("answer")
        return _answer(project)(question)

    BatchRunner(answer).run(src, out, warm_up=lambda: events.append("warm up"))
    assert events == ["warm up", "answer", "answer"]
    events.clear()
    assert BatchRunner(answer).run(src, out, warm_up=lambda: events.append("warm up")).skipped == 2
    assert events == []  # nothing left to answer: nothing loaded
