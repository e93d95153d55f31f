"""``flightdeck batch IN OUT``: exit codes, the summary, and resuming after ``kill -9`` in a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.testing import FakeEmbedder

runner = CliRunner()
WIDE = {"COLUMNS": "200"}  # usage errors are drawn in a box: one line each

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv, then activate it.\n",
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key.\n",
}
SORT = "How do I sort records by a key?"
VENV = "Create a virtual environment with venv"

# Runs the real CLI in a subprocess, with the FakeEmbedder the test index was built with, and the spec's
# (extractive) generator made slow and logging each question it is asked.
DRIVER = textwrap.dedent("""\
    import os, sys, time
    from flightdeck.models.generators.extractive import ExtractiveGenerator
    from flightdeck.project import Project
    from flightdeck.testing import FakeEmbedder

    answer = ExtractiveGenerator.answer

    def slow(self, question, hits, embedder, index_version):
        with open(os.environ["ASKED_LOG"], "a", encoding="utf-8") as log:
            log.write(question + "\\n")
        time.sleep(float(os.environ["SLOW_S"]))
        return answer(self, question, hits, embedder, index_version)

    ExtractiveGenerator.answer = slow
    load = Project.load.__func__
    Project.load = classmethod(lambda cls, path=None: load(cls, path).use(embedder=FakeEmbedder()))
    from flightdeck.cli.main import main
    sys.argv = ["flightdeck", *sys.argv[1:]]
    main()
    """)


def _make_project(root: Path, run: bool = True) -> Path:
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: batch-cli
        data:
          sources: [{provider: files, path: ./docs}]
          chunking: {provider: recursive, size: 64, overlap: 8}
        """), "utf-8")
    if run:
        Project.load(root).use(embedder=FakeEmbedder()).run()
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_project(tmp_path_factory.mktemp("batch-cli"))


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    load = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load",
                        classmethod(lambda cls, path=None: load(cls, path).use(embedder=FakeEmbedder())))


