"""PostgreSQL full-text search as the keyword index (``retrieval.search.keyword_index: postgres``), against this
machine's real PostgreSQL server (127.0.0.1:5432, database ``test``): `flightdeck run` fills the table and
keyword search finds the chunk, hybrid search fuses it with the vectors, a re-run touches only the rows of
the file that changed and removes a deleted file's rows, filters select what the BM25 index selects,
hostile query text is searched as words, a server that is down and a missing URL give errors for people.

A workspace's keyword table is named after its path, so every test has its own; all are dropped at the end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import SPEC, write_docs
from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import SpecError
from flightdeck.retrieval.bm25 import Bm25Index
from flightdeck.retrieval.filters import matches, parse_filter
from flightdeck.retrieval.postgres_fts import PostgresFtsError, PostgresKeywordIndex, keyword_table
from flightdeck.testing import FakeEmbedder
from flightdeck.workspace.schema import chunk_payloads, chunks, store_sync

psycopg = pytest.importorskip("psycopg")
sql = pytest.importorskip("psycopg.sql")

pytestmark = pytest.mark.integration

POSTGRES_SEARCH = 'search: {mode: hybrid, k: 5, keyword_index: postgres, keyword_url: "${KB_PG_URL}"}'


@pytest.fixture
def tables(pg_url: str) -> Iterator[list[str]]:
    """Names of the keyword tables a test made; dropped afterwards."""
    made: list[str] = []
    yield made
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def build(pg_url: str, tables: list[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Project]:
    """``build(root, spec_text=None)``: a project with keyword_index postgres (URL from $KB_PG_URL) and the fake
    embedder, run once."""
    monkeypatch.setenv("KB_PG_URL", pg_url)

    def make(root: Path, spec_text: str | None = None) -> Project:
        if spec_text is None:
            write_docs(root)
            spec_text = SPEC.format(size=64).replace("search: {mode: hybrid, k: 5}", POSTGRES_SEARCH)
        (root / "flightdeck.yaml").write_text(spec_text)
        project = _load(root)
        tables.append(keyword_table(project.workspace.root, "english"))
        summary = project.run()
        assert summary.status == "succeeded", [s.error for s in summary.steps]
        return project

    return make


def _load(root: Path) -> Project:
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())  # these tests are about the keyword index, not the model
    return project


def _rows(url: str, table: str) -> dict[str, str]:
    """chunk_id -> xmin: the transaction that last wrote the row (an update gives it a new one)."""
    with psycopg.connect(url) as conn:
        return dict(conn.execute(sql.SQL("SELECT chunk_id, xmin::text FROM {}").format(sql.Identifier(table))))


def _chunks_by_document(project: Project) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with project.workspace.engine.connect() as conn:
        for cid, doc in conn.execute(select(chunks.c.id, chunks.c.document_id)):
            out.setdefault(doc, set()).add(cid)
    return out


def test_flightdeck_run_fills_the_table_and_keyword_search_finds_the_chunk(
        tmp_path: Path, pg_url: str, tables: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_PG_URL", pg_url)
    write_docs(tmp_path)
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text(SPEC.format(size=64).replace("search: {mode: hybrid, k: 5}", POSTGRES_SEARCH))
    table = keyword_table((tmp_path / ".flightdeck").resolve(), "english")
    tables.append(table)
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--spec", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    summary = json.loads("\n".join(lines[lines.index("{"):]))  # after the progress lines, indented
    index = {s["step"]: s for s in summary["steps"]}["index"]
    n_chunks = sum(len(ids) for ids in _chunks_by_document(Project.load(spec)).values())
    assert index["counts"]["keyword_table"] == table
    assert index["counts"]["keyword_upserted"] == n_chunks and index["counts"]["keyword_deleted"] == 0
    assert len(_rows(pg_url, table)) == n_chunks
    found = runner.invoke(app, ["search", "installer error W42 sprockets aligned", "--mode", "keyword",
                                "--json", "--spec", str(spec)])
    assert found.exit_code == 0, found.output
    out = json.loads(found.output)
    assert out["keyword_index"] == "postgres"
    top = out["hits"][0]
    assert top["document_id"] == "docs/guide/install.md" and "W42" in top["text"]
    assert top["ranks"] == {"keyword": 1}
    assert [h["score"] for h in out["hits"]] == sorted((h["score"] for h in out["hits"]), reverse=True)


def test_hybrid_search_fuses_postgres_with_the_vectors(tmp_path: Path, build: Callable[..., Project]) -> None:
    project = build(tmp_path)
    result = project.search("installer error W42 sprockets aligned", k=3)
    assert result.mode == "hybrid" and result.keyword_index == "postgres"
    top = result.hits[0]
    assert top.document_id == "docs/guide/install.md" and "W42" in top.text
    assert set(top.ranks) == {"keyword", "vector"}  # found by both retrievers, fused
    assert project.search("sprockets", mode="vector").keyword_index == ""


def test_a_rerun_touches_only_the_changed_files_rows(tmp_path: Path, pg_url: str,
                                                     build: Callable[..., Project]) -> None:
    project = build(tmp_path)
    table = keyword_table(project.workspace.root, "english")
    before, docs_before = _rows(pg_url, table), _chunks_by_document(project)
    assert set(before) == set().union(*docs_before.values())

    (tmp_path / "docs" / "notes.txt").write_text("Widget colours: red, blue and purple. Purple widgets sell in May.\n")
    index = {s.step: s for s in project.run().steps}["index"]
    after, docs_after = _rows(pg_url, table), _chunks_by_document(project)
    notes = "docs/notes.txt"
    assert index.counts["keyword_upserted"] == len(docs_after[notes])  # new or changed chunks only
    assert index.counts["keyword_deleted"] == len(docs_before[notes] - docs_after[notes])
    assert set(after) == set().union(*docs_after.values())
    untouched = set().union(*(ids for doc, ids in docs_after.items() if doc != notes))
    assert {cid: after[cid] for cid in untouched} == {cid: before[cid] for cid in untouched}
    assert all(after[cid] != before.get(cid) for cid in docs_after[notes])
    assert project.search("purple", mode="keyword").hits[0].document_id == notes

    (tmp_path / "docs" / "guide" / "care.html").unlink()
    index = {s.step: s for s in project.run().steps}["index"]
    gone, remaining = _rows(pg_url, table), _chunks_by_document(project)
    care = docs_after["docs/guide/care.html"]
    assert index.counts["keyword_deleted"] == len(care) and index.counts["keyword_upserted"] == 0
    assert not care & set(gone) and set(gone) == set().union(*remaining.values())
    assert gone == {cid: after[cid] for cid in gone}  # the other rows were not written again
    assert project.search("soft cloth dry place", mode="keyword").hits == []
    with project.workspace.engine.connect() as conn:  # the sync records follow the table
        synced = {r[0] for r in conn.execute(select(store_sync.c.chunk_id).where(store_sync.c.collection == table))}
    assert synced == set(gone)


FILTER_SPEC = """\
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
  search: {keyword_index: postgres, keyword_url: "${KB_PG_URL}"}
