"""A relative SQLite URL of a ``sql`` source is found from the spec's folder, not from the current one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.data.sources.sql import SqlConfig, resolve_sqlite_url
from flightdeck.registry import Category
from flightdeck.testing import FakeEmbedder
from needs import needs_provider

pytestmark = pytest.mark.integration

# a spec choosing the sql source validates only where the extra is installed (SQLite itself needs no driver)
SQL_SOURCE = needs_provider(Category.SOURCE, "sql")


def _write_project(root: Path, url: str) -> None:
    (root / "data").mkdir(parents=True)
    with sqlite3.connect(root / "data" / "kb.db") as conn:
        conn.execute("create table notes (id integer primary key, title text, body text)")
        conn.executemany("insert into notes values (?, ?, ?)", [
            (1, "Ferry times", "The ferry to the island leaves every hour from pier four."),
            (2, "Bike rental", "Bikes are rented by the day at the harbour office."),
        ])
    spec = {
        "project": "relative-sqlite",
        "scoping": {"use_case": "rag", "objective": "retrieval_system"},
        "data": {"sources": [{"provider": "sql", "url": url, "table": "notes", "id": "id", "text": ["body"],
                              "title": "title"}],
                 "chunking": {"provider": "recursive", "size": 64, "overlap": 16}},
        "retrieval": {"embedding_model": "sentence_transformers", "vector_database": "faiss",
                      "system": ["hybrid_search"], "search": {"mode": "hybrid", "k": 5}},
    }
    (root / "flightdeck.yaml").write_text(json.dumps(spec, indent=2), encoding="utf-8")  # JSON is YAML


@pytest.mark.exercises("data.sources.sql_databases")
@SQL_SOURCE
@pytest.mark.parametrize("url", ["sqlite:///data/kb.db", "sqlite+pysqlite:///./data/kb.db?timeout=5"])
def test_a_relative_sqlite_url_resolves_from_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             url: str) -> None:
    root = tmp_path / "project"
    _write_project(root, url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the folder a user happens to run from, without any data/kb.db
    project = Project.load(root / "flightdeck.yaml")
    project.use(embedder=FakeEmbedder())
    summary = project.run()
    ingest = next(s for s in summary.steps if s.step == "ingest")
    assert summary.status == "succeeded" and ingest.counts["parsed"] == 2, ingest.counts
    hits = project.search("ferry island pier", mode="keyword").hits
    assert hits and hits[0].document_id == "sql/notes#1"
    # citations name the database file that was read, and SQLite created nothing in the current folder
    assert f":///{root / 'data' / 'kb.db'}" in hits[0].source_uri
    assert list(elsewhere.iterdir()) == []


@SQL_SOURCE
def test_a_spec_loaded_by_a_relative_path_still_resolves_to_an_absolute_file(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _write_project(tmp_path / "project", "sqlite:///data/kb.db")
    monkeypatch.chdir(tmp_path)
    [binding] = Project.load("project/flightdeck.yaml").source_bindings()
    assert binding.source.config.url == f"sqlite:///{tmp_path / 'project' / 'data' / 'kb.db'}"


@pytest.mark.parametrize("url", [
    "sqlite:////abs/path/kb.db",          # absolute: four slashes
    "sqlite://",                          # in memory
    "sqlite:///:memory:",
    "sqlite:///file:kb.db?mode=ro&uri=true",  # a SQLite URI names its file itself
    "postgresql+psycopg://user:secret@db:5432/kb",
    "mysql+pymysql://root@db:3306/data/kb",
    "not a url",
])
def test_other_urls_are_left_as_they_are(url: str, tmp_path: Path) -> None:
    assert resolve_sqlite_url(url, tmp_path) == url


def test_relative_forms_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    base = tmp_path / "spec"
    assert resolve_sqlite_url("sqlite:///kb.db", base) == f"sqlite:///{base / 'kb.db'}"
    assert resolve_sqlite_url("sqlite:///../shared/kb.db", base) == f"sqlite:///{tmp_path / 'shared' / 'kb.db'}"
    assert resolve_sqlite_url("sqlite:///~/kb.db", base) == f"sqlite:///{tmp_path / 'home' / 'kb.db'}"
    with_query = resolve_sqlite_url("sqlite:///data/kb.db?timeout=5", base)
    assert with_query == f"sqlite:///{base / 'data' / 'kb.db'}?timeout=5"
    settings = {"url": "sqlite:///kb.db", "table": "t", "id": "id", "text": ["b"]}
    assert SqlConfig.resolve_relative(dict(settings), base)["url"] == f"sqlite:///{base / 'kb.db'}"
