"""The warehouse sources: Snowflake end to end on fakesnow, BigQuery as far as no server allows.

Snowflake: the real ``snowflake.connector`` API with fakesnow's DuckDB behind it (``fakesnow.patch()``),
through :class:`~flightdeck.Project` with the fake embedder; a refused connection goes through the real
connector. BigQuery: no BigQuery server or emulator runs here, so queries are never executed; the config
checks, the SQL the source sends, the mapping of the library's own ``Row`` objects and a refused
connection through the real client are tested.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flightdeck import Project
from flightdeck.data.parsers import parse
from flightdeck.data.sources.base import Source
from flightdeck.data.sources.sql import RecordMapping
from flightdeck.data.sources.warehouses import (
    BigQueryConfig,
    BigQuerySource,
    SnowflakeConfig,
    SnowflakeSource,
    _GlotReader,
    bigquery_rows,
)
from flightdeck.errors import SourceError
from flightdeck.testing import FakeEmbedder

fakesnow = pytest.importorskip("fakesnow")
snowflake_connector = pytest.importorskip("snowflake.connector")
Row = pytest.importorskip("google.cloud.bigquery.table").Row

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")]

SNOWFLAKE = {"account": "acme-test", "user": "loader", "password": "${FD_TEST_SNOWFLAKE_PASSWORD}",
             "database": "KB", "schema": "DOCS", "warehouse": "COMPUTE_WH"}


@pytest.fixture
def snow(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fakesnow database KB.DOCS with an ARTICLES table; yields a cursor to change it."""
    monkeypatch.setenv("FD_TEST_SNOWFLAKE_PASSWORD", "sn0w-secret")
    with fakesnow.patch():
        conn = snowflake_connector.connect(database="KB", schema="DOCS")
        cur = conn.cursor()
        cur.execute("CREATE TABLE articles (id INT, title VARCHAR, body VARCHAR, category VARCHAR, "
                    "price NUMBER(10, 2), updated_at TIMESTAMP_NTZ)")
        cur.execute("""INSERT INTO articles VALUES
            (1, 'Installing widgets', 'Run the widget installer and align the sprockets.', 'guide', 9.50,
             '2024-01-01 10:00:00'),
            (2, 'Caring for widgets', 'Clean a widget with a soft cloth once a week.', 'care', 12,
             '2024-01-02 10:00:00'),
            (3, 'Widget colours', 'Widgets come in red, blue and green.', 'facts', NULL, '2024-01-03 10:00:00'),
            (4, 'Nothing here', NULL, 'empty', NULL, '2024-01-04 10:00:00')""")
        yield cur
        conn.close()


def _spec(root: Path, source: dict[str, Any]) -> None:
    spec = {
        "project": "warehouse-source-test",
        "scoping": {"use_case": "rag", "objective": "retrieval_system"},
        "data": {"sources": [source], "chunking": {"provider": "recursive", "size": 64, "overlap": 16}},
        "retrieval": {"embedding_model": "sentence_transformers", "vector_database": "faiss",
                      "system": ["hybrid_search"], "search": {"mode": "hybrid", "k": 5}},
    }
    (root / "flightdeck.yaml").write_text(json.dumps(spec, indent=2), encoding="utf-8")


def _project(root: Path) -> Project:
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    return project


def _steps(summary: Any) -> dict[str, Any]:
    return {s.step: s for s in summary.steps}


