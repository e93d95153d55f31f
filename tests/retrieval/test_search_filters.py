"""Metadata filters end to end: records with metadata → run → search with `where`, pushed into FAISS and
into the FTS5 keyword index alike; weighted score fusion; the CLI's --where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import SpecError
from flightdeck.retrieval.filters import FilterError
from flightdeck.retrieval.search import reciprocal_rank_fusion, weighted_score_fusion
from flightdeck.testing import FakeEmbedder

SPEC = """\
project: filters
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources:
    - {provider: files, path: ./records.jsonl, metadata_fields: [lang, year, published, reviewed, team]}
  chunking: {provider: recursive, size: 64, overlap: 0}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search, metadata_filtering]
  search: {mode: hybrid, k: 5, fusion: FUSION}
"""

TOPICS = ["solar panels convert sunlight into electricity", "wind turbines turn moving air into power",
          "batteries store electrical energy for later use"]


def _rows() -> list[dict]:
    rows = []
    for i in range(24):
        rows.append({"_id": f"r{i:02d}", "title": f"Note {i}", "text": f"Note {i}: {TOPICS[i % 3]}.",
                     "lang": "en" if i % 2 == 0 else "de", "year": 2015 + i % 8,
                     "published": f"202{i % 4}-0{1 + i % 9}-15", "reviewed": i % 3 == 0,
                     "team": "grid" if i < 12 else "storage"})
    return rows


def _build(root: Path, fusion: str = "rrf", real: bool = False) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "records.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    (root / "flightdeck.yaml").write_text(SPEC.replace("FUSION", fusion))
    project = Project.load(root)
    if not real:
        project.use(embedder=FakeEmbedder())
    assert project.run().status == "succeeded"
    return project


def _expected(pred) -> set[str]:
    return {f"records.jsonl#{r['_id']}" for r in _rows() if pred(r)}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return _build(tmp_path_factory.mktemp("filters"))


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
@pytest.mark.parametrize(("where", "pred"), [
    ({"lang": "de"}, lambda r: r["lang"] == "de"),
    ({"year": {"$gte": 2020}}, lambda r: r["year"] >= 2020),
    ({"published": {"$lt": "2021-01-01"}}, lambda r: r["published"] < "2021-01-01"),
    ({"reviewed": True, "lang": "en"}, lambda r: r["reviewed"] and r["lang"] == "en"),
    ({"$or": [{"team": "storage"}, {"year": 2015}]}, lambda r: r["team"] == "storage" or r["year"] == 2015),
    ({"lang": {"$in": ["fr", "de"]}, "year": {"$lt": 2018}}, lambda r: r["lang"] == "de" and r["year"] < 2018),
])
def test_every_hit_satisfies_the_filter_and_none_is_missed(project: Project, mode: str, where: dict, pred) -> None:
    hits = project.search("electricity power energy note", k=30, mode=mode, where=where).hits
    got = {h.document_id.split("/", 1)[1] for h in hits}
    expected = _expected(pred)
    assert got <= expected
    # every record mentions "note": keyword search finds them all; vector search returns up to k of them
    assert got == expected


def test_a_filter_that_matches_nothing_returns_no_hits(project: Project) -> None:
    assert project.search("solar", where={"lang": "fr"}).hits == []


def test_filters_need_the_option_in_the_spec(tmp_path: Path) -> None:
    project = _build(tmp_path / "p")
    spec = project.spec_path.read_text().replace("[hybrid_search, metadata_filtering]", "[hybrid_search]")
    project.spec_path.write_text(spec)
    again = Project.load(project.spec_path)
    again.use(embedder=FakeEmbedder())
    with pytest.raises(SpecError, match="metadata_filtering is not enabled"):
        again.search("solar", where={"lang": "en"})
    assert again.search("solar").hits  # no filter: fine


def test_a_bad_filter_is_refused_with_its_path(project: Project) -> None:
    with pytest.raises(FilterError, match=r"where\.year\.\$gte"):
        project.search("solar", where={"year": {"$gte": "recently"}})


def test_weighted_fusion_normalises_each_retrievers_scores() -> None:
    fused = weighted_score_fusion({"keyword": [("a", 12.0), ("b", 6.0), ("c", 0.0)],
                                   "vector": [("c", 0.9), ("a", 0.3), ("d", 0.1)]},
                                  {"keyword": 1.0, "vector": 2.0})
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1.0 + 2 * 0.25)
    assert scores["c"] == pytest.approx(0.0 + 2 * 1.0)
    assert scores["b"] == pytest.approx(0.5)
    assert scores["d"] == pytest.approx(0.0)
    assert [d for d, _ in fused] == ["c", "a", "b", "d"]
    # one retriever with equal scores: each gets full credit rather than a division by zero
    assert dict(weighted_score_fusion({"keyword": [("x", 3.0), ("y", 3.0)]}, {}))["x"] == 1.0
    assert reciprocal_rank_fusion({"a": ["x"], "b": ["x"]}, {"a": 1, "b": 1}, 60)[0][1] == pytest.approx(2 / 61)


def test_weighted_fusion_from_the_spec(tmp_path: Path) -> None:
    project = _build(tmp_path / "w", fusion="weighted")
    result = project.search("wind turbines moving air", k=3)
    assert result.hits and "wind" in result.hits[0].text
    assert result.hits[0].score <= 2.0 + 1e-9  # sum of two normalised scores at weight 1


def test_changed_metadata_reaches_the_filters_without_new_text(tmp_path: Path) -> None:
    project = _build(tmp_path / "m")
    rows = _rows()
    rows[0]["lang"] = "fr"  # same text, new metadata
    (project.loaded.base_dir / "records.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    again = Project.load(project.spec_path)
    again.use(embedder=FakeEmbedder())
    assert again.run().status == "succeeded"
    for mode in ("vector", "keyword"):
        hits = again.search("note", k=30, mode=mode, where={"lang": "fr"}).hits
        assert [h.document_id for h in hits] == ["records/records.jsonl#r00"] or \
            [h.document_id.split("/", 1)[1] for h in hits] == ["records.jsonl#r00"]


def test_cli_where_option(project: Project) -> None:
    runner = CliRunner()
    # keyword mode: this index was built with the fake embedder, which the CLI's spec does not configure
    res = runner.invoke(app, ["search", "solar sunlight", "--json", "--mode", "keyword", "--where",
                              '{"lang": "de"}', "--spec", str(project.spec_path)])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)["hits"]
    assert hits and all(h["metadata"].get("lang") == "de" for h in hits)
    bad = runner.invoke(app, ["search", "x", "--where", "{lang: de}", "--spec", str(project.spec_path)])
    assert bad.exit_code == 2 and "not valid JSON" in bad.output
    worse = runner.invoke(app, ["search", "x", "--where", '{"lang": {"$like": "d%"}}', "--spec",
                                str(project.spec_path)])
    assert worse.exit_code == 2 and "$like" in worse.output


@pytest.mark.integration
@pytest.mark.exercises("retrieval.system.metadata_filtering")
def test_filters_with_the_real_model(tmp_path: Path) -> None:
    project = _build(tmp_path / "real", real=True)
    hits = project.search("how is energy kept for later", k=5, where={"team": "storage", "lang": "en"}).hits
    assert hits and "batteries" in hits[0].text
    assert all(h.metadata["lang"] == "en" and h.metadata["team"] == "storage" for h in hits)
