"""Explainability: each hit's fused score split into its vector and keyword parts by the searcher's own formula
(checked by hand on a three-document index, for both fusions), SHAP values that add up to the fused score minus
the base value, and `flightdeck explain` printing which chunk supports each answer sentence."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.explain import FEATURES, explain_hits, fusion_contributions
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = [pytest.mark.unit, needs("explain", "shap")]
runner = CliRunner()

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv followed by the folder "
               "name. Activate the virtual environment before installing packages.\n",
    "json.md": "# JSON\n\nThe json module reads JSON text with json.loads and writes it with json.dumps. A JSON object "
               "becomes a Python dictionary.\n",
    "regex.md": "# Regular expressions\n\nThe re module compiles patterns with re.compile. Use re.search to find the "
                "first match of a pattern anywhere in a string.\n",
}
QUESTION = "How do I read JSON text into a Python dictionary?"


def _project(root: Path, fusion: str) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: explain-test
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: 256, overlap: 0}}
        retrieval:
          system: [hybrid_search]
          search: {{mode: hybrid, k: 3, fusion: {fusion}, vector_weight: 2.0, keyword_weight: 1.0}}
        model:
          generator: {{provider: extractive, min_score: 0.2, max_sentences: 2}}
        evaluation:
          validations: [explainability]
        """), "utf-8")
    return root


def _load(root: Path) -> Project:
    return Project.load(root).use(embedder=FakeEmbedder(dimension=256))


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Project]:
    built = {}
    for fusion in ("weighted", "rrf"):
        project = _load(_project(tmp_path_factory.mktemp(fusion), fusion))
        project.run()
        built[fusion] = project
    return built


def _alone(project: Project, mode: str) -> list[tuple[str, float]]:
    return [(h.chunk_id, h.score) for h in project.search(QUESTION, k=200, mode=mode, transform=False).hits]


@pytest.mark.exercises("evaluation.validations.explainability")
def test_weighted_fusion_splits_into_its_min_max_terms_by_hand(projects: dict[str, Project]) -> None:
    project = projects["weighted"]
    vector, keyword = _alone(project, "vector"), _alone(project, "keyword")
    assert len(vector) == 3 and 1 <= len(keyword) <= 3  # one chunk per document
    explained = explain_hits(project.searcher, QUESTION)
    assert explained.fusion == "weighted" and explained.weights == {"vector": 2.0, "keyword": 1.0}
    assert [h.chunk_id for h in explained.hits] == [h.chunk_id for h in project.search(QUESTION).hits]
    assert explained.hits[0].document_id.endswith("json.md")
    v, kw = dict(vector), dict(keyword)
    v_lo, v_hi = min(v.values()), max(v.values())
    k_lo, k_hi = min(kw.values()), max(kw.values())
    for hit in explained.hits:
        # by hand: 2 · (s_v − min_v) / (max_v − min_v) + 1 · (s_k − min_k) / (max_k − min_k), 0 where not returned
        want_v = 2.0 * (v[hit.chunk_id] - v_lo) / (v_hi - v_lo)
        want_k = (kw[hit.chunk_id] - k_lo) / (k_hi - k_lo) if hit.chunk_id in kw and k_hi > k_lo else (
            1.0 if hit.chunk_id in kw else 0.0)
        assert hit.contributions["vector"] == pytest.approx(want_v, abs=1e-6)
        assert hit.contributions["keyword"] == pytest.approx(want_k, abs=1e-6)
        # the parts add up to the score the searcher returned, and the shares to 1
        assert hit.contributions["vector"] + hit.contributions["keyword"] == pytest.approx(hit.score, abs=1e-5)
        assert abs(hit.residual) < 1e-5
        if hit.score > 0:
            assert sum(hit.shares.values()) == pytest.approx(1.0, abs=1e-6)
            assert hit.shares["vector"] == pytest.approx(want_v / hit.score, abs=1e-5)
        assert hit.features["vector_rank"] == [c for c, _ in vector].index(hit.chunk_id) + 1
        assert hit.features["vector_score"] == pytest.approx(v[hit.chunk_id], abs=1e-6)
    assert explained.normalisation["vector"] == {"min": pytest.approx(v_lo), "max": pytest.approx(v_hi)}
    # the bare function agrees with the searcher's fusion on the same lists
    from flightdeck.retrieval.fusion import weighted_score_fusion

    parts = fusion_contributions("weighted", explained.weights, {"vector": vector, "keyword": keyword})
    for cid, score in weighted_score_fusion({"vector": vector, "keyword": keyword}, explained.weights):
        assert sum(parts[cid].values()) == pytest.approx(score, abs=1e-9)


