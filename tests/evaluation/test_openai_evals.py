"""OpenAI Evals interoperability: samples files both ways (a flightdeck set survives the round trip), upstream's
sample shapes (string input, few-shot chat input, a list of ideals), every bad line named, and the basic evals
Match, Includes and FuzzyMatch checked on the cases of upstream's own tests (evals/elsuite/basic/*_test.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck.cli.main import app
from flightdeck.evaluation.sets import EvalSetError, load_eval_set
from flightdeck.evaluation.tools.openai_evals import (
    DEFAULT_SYSTEM_PROMPT,
    basic_scores,
    export_samples,
    f1_score,
    fuzzy_match,
    import_samples,
    includes,
    match,
    normalize,
)

pytestmark = pytest.mark.unit
runner = CliRunner()

QUESTIONS = [
    {"id": "venv", "question": "How do I create a virtual environment?", "reference_answer":
     "Run python -m venv followed by the folder name.", "reference_sources": ["venv.md"], "tags": ["howto"]},
    {"id": "json", "question": "Which function reads JSON text?", "reference_answer": "json.loads",
     "reference_sources": ["json.md"], "reference_chunks": ["json.md#0"], "tags": ["library"]},
    {"id": "sources-only", "question": "Where is sorting described?", "reference_sources": ["sorting.md"]},
    {"id": "mars", "question": "What is the boiling point of lava on Mars?", "tags": ["unanswerable"]},
]

# The DummyCompletionFn of upstream's tests always answers this.
DUMMY = "This is a dummy response."


def _set_file(root: Path) -> Path:
    path = root / "eval" / "qa.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), "utf-8")
    return path


def _spec(root: Path) -> Path:
    _set_file(root)
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "venv.md").write_text("# venv\n\nRun python -m venv followed by the folder name.\n", "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: openai-evals-test
        data:
          sources: [{provider: files, path: ./docs}]
        evaluation:
          sets: [eval/qa.jsonl]
        """), "utf-8")
    return root / "flightdeck.yaml"


@pytest.mark.exercises("evaluation.tools.openai_evals")
def test_round_trip_and_upstream_checks(tmp_path: Path) -> None:
    original = load_eval_set(_set_file(tmp_path))
    out = tmp_path / "samples.jsonl"
    assert export_samples(original, out) == 2  # only answerable questions with a reference answer

    lines = out.read_text("utf-8").splitlines()
    assert all(line.strip() for line in lines)  # upstream's reader rejects a blank line
    first = json.loads(lines[0])
    assert first["input"] == [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                              {"role": "user", "content": "How do I create a virtual environment?"}]
    assert first["ideal"] == "Run python -m venv followed by the folder name."
    assert first["flightdeck"] == {"id": "venv", "tags": ["howto"], "reference_sources": ["venv.md"]}

    back = import_samples(out, name="qa")
    kept = [q for q in original.questions if q.answerable and q.reference_answer]
    assert back.questions == tuple(kept)
    assert back.sha256 == load_eval_set(_write(tmp_path / "kept.jsonl", [q.to_dict() for q in kept])).sha256
    assert back.ideals_of("json") == ("json.loads",)

    # the answers of a run, scored as upstream's three basic evals would score them
    scores = basic_scores([
        ("json.loads [1]", "json.loads"),  # citation markers are not part of the answer
        ("Use json.loads.", back.ideals_of("json")),
        ("I do not know.", ["Run python -m venv followed by the folder name."]),
        ("anything", []),  # no ideal: not a sample
    ])
    assert scores["openai_match"] == pytest.approx(1 / 3)
    assert scores["openai_includes"] == pytest.approx(2 / 3)
    assert scores["openai_fuzzy_match"] == pytest.approx(2 / 3)
    assert scores["openai_fuzzy_match_f1"] == pytest.approx((1 + 2 * 0.5 * 1 / 1.5 + 0) / 3)
    assert basic_scores([("x", ""), (None, [])]) == {}


