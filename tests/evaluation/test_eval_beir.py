"""BEIR retrieval evaluation: loading, metrics against hand-computed values, end to end."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.errors import FlightdeckError, MissingDependencyError
from flightdeck.evaluation.beir import beir_spec, evaluate_project, evaluate_run, load_beir
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = pytest.mark.unit
# the metrics are trec_eval's (pytrec-eval-terrier, the eval extra); loading a dataset needs nothing
TREC_EVAL = needs("eval", "pytrec_eval")

CORPUS = [
    ("d1", "Aspirin and the heart", "Low dose aspirin reduces the risk of heart attack in adults."),
    ("d2", "Vitamin D", "Vitamin D deficiency is common in northern countries during winter."),
    ("d3", "Sleep", "Adults who sleep less than six hours have higher blood pressure."),
    ("d4", "Coffee", "Moderate coffee drinking is not linked to heart disease."),
    ("d5", "Exercise", "Regular exercise lowers resting heart rate and blood pressure."),
]
QUERIES = {"q1": "aspirin lowers heart attack risk", "q2": "vitamin D deficiency in winter",
           "q3": "short sleep raises blood pressure", "q9": "unjudged query"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1), ("q3", "d5", 1)]


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x})
                                                 for i, t, x in CORPUS) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in QUERIES.items()))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                              + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS))
    return root


def test_load_keeps_only_judged_queries(beir_dir: Path) -> None:
    ds = load_beir(beir_dir, "train")
    assert set(ds.queries) == {"q1", "q2", "q3"} and ds.qrels["q3"] == {"d3": 1, "d5": 1}
    with pytest.raises(FlightdeckError, match=r"qrels/test.tsv: not found.*splits here: train"):
        load_beir(beir_dir, "test")


@TREC_EVAL
def test_metrics_match_hand_computed_values() -> None:
    qrels = {"a": {"x": 1}, "b": {"y": 1, "z": 1}}
    run = {"a": {"w": 3.0, "x": 2.0}, "b": {"z": 5.0}}
    m = evaluate_run(qrels, run)
    ndcg_a = (1 / math.log2(3)) / 1.0
    ndcg_b = 1.0 / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((ndcg_a + ndcg_b) / 2, abs=1e-4)
    assert m["recall@100"] == pytest.approx((1.0 + 0.5) / 2, abs=1e-4)
    assert m["mrr@10"] == pytest.approx((0.5 + 1.0) / 2, abs=1e-4)
    # a judged query with nothing retrieved counts as zero, not as missing
    assert evaluate_run(qrels, {"a": {"x": 1.0}})["ndcg@10"] == pytest.approx(0.5, abs=1e-4)


@TREC_EVAL
def test_evaluate_project_maps_chunks_to_documents(beir_dir: Path, tmp_path: Path) -> None:
    ds = load_beir(beir_dir, "train")
    spec = tmp_path / "ws" / "flightdeck.yaml"
    spec.parent.mkdir()
    spec.write_text(beir_spec(ds))
    project = Project.load(spec)
    project.use(embedder=FakeEmbedder())
    project.run()
    for mode in ("keyword", "vector", "hybrid"):
        report = evaluate_project(project, ds, mode=mode)
        assert report.queries == 3 and report.mode == mode
        assert 0.0 <= report.metrics["ndcg@10"] <= 1.0
        assert report.metrics["recall@100"] == 1.0  # 5 documents, depth 100: everything is found
    keyword = evaluate_project(project, ds, mode="keyword")
    assert keyword.metrics["mrr@10"] == 1.0  # each query's words point at its judged document first
    assert set(keyword.latency_ms) == {"p50", "p90", "p99", "mean"}


@pytest.mark.integration
@TREC_EVAL
def test_cli_eval_retrieval_json_with_the_real_model(beir_dir: Path, tmp_path: Path) -> None:
    from flightdeck.cli.main import app

    res = CliRunner().invoke(app, ["eval", "retrieval", "--beir", str(beir_dir), "--split", "train", "--json",
                                   "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["queries"] == 3 and out["split"] == "train" and out["mode"] == "hybrid"
    assert out["metrics"]["ndcg@10"] > 0.8 and out["metrics"]["recall@100"] == 1.0
    assert out["index_version"] and out["query_embedding_ms"]["p50"] > 0


def test_without_the_eval_extra_nothing_is_indexed_or_searched(beir_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from flightdeck.cli.main import app

    monkeypatch.setitem(sys.modules, "pytrec_eval", None)  # what an install without the eval extra looks like
    workspace = tmp_path / "ws"
    res = CliRunner().invoke(app, ["eval", "retrieval", "--beir", str(beir_dir), "--split", "train", "--json",
                                   "--workspace", str(workspace)])
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["type"] == "MissingDependencyError" and "pip install 'flightdeck[eval]'" in out["error"]
    assert not workspace.exists()  # said before the corpus was indexed with the real model, not after
    # the library call too: refused before the first query is searched
    with pytest.raises(MissingDependencyError, match=r"flightdeck\[eval\]"):
        evaluate_project(object(), load_beir(beir_dir, "train"))