@pytest.mark.exercises("evaluation.validations.explainability")
def test_rrf_splits_into_reciprocal_ranks_by_hand(projects: dict[str, Project]) -> None:
    project = projects["rrf"]
    explained = explain_hits(project.searcher, QUESTION)
    assert explained.fusion == "rrf" and explained.rrf_k == 60 and "rrf_k + rank_vector" in explained.formula
    hits = {h.chunk_id: h for h in project.search(QUESTION, transform=False).hits}
    for hit in explained.hits:
        ranks = hits[hit.chunk_id].ranks  # the searcher's own record of each retriever's rank
        want_v = 2.0 / (60 + ranks["vector"])
        want_k = 1.0 / (60 + ranks["keyword"]) if "keyword" in ranks else 0.0
        assert hit.contributions == {"vector": pytest.approx(want_v, abs=1e-8),
                                     "keyword": pytest.approx(want_k, abs=1e-8)}
        assert want_v + want_k == pytest.approx(hit.score, abs=1e-6)
        assert sum(v for v in hit.shares.values() if v is not None) == pytest.approx(1.0, abs=1e-6)
        # RRF reads only the ranks: the scores get no credit
        assert hit.shap_values["vector_score"] == pytest.approx(0.0, abs=1e-9)
        assert hit.shap_values["keyword_score"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.exercises("evaluation.validations.explainability")
@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_shap_values_add_up_to_the_score_minus_the_base_value(projects: dict[str, Project], fusion: str) -> None:
    project = projects[fusion]
    explained = explain_hits(project.searcher, QUESTION)
    vector, keyword = _alone(project, "vector"), _alone(project, "keyword")
    parts = fusion_contributions(fusion, explained.weights, {"vector": vector, "keyword": keyword},
                                 project.spec.retrieval.search.rrf_k)
    # the base value is the mean fused score over every candidate of the query (SHAP's background)
    assert explained.candidates == len(parts)
    assert explained.base_value == pytest.approx(np.mean([sum(p.values()) for p in parts.values()]), abs=1e-7)
    assert explained.explainer.startswith("shap.KernelExplainer")
    for hit in explained.hits:
        assert set(hit.shap_values) == set(FEATURES)
        fused = hit.contributions["vector"] + hit.contributions["keyword"]
        # efficiency: Σ φ = f(x) − E[f(X)]
        assert sum(hit.shap_values.values()) == pytest.approx(fused - explained.base_value, abs=1e-6)
    if fusion == "weighted":
        # linear in the scores: φ = w / (max − min) · (s − mean s), the mean over the candidates with a missing
        # keyword score counted as that list's minimum (normalised 0); the ranks get nothing
        kw = dict(keyword)
        k_lo, k_hi = min(kw.values()), max(kw.values())
        scores = [kw.get(cid, k_lo) for cid in parts]
        for hit in explained.hits:
            if k_hi > k_lo:
                s = kw.get(hit.chunk_id, k_lo)
                assert hit.shap_values["keyword_score"] == pytest.approx(
                    (s - np.mean(scores)) / (k_hi - k_lo), abs=1e-6)
            assert hit.shap_values["vector_rank"] == pytest.approx(0.0, abs=1e-9)


def test_explain_answer_names_the_supporting_chunk_of_each_sentence(projects: dict[str, Project]) -> None:
    project = projects["weighted"]
    explained = project.explain(QUESTION)
    assert explained.found and explained.sentences and explained.citations
    cited = {c["chunk_id"] for c in explained.citations}
    for s in explained.sentences:
        # extractive sentences are sentences of the chunks they cite: each is supported by one of them, fully
        assert s["chunk_id"] in cited and s["support"] == pytest.approx(1.0, abs=1e-3) and s["supported"]
    assert any(h.cited for h in explained.retrieval.hits) and explained.notes == []
    assert json.loads(json.dumps(explained.to_dict()))["retrieval"]["features"] == list(FEATURES)


def test_a_fusion_explain_cannot_split_is_said(projects: dict[str, Project]) -> None:
    class Opaque:
        name = "learned"

    class Searcher:
        settings = projects["rrf"].searcher.settings
        fusion = Opaque()

    with pytest.raises(FlightdeckError, match="knows the rrf and weighted fusions.*'learned'"):
        explain_hits(Searcher(), QUESTION)


@pytest.mark.exercises("evaluation.validations.explainability")
def test_the_explain_command_prints_sentences_shares_and_shap(projects: dict[str, Project],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = projects["weighted"].loaded.base_dir
    load = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load(cls, path).use(
        embedder=FakeEmbedder(dimension=256))))
    out = runner.invoke(app, ["explain", QUESTION, "--spec", str(root), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["found"] and data["sentences"][0]["chunk_id"] and data["retrieval"]["fusion"] == "weighted"
    first = data["retrieval"]["hits"][0]
    assert sum(first["shares"].values()) == pytest.approx(1.0, abs=1e-6) and set(first["shap_values"]) == set(FEATURES)
    text = runner.invoke(app, ["explain", QUESTION, "--spec", str(root)], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert "<- chunk " in text.output and "support 1.000 (supported)" in text.output
    assert "bm25 " in text.output and "vector " in text.output and "SHAP: vector_score " in text.output
    assert "SHAP base value" in text.output and "[cited]" in text.output
    unbuilt = _project(root.parent / "unbuilt", "rrf")
    missing = runner.invoke(app, ["explain", QUESTION, "--spec", str(unbuilt)])
    assert missing.exit_code == 1 and "no index yet" in missing.output