"""
TOPICS = ["solar panels convert sunlight into electricity", "wind turbines turn moving air into power",
          "batteries store electrical energy for later use"]


@pytest.fixture(scope="module")
def filtered(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Bm25Index, dict]]:
    """Records with metadata, run with keyword_index postgres; and the BM25 index of the same chunks."""
    root = tmp_path_factory.mktemp("filters")
    rows = [{"_id": f"r{i:02d}", "title": f"Note {i}", "text": f"Note {i}: {TOPICS[i % 3]}.",
             "lang": "en" if i % 2 == 0 else "de", "year": 2015 + i % 8, "published": f"202{i % 4}-0{1 + i % 9}-15",
             "reviewed": i % 3 == 0, "team": "grid" if i < 12 else "storage"} for i in range(24)]
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "flightdeck.yaml").write_text(FILTER_SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KB_PG_URL", pg_url)
        project = _load(root)
        table = keyword_table(project.workspace.root, "english")
        try:
            assert project.run().status == "succeeded"
            assert project.searcher.search("note", mode="keyword").keyword_index == "postgres"
            with project.workspace.engine.connect() as conn:
                data = conn.execute(select(chunks.c.id, chunks.c.indexed_text, chunk_payloads.c.payload)
                                    .join(chunk_payloads, chunk_payloads.c.chunk_id == chunks.c.id)
                                    .order_by(chunks.c.id)).all()
            bm25 = Bm25Index()
            bm25.build([r[0] for r in data], [r[1] for r in data], [r[2] for r in data])
            yield project, bm25, {r[0]: r[2] for r in data}
        finally:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


@pytest.mark.exercises("retrieval.system.metadata_filtering")
@pytest.mark.parametrize("where", [
    {"lang": "de"},
    {"year": {"$gte": 2020}},
    {"published": {"$lt": "2021-01-01"}},
    {"reviewed": True, "lang": "en"},
    {"$or": [{"team": "storage"}, {"year": 2015}]},
    {"lang": {"$in": ["fr", "de"]}, "year": {"$lt": 2018}},
    {"lang": "fr"},
])
@pytest.mark.parametrize("query", ["note electricity", "solar sunlight"])
def test_filters_select_what_the_bm25_index_selects(filtered: tuple[Project, Bm25Index, dict], where: dict,
                                                    query: str) -> None:
    project, bm25, payload = filtered
    condition = parse_filter(where, "where")
    got = project.search(query, k=50, mode="keyword", where=where)
    expected = {cid for cid, _ in bm25.search(query, 50, condition)}
    assert {h.chunk_id for h in got.hits} == expected
    assert all(matches(condition, payload[h.chunk_id]) for h in got.hits)
    unfiltered = {h.chunk_id for h in project.search(query, k=50, mode="keyword").hits}
    assert expected < unfiltered  # the filter did remove rows that match the query
    if query.startswith("solar"):
        assert all("solar" in h.text for h in got.hits)


@pytest.fixture
def small_index(pg_url: str, tables: list[str]) -> PostgresKeywordIndex:
    table = f"fd_test_fts_{uuid.uuid4().hex[:12]}"
    tables.append(table)
    index = PostgresKeywordIndex(pg_url, table)
    index.upsert(["a", "b", "c", "d"],
                 ["Align the sprockets before you run the installer.", "The license key is printed on the box.",
                  "O'Brien said: \"don't panic\" & left (quickly)!", "Robert'); DROP TABLE students;--\x00 a name"],
                 [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}])
    return index


@pytest.mark.parametrize(("hostile", "words"), [
    ("sprockets & !license", "sprockets license"),  # as tsquery: both, and never license
    ("'; DROP TABLE {table}; --", "drop table"),
    ("sprockets:* | (license <-> key)", "sprockets license key"),
    ('"don\'t panic"', "don t panic"),
    ("%s %(n)s $1 \\ \x00 sprockets", "s n 1 sprockets"),
    ("' OR 1=1 --", "or 1 1"),
])
def test_hostile_query_text_is_searched_as_words(small_index: PostgresKeywordIndex, hostile: str,
                                                 words: str) -> None:
    hostile = hostile.replace("{table}", small_index.table)
    got = small_index.search(hostile, 10)
    assert got == small_index.search(words, 10)
    assert len(small_index) == 4  # nothing was dropped or deleted


def test_query_syntax_has_no_effect(small_index: PostgresKeywordIndex) -> None:
    assert {cid for cid, _ in small_index.search("sprockets & !license", 10)} == {"a", "b"}  # ORed words
    assert small_index.search("sprock:*", 10) == []  # no prefix matching: "sprock" is just a word
    assert small_index.search("&|!:*()'\"", 10) == [] and small_index.search("", 10) == []
    assert small_index.search("students DROP", 10)[0][0] == "d"
    assert len(small_index.search("license " + " ".join(f"w{i}" for i in range(5000)), 10)) == 1  # words capped


def test_a_server_that_is_down_names_the_host_and_the_setting(tmp_path: Path, build: Callable[..., Project],
                                                             unused_port: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path)
    monkeypatch.setenv("KB_PG_URL", f"postgresql://postgres@127.0.0.1:{unused_port}/test")
    project = _load(tmp_path)
    with pytest.raises(PostgresFtsError) as err:
        project.search("sprockets", mode="keyword")
    assert f"127.0.0.1:{unused_port}" in str(err.value) and "retrieval.search.keyword_url" in str(err.value)
    current = project.workspace.get_state("current_index")
    with pytest.raises(PostgresFtsError, match=f"127.0.0.1:{unused_port}"):
        project.run()  # a new server: the index step syncs again, and fails with the same message
    assert project.workspace.get_state("current_index") == current  # the index in use stays
    for command in (["search", "sprockets", "--mode", "keyword"], ["run"]):
        cli = CliRunner().invoke(app, [*command, "--spec", str(tmp_path)])
        assert cli.exit_code == 1, cli.output
        assert f"127.0.0.1:{unused_port}" in cli.output and "retrieval.search.keyword_url" in cli.output

    monkeypatch.delenv("KB_PG_URL")
    with pytest.raises(SpecError, match=r"environment variable KB_PG_URL is not set"):
        _load(tmp_path).search("sprockets", mode="keyword")


def test_an_unknown_text_search_configuration_lists_the_servers(pg_url: str, tables: list[str]) -> None:
    table = f"fd_test_fts_{uuid.uuid4().hex[:12]}"
    tables.append(table)
    with pytest.raises(PostgresFtsError, match=r"no text search configuration 'klingon'.*english"):
        PostgresKeywordIndex(pg_url, table, "klingon").upsert(["a"], ["text"], [{}])


@pytest.mark.parametrize(("search", "expected"), [
    ("{keyword_index: postgres}", "keyword_index: postgres needs keyword_url"),
    ('{keyword_index: postgres, keyword_url: ""}', "keyword_index: postgres needs keyword_url"),
    ("{keyword_index: postgres, keyword_url: mysql://db/kb}", "keyword_url must be a PostgreSQL URL"),
    ('{keyword_index: postgres, keyword_url: "${KB_PG_URL}", keyword_language: "english; DROP"}',
     "is not a text search configuration name"),
])
def test_validate_refuses_postgres_without_a_usable_url(tmp_path: Path, search: str, expected: str) -> None:
    write_docs(tmp_path)
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text(SPEC.format(size=64).replace("search: {mode: hybrid, k: 5}", f"search: {search}"))
    result = CliRunner().invoke(app, ["validate", "--spec", str(spec)])
    assert result.exit_code == 1, result.output
    assert expected in result.output and "retrieval.search" in result.output


def test_validate_accepts_an_env_reference_left_unresolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_PG_URL", raising=False)
    write_docs(tmp_path)
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text(SPEC.format(size=64).replace("search: {mode: hybrid, k: 5}", POSTGRES_SEARCH))
    result = CliRunner().invoke(app, ["validate", "--spec", str(spec)])
    assert result.exit_code == 0, result.output