# evals/elsuite/basic/match_test.py: ("world", "world") and ("world", ["world"]) match; Match is startswith
@pytest.mark.parametrize(("sampled", "ideal", "expected"), [
    ("world", "world", True),
    ("world", ["world"], True),
    ("world peace", ["world"], True),
    ("hello world", ["world"], False),
    ("World", "world", False),
    (" world", "world", False),  # upstream strips nothing (basic_scores strips the answer first)
])
def test_match_like_upstream(sampled: str, ideal: str | list[str], expected: bool) -> None:
    assert match(sampled, ideal) is expected


# evals/elsuite/basic/includes_test.py, with its ignore_case column
@pytest.mark.parametrize(("sampled", "ideal", "expected", "ignore_case"), [
    ("world", "world", True, False),
    ("world", "wOrLd", True, True),
    ("world", ["world"], True, False),
    ("world", ["foo", "bar"], False, False),
    ("world", ["worldfoo", "worldbar"], False, False),
    ("world", "wOrLd", False, False),
])
def test_includes_like_upstream(sampled: str, ideal: str | list[str], expected: bool, ignore_case: bool) -> None:
    assert includes(sampled, ideal, ignore_case=ignore_case) is expected


# evals/elsuite/basic/fuzzy_match_test.py: (completion, ideal, accuracy, f1_score)
@pytest.mark.parametrize(("sampled", "ideal", "accuracy", "f1"), [
    ("world", "world", 1.0, 1.0),
    ("world", "foo", 0.0, 0.0),
    ("world", ["some foo world", "dummy"], 1.0, 0.5),
    (DUMMY, "world", 0.0, 0.0),
    (DUMMY, ["world", "dummy"], 1.0, 0.4),
])
def test_fuzzy_match_like_upstream(sampled: str, ideal: str | list[str], accuracy: float, f1: float) -> None:
    assert float(fuzzy_match(sampled, ideal)) == accuracy
    assert f1_score(sampled, ideal) == pytest.approx(f1)
    assert basic_scores([(sampled, ideal)])["openai_fuzzy_match_f1"] == pytest.approx(f1)


def test_normalize_and_fuzzy_edges() -> None:
    assert normalize("  The Answer, is: an APPLE!  ") == "answer is apple"
    assert fuzzy_match("", "") and not fuzzy_match("", "x") and not fuzzy_match("x", "")
    assert fuzzy_match("Paris", "paris, France")  # either way round
    assert f1_score("", [""]) == 0.0  # upstream: no common token is 0, even for two empty texts
    with pytest.raises(ValueError, match="at least one ideal"):
        f1_score("x", [])


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


def test_upstream_sample_shapes(tmp_path: Path) -> None:
    few_shot = [{"role": "system", "content": "Answer the following questions as concisely as possible."},
                {"role": "system", "content": "What's 2+2?", "name": "example_user"},
                {"role": "system", "content": "4", "name": "example_assistant"},
                {"role": "user", "content": "What season did derek die in grey's?"}]
    path = _write(tmp_path / "samples.jsonl", [
        {"input": "Once upon a ", "ideal": "time"},
        "",
        {"input": few_shot, "ideal": ["Season 11", "11"], "other_eval_key": "kept by upstream, ignored here"},
        {"input": [{"role": "system", "content": "Which word does NOT belong? A. index B. glossary C. book"}],
         "ideal": "C. book"},
    ])
    got = import_samples(path)
    assert got.name == "samples" and [q.id for q in got.questions] == ["line-1", "line-3", "line-4"]
    assert got.questions[0].question == "Once upon a" and got.questions[0].reference_answer == "time"
    assert got.questions[1].question == "What season did derek die in grey's?"
    assert got.questions[1].reference_answer == "Season 11" and got.ideals_of("line-3") == ("Season 11", "11")
    assert got.questions[2].question.startswith("Which word")  # no user turn: the last message asks
    assert all(q.answerable for q in got.questions)

    again = export_samples(got, tmp_path / "again.jsonl", system_prompt="")
    rows = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text("utf-8").splitlines()]
    assert again == 3 and rows[1]["ideal"] == ["Season 11", "11"]
    assert rows[1]["input"] == [{"role": "user", "content": "What season did derek die in grey's?"}]
    assert import_samples(tmp_path / "again.jsonl").ideals == got.ideals


