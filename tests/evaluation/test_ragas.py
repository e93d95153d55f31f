"""Ragas (the real library) on flightdeck's evaluation results, judged by flightdeck's own generator and embedder:
answered questions become Ragas samples, scores come back per question and as means, a reply Ragas cannot parse is
counted in ragas_failed and never stops the run, nothing is sent over the network; end to end with the packaged
Gemma 3 270M as Ragas' LLM."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from test_eval_project import _project

from flightdeck import Project
from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.judge import LlmJudge
from flightdeck.evaluation.runner import QuestionResult
from flightdeck.models.generators.base import Completion
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = needs("ragas", "ragas")
EVAL = needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")

SORT_DOC = ("The sorted function returns a new sorted list from any iterable. Pass a key function to sort records "
            "by one of their fields.")
JSON_DOC = ("The json module reads JSON text with json.loads and writes it with json.dumps. A JSON object becomes a "
            "Python dictionary.")


def _results() -> list[QuestionResult]:
    """Two answered questions with contexts and references, one refused, one that failed, one answered
    unanswerable question (no reference, no retrieval)."""
    return [
        QuestionResult("sort", "How do I sort records by one of their fields?", ["howto"], True,
                       "Pass a key function to sorted to sort records by one of their fields.", ["sorting.md"],
                       answer="Pass a key function to sorted() to sort records by a field [1].", found=True,
                       retrieved=[{"rank": 1, "text": SORT_DOC}, {"rank": 2, "text": JSON_DOC}]),
        QuestionResult("json", "How do I read JSON text into a dictionary?", ["library"], True,
                       "Read JSON text with json.loads; a JSON object becomes a Python dictionary.", ["json.md"],
                       answer="Use json.loads; a JSON object becomes a dictionary [1].", found=True,
                       retrieved=[{"rank": 1, "text": JSON_DOC}]),
        QuestionResult("refused", "How do I create a virtual environment?", [], True, "Use python -m venv.",
                       ["venv.md"], answer="Not found in the documents.", found=False),
        QuestionResult("broken", "How do I find a pattern?", [], True, "Use re.search.", ["regex.md"],
                       error="TimeoutError: no reply", outcome="error"),
        QuestionResult("mars", "What is the boiling point of lava on Mars?", ["unanswerable"], False, "", [],
                       answer="Lava boils at 1200 degrees [1].", found=True),
    ]


def _input(prompt: str) -> dict[str, Any]:
    """The input JSON of a Ragas prompt (its last ``input: {...}`` before ``Output:``)."""
    return json.loads(prompt[prompt.rindex("input: ") + len("input: "):prompt.rindex("\nOutput:")])


class ScriptedRagasLlm:
    """Answers Ragas' prompts the way a good judge would (everything supported, relevant, useful), except the
    prompts whose instruction starts with one of ``garbage``: those get a reply with no JSON in it."""

    model_id = "scripted-ragas"

    def __init__(self, garbage: tuple[str, ...] = ()) -> None:
        self.garbage = garbage
        self.prompts: list[str] = []

    def complete(self, messages: list[dict[str, str]], **_: Any) -> Completion:  # noqa: D102
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        if prompt.startswith(self.garbage):
            return Completion("I think it is fine.", 100, 5, "stop", 1.0)
        if prompt.startswith("The output string did not satisfy"):  # Ragas' "fix the output" retry
            return Completion("Still no idea.", 100, 5, "stop", 1.0)
        data = _input(prompt)
        if prompt.startswith("Given a question and an answer, analyze the complexity"):
            reply = json.dumps({"statements": [data["answer"]]})
        elif prompt.startswith("Your task is to judge the faithfulness"):
            reply = json.dumps({"statements": [{"statement": s, "reason": "stated", "verdict": 1}
                                               for s in data["statements"]]})
        elif prompt.startswith("Generate a question for the given answer"):
            reply = json.dumps({"question": QUESTIONS[data["response"]], "noncommittal": 0})
        elif prompt.startswith("Given question, answer and context verify"):
            reply = json.dumps({"reason": "useful", "verdict": 1})
        else:
            reply = "no idea"
        return Completion(f"Here you are:\n{reply}\nHope this helps.", 100, 20, "stop", 1.0)


# the question each answer answers: the scripted judge "generates" the asked question back (relevancy 1)
QUESTIONS = {r.answer.replace(" [1]", ""): r.question for r in _results()}


def test_answered_questions_become_ragas_samples() -> None:
    from flightdeck.evaluation.tools.ragas import ragas_samples

    samples = dict(ragas_samples(_results(), max_contexts=1))
    assert list(samples) == ["sort", "json", "mars"]  # refused and failed questions are not answers
    assert samples["sort"] == {"user_input": "How do I sort records by one of their fields?",
                               "response": "Pass a key function to sorted() to sort records by a field.",
                               "retrieved_contexts": [SORT_DOC],
                               "reference": "Pass a key function to sorted to sort records by one of their fields."}
    assert samples["mars"] == {"user_input": "What is the boiling point of lava on Mars?",
                               "response": "Lava boils at 1200 degrees."}  # no reference, nothing retrieved


def test_scores_per_question_and_means_with_failures_counted() -> None:
    from flightdeck.evaluation.tools.ragas import ragas_run, ragas_scores

    llm = ScriptedRagasLlm(garbage=("Given question, answer and context verify",))
    run = ragas_run(_results(), llm, FakeEmbedder(dimension=64),
                    ["faithfulness", "answer_relevancy", "context_precision"])
    assert run.samples == 3
    # every answer is supported and answers its question: Ragas' own formulas give 1
    assert run.metrics["ragas_faithfulness"] == 1.0
    assert run.metrics["ragas_answer_relevancy"] == pytest.approx(1.0, abs=1e-4)
    assert run.per_question["mars"] == {"ragas_answer_relevancy": pytest.approx(1.0, abs=1e-4)}  # no contexts
    # the context-precision replies hold no JSON (nor does Ragas' "fix the output" retry): unmeasured, counted
    assert run.metrics["ragas_context_precision"] is None and run.metrics["ragas_failed"] == 2.0
    assert len(run.errors) == 2 and all("context_precision" in e for e in run.errors)
    assert any(p.startswith("The output string did not satisfy") for p in llm.prompts)  # Ragas' own retry ran
    assert "[1]" not in "".join(llm.prompts)  # citation markers are not claims

    results = _results()
    means = ragas_scores(results, ScriptedRagasLlm(), FakeEmbedder(dimension=64), ["faithfulness"])
    assert means == {"ragas_faithfulness": 1.0, "ragas_failed": 0.0}
    assert results[0].scores == {"ragas_faithfulness": 1.0} and results[2].scores == {}


def test_what_ragas_would_fetch_from_openai_is_refused() -> None:
    from flightdeck.evaluation.tools.ragas import ragas_run

    with pytest.raises(ValueError, match="unknown Ragas metric 'bleu'"):
        ragas_run(_results(), ScriptedRagasLlm(), FakeEmbedder(), ["bleu"])
    with pytest.raises(FlightdeckError, match="needs an LLM generator"):
        ragas_run(_results(), None, FakeEmbedder(), ["faithfulness"])
    with pytest.raises(FlightdeckError, match="needs an embedder"):
        ragas_run(_results(), ScriptedRagasLlm(), None, ["answer_relevancy"])


class CountingCalls:
    """A generator's ``complete`` counted (how often Ragas' LLM reached for the model)."""

    def __init__(self, generator: Any) -> None:
        self.generator, self.model_id, self.calls = generator, generator.model_id, 0

    def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:  # noqa: D102
        self.calls += 1
        return self.generator.complete(messages, **kwargs)


def test_an_unreachable_model_is_asked_once_and_named(unused_port: int, caplog: pytest.LogCaptureFixture) -> None:
    from flightdeck.evaluation.tools.ragas import ragas_run
    from flightdeck.models.generators.openai import OpenAIGenerator, OpenAIGeneratorConfig

    down = CountingCalls(OpenAIGenerator(OpenAIGeneratorConfig(
        base_url=f"http://127.0.0.1:{unused_port}/v1", model="judge", max_retries=0, timeout=5)))
    with caplog.at_level("WARNING", logger="flightdeck.ragas"):
        run = ragas_run(_results(), down, FakeEmbedder(dimension=64), ["faithfulness", "context_precision"])
    # the 2 answers with contexts and a reference, for each metric: every pair failed, none was scored
    assert run.metrics == {"ragas_faithfulness": None, "ragas_context_precision": None, "ragas_failed": 4.0}
    assert run.per_question == {} and len(run.errors) == 4
    assert down.calls == 1  # the first refusal is kept: no further request, no timeout waited per job
    assert run.unreachable.startswith("OpenAIGeneratorError") and f"127.0.0.1:{unused_port}" in run.unreachable
    assert all("could not be reached" in e for e in run.errors), run.errors
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "could not be reached, 4 of 4 (question, metric) pairs unmeasured" in warned[0]
    assert f"127.0.0.1:{unused_port}" in warned[0] and "base_url" in warned[0]  # where, and what to fix


class TooLongLlm:
    """A model whose window no Ragas prompt fits: each request fails on its own (as llama.cpp's generator says)."""

    model_id = "tiny-window"
    calls = 0

    def complete(self, messages: list[dict[str, str]], **_: Any) -> Completion:  # noqa: D102
        self.calls += 1
        raise FlightdeckError("tiny-window: Requested tokens (900) exceed context window of 512; raise "
                              "model.generator.n_ctx or lower max_tokens")


def test_a_request_that_fails_on_its_own_fails_only_its_job(caplog: pytest.LogCaptureFixture) -> None:
    from flightdeck.evaluation.tools.ragas import ragas_run

    llm = TooLongLlm()
    with caplog.at_level("WARNING", logger="flightdeck.ragas"):
        run = ragas_run(_results(), llm, FakeEmbedder(dimension=64), ["faithfulness", "context_precision"])
    assert llm.calls == 4 and run.unreachable == ""  # each job asked the model (and failed on its first prompt)
    assert run.metrics["ragas_failed"] == 4.0 and all("exceed context window" in e for e in run.errors), run.errors
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_looping_reply_is_cut() -> None:
    from flightdeck.evaluation.tools.ragas import _json_closed, _repeated_line

    assert _json_closed('Output: {"a": [1, 2]} and more') and not _json_closed('{"a": [1,')
    assert _repeated_line('{\n' + ' "key": "key",\n "value": "key",\n' * 4) == '"key": "key", / "value": "key",'
    statement = '"Pass a key function to sorted() to sort records.",\n'
    assert _repeated_line(statement + '"x",\n' + statement + statement) == statement.strip()
    verdicts = "".join(f'{{\n"statement": "s{n}",\n"reason": "ok",\n"verdict": 1\n}},\n' for n in range(5))
    assert _repeated_line(verdicts) == ""  # short lines that repeat in a list of verdicts are not a loop
    assert _repeated_line('"json.loads(' + "json.loads(" * 5) == "json.loads(json.loads("
    assert _repeated_line('{"reason": "I am 100% sure: 2000 > 100",') == ""


def test_ragas_sends_nothing_over_the_network(no_network: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import flightdeck.evaluation.tools.ragas as adapter

    _analytics = adapter._analytics  # ragas._analytics, imported after the adapter set RAGAS_DO_NOT_TRACK
    assert adapter.os.environ["RAGAS_DO_NOT_TRACK"] == "true" and _analytics.do_not_track()
    run = adapter.ragas_run(_results(), ScriptedRagasLlm(), FakeEmbedder(dimension=64),
                            ["faithfulness", "answer_relevancy", "context_precision"])
    _analytics._analytics_batcher.flush()  # what Ragas would send at exit
    assert run.metrics["ragas_failed"] == 0.0 and no_network == []
    # the guard sees Ragas phone home once tracking is on (what RAGAS_DO_NOT_TRACK=true prevents)
    monkeypatch.setenv("RAGAS_DO_NOT_TRACK", "false")
    _analytics.do_not_track.cache_clear()
    try:
        _analytics.track(_analytics.IsCompleteEvent(event_type="test", is_completed=True))
    finally:
        monkeypatch.setenv("RAGAS_DO_NOT_TRACK", "true")
        _analytics.do_not_track.cache_clear()
    assert no_network and "explodinggradients" in no_network[0]


@pytest.mark.integration
def test_the_packaged_local_model_as_ragas_llm(llama_generator: Any, no_network: list[str]) -> None:
    from flightdeck.evaluation.tools.ragas import ragas_run

    # faithfulness: two prompts per answer (statements, then a verdict on each); the end-to-end test below runs
    # answer relevancy (the LLM and the embedder)
    run = ragas_run(_results()[:2], llama_generator, FakeEmbedder(dimension=64), ["faithfulness"], timeout=60,
                    max_tokens=160)
    scored = [v for scores in run.per_question.values() for v in scores.values()]
    assert all(0.0 <= v <= 1.0 for v in scored)
    # each (question, metric) pair has a score or is counted as failed, with the reason kept
    assert len(scored) + run.metrics["ragas_failed"] == 2 and len(run.errors) == run.metrics["ragas_failed"]
    assert run.metrics["ragas_faithfulness"] is None or 0.0 <= run.metrics["ragas_faithfulness"] <= 1.0
    assert no_network == []


@pytest.mark.integration
@pytest.mark.exercises("evaluation.tools.ragas")
@EVAL
def test_an_evaluation_with_ragas_and_the_packaged_local_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               llama_generator: Any, no_network: list[str]) -> None:
    import flightdeck.evaluation.tools.ragas as adapter

    root = _project(tmp_path, gates='{"ragas_failed": "<= 10"}')
    spec = (root / "flightdeck.yaml").read_text().replace("tools: [openai_evals]", "tools: [openai_evals, ragas]")
    (root / "flightdeck.yaml").write_text(spec)
    project = Project.load(root).use(embedder=FakeEmbedder(dimension=256))
    project.run()
    monkeypatch.setattr(Project, "judge", lambda self: LlmJudge(llama_generator))
    # one metric that needs the LLM and the embedder keeps the test short; the others run the same way
    monkeypatch.setattr(adapter, "DEFAULT_METRICS", ("answer_relevancy",))
    done = project.evaluate(limit=2)
    m = done.result.metrics
    assert set(m) >= {"ragas_answer_relevancy", "ragas_failed", "openai_match"}
    answered = [q for q in done.result.questions if q.found]
    scored = [q.scores["ragas_answer_relevancy"] for q in answered if "ragas_answer_relevancy" in q.scores]
    assert len(scored) + m["ragas_failed"] == len(answered) >= 1
    assert all(0.0 <= s <= 1.0 for s in scored)
    assert m["ragas_answer_relevancy"] is None or math.isclose(m["ragas_answer_relevancy"],
                                                               sum(scored) / len(scored), abs_tol=1e-4)
    assert done.report["options"]["tools"] == ["openai_evals", "ragas"] and done.passed is True
    assert no_network == []
