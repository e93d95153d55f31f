"""TruLens (the real trulens-core/trulens-feedback) on flightdeck's evaluation results, judged by flightdeck's own
generator: TruLens' feedback functions score the answered questions, per question and as means, a reply TruLens
cannot parse is counted in trulens_failed and never stops the run, nothing is downloaded or sent over the network,
no TruLens database is written; end to end with the packaged Gemma 3 270M as TruLens' LLM."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from test_eval_project import _project

from flightdeck import Project
from flightdeck.errors import FlightdeckError, MissingDependencyError
from flightdeck.evaluation.judge import LlmJudge
from flightdeck.evaluation.runner import QuestionResult
from flightdeck.models.generators.base import Completion
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = needs("trulens", "trulens.feedback")
EVAL = needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")

SORT_DOC = ("The sorted function returns a new sorted list from any iterable. Pass a key function to sort records "
            "by one of their fields.")
JSON_DOC = ("The json module reads JSON text with json.loads and writes it with json.dumps. A JSON object becomes a "
            "Python dictionary.")


def _results() -> list[QuestionResult]:
    """Two answered questions with contexts (the second answer has two sentences), one refused, one that failed,
    one answered unanswerable question (nothing retrieved)."""
    return [
        QuestionResult("sort", "How do I sort records by one of their fields?", ["howto"], True,
                       "Pass a key function to sorted.", ["sorting.md"],
                       answer="Pass a key function to sorted() to sort records by a field [1].", found=True,
                       retrieved=[{"rank": 1, "text": SORT_DOC}, {"rank": 2, "text": JSON_DOC}]),
        QuestionResult("json", "How do I read JSON text into a dictionary?", ["library"], True,
                       "Use json.loads.", ["json.md"],
                       answer="Read the text with json.loads. Mars has two moons [1].", found=True,
                       retrieved=[{"rank": 1, "text": JSON_DOC}]),
        QuestionResult("refused", "How do I create a virtual environment?", [], True, "Use python -m venv.",
                       ["venv.md"], answer="Not found in the documents.", found=False),
        QuestionResult("broken", "How do I find a pattern?", [], True, "Use re.search.", ["regex.md"],
                       error="TimeoutError: no reply", outcome="error"),
        QuestionResult("mars", "What is the boiling point of lava on Mars?", ["unanswerable"], False, "", [],
                       answer="Lava boils at 1200 degrees [1].", found=True),
    ]


class ScriptedTruLensLlm:
    """Answers TruLens' prompts the way a careful judge would, in the formats TruLens asks for: answers are relevant
    (JSON, score 3 of 3), a context is relevant (2) when it names the question's topic and not (0) otherwise (in
    words, as a text reply), a statement is grounded (3) when its words are in the source and not (0) otherwise.
    The prompts whose user part starts with one of ``garbage`` get a reply with no number in it."""

    model_id = "scripted-trulens"

    def __init__(self, garbage: tuple[str, ...] = ()) -> None:
        self.garbage = garbage
        self.calls: list[list[dict[str, str]]] = []

    def complete(self, messages: list[dict[str, str]], **_: Any) -> Completion:  # noqa: D102
        self.calls.append(messages)
        user = messages[-1]["content"]
        if user.startswith(self.garbage) or messages[0]["content"].startswith("Convert the following text"):
            reply = "I think it is fine."  # TruLens' "reformat as JSON" retry gets no better
        elif user.startswith("PROMPT:"):
            reply = json.dumps({"score": 3})
        elif user.startswith("USER QUERY:"):
            query, result = user.split("\nSEARCH RESULT: ")
            topic = "sorted" if "sort" in query else "json"
            reply = "Relevance: 2" if topic in result.lower() else "Relevance: 0"
        elif user.startswith("SOURCE:"):
            source, statement = user[len("SOURCE: "):].split("\n\nSTATEMENT: ")
            statement = statement.split("\n\n")[0]
            grounded = all(w.strip(".()").lower() in source.lower() for w in statement.split())
            reply = json.dumps({"criteria": statement, "supporting_evidence": "quoted" if grounded else "NOTHING FOUND",
                                "score": 3 if grounded else 0})
        else:
            reply = "no idea"
        return Completion(reply, 100, 10, "stop", 1.0)


def test_answered_questions_become_trulens_samples() -> None:
    from flightdeck.evaluation.metrics import TOOL_METRICS
    from flightdeck.evaluation.tools.trulens import metric_names, trulens_samples

    assert metric_names() == TOOL_METRICS["trulens"]  # the names a gate may use are the names the run reports
    samples = dict(trulens_samples(_results(), max_contexts=1))
    assert list(samples) == ["sort", "json", "mars"]  # refused and failed questions are not answers
    assert samples["sort"] == {"question": "How do I sort records by one of their fields?",
                               "answer": "Pass a key function to sorted() to sort records by a field.",
                               "contexts": [SORT_DOC]}
    assert samples["mars"]["contexts"] == []


def test_scores_per_question_and_means_with_failures_counted() -> None:
    from flightdeck.evaluation.tools.trulens import trulens_run, trulens_scores

    llm = ScriptedTruLensLlm()
    run = trulens_run(_results(), llm)
    assert run.samples == 3
    # TruLens' own formulas on the scripted verdicts: relevance 3/3; the sort question's two contexts score 2/3 and
    # 0 (mean 1/3), the json one's 2/3; the json answer's two sentences 1 and 0 (mean 0.5), the sort answer's 1
    assert run.per_question["sort"] == {"trulens_groundedness": 1.0, "trulens_answer_relevance": 1.0,
                                        "trulens_context_relevance": pytest.approx(1 / 3, abs=1e-5)}
    assert run.per_question["json"] == {"trulens_groundedness": 0.5, "trulens_answer_relevance": 1.0,
                                        "trulens_context_relevance": pytest.approx(2 / 3, abs=1e-5)}
    assert run.per_question["mars"] == {"trulens_answer_relevance": 1.0}  # nothing retrieved: relevance only
    assert run.metrics == {"trulens_groundedness": 0.75, "trulens_answer_relevance": 1.0,
                           "trulens_context_relevance": 0.5, "trulens_failed": 0.0}
    assert run.errors == []
    assert "[1]" not in json.dumps(llm.calls)  # citation markers are not statements

    # no number in the context-relevance replies: unmeasured and counted, never guessed; the other scores stand
    run = trulens_run(_results(), ScriptedTruLensLlm(garbage=("USER QUERY:",)))
    assert run.metrics["trulens_context_relevance"] is None and run.metrics["trulens_failed"] == 2.0
    assert run.metrics["trulens_answer_relevance"] == 1.0
    assert len(run.errors) == 3 and all("context_relevance" in e and "ParseError" in e for e in run.errors)
    # a statement TruLens cannot parse fails the pair (its ParseError)
    run = trulens_run(_results(), ScriptedTruLensLlm(garbage=("SOURCE:",)), ["groundedness"])
    assert run.metrics == {"trulens_groundedness": None, "trulens_failed": 2.0} and len(run.errors) == 2

    results = _results()
    means = trulens_scores(results, ScriptedTruLensLlm(), ["answer_relevance"])
    assert means == {"trulens_answer_relevance": 1.0, "trulens_failed": 0.0}
    assert results[0].scores == {"trulens_answer_relevance": 1.0} and results[2].scores == {}


def test_sentences_are_split_without_nltk_or_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    from flightdeck.evaluation.tools.trulens import trulens_run

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"nltk.download{args} would reach the network")

    monkeypatch.setattr(nltk, "download", no_download)
    llm = ScriptedTruLensLlm()
    run = trulens_run(_results()[1:2], llm, ["groundedness"])
    statements = sorted(c[-1]["content"].split("STATEMENT: ")[1].split("\n\n")[0] for c in llm.calls)
    assert statements == ["Mars has two moons.", "Read the text with json.loads."]  # the model saw only the verdicts
    assert run.metrics["trulens_groundedness"] == 0.5


def test_what_trulens_would_fetch_from_openai_is_refused() -> None:
    from flightdeck.evaluation.tools.trulens import trulens_run

    with pytest.raises(ValueError, match="unknown TruLens feedback 'coherence'; flightdeck runs groundedness"):
        trulens_run(_results(), ScriptedTruLensLlm(), ["coherence"])
    with pytest.raises(FlightdeckError, match="'trulens' needs an LLM generator .* got FakeEmbedder"):
        trulens_run(_results(), FakeEmbedder(), ["answer_relevance"])


def test_without_trulens_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.delitem(sys.modules, "flightdeck.evaluation.tools.trulens", raising=False)
    for name in [m for m in sys.modules if m == "trulens" or m.startswith("trulens.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "trulens.feedback", None)  # what an install without the extra imports
    with pytest.raises(MissingDependencyError, match=r"evaluation tool 'trulens' needs.*flightdeck\[trulens\]"):
        importlib.import_module("flightdeck.evaluation.tools.trulens")


def test_trulens_sends_nothing_and_writes_no_database(no_network: list[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from flightdeck.evaluation.tools.trulens import trulens_run

    monkeypatch.chdir(tmp_path)  # a TruSession would create default.sqlite here
    run = trulens_run(_results(), ScriptedTruLensLlm())
    assert run.metrics["trulens_failed"] == 0.0 and no_network == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
@pytest.mark.exercises("evaluation.tools.trulens")
@EVAL
def test_an_evaluation_with_trulens_and_the_packaged_local_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 llama_generator: Any, no_network: list[str]) -> None:
    import flightdeck.evaluation.tools.trulens as adapter

    root = _project(tmp_path / "project", gates='{"trulens_failed": "<= 10"}')
    spec = (root / "flightdeck.yaml").read_text().replace("tools: [openai_evals]", "tools: [openai_evals, trulens]")
    (root / "flightdeck.yaml").write_text(spec)
    project = Project.load(root).use(embedder=FakeEmbedder(dimension=256))
    project.run()
    monkeypatch.setattr(Project, "judge", lambda self: LlmJudge(llama_generator))
    # answer relevance (one completion per answer) keeps the test short; the others call the model the same way
    monkeypatch.setattr(adapter, "DEFAULT_FEEDBACKS", ("answer_relevance",))
    done = project.evaluate(limit=2)
    m = done.result.metrics
    assert set(m) >= {"trulens_answer_relevance", "trulens_failed", "openai_match"}
    answered = [q for q in done.result.questions if q.found]
    scored = [q.scores["trulens_answer_relevance"] for q in answered if "trulens_answer_relevance" in q.scores]
    # each answered question has a score in TruLens' [0, 1] or is counted as failed
    assert len(scored) + m["trulens_failed"] == len(answered) >= 1
    assert all(0.0 <= s <= 1.0 for s in scored)
    assert m["trulens_answer_relevance"] is None or math.isclose(m["trulens_answer_relevance"],
                                                                 sum(scored) / len(scored), abs_tol=1e-4)
    assert done.report["options"]["tools"] == ["openai_evals", "trulens"] and done.passed is True
    assert no_network == []