def test_every_bad_line_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [
        {"input": "fine", "ideal": "yes"},
        "{not json",
        {"input": "no ideal"},
        {"ideal": "no input"},
        {"input": "x", "ideal": 42},  # upstream's match_test: an int ideal is refused
        {"input": "x", "ideal": []},
        {"input": "x", "ideal": ["ok", ""]},
        {"input": [{"role": "user"}], "ideal": "x"},
        {"input": [{"role": "user", "content": [{"type": "text"}]}], "ideal": "x"},
        {"input": "x", "ideal": "y", "flightdeck": {"id": "a", "colour": "red"}},
        {"input": "x", "ideal": "y", "flightdeck": {"id": "line-1"}},
        ["a", "list"],
    ])
    with pytest.raises(EvalSetError) as err:
        import_samples(path)
    message = str(err.value)
    assert "11 bad line(s)" in message
    for n, what in [(2, "not JSON"), (3, 'no "ideal"'), (4, 'no "input"'), (5, "found int 42"),
                    (6, "ideal is an empty list"), (7, "empty answer"), (8, 'input message 1 is not a chat message'),
                    (9, "the content of input message 1 must be a string"), (10, "unknown key 'colour'"),
                    (11, "id 'line-1' is already used on line 1"), (12, "expected a JSON object")]:
        line = next((x for x in message.splitlines() if x.strip().startswith(f"{path}:{n}: ")), "")
        assert what in line, (n, message)
    with pytest.raises(EvalSetError, match="samples file not found"):
        import_samples(tmp_path / "missing.jsonl")
    with pytest.raises(EvalSetError, match="no samples"):
        import_samples(_write(tmp_path / "empty.jsonl", [""]))


def test_cli_export_and_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path)
    out = tmp_path / "out" / "samples.jsonl"
    done = runner.invoke(app, ["eval", "export-openai", str(out), "--spec", str(spec), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["samples"] == 2 and report["skipped"] == 2 and report["set"] == "qa"
    assert len(out.read_text("utf-8").splitlines()) == 2

    monkeypatch.chdir(out.parent)  # no flightdeck.yaml here: a set file exports without a project
    by_file = runner.invoke(app, ["eval", "export-openai", str(tmp_path / "b.jsonl"), "--set",
                                  str(tmp_path / "eval" / "qa.jsonl"), "--system-prompt", "Be brief."])
    assert by_file.exit_code == 0 and "2 samples" in by_file.output, by_file.output
    assert json.loads((tmp_path / "b.jsonl").read_text("utf-8").splitlines()[0])["input"][0]["content"] == \
        "Be brief."

    flightdeck_set = tmp_path / "imported.jsonl"
    imported = runner.invoke(app, ["eval", "import-openai", str(out), str(flightdeck_set), "--json"])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["questions"] == 2
    loaded = load_eval_set(flightdeck_set)
    assert [q.id for q in loaded.questions] == ["venv", "json"]
    assert loaded.questions[1].reference_chunks == ("json.md#0",)

    missing = runner.invoke(app, ["eval", "export-openai", str(out), "--set", "nope", "--spec", str(spec)])
    assert missing.exit_code == 1 and "no evaluation set 'nope'" in missing.output
    bad = _write(tmp_path / "bad.jsonl", [{"input": "x"}])
    failed = runner.invoke(app, ["eval", "import-openai", str(bad), str(tmp_path / "never.jsonl"), "--json"])
    error = json.loads(failed.stdout)
    assert failed.exit_code == 1 and error["ok"] is False and f'{bad}:1: no "ideal"' in error["error"]
    assert not (tmp_path / "never.jsonl").exists()
    usage = runner.invoke(app, ["eval", "import-openai", str(bad)])
    assert usage.exit_code == 2
