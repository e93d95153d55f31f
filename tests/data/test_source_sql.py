"""The ``sql`` source against SQLite and this machine's real PostgreSQL and MariaDB servers.

End to end through :class:`~flightdeck.Project` (with the fake embedder): rows become chunks, one changed
row is re-parsed alone, a deleted row is removed, an unchanged source skips the ingest step, a source
that is down fails the run and leaves the previous dataset version in place. Each test uses its own
table (uuid suffix) and drops it afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.data.parsers import parse
from flightdeck.data.sources.base import Source
from flightdeck.data.sources.sql import SqlConfig, SqlSource, check_select_only
from flightdeck.errors import MissingDependencyError, SourceError
from flightdeck.registry import Category
from flightdeck.testing import FakeEmbedder
from needs import need, needs, needs_provider

pytestmark = pytest.mark.integration

SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
BACKENDS = ["sqlite", "postgresql", "mariadb"]
# The server drivers come with the sql extra; a SQLite database needs none.
DRIVERS = {"postgresql": "psycopg", "mariadb": "pymysql"}
# A spec choosing the sql source (the pipeline end to end) and a `query:` (checked with sqlglot) need the extra.
SQL_SOURCE = needs_provider(Category.SOURCE, "sql")
QUERY_CHECK = needs("sql", "sqlglot")
QUERY_ON_POSTGRES = needs("sql", "sqlglot", "psycopg")

ROWS = [
    {"id": 1, "title": "Installing widgets", "body": "Run the widget installer and align the sprockets.",
     "summary": "How to install.", "category": "guide", "price": Decimal("9.50"),
     "updated_at": datetime(2024, 1, 1, 10, 0, 0)},
    {"id": 2, "title": "Caring for widgets", "body": "Clean a widget with a soft cloth once a week.",
     "summary": None, "category": "care", "price": Decimal("12.00"), "updated_at": datetime(2024, 1, 2, 10, 0, 0)},
    {"id": 3, "title": "Widget colours", "body": "Widgets come in red, blue and green.",
     "summary": "Green is popular in spring.", "category": "facts", "price": None,
     "updated_at": datetime(2024, 1, 3, 10, 0, 0)},
    {"id": 4, "title": "An empty row", "body": None, "summary": "  ", "category": "empty", "price": None,
     "updated_at": datetime(2024, 1, 4, 10, 0, 0)},
]


@dataclass
class Db:
    """One database with one fresh table of :data:`ROWS`."""

    backend: str
    url: str
    engine: sa.engine.Engine
    table: sa.Table

    @property
    def name(self) -> str:
        return self.table.name

    def execute(self, stmt: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def update(self, row_id: int, **values: Any) -> None:
        self.execute(self.table.update().where(self.table.c.id == row_id).values(**values))

    def delete(self, row_id: int) -> None:
        self.execute(self.table.delete().where(self.table.c.id == row_id))


def _articles(name: str, metadata: sa.MetaData, primary_key: bool = True) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=primary_key, autoincrement=False),
        sa.Column("title", sa.String(200)),
        sa.Column("body", sa.Text),
        sa.Column("summary", sa.Text),
        sa.Column("category", sa.String(50)),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("updated_at", sa.DateTime),
    )


def _url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        path = tmp_path / "kb.db"
        sqlite3.connect(path).close()
        return f"sqlite:///{path}"
    return SERVERS[backend]


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    backend = request.param
    if backend in DRIVERS:
        need("sql", DRIVERS[backend])
    url = _url(backend, tmp_path)
    engine = sa.create_engine(url)
    table = _articles(f"fd_articles_{uuid.uuid4().hex[:10]}", sa.MetaData())
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), ROWS)
        yield Db(backend, url, engine, table)
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def _spec(root: Path, source: dict[str, Any]) -> Path:
    spec = {
        "project": "sql-source-test",
        "scoping": {"use_case": "rag", "objective": "retrieval_system"},
        "data": {"sources": [{"provider": "sql", **source}],
                 "chunking": {"provider": "recursive", "size": 64, "overlap": 16}},
        "retrieval": {"embedding_model": "sentence_transformers", "vector_database": "faiss",
                      "system": ["hybrid_search"], "search": {"mode": "hybrid", "k": 5}},
    }
    path = root / "flightdeck.yaml"
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def _project(root: Path) -> Project:
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())  # this file tests the source, not the model
    return project


def _steps(summary: Any) -> dict[str, Any]:
    return {s.step: s for s in summary.steps}


def _documents(root: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as conn:
        rows = conn.execute("select id, source_uri, title, metadata from documents").fetchall()
    return {r[0]: {"source_uri": r[1], "title": r[2], "metadata": json.loads(r[3] or "{}")} for r in rows}


def _source(db: Db, **settings: Any) -> SqlSource:
    settings.setdefault("table", db.name)
    settings.setdefault("id", "id")
    settings.setdefault("text", ["body", "summary"])
    return SqlSource(SqlConfig(url=db.url, **settings))


# --- end to end ---------------------------------------------------------------------------------------


@pytest.mark.exercises("data.sources.sql_databases")
@SQL_SOURCE
def test_rows_are_ingested_updated_and_removed_incrementally(db: Db, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FD_TEST_DB_URL", db.url)
    _spec(tmp_path, {"url": "${FD_TEST_DB_URL}", "table": db.name, "id": "id", "text": ["body", "summary"],
                     "title": "title", "incremental_key": "updated_at"})
    first = _steps(_project(tmp_path).run())
    ingest = first["ingest"].counts
    # row 4 has no text: reported with its id, everything else ingested
    assert ingest["parsed"] == 3 and ingest["failed"] == 1 and ingest["chunks"] >= 3
    failure = ingest["failures"][0]
    assert failure["uri"] == f"sql/{db.name}#4" and "id=4" in failure["reason"] and "empty" in failure["reason"]
    docs = _documents(tmp_path)
    assert set(docs) == {f"sql/{db.name}#{i}" for i in (1, 2, 3)}
    one = docs[f"sql/{db.name}#1"]
    assert one["title"] == "Installing widgets"
    assert one["metadata"]["category"] == "guide" and one["metadata"]["price"] == 9.5
    assert one["metadata"]["updated_at"].startswith("2024-01-01T10:00:00")
    assert one["source_uri"] == f"{db.url}#{db.name}/1"
    hits = _project(tmp_path).search("soft cloth once a week", mode="keyword").hits
    assert hits and hits[0].document_id == f"sql/{db.name}#2"
    assert "Caring for widgets" in hits[0].heading

    # nothing changed: the scan reads (id, updated_at) only and the ingest step is skipped
    again = _steps(_project(tmp_path).run())
    assert again["ingest"].status == "skipped" and again["embed"].status == "skipped"

    # one row changed (text and key): only it is parsed again
    db.update(2, body="Polish a widget with beeswax every month.", updated_at=datetime(2024, 2, 1, 9, 0, 0))
    project = _project(tmp_path)
    changed = _steps(project.run())["ingest"].counts
    assert changed["parsed"] == 1 and changed["unchanged"] == 2  # the empty row 4 fails again, alone
    assert project.embedder.embedded_texts and all("beeswax" in t for t in project.embedder.embedded_texts)
    hits = _project(tmp_path).search("beeswax polish", mode="keyword").hits
    assert hits and hits[0].document_id == f"sql/{db.name}#2"

    # one row deleted: its document and chunks go
    db.delete(3)
    removed = _steps(_project(tmp_path).run())["ingest"].counts
    assert removed["removed"] == 1 and removed["parsed"] == 0
    assert f"sql/{db.name}#3" not in _documents(tmp_path)
    assert all(h.document_id != f"sql/{db.name}#3" for h in _project(tmp_path).search("red blue green").hits)


@pytest.mark.exercises("data.sources.sql_databases")
@SQL_SOURCE
@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs("sql", DRIVERS[b]))
                                     for b in ("postgresql", "mariadb")])
def test_a_source_that_is_down_fails_the_run_and_keeps_the_previous_version(backend: str, tmp_path: Path) -> None:
    metadata = sa.MetaData()
    engine = sa.create_engine(SERVERS[backend])
    table = _articles(f"fd_down_{uuid.uuid4().hex[:10]}", metadata)
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), ROWS[:2])
        source = {"table": table.name, "id": "id", "text": ["body"], "retries": 2, "retry_backoff": 0.01}
        _spec(tmp_path, {"url": SERVERS[backend], **source})
        project = _project(tmp_path)
        assert project.run().status == "succeeded"
        version = project.workspace.get_state("current_dataset")
        assert version

        down = SERVERS[backend].replace("@", ":s3cret-pw@").rsplit(":", 1)[0] + ":1/test"  # nothing listens on 1
        _spec(tmp_path, {"url": down, **source})
        with pytest.raises(SourceError) as err:
            _project(tmp_path).run()
        message = str(err.value)
        assert "127.0.0.1:1" in message and "tried 3 times" in message
        assert "s3cret-pw" not in message and "***" in message
        assert project.workspace.get_state("current_dataset") == version
        assert set(_documents(tmp_path)) == {f"sql/{table.name}#1", f"sql/{table.name}#2"}
        with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as conn:
            assert conn.execute("select status from runs order by started_at desc limit 1").fetchone()[0] == "failed"
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


@SQL_SOURCE
def test_without_an_incremental_key_the_whole_row_is_the_change_signal(db: Db, tmp_path: Path) -> None:
    _spec(tmp_path, {"url": db.url, "table": db.name, "id": "id", "text": ["body"], "title": "title"})
    assert _steps(_project(tmp_path).run())["ingest"].counts["parsed"] == 3
    assert _steps(_project(tmp_path).run())["ingest"].status == "skipped"
    db.update(1, category="manual")  # a metadata column only, no key to tell: the row hash does
    counts = _steps(_project(tmp_path).run())["ingest"].counts
    assert counts["parsed"] == 1 and counts["unchanged"] == 2
    assert _documents(tmp_path)[f"sql/{db.name}#1"]["metadata"]["category"] == "manual"


@SQL_SOURCE
def test_changing_the_column_mapping_reprocesses_every_row(db: Db, tmp_path: Path) -> None:
    source = {"url": db.url, "table": db.name, "id": "id", "text": ["body"], "incremental_key": "updated_at"}
    _spec(tmp_path, source)
    _project(tmp_path).run()
    _spec(tmp_path, {**source, "text": ["body", "summary"]})
    counts = _steps(_project(tmp_path).run())["ingest"].counts
    assert counts["parsed"] == 3 and counts["unchanged"] == 0


# --- the source on its own ----------------------------------------------------------------------------


@QUERY_CHECK
def test_query_rows_become_records_the_record_parser_reads(db: Db) -> None:
    source = _source(db, table=None, title="title", incremental_key="id", query=(
        f"SELECT id, title, body, summary, category, price, updated_at FROM {db.name} "
        "WHERE category <> 'facts' AND body LIKE '%widget%'  -- a comment at the end"))
    assert isinstance(source, Source)
    items = list(source.scan())
    assert [i.uri for i in items] == ["query#1", "query#2"]
    assert source.failures == []
    item = items[0]
    assert item.media_type == "application/x-record"
    assert item.metadata["record_fields"] == {"id": "id", "title": "title", "text": "text"}
    data = source.read(item)
    record = json.loads(data)
    assert record["text"] == "Run the widget installer and align the sprockets.\n\nHow to install."
    assert record["price"] == 9.5 and isinstance(record["price"], float)
    # SQLite hands a query's timestamps back as the text it stored; the servers as datetimes (ISO strings)
    assert record["updated_at"].replace(" ", "T").startswith("2024-01-01T10:00:00")
    doc = parse(item, data)
    assert doc.title == "Installing widgets" and doc.metadata["category"] == "guide"
    assert doc.sections[0].heading_path == ("Installing widgets",)
    assert source.source_uri(item) == f"{db.url}#query/1"


@QUERY_CHECK
def test_duplicate_and_null_ids_are_reported_and_the_rest_is_read(db: Db) -> None:
    source = _source(db, table=None, text=["body"], query=(
        f"SELECT id, body FROM {db.name} WHERE id IN (1, 2) "
        "UNION ALL SELECT 2, 'a second row 2' UNION ALL SELECT NULL, 'no id'"))
    items = list(source.scan())
    assert [i.uri for i in items] == ["query#1"]
    reasons = {f.uri: f.reason for f in source.failures}
    assert "duplicate id" in reasons["query#2"] and "2 rows" in reasons["query#2"]
    assert "no usable id" in reasons["query#?"]
    assert json.loads(source.read(items[0]))["text"].startswith("Run the widget installer")


def test_empty_text_fails_the_row_by_id_at_scan_time_without_a_key(db: Db) -> None:
    source = _source(db)
    items = list(source.scan())
    assert [i.uri for i in items] == [f"{db.name}#{i}" for i in (1, 2, 3)]
    assert [(f.uri, "id=4" in f.reason) for f in source.failures] == [(f"{db.name}#4", True)]


def test_reads_by_id_come_in_growing_batches_and_scattered_reads_alone(tmp_path: Path) -> None:
    path = tmp_path / "many.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table notes (id integer primary key, body text, updated_at text)")
        conn.executemany("insert into notes values (?, ?, ?)", [(i, f"note {i}", "t0") for i in range(1, 101)])
    source = SqlSource(SqlConfig(url=f"sqlite:///{path}", table="notes", id="id", text=["body"],
                                 incremental_key="updated_at", batch_size=32))
    statements: list[str] = []
    sa.event.listen(source._engine_or_create(), "before_cursor_execute", lambda *a: statements.append(a[2]))
    items = list(source.scan())
    # the scan reads ids and keys only, never a row's body
    assert [s for s in statements if "SELECT" in s and "FROM notes" in s] == [
        "SELECT notes.id, notes.updated_at \nFROM notes"]
    selects: list[str] = []
    sa.event.listen(source._engine, "before_cursor_execute",
                    lambda *a: selects.append(a[2]) if "IN (" in a[2] else None)
    # items come in URI order (notes#1, notes#10, notes#100, notes#11 ...), the order the ingest step reads in
    assert [i.uri for i in items] == sorted(f"notes#{n}" for n in range(1, 101))
    assert [json.loads(source.read(i))["text"] for i in items] == [f"note {i.uri[6:]}" for i in items]
    assert len(selects) <= 8  # 2, 4, 8, 16, 32, 32, 6 rows
    selects.clear()
    items = list(source.scan())
    for i in (items[10], items[50], items[90]):
        assert json.loads(source.read(i))["text"] == f"note {i.uri.split('#')[1]}"
    assert len(selects) == 3


def test_table_names_are_quoted_identifiers_never_sql(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    odd = _articles('odd "name"; with spaces', sa.MetaData())
    odd.create(engine)
    victim = _articles("victim", sa.MetaData())
    victim.create(engine)
    with engine.begin() as conn:
        conn.execute(odd.insert(), ROWS[:1])
        conn.execute(victim.insert(), ROWS[:1])
    source = SqlSource(SqlConfig(url=f"sqlite:///{path}", table=odd.name, id="id", text=["body"]))
    assert [i.uri for i in source.scan()] == [f"{odd.name}#1"]
    evil = SqlSource(SqlConfig(url=f"sqlite:///{path}", table="victim; DROP TABLE victim", id="id", text=["body"]))
    with pytest.raises(SourceError, match="no table 'victim; DROP TABLE victim'"):
        list(evil.scan())
    assert sa.inspect(engine).has_table("victim")


def test_the_session_is_read_only_behind_the_select_check(db: Db) -> None:
    source = _source(db)
    with source.connect() as reader, pytest.raises(SourceError, match="refused"):
        # reach past the parse check on purpose: the session itself refuses the write
        reader.source._execute(reader.conn, sa.text(f"DELETE FROM {db.name}"))  # type: ignore[attr-defined]
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.table)).scalar() == 4


def test_a_missing_column_names_the_columns_there_are(db: Db) -> None:
    with pytest.raises(SourceError, match=r"no text column 'bodyy'.*columns are: id, title, body"):
        list(_source(db, text=["bodyy"]).scan())


def test_a_missing_table_or_database_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no SQLite database file"):
        list(SqlSource(SqlConfig(url=f"sqlite:///{tmp_path}/nope.db", table="t", id="id", text=["b"])).scan())
    assert not (tmp_path / "nope.db").exists()


def test_a_missing_driver_names_the_extra() -> None:
    source = SqlSource(SqlConfig(url="postgresql+psycopg2://u@127.0.0.1:5432/test", table="t", id="id",
                                 text=["b"]))
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[sql\]'"):
        list(source.scan())


@QUERY_ON_POSTGRES
def test_a_url_without_a_driver_uses_the_one_the_extra_installs() -> None:
    source = SqlSource(SqlConfig(url="postgresql://postgres@127.0.0.1:5432/test", query="SELECT 1 AS id, 'x' AS b",
                                 id="id", text=["b"]))
    assert [i.uri for i in source.scan()] == ["query#1"]
    assert source.describe().startswith("postgresql+psycopg://")


# --- credentials in the URL ----------------------------------------------------------------------------

PASSWORD = "pw-5f2c9e"  # the server trusts 127.0.0.1, so any password connects; it must show nowhere


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:5432/test",
    f"postgresql+psycopg://postgres@127.0.0.1:5432/test?password={PASSWORD}&sslmode=disable",
    f"postgresql://postgres@127.0.0.1:5432/test?sslmode=disable&sslpassword={PASSWORD}&application_name=fd",
])
@QUERY_ON_POSTGRES
def test_the_password_is_in_no_stored_uri_error_or_repr(url: str) -> None:
    config = SqlConfig(url=url, query="SELECT 1 AS id, 'x' AS b", id="id", text=["b"])
    assert PASSWORD not in repr(config) and PASSWORD not in str(config) and "***" in repr(config)
    source = SqlSource(config)
    items = list(source.scan())
    uris = [source.source_uri(i) for i in items]  # what documents and citations keep
    assert uris and all(PASSWORD not in u and u.startswith("postgresql+psycopg://postgres") for u in uris)
    assert "sslmode=disable" in uris[0] or "sslmode" not in url  # settings that are no secret stay visible
    assert PASSWORD not in source.describe()
    # an error that quotes the URL, and one that quotes the server (a missing table, a refused query)
    for settings in ({"table": "fd_no_such_table"}, {"query": "SELECT no_such_column AS id, 1 AS b"}):
        failing = SqlSource(SqlConfig(url=url, id="id", text=["b"], **settings))
        with pytest.raises(SourceError) as err:
            list(failing.scan())
        assert PASSWORD not in str(err.value) and "127.0.0.1" in str(err.value)


def test_a_server_message_that_quotes_the_password_is_scrubbed() -> None:
    source = SqlSource(SqlConfig(url=f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:9/kb?token=tk-81d2e",
                                 table="t", id="id", text=["b"]))
    assert source._scrub(f"login app/{PASSWORD} with tk-81d2e failed") == "login app/*** with *** failed"
    assert source.describe() == "postgresql+psycopg://app:***@127.0.0.1:9/kb?token=***"


# --- the SELECT-only rule -----------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ("DELETE FROM t", "DELETE statement"),
    ("SELECT 1; DROP TABLE t", "2 statements (SELECT, DROP)"),
    ("INSERT INTO t VALUES (1)", "INSERT statement"),
    ("UPDATE t SET a = 1", "UPDATE statement"),
    ("DROP TABLE t", "DROP statement"),
    ("CREATE TABLE x AS SELECT * FROM t", "CREATE statement"),
    ("SELECT * INTO x FROM t", "SELECT … INTO"),
    ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE inside the SELECT"),
    ("VACUUM", "VACUUM statement"),
    ("SELEC id FROM t", "not valid SQL"),
    ("", "empty"),
])
@QUERY_CHECK
def test_only_one_read_only_select_is_accepted(query: str, expected: str) -> None:
    with pytest.raises(ValidationError) as err:
        SqlConfig(url="postgresql+psycopg://u@h/db", query=query, id="id", text=["body"])
    assert expected in str(err.value)


@pytest.mark.parametrize("query", [
    "SELECT id, body FROM t",
    "WITH recent AS (SELECT * FROM t WHERE updated_at > now() - interval '7 days') SELECT id, body FROM recent",
    "SELECT id, body FROM a UNION ALL SELECT id, body FROM b;",
    "SELECT id, body::text AS body FROM t WHERE body LIKE '%:x%'",
])
@QUERY_CHECK
def test_read_only_selects_pass(query: str) -> None:
    check_select_only(query, "postgres")
    SqlConfig(url="postgresql+psycopg://u@h/db", query=query, id="id", text=["body"])


@pytest.mark.parametrize(("settings", "expected"), [
    ({"table": "t", "query": "SELECT 1"}, "exactly one of `table`"),
    ({}, "exactly one of `table`"),
    ({"table": "t", "text": []}, "at least one text column"),
    ({"table": "t", "text": ["id"]}, "also a text column"),
    ({"table": "t", "url": "not a url"}, "not a SQLAlchemy URL"),
    ({"table": "t", "tabel": "x"}, "Extra inputs are not permitted"),
])
def test_config_mistakes_say_what_to_do(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        SqlConfig(**{"url": "sqlite:///x.db", "id": "id", "text": ["body"], **settings})


@pytest.mark.parametrize("url", [SERVERS["postgresql"], "${FD_TEST_DB_URL}"])
@pytest.mark.parametrize(("query", "expected"), [
    ("DELETE FROM t", "query is a DELETE statement"),
    ("SELECT 1; DROP TABLE t", "query holds 2 statements (SELECT, DROP)"),
])
@SQL_SOURCE
def test_flightdeck_validate_refuses_a_query_that_is_not_one_select(tmp_path: Path, url: str, query: str,
                                                                     expected: str) -> None:
    # with the URL still an ${ENV} reference the dialect is unknown: the generic parse still catches these
    _spec(tmp_path, {"url": url, "query": query, "id": "id", "text": ["body"]})
    result = CliRunner().invoke(app, ["validate", "--spec", str(tmp_path / "flightdeck.yaml")])
    assert result.exit_code == 1, result.output
    assert expected in result.output and "data.sources.0" in result.output


@QUERY_CHECK
def test_config_errors_never_print_the_resolved_url() -> None:
    with pytest.raises(ValidationError) as err:
        SqlConfig(url="postgresql+psycopg://u:pa55word@db/kb", query="DELETE FROM t", id="id", text=["body"])
    assert "DELETE" in str(err.value) and "pa55word" not in str(err.value)


def test_configs_import_without_the_optional_libraries() -> None:
    code = textwrap.dedent("""
        import sys
        import flightdeck.data.sources.sql, flightdeck.data.sources.warehouses
        from flightdeck.registry import registry, Category
        for name in ("sql", "snowflake", "bigquery"):
            registry().config_class(Category.SOURCE, name)
        heavy = [m for m in ("sqlglot", "snowflake.connector", "google.cloud.bigquery", "psycopg", "pymysql")
                 if m in sys.modules]
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
