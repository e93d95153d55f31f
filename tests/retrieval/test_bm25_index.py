"""The static BM25 index of an index version (bm25s): tokens as FTS5's, rankings as FTS5's, filters, reload."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from flightdeck.retrieval.bm25 import KEYWORD_FOLDER, Bm25Index, tokenize
from flightdeck.retrieval.filters import matches, parse_filter
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

TEXTS = [
    "Solar panels convert sunlight into electricity.",
    "Wind turbines convert moving air into electricity; turbines spin.",
    "Batteries store electrical energy for later use.",
    "The café serves crème brûlée and naïve coffee.",
    "Hydro power uses falling water to turn turbines.",
    "snake_case words and e-mail addresses split apart",
]
IDS = [f"doc{i}#0" for i in range(len(TEXTS))]
PAYLOADS = [{"kind": "energy" if i < 3 or i == 4 else "other", "n": float(i)} for i in range(len(TEXTS))]


def test_tokens_are_made_as_the_workspace_fts5_tokenizer_makes_them() -> None:
    assert tokenize("Crème Brûlée, naïve CAFÉ") == ["creme", "brule", "naiv", "cafe"]
    assert tokenize("snake_case e-mail x2 running turbines") == ["snake", "case", "e", "mail", "x2", "run", "turbin"]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")  # as migration 0001
    db.executemany("INSERT INTO t VALUES (?)", [(t,) for t in TEXTS])
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")  # the tokens FTS5 made of the texts
    fts_tokens = {r[0] for r in db.execute("SELECT term FROM v")}
    assert fts_tokens == {tok for t in TEXTS for tok in tokenize(t)}


@pytest.fixture
def index() -> Bm25Index:
    idx = Bm25Index()
    idx.build(IDS, TEXTS, PAYLOADS)
    return idx


def test_finds_the_chunks_with_a_query_term_best_first(index: Bm25Index) -> None:
    hits = index.search("turbines electricity", 10)
    assert [cid for cid, _ in hits][0] == "doc1#0"  # both terms, "turbines" twice
    # "electrical" stems to "electr" as "electricity" does
    assert {cid for cid, _ in hits} == {"doc0#0", "doc1#0", "doc2#0", "doc4#0"}
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert index.search("creme brulee", 3)[0][0] == "doc3#0"
    assert index.search("nothing-matches-this zzz", 5) == []
    assert index.search("", 5) == []
    assert len(index.search("turbines electricity", 1)) == 1


def test_ranks_as_fts5_does_on_the_same_texts(index: Bm25Index) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(id UNINDEXED, x, tokenize='porter unicode61')")
    db.executemany("INSERT INTO t VALUES (?, ?)", list(zip(IDS, TEXTS, strict=True)))
    for query in ("turbines electricity", "convert energy", "water power turn"):
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(tokenize(query)))
        fts = [r[0] for r in db.execute("SELECT id FROM t WHERE t MATCH ? ORDER BY bm25(t)", (match,))]
        assert [cid for cid, _ in index.search(query, 10)] == fts, query


def test_filters_are_applied_before_the_top_k(index: Bm25Index) -> None:
    f = parse_filter({"kind": "other"})
    assert [cid for cid, _ in index.search("electricity turbines coffee", 1, f)] == ["doc3#0"]
    f = parse_filter({"n": {"$gte": 2}})
    hits = index.search("turbines electricity energy", 10, f)
    assert {cid for cid, _ in hits} == {"doc2#0", "doc4#0"}
    assert all(matches(f, PAYLOADS[IDS.index(cid)]) for cid, _ in hits)


def test_saves_and_reloads_memory_mapped(index: Bm25Index, tmp_path: Path) -> None:
    index.save(tmp_path / "kw")
    again = Bm25Index.load(tmp_path / "kw")
    assert len(again) == len(TEXTS)
    assert again.search("turbines electricity", 10) == index.search("turbines electricity", 10)
    assert again.search("coffee", 5, parse_filter({"kind": "energy"})) == []


def test_an_empty_index_finds_nothing(tmp_path: Path) -> None:
    empty = Bm25Index()
    empty.build([], [], [])
    empty.save(tmp_path / "e")
    assert Bm25Index.load(tmp_path / "e").search("anything", 5) == []


SPEC = """\
project: kw
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 0}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
  search: {keyword_index: KIND}
"""


@pytest.mark.parametrize("kind", ["bm25", "fts5"])
def test_the_pipeline_builds_the_index_the_spec_asks_for(tmp_path: Path, kind: str) -> None:
    from flightdeck import Project

    (tmp_path / "docs").mkdir()
    for i, text in enumerate(TEXTS):
        (tmp_path / "docs" / f"d{i}.txt").write_text(text)
    (tmp_path / "flightdeck.yaml").write_text(SPEC.replace("KIND", kind))
    project = Project.load(tmp_path)
    project.use(embedder=FakeEmbedder())
    summary = project.run()
    version = project.workspace.get_state("current_index")
    folder = project.workspace.root / "indexes" / version / KEYWORD_FOLDER
    assert folder.is_dir() == (kind == "bm25")
    index_counts = {s.step: s for s in summary.steps}["index"].counts
    assert ("bm25_seconds" in index_counts) == (kind == "bm25")
    result = project.search("turbines electricity", mode="keyword", k=3)
    assert result.hits[0].document_id.endswith("d1.txt")
    assert result.keyword_index == kind and result.to_dict()["keyword_index"] == kind  # says which answered
    assert project.search("turbines", mode="vector").keyword_index == ""
    if kind == "bm25":
        assert json.loads((folder / "ids.json").read_text()) == sorted(json.loads((folder / "ids.json").read_text()))
