"""Metrics of checklist 4.1 against values worked out by hand: retrieval (pytrec_eval), answer text (sacrebleu,
rouge-score, token F1), classification (scikit-learn), and the judge-free groundedness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flightdeck.evaluation.metrics import known_metric, metric_names
from flightdeck.evaluation.metrics.classification import answerability_scores
from flightdeck.evaluation.metrics.grounding import VectorCache, sentence_support, similarity
from flightdeck.evaluation.metrics.retrieval import retrieval_scores
from flightdeck.evaluation.metrics.text import (
    bleu,
    corpus_bleu,
    exact_match,
    normalize,
    rouge,
    strip_citations,
    token_f1,
)
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = pytest.mark.unit
def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-5)  # the scores are rounded to 5 places


EVAL = needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")


def test_citation_markers_and_articles_do_not_count_as_words() -> None:
    assert strip_citations("Use sorted() [1]. It is stable [2, 3].") == "Use sorted(). It is stable."
    assert normalize("The answer is: A list! [4]") == "answer is list"
    assert exact_match("The list.", "list") == 1.0
    # "use sorted with key" against "use sorted function": 2 shared, P 2/4, R 2/3
    assert token_f1("use sorted with a key [1]", "use the sorted function") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


@pytest.mark.exercises("evaluation.metrics.bleu_rouge")
@EVAL
def test_bleu_and_rouge_of_identical_disjoint_and_partial_answers() -> None:
    ref = "The sorted function returns a new sorted list from the items in an iterable."
    assert bleu(ref + " [1]", ref) == pytest.approx(1.0)
    assert bleu("completely different words here now", ref) < 0.05
    assert rouge(ref, ref) == {"rouge1": pytest.approx(1.0), "rouge2": pytest.approx(1.0), "rougeL": pytest.approx(1.0)}
    partial = rouge("sorted returns a new list", ref)
    # 5 answer words, stemmed; "sorted", "returns", "a", "new", "list" all in the reference (14 tokens)
    assert partial["rouge1"] == pytest.approx(2 * 1.0 * (5 / 14) / (1 + 5 / 14), abs=1e-6)
    assert 0 < corpus_bleu(["sorted returns a new list"], [ref]) < 1 and corpus_bleu([], []) == 0.0


@pytest.mark.exercises("evaluation.metrics.accuracy_precision_recall")
@pytest.mark.exercises("evaluation.metrics.f1")
@pytest.mark.exercises("evaluation.metrics.auroc")
@pytest.mark.exercises("evaluation.metrics.rmse_mae")
@EVAL
def test_refusal_classification_against_hand_counts() -> None:
    truth = [True, True, True, False, False]
    answered = [True, True, False, True, False]  # TP 2, FN 1, FP 1, TN 1
    scores = [0.9, 0.8, 0.0, 0.6, 0.0]
    got = answerability_scores(truth, answered, scores, {"accuracy_precision_recall", "f1", "auroc", "rmse_mae"})
    assert got["answerability_accuracy"] == approx(3 / 5)
    assert got["answerability_precision"] == approx(2 / 3)
    assert got["answerability_recall"] == approx(2 / 3)
    assert got["answerability_f1"] == approx(2 / 3)
    # pairs (positive, negative) ranked right: (0.9,0.6) (0.9,0) (0.8,0.6) (0.8,0) (0,0)=½ (0,0.6)=0 → 4.5/6
    assert got["answerability_auroc"] == approx(4.5 / 6)
    errors = [0.1, 0.2, 1.0, 0.6, 0.0]
    assert got["answerability_rmse"] == approx(math.sqrt(sum(e * e for e in errors) / 5))
    assert got["answerability_mae"] == approx(sum(errors) / 5)
    only_answerable = answerability_scores([True, True], [True, False], [0.5, 0.0], {"auroc", "f1"})
    assert "answerability_auroc" not in only_answerable  # undefined with one class: left out, not made up


@EVAL
def test_retrieval_metrics_against_hand_computed_values() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}, "q3": {"d9": 1}}
    ranking = {"q1": ["d5", "d1", "d6"], "q2": ["d3", "d7", "d8", "d9", "d2"], "q3": []}
    means, per = retrieval_scores(qrels, ranking, k=3)
    assert per["q1"]["mrr@3"] == 0.5 and per["q1"]["recall@1"] == 0 and per["q1"]["recall@3"] == 1
    assert per["q1"]["ndcg@3"] == pytest.approx(1 / math.log2(3), abs=1e-4)
    assert per["q1"]["hit_rate@1"] == 0 and per["q1"]["hit_rate@3"] == 1
    assert per["q2"]["recall@3"] == 0.5 and per["q2"]["recall@5"] == 1
    assert per["q2"]["precision@3"] == pytest.approx(1 / 3, abs=1e-4)
    assert per["q2"]["mrr@3"] == 1.0
    assert per["q3"] == {name: 0.0 for name in per["q3"]}  # nothing retrieved: zeros, still counted
    assert means["mrr@3"] == pytest.approx((0.5 + 1.0 + 0) / 3, abs=1e-4)


def test_groundedness_finds_the_supporting_sentence_and_flags_the_rest() -> None:
    vectors = VectorCache(FakeEmbedder(dimension=256).embed_documents)
    evidence = [("c1", "Virtual environments are created with the venv module. Activate it before installing."),
                ("c2", "The sorted function returns a new list.")]
    got = sentence_support("Virtual environments are created with the venv module [1]. Bananas grow on tall "
                           "green plants in warm countries.", evidence, vectors, threshold=0.5)
    assert [s.chunk_id for s in got][0] == "c1" and got[0].supported and got[0].support > 0.9
    assert not got[1].supported and got[1].support < 0.5
    assert got[0].evidence.startswith("Virtual environments are created")
    assert sentence_support("Anything at all here.", [], vectors, 0.5)[0].support == 0.0
    assert similarity("sorted returns a new list [2]", "sorted returns a new list", vectors) == pytest.approx(1.0)


def test_vector_cache_embeds_each_text_once() -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.eye(4, dtype=np.float32)[: len(texts)]

    cache = VectorCache(embed)
    cache(["a", "b", "a"])
    cache(["b", "c"])
    assert calls == [["a", "b"], ["c"]]


def test_metric_names_follow_the_chosen_families_and_depth() -> None:
    names = metric_names(5, ["bleu_rouge"])
    assert "ndcg@5" in names and "rougeL" in names and "answer_similarity" not in names
    assert known_metric("recall@20") and known_metric("faithfulness") and known_metric("token_f1")
    assert not known_metric("ndgc@10") and not known_metric("accuracy")
