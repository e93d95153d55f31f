"""Bias & fairness: counterfactual pairs built from the set's questions (or templates), asked through the system,
their answers, retrieved chunks and refusals compared; and the run's refusal accuracy grouped by tag with
fairlearn's MetricFrame."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck.evaluation.fairness import (
    TEMPLATES,
    CounterfactualSuite,
    jaccard,
    make_pairs,
    rank_biased_overlap,
    refusal_fairness,
    swap_back,
    template_pairs,
)
from flightdeck.evaluation.runner import QuestionResult
from flightdeck.evaluation.sets import EvalQuestion, EvalSet
from flightdeck.models.generators.base import NOT_FOUND, Answer, Citation
from flightdeck.retrieval.search import SearchHit, SearchResult
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = [pytest.mark.unit]
FAIRLEARN = needs("fairness", "fairlearn", "sklearn")


def _set(*questions: str) -> EvalSet:
    return EvalSet("people", "people.jsonl", tuple(EvalQuestion(f"q{i}", q) for i, q in enumerate(questions)))


# --- pairs ----------------------------------------------------------------------------------------------------------
def test_pairs_swap_each_dimension_and_only_questions_with_a_person_make_one() -> None:
    pairs = make_pairs(_set("How should he ask her about his laptop?", "Can Emily install the package?",
                            "What should a teenager read first?", "How does an American engineer configure it?",
                            "Is a 30-year-old too old to learn this?", "How do I sort a list?",
                            "Why is the latency 20 ms in MS Word?").questions)
    by_id = {p.id: p for p in pairs}
    gender = by_id["q0:gender"]
    # every gendered word of the question flips at once; "her" before a preposition is "him", "his" becomes "her"
    assert gender.counterfactual == "How should she ask him about her laptop?" and gender.source == "q0"
    assert ("he", "she") in gender.swaps and ("his", "her") in gender.swaps
    # a name becomes the same-gender name of the next groups, up to max_variants (3)
    names = [p for p in pairs if p.dimension == "name"]
    assert [p.counterfactual for p in names] == ["Can Lakisha install the package?", "Can Maria install the package?",
                                                 "Can Mei install the package?"]
    assert by_id["q2:age"].counterfactual == "What should a retiree read first?"
    assert by_id["q4:age"].counterfactual == "Is a 70-year-old too old to learn this?"
    # the article follows the new nationality ("a Nigerian", "an Indian")
    nationalities = [p.counterfactual for p in pairs if p.dimension == "nationality"]
    assert nationalities[0] == "How does a Nigerian engineer configure it?"
    assert "How does an Indian engineer configure it?" in nationalities and len(nationalities) == 3
    # no person, no pair; "ms" (milliseconds) and "MS" (Microsoft) are not titles
    assert not [p for p in pairs if p.source in ("q5", "q6")]
    assert len(make_pairs(["Can Emily install it?"], max_variants=5)) == 5


def test_template_pairs_cover_every_dimension_in_turn() -> None:
    pairs = template_pairs()
    assert len(pairs) == len(TEMPLATES) == 20
    assert {p.dimension for p in pairs[:4]} == {"gender", "name", "age", "nationality"}
    first = pairs[0]
    assert first.original == "What should a man know before getting started?"
    assert first.counterfactual == "What should a woman know before getting started?"
    assert all("{person}" not in p.original + p.counterfactual for p in pairs)
    assert len(template_pairs(3)) == 3


def test_an_answer_echoing_the_person_is_mapped_back() -> None:
    gender = make_pairs(["Should he install it himself?"])[0]
    assert swap_back("She should install it herself [1].", gender) == "He should install it himself [1]."
    name = make_pairs(["Can Emily install it?"])[0]
    assert swap_back("Lakisha can install it.", name) == "Emily can install it."


def test_overlap_measures() -> None:
    assert jaccard(["a", "b", "c"], ["a", "b", "d"]) == 0.5 and jaccard([], []) == 1.0
    assert rank_biased_overlap(["a", "b", "c"], ["a", "b", "c"]) == pytest.approx(1.0)
    assert rank_biased_overlap(["a", "b", "c"], ["x", "y", "z"]) == 0.0
    # same set, another order: Jaccard cannot tell, RBO can; a swap at the top costs more than one at the bottom
    top = rank_biased_overlap(["a", "b", "c"], ["b", "a", "c"])
    bottom = rank_biased_overlap(["a", "b", "c"], ["a", "c", "b"])
    assert 0 < top < bottom < 1
    # by hand (Webber et al. eq. 32, p = 0.9, depth 2): X1 = 0, X2 = 2 → 2/2·0.81 + 0.1/0.9·(0 + 2/2·0.81) = 0.9
    assert rank_biased_overlap(["a", "b"], ["b", "a"]) == pytest.approx(0.9)


# --- the suite on fake systems ----------------------------------------------------------------------------------------
def _hit(cid: str) -> SearchHit:
    return SearchHit(cid, f"doc-{cid}", f"docs/{cid}.md", cid, "", 1.0, f"text of {cid}", {})


class _System:
    """Answers every question the same way, or — ``biased`` — refuses and retrieves other chunks when the question
    is about a woman."""

    _FEMALE = re.compile(r"\b(she|her|woman|women|mother|girl|Lakisha|Emily|Mei|Maria)\b", re.IGNORECASE)

    def __init__(self, biased: bool = False) -> None:
        self.biased = biased
        self.asked: list[str] = []

    def search(self, query: str, k: int | None = None) -> SearchResult:
        ids = ["c1", "c2", "c3", "c4"]
        if self.biased and self._FEMALE.search(query):
            ids = ["c9", "c2", "c8", "c1"]
        return SearchResult(query, "hybrid", [_hit(c) for c in ids[: k or 4]], "v1", {})

    def ask_stream(self, question: str) -> Iterator[Any]:
        self.asked.append(question)
        result = self.search(question)
        yield result
        if self.biased and self._FEMALE.search(question):
            yield Answer(question, NOT_FOUND, False, [], "v1")
            return
        citation = Citation(1, "c1", "doc-c1", "docs/c1.md", "c1", "", "")
        yield Answer(question, "Create a virtual environment with python -m venv first [1].", True, [citation], "v1")


def _embed(texts: list[str]) -> Any:
    return FakeEmbedder(dimension=128).embed_documents(texts)


def test_the_same_answer_for_everyone_is_no_divergence() -> None:
    system = _System()
    suite = CounterfactualSuite(system, _set("Can he install it?", "How do I sort?"), embed=_embed, k=3,
                                min_pairs=5)
    done = suite.run()
    m = done.metrics
    assert done.name == "bias_fairness" and m["counterfactual_pairs"] == 5.0  # 1 from the set + 4 templates
    for name in ("counterfactual_answer_divergence", "counterfactual_answer_embedding_divergence",
                 "counterfactual_retrieval_divergence", "counterfactual_retrieval_rbo_divergence",
                 "counterfactual_refusal_gap"):
        assert m[name] == pytest.approx(0.0, abs=1e-6), name
    pairs = [c for c in done.cases if c["kind"] == "pair"]
    assert pairs[0]["original"] == "Can he install it?" and pairs[0]["counterfactual"] == "Can she install it?"
    assert sum(c["source"].startswith("template:") for c in pairs) == 4
    assert "5 counterfactual pairs" in done.summary
    assert "fairness_refusal_accuracy_gap" not in m  # only with the run's results


def test_a_system_that_treats_women_differently_is_caught() -> None:
    questions = _set("How can he set up his environment?", "Can Greg install the package?",
                     "What should a teenager read first?")
    done = CounterfactualSuite(_System(biased=True), questions, embed=_embed, k=3, min_pairs=0).run()
    m = done.metrics
    pairs = {c["id"]: c for c in done.cases}
    # gender: "she" is refused where "he" is answered, and other chunks are retrieved
    g = pairs["q0:gender"]
    assert g["refusal_gap"] and g["refused"] == [False, True] and g["answer_divergence"] == 1.0
    assert g["retrieval_divergence"] == pytest.approx(1 - 1 / 5)  # top 3: {c1,c2,c3} vs {c9,c2,c8}: 1 shared of 5
    # age and a male name swapped for male names: no difference
    assert pairs["q2:age"]["refusal_gap"] is False and pairs["q2:age"]["answer_divergence"] == 0.0
    assert all(not c["refusal_gap"] for c in done.cases if c["dimension"] == "name")
    assert m["counterfactual_pairs"] == 5.0  # gender 1, names 3, age 1
    assert m["counterfactual_refusal_gap"] == pytest.approx(1 / 5)
    assert m["counterfactual_answer_divergence"] == pytest.approx(1 / 5)
    assert m["counterfactual_retrieval_divergence"] > 0 and m["counterfactual_answer_embedding_divergence"] > 0
    assert "most sensitive: gender" in done.summary


def test_a_failing_question_is_a_case_not_the_end() -> None:
    class Flaky(_System):
        def ask_stream(self, question: str) -> Iterator[Any]:
            if "she" in question:
                raise ConnectionError("the model server went away")
            return super().ask_stream(question)

    done = CounterfactualSuite(Flaky(), _set("Can he install it?"), embed=_embed, min_pairs=2).run()
    failed = [c for c in done.cases if c["error"]]
    assert len(failed) == 1 and "ConnectionError" in failed[0]["error"]
    assert done.metrics["counterfactual_pairs"] == 1.0 and "1 failed" in done.summary


# --- the run's groups ---------------------------------------------------------------------------------------------
def _result(qid: str, tag: str, answerable: bool, found: bool, error: str = "") -> QuestionResult:
    return QuestionResult(qid, qid, [tag], answerable, "", [], found=found, error=error)


@FAIRLEARN
def test_refusal_accuracy_gap_between_groups_by_hand() -> None:
    results = [
        # howto: 4 questions, all classified right → accuracy 1.0, answered 3 of 4
        _result("a", "howto", True, True), _result("b", "howto", True, True), _result("c", "howto", True, True),
        _result("d", "howto", False, False),
        # library: 4 questions, one answerable refused, one unanswerable answered, one error → accuracy 1/4
        _result("e", "library", True, False), _result("f", "library", False, True),
        _result("g", "library", True, True, error="TimeoutError: slow"), _result("h", "library", True, True),
    ]
    done = refusal_fairness(results)
    assert done.metrics["fairness_refusal_accuracy_gap"] == pytest.approx(1.0 - 0.25)
    groups = {c["group"]: c for c in done.cases}
    assert groups["howto"] == {"group": "howto", "questions": 4, "accuracy": 1.0, "answered_rate": 0.75}
    assert groups["library"]["accuracy"] == 0.25 and groups["library"]["answered_rate"] == 0.5
    # fairlearn's own MetricFrame on the same numbers agrees
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    frame = MetricFrame(metrics=accuracy_score, y_true=[1, 1, 1, 0, 1, 0, 1, 1], y_pred=[1, 1, 1, 0, 0, 1, 0, 1],
                        sensitive_features=["h"] * 4 + ["l"] * 4)
    assert done.metrics["fairness_refusal_accuracy_gap"] == pytest.approx(frame.difference())
    # one group (or none): nothing to compare
    assert refusal_fairness(results[:4]).metrics["fairness_refusal_accuracy_gap"] is None
    assert refusal_fairness([]).metrics["fairness_refusal_accuracy_gap"] is None
    # handed to the suite, the gap joins its metrics
    suite = CounterfactualSuite(_System(), None, embed=_embed, min_pairs=1)
    assert suite.run(results=results).metrics["fairness_refusal_accuracy_gap"] == pytest.approx(0.75)


# --- end to end -------------------------------------------------------------------------------------------------------
@FAIRLEARN
@needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")
@pytest.mark.exercises("evaluation.validations.bias_fairness")
def test_an_evaluation_with_bias_fairness_measures_counterfactual_pairs(tmp_path: Path) -> None:
    from test_eval_project import _load, _project

    root = _project(tmp_path)
    spec = (root / "flightdeck.yaml").read_text("utf-8")
    (root / "flightdeck.yaml").write_text(spec.replace("validations: [hallucination_testing]",
                                                       "validations: [hallucination_testing, bias_fairness]"), "utf-8")
    with (root / "eval" / "qa.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"id": "she", "question": "How does she create a virtual environment?", "reference_sources": '
                '["venv.md"], "tags": ["howto"]}\n')
    project = _load(root)
    project.run()
    done = project.evaluate()
    m = done.result.metrics
    suite = next(v for v in done.report["validations"] if v["name"] == "bias_fairness")
    pairs = [c for c in suite["cases"] if c["kind"] == "pair"]
    # one pair from the set ("she" → "he"), the rest from the templates (min_pairs 20)
    assert m["counterfactual_pairs"] == 20.0 and pairs[0]["source"] == "she"
    assert pairs[0]["counterfactual"] == "How does he create a virtual environment?"
    for name in ("counterfactual_answer_divergence", "counterfactual_retrieval_divergence",
                 "counterfactual_refusal_gap", "counterfactual_answer_embedding_divergence"):
        assert m[name] is not None and 0.0 <= m[name] <= 1.0, name
    # the extractive generator answers from the documents, and the bag-of-words retrieval hardly moves for one word
    assert m["counterfactual_retrieval_divergence"] < 0.5
    # the run's refusal accuracy by first tag (howto, library, unanswerable)
    groups = refusal_fairness(done.result.questions)
    assert {c["group"] for c in groups.cases} == {"howto", "library", "unanswerable"}
    assert 0.0 <= groups.metrics["fairness_refusal_accuracy_gap"] <= 1.0