def _jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8")
    return path


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.mark.unit
def test_batch_answers_every_line_and_a_rerun_asks_nothing(root: Path, tmp_path: Path, fake_model: None) -> None:
    src = _jsonl(tmp_path / "in.jsonl", [{"question": SORT, "id": "s", "team": "x"}, {"question": VENV},
                                         {"question": SORT, "id": 3}])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["batch", str(src), str(out), "--spec", str(root)])
    assert result.exit_code == 0, result.output
    assert "batch: 3 answered, 0 failed, of 3 lines" in result.stdout and "questions/s" in result.stdout
    assert f"every line answered: {out}" in result.stdout
    records = _records(out)
    assert [r["id"] for r in records] == ["s", "line-2", 3] and records[0]["meta"] == {"team": "x"}
    assert [r["citations"][0]["document_id"] for r in records] == ["docs/sorting.md", "docs/venv.md",
                                                                   "docs/sorting.md"]
    again = runner.invoke(app, ["batch", str(src), str(out), "--spec", str(root), "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert (summary["answered"], summary["failed"], summary["skipped"], summary["complete"]) == (0, 0, 3, True)
    assert len(_records(out)) == 3


@pytest.mark.unit
def test_failed_lines_exit_1_and_the_summary_names_them(root: Path, tmp_path: Path, fake_model: None) -> None:
    src = _jsonl(tmp_path / "in.jsonl", [{"question": SORT}, "{oops", {"question": ""}, {"question": VENV, "id": "v"},
                                         {"question": VENV, "id": "v"}])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["batch", str(src), str(out), "--spec", str(root)])
    assert result.exit_code == 1, result.output
    assert "batch: 2 answered, 3 failed, of 5 lines" in result.stdout
    assert "3 line(s) failed" in result.stderr
    assert "  line 2: not JSON (Expecting property name enclosed in double quotes at column 2)\n" in result.stderr
    assert '  line 3: "question" is empty\n' in result.stderr
    assert '  line 5: duplicate id "v" (first on line 4) (id v)\n' in result.stderr
    rerun = runner.invoke(app, ["batch", str(src), str(out), "--spec", str(root), "--json"])
    assert rerun.exit_code == 1  # the failures are still in the output: not every line is answered
    summary = json.loads(rerun.stdout)
    assert summary["skipped_failed"] == 3 and [f["line"] for f in summary["failures"]] == [2, 3, 5]


@pytest.mark.unit
def test_unusable_files_exit_2_and_a_project_without_index_exits_1(root: Path, tmp_path: Path,
                                                                    fake_model: None) -> None:
    src = _jsonl(tmp_path / "in.jsonl", [{"question": SORT, "id": "a"}])
    spec = ["--spec", str(root)]
    missing = runner.invoke(app, ["batch", str(tmp_path / "nope.jsonl"), str(tmp_path / "o.jsonl"), *spec], env=WIDE)
    assert missing.exit_code == 2 and "Invalid value for 'IN.jsonl'" in missing.output
    assert "does not exist" in missing.output
    same = runner.invoke(app, ["batch", str(src), str(src), *spec], env=WIDE)
    assert same.exit_code == 2 and "is the input file" in same.output
    no_folder = runner.invoke(app, ["batch", str(src), str(tmp_path / "no" / "o.jsonl"), *spec], env=WIDE)
    assert no_folder.exit_code == 2 and f"its folder {tmp_path / 'no'} does not exist" in no_folder.output
    other = _jsonl(tmp_path / "other.jsonl", [{"id": "b", "line": 1, "error": "line 1: x"}])
    mixed = runner.invoke(app, ["batch", str(src), str(other), *spec])
    assert mixed.exit_code == 2 and "was written from another input" in " ".join(mixed.stderr.split())
    assert other.read_text().count("\n") == 1  # left as it was
    empty = _make_project(tmp_path / "empty", run=False)
    no_index = runner.invoke(app, ["batch", str(src), str(tmp_path / "o.jsonl"), "--spec", str(empty)])
    assert no_index.exit_code == 1 and "no index yet" in " ".join(no_index.stderr.split())
    assert (tmp_path / "o.jsonl").read_text() == ""  # the line stays unanswered for the rerun


@pytest.mark.unit
def test_help_says_how_to_resume_and_what_the_exit_codes_mean() -> None:
    result = runner.invoke(app, ["batch", "--help"], env=WIDE)
    assert result.exit_code == 0
    for words in ["IN.jsonl", "OUT.jsonl", "Rerun the same command", "no line is answered twice",
                  '{"id", "line", "error"}', "0 every line answered", "2 the files cannot be used", "--spec"]:
        assert words in result.output, words


@pytest.mark.integration
@pytest.mark.exercises("deployment.serving_apis.batch_inference")
@pytest.mark.exercises("scoping.latency.batch")
def test_kill_9_mid_batch_then_rerun_answers_every_line_exactly_once(tmp_path: Path) -> None:
    root = _make_project(tmp_path / "project")
    (root / "driver.py").write_text(DRIVER, "utf-8")
    questions = [f"{SORT} (case {i})" if i % 2 == 0 else f"{VENV} (case {i})" for i in range(30)]
    src = _jsonl(tmp_path / "in.jsonl", [{"question": q, "id": f"q{i}"} for i, q in enumerate(questions)])
    out, log1, log2 = tmp_path / "out.jsonl", tmp_path / "asked1.log", tmp_path / "asked2.log"
    command = [sys.executable, str(root / "driver.py"), "batch", str(src), str(out), "--spec", str(root)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

    first = subprocess.Popen(command, env={**env, "ASKED_LOG": str(log1), "SLOW_S": "0.15"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_bytes().count(b"\n") >= 6):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the batch wrote nothing in 60 s"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(30)
    assert first.returncode == -signal.SIGKILL
    data = out.read_bytes()
    kept = data[: data.rfind(b"\n") + 1]
    before = [json.loads(line) for line in kept.splitlines()]
    assert 6 <= len(before) < 30, "killed mid-run"
    assert [r["id"] for r in before] == [f"q{i}" for i in range(len(before))]
    asked1 = log1.read_text("utf-8").splitlines()
    assert asked1[: len(before)] == questions[: len(before)] and len(asked1) - len(before) <= 1
    # and a torn line, as a kill in the middle of a write leaves it
    with out.open("ab") as fh:
        fh.write(b'{"id": "q' + str(len(before)).encode() + b'", "line": ' + str(len(before) + 1).encode() + b', "que')

    second = subprocess.run(command, env={**env, "ASKED_LOG": str(log2), "SLOW_S": "0"}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    assert f"{30 - len(before)} answered, 0 failed, {len(before)} already in" in second.stdout
    assert log2.read_text("utf-8").splitlines() == questions[len(before):]  # nothing answered twice
    records = _records(out)
    assert [r["id"] for r in records] == [f"q{i}" for i in range(30)]  # every id once, in order
    assert [r["line"] for r in records] == list(range(1, 31))
    project = Project.load(root).use(embedder=FakeEmbedder())
    for record, question in zip(records, questions, strict=True):
        expected = project.ask(question)
        assert record["question"] == question and record["answer"] == expected.answer
        assert [c["chunk_id"] for c in record["citations"]] == [c.chunk_id for c in expected.citations]
        assert record["index_version"] == expected.index_version