def _documents(root: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as conn:
        rows = conn.execute("select id, source_uri, title, metadata from documents").fetchall()
    return {r[0]: {"source_uri": r[1], "title": r[2], "metadata": json.loads(r[3] or "{}")} for r in rows}


# --- Snowflake (fakesnow) -----------------------------------------------------------------------------


@pytest.mark.exercises("data.sources.data_warehouses")
def test_snowflake_rows_are_ingested_updated_and_removed_incrementally(snow: Any, tmp_path: Path) -> None:
    _spec(tmp_path, {"provider": "snowflake", **SNOWFLAKE, "table": "articles", "id": "id", "text": ["body"],
                     "title": "title", "incremental_key": "updated_at"})
    counts = _steps(_project(tmp_path).run())["ingest"].counts
    assert counts["parsed"] == 3 and counts["failed"] == 1
    assert counts["failures"][0]["uri"] == "snowflake/articles#4" and "ID=4" in counts["failures"][0]["reason"]
    docs = _documents(tmp_path)
    one = docs["snowflake/articles#1"]
    # unquoted Snowflake names are upper case: `id: id` found ID, and metadata keeps the real names
    assert one["title"] == "Installing widgets"
    expected = {"ID": 1, "CATEGORY": "guide", "PRICE": 9.5, "UPDATED_AT": "2024-01-01T10:00:00"}
    assert {k: v for k, v in one["metadata"].items() if k in expected} == expected
    assert one["source_uri"] == "snowflake://loader@acme-test.snowflakecomputing.com/KB/DOCS#articles/1"
    hits = _project(tmp_path).search("soft cloth once a week", mode="keyword").hits
    assert hits and hits[0].document_id == "snowflake/articles#2"

    assert _steps(_project(tmp_path).run())["ingest"].status == "skipped"

    snow.execute("UPDATE articles SET body = 'Polish a widget with beeswax every month.', "
                 "updated_at = '2024-02-01 09:00:00' WHERE id = 2")
    project = _project(tmp_path)
    counts = _steps(project.run())["ingest"].counts
    assert counts["parsed"] == 1 and counts["unchanged"] == 2
    assert all("beeswax" in t for t in project.embedder.embedded_texts)

    snow.execute("DELETE FROM articles WHERE id = 3")
    counts = _steps(_project(tmp_path).run())["ingest"].counts
    assert counts["removed"] == 1 and "snowflake/articles#3" not in _documents(tmp_path)


@pytest.mark.exercises("data.sources.data_warehouses")
def test_snowflake_query_without_a_key_hashes_whole_rows(snow: Any, tmp_path: Path) -> None:
    query = ("SELECT id, title, body || ' (' || category || ')' AS text_with_category, price FROM articles "
             "WHERE body LIKE '%widget%'")
    _spec(tmp_path, {"provider": "snowflake", **SNOWFLAKE, "query": query, "id": "id",
                     "text": ["text_with_category"], "title": "title"})
    counts = _steps(_project(tmp_path).run())["ingest"].counts
    assert counts["parsed"] == 2 and counts["failed"] == 0
    assert set(_documents(tmp_path)) == {"snowflake/query#1", "snowflake/query#2"}
    snow.execute("UPDATE articles SET price = 10 WHERE id = 1")  # not text, still part of the row
    counts = _steps(_project(tmp_path).run())["ingest"].counts
    assert counts["parsed"] == 1 and _documents(tmp_path)["snowflake/query#1"]["metadata"]["PRICE"] == 10


def test_snowflake_string_ids_are_escaped_literals_when_read_by_id(snow: Any) -> None:
    snow.execute("CREATE TABLE notes (slug VARCHAR, body VARCHAR, version INT)")
    snow.execute("INSERT INTO notes VALUES ('it''s', 'an apostrophe', 1), ('a) OR (1=1', 'brackets', 1), "
                 "('plain', 'plain text', 1)")
    source = SnowflakeSource(SnowflakeConfig(**{**SNOWFLAKE, "password": "x"}, table="notes", id="slug",
                                             text=["body"], incremental_key="version"))
    assert isinstance(source, Source)
    items = list(source.scan())
    assert sorted(i.uri for i in items) == ["notes#a) OR (1=1", "notes#it's", "notes#plain"]
    texts = {i.uri: json.loads(source.read(i))["text"] for i in items}
    assert texts == {"notes#it's": "an apostrophe", "notes#a) OR (1=1": "brackets", "notes#plain": "plain text"}


def test_snowflake_missing_table_is_a_clear_error(snow: Any) -> None:
    source = SnowflakeSource(SnowflakeConfig(**{**SNOWFLAKE, "password": "x"}, table="nope", id="id",
                                             text=["body"]))
    with pytest.raises(SourceError, match="Snowflake refused the query"):
        list(source.scan())


def test_snowflake_down_fails_the_run_after_retries_and_keeps_the_version(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FD_TEST_SNOWFLAKE_PASSWORD", "sn0w-secret")
    source = {"provider": "snowflake", **SNOWFLAKE, "query": "SELECT 1 AS id, 'one row' AS body", "id": "id",
              "text": ["body"], "retries": 1, "retry_backoff": 0.01, "connect_timeout": 2}
    _spec(tmp_path, source)
    project = _project(tmp_path)
    with fakesnow.patch():
        assert project.run().status == "succeeded"
    version = project.workspace.get_state("current_dataset")
    assert version
    # the real connector now, pointed at a port where nothing listens
    _spec(tmp_path, {**source, "host": "127.0.0.1", "port": 1, "protocol": "http"})
    with pytest.raises(SourceError) as err:
        _project(tmp_path).run()
    message = str(err.value)
    assert "snowflake://loader@127.0.0.1:1/KB/DOCS" in message and "tried 2 times" in message
    assert "sn0w-secret" not in message
    assert project.workspace.get_state("current_dataset") == version
    assert set(_documents(tmp_path)) == {"snowflake/query#1"}


@pytest.mark.parametrize(("settings", "expected"), [
    ({"query": "DELETE FROM articles"}, "DELETE statement"),
    ({"query": "SELECT 1; DROP TABLE articles"}, "2 statements"),
    ({"query": "SELECT * FROM t", "table": "t"}, "exactly one of `table`"),
    ({"table": "a.b.c.d"}, "4 parts"),
    ({"table": "t", "password": None}, "set `password`"),
    ({"table": "t", "schma": "x"}, "Extra inputs are not permitted"),
])
def test_snowflake_config_mistakes(settings: dict[str, Any], expected: str) -> None:
    base = {**SNOWFLAKE, "password": "x", "id": "id", "text": ["body"]}
    with pytest.raises(ValidationError, match=expected):
        SnowflakeConfig(**{**base, **settings})


def test_snowflake_password_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SnowflakeConfig(**{**SNOWFLAKE, "password": "sn0w-secret"}, table="t", id="id", text=["body"])
    assert "sn0w-secret" not in repr(config) and "sn0w-secret" not in str(config.model_dump())
    assert "sn0w-secret" not in config.model_dump_json()
    source = SnowflakeSource(config)
    assert "sn0w-secret" not in source.describe()
    assert source._scrub("login loader/sn0w-secret refused") == "login loader/*** refused"
    # the connector gets the real value
    seen: dict[str, Any] = {}

    def connect(**kwargs: Any) -> Any:
        seen.update(kwargs)
        raise snowflake_connector.errors.DatabaseError("250001: Incorrect username or password: sn0w-secret")

    monkeypatch.setattr(snowflake_connector, "connect", connect)
    with pytest.raises(SourceError) as err:
        list(SnowflakeSource(config.model_copy(update={"retries": 0})).scan())
    assert seen["password"] == "sn0w-secret" and "sn0w-secret" not in str(err.value)


# --- BigQuery (no server here: queries never executed) -----------------------------------------------


def _bq(**settings: Any) -> BigQueryConfig:
    return BigQueryConfig(**{"project": "acme-kb", "id": "id", "text": ["body"], **settings})


@pytest.mark.parametrize(("settings", "expected"), [
    ({"query": "DELETE FROM ds.articles WHERE true"}, "DELETE statement"),
    ({"query": "SELECT 1; DROP TABLE ds.articles"}, "2 statements"),
    ({"query": "SELECT * INTO x FROM t"}, "SELECT … INTO"),
    ({}, "exactly one of `table`"),
    ({"table": "a.b.c.d"}, "4 parts"),
    ({"table": "ds.t", "anonymous": True, "credentials_file": "/k.json"}, "at most one of"),
    ({"table": "ds.t", "timeout": 0}, "greater than 0"),
])
def test_bigquery_config_mistakes(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        _bq(**settings)


def test_bigquery_accepts_its_own_sql() -> None:
    config = _bq(query="SELECT id, body FROM `acme-kb.docs.articles` WHERE DATE(updated_at) > '2024-01-01' "
                       "UNION ALL SELECT id, body FROM docs.archive", incremental_key="id")
    assert config.query_dialect() == "bigquery"


def _bq_rows() -> list[Row]:
    fields = {"id": 0, "title": 1, "body": 2, "amount": 3, "published": 4, "updated_at": 5, "tags": 6}
    return [
        Row((1, "Installing widgets", "Run the widget installer.", Decimal("9.50"), date(2024, 1, 1),
             datetime(2024, 1, 1, 10, 0, tzinfo=UTC), ["a", "b"]), fields),
        Row((2, "Empty", None, None, None, datetime(2024, 1, 2, tzinfo=UTC), []), fields),
    ]


def test_bigquery_rows_become_records_the_record_parser_reads() -> None:
    config = _bq(table="docs.articles", title="title")
    rows = list(bigquery_rows(iter(_bq_rows())))
    mapping = RecordMapping.resolve(config, list(rows[0]), "bigquery://acme-kb")
    assert mapping.metadata == ("amount", "published", "updated_at", "tags")
    data = mapping.record(rows[0])
    item = mapping.item("1", data)
    assert item.uri == "docs.articles#1" and item.media_type == "application/x-record"
    doc = parse(item, data)
    assert doc.title == "Installing widgets" and doc.text == "Run the widget installer."
    # NUMERIC -> number, DATE/TIMESTAMP -> ISO strings, arrays left out of the metadata
    assert doc.metadata == {"id": 1, "amount": 9.5, "published": "2024-01-01",
                            "updated_at": "2024-01-01T10:00:00+00:00"}
    with pytest.raises(ValueError, match="body is empty or NULL"):
        mapping.record(rows[1])


def test_bigquery_sql_quotes_names_and_renders_ids_as_literals() -> None:
    sent: list[str] = []

    def execute(sql: str) -> tuple[list[str], Iterator[Any]]:
        sent.append(sql)
        return ["id", "body"], bigquery_rows(iter([Row((1, "x"), {"id": 0, "body": 1})]))

    reader = _GlotReader(_bq(table="acme-kb.docs.articles"), "bigquery", execute,
                         columns=lambda from_sql: ["id", "body"], identify=True)
    assert reader.columns() == ["id", "body"]
    assert list(reader.rows(["id", "body"])) == [{"id": 1, "body": "x"}]
    list(reader.rows(None, "id", [1, "it's", Decimal("3")]))
    assert sent == ["SELECT `id`, `body` FROM `acme-kb`.`docs`.`articles`",
                    "SELECT * FROM `acme-kb`.`docs`.`articles` WHERE `id` IN (1, 'it\\'s', 3)"]
    query_reader = _GlotReader(_bq(query="SELECT id, body FROM docs.a -- all"), "bigquery", execute,
                               columns=lambda from_sql: ["id", "body"], identify=True)
    list(query_reader.rows(["id"]))
    assert sent[-1] == "SELECT `id` FROM (\nSELECT id, body FROM docs.a -- all\n) AS fd_q"


@pytest.mark.parametrize("kind", ["table", "query"])
def test_bigquery_refused_connection_is_a_source_error_after_retries(kind: str) -> None:
    what = {"table": "docs.articles"} if kind == "table" else {"query": "SELECT id, body FROM docs.articles"}
    source = BigQuerySource(_bq(**what, endpoint="http://127.0.0.1:1", anonymous=True, retries=1,
                                retry_backoff=0.01, connect_timeout=2))
    with pytest.raises(SourceError) as err:
        list(source.scan())
    message = str(err.value)
    assert "http://127.0.0.1:1/acme-kb" in message and "Connection refused" in message
    assert "tried 2 times" in message


def test_bigquery_without_credentials_says_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A missing key file makes Application Default Credentials fail at once, without any network lookup.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with pytest.raises(SourceError, match="no Google credentials.*credentials_file"):
        list(BigQuerySource(_bq(table="docs.articles")).scan())
    with pytest.raises(SourceError, match="cannot load the service-account key from credentials_file"):
        list(BigQuerySource(_bq(table="docs.articles", credentials_file=str(tmp_path / "k.json"))).scan())
    with pytest.raises(SourceError, match="cannot load the service-account key from credentials_json"):
        list(BigQuerySource(_bq(table="docs.articles", credentials_json='{"type": "service_account"}')).scan())


def test_bigquery_credentials_json_is_a_secret() -> None:
    key = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQ-secret-key\n", "x": 1}
    config = _bq(table="docs.articles", credentials_json=json.dumps(key))
    for shown in (repr(config), str(config.model_dump()), config.model_dump_json()):
        assert "MIIEvQ-secret-key" not in shown
    with pytest.raises(SourceError) as err:  # a key without client_email and token_uri: the library refuses it
        list(BigQuerySource(config).scan())
    assert "cannot load the service-account key from credentials_json" in str(err.value)
    assert "MIIEvQ-secret-key" not in str(err.value)
    with pytest.raises(SourceError) as err:  # not JSON at all: the parser's message must not quote it
        list(BigQuerySource(_bq(table="docs.articles", credentials_json="MIIEvQ-secret-key")).scan())
    assert "MIIEvQ-secret-key" not in str(err.value) and "JSONDecodeError" in str(err.value)
