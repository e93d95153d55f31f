"""Every built-in source that can run here passes the source contract (:mod:`flightdeck.testing.source_contract`).

Each runs on what its own tests run on, reused from their modules: a folder (files), SQLite (sql), fakesnow
(snowflake), moto's S3 server and gcp-storage-emulator (s3, gcs), the HTTP API server of test_source_api.py (api)
and the website of test_source_web.py (web). Not here: bigquery (no server or emulator can run, see its flavor's
note) and synthetic (it writes items with an LLM from the chunks of an earlier run; test_synthetic.py covers it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_source_object_store

from flightdeck.registry import Category
from flightdeck.testing.source_contract import SourceContract
from needs import need, needs_provider

pytestmark = pytest.mark.integration

# The S3 and GCS servers of test_source_object_store.py, started once for this module too.
moto_endpoint = test_source_object_store.moto_endpoint
gcs_endpoint = test_source_object_store.gcs_endpoint


# --- files ---------------------------------------------------------------------------------------------------
FILES = {
    "guide/install.md": "# Installing Widgets\n\nRun the installer.\n\n## Requirements\n\nA frame and two sprockets.\n",
    "guide/care.html": "<html><body><h1>Caring for widgets</h1><p>Clean a widget once a week.</p></body></html>",
    "notes.txt": "Widget colours: red, blue and green.\n",
    "rows.jsonl": json.dumps({"_id": "r1", "title": "Sprockets", "text": "Sprockets come in pairs."}) + "\n"
                  + json.dumps({"_id": "r2", "title": "Frames", "text": "Frames are made of oak."}) + "\n",
}


@needs_provider(Category.SOURCE, "files")
class TestFilesSource(SourceContract):
    @pytest.fixture
    def folder(self, tmp_path: Path) -> Path:
        for rel, body in FILES.items():
            (tmp_path / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "docs" / rel).write_text(body, encoding="utf-8")
        return tmp_path / "docs"

    @pytest.fixture
    def make_source(self, folder: Path) -> Callable[[], Any]:
        from flightdeck.data.sources.files import FilesConfig, FilesSource

        return lambda: FilesSource(FilesConfig(path=str(folder)))

    @pytest.fixture
    def change_item(self, folder: Path) -> Callable[[], str]:
        def change() -> str:
            (folder / "notes.txt").write_text("Widget colours: only yellow now.\n", encoding="utf-8")
            return "notes.txt"

        return change

    @pytest.fixture
    def make_failing_source(self, folder: Path) -> Callable[[], Any]:
        from flightdeck.data.sources.files import FilesConfig, FilesSource

        (folder / "big.txt").write_text("x" * 5_000, encoding="utf-8")  # over max_file_bytes below
        return lambda: FilesSource(FilesConfig(path=str(folder), max_file_bytes=1_000))


# --- sql (SQLite) ----------------------------------------------------------------------------------------------
@needs_provider(Category.SOURCE, "sql")
class TestSqlSource(SourceContract):
    @pytest.fixture
    def database(self, tmp_path: Path) -> Iterator[tuple[str, Any]]:
        import sqlalchemy as sa
        from test_source_sql import ROWS, _articles

        path = tmp_path / "kb.db"
        sqlite3.connect(path).close()
        url = f"sqlite:///{path}"
        engine = sa.create_engine(url)
        metadata = sa.MetaData()
        good, mixed = _articles("articles", metadata), _articles("with_empty_row", metadata)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(good.insert(), [r for r in ROWS if r["body"]])  # every row has text
            conn.execute(mixed.insert(), ROWS)  # row 4 has none: a failure the scan reports
        yield url, good
        engine.dispose()

    @staticmethod
    def _source(url: str, table: str) -> Any:
        from flightdeck.data.sources.sql import SqlConfig, SqlSource

        return SqlSource(SqlConfig(url=url, table=table, id="id", text=["body", "summary"], title="title"))

    @pytest.fixture
    def make_source(self, database: tuple[str, Any]) -> Callable[[], Any]:
        url, _ = database
        return lambda: self._source(url, "articles")

    @pytest.fixture
    def change_item(self, database: tuple[str, Any]) -> Callable[[], str]:
        url, table = database

        def change() -> str:
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.execute(table.update().where(table.c.id == 2).values(body="Polish a widget with beeswax."))
            engine.dispose()
            return "articles#2"

        return change

    @pytest.fixture
    def make_failing_source(self, database: tuple[str, Any]) -> Callable[[], Any]:
        url, _ = database
        return lambda: self._source(url, "with_empty_row")


# --- snowflake (fakesnow) --------------------------------------------------------------------------------------
@needs_provider(Category.SOURCE, "snowflake")
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")  # fakesnow's, as in its tests
class TestSnowflakeSource(SourceContract):
    @pytest.fixture
    def snow(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        need("dev", "fakesnow")  # fakesnow stands in for Snowflake here
        from test_source_warehouses import snow  # imported here: that module needs the bigquery library too

        yield from snow.__wrapped__(monkeypatch)  # the fixture's own function: the same table, the same rows

    @staticmethod
    def _source(**settings: Any) -> Any:
        from test_source_warehouses import SNOWFLAKE

        from flightdeck.data.sources.warehouses import SnowflakeConfig, SnowflakeSource

        return SnowflakeSource(SnowflakeConfig(**SNOWFLAKE, id="id", text=["body"], title="title", **settings))

    @pytest.fixture
    def make_source(self, snow: Any) -> Callable[[], Any]:
        return lambda: self._source(query="SELECT id, title, body FROM articles WHERE body IS NOT NULL")

    @pytest.fixture
    def change_item(self, snow: Any, make_source: Callable[[], Any]) -> Callable[[], str]:
        def change() -> str:
            snow.execute("UPDATE articles SET body = 'Polish a widget with beeswax.' WHERE id = 2")
            return "query#2"

        return change

    @pytest.fixture
    def make_failing_source(self, snow: Any) -> Callable[[], Any]:
        return lambda: self._source(table="articles")  # row 4 has no body


# --- s3 and gcs (moto, gcp-storage-emulator) -------------------------------------------------------------------
class _BucketContract(SourceContract):
    @pytest.fixture
    def bucket(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def make_source(self, bucket: Any) -> Callable[[], Any]:
        from test_source_object_store import _fill

        _fill(bucket)
        return bucket.source

    @pytest.fixture
    def change_item(self, bucket: Any, make_source: Callable[[], Any]) -> Callable[[], str]:
        def change() -> str:
            bucket.put("docs/notes.txt", "Widget colours: only yellow now.\n")
            return "notes.txt"

        return change

    @pytest.fixture
    def make_failing_source(self, bucket: Any, make_source: Callable[[], Any]) -> Callable[[], Any]:
        bucket.put("docs/big.txt", "x" * 5_000)  # over max_file_bytes below
        return lambda: bucket.source(max_file_bytes=1_000)


@needs_provider(Category.SOURCE, "s3")
class TestS3Source(_BucketContract):
    @pytest.fixture
    def bucket(self, moto_endpoint: str) -> Any:
        from test_source_object_store import S3Store

        return S3Store(moto_endpoint)


@needs_provider(Category.SOURCE, "gcs")
class TestGcsSource(_BucketContract):
    @pytest.fixture
    def bucket(self, gcs_endpoint: str) -> Any:
        from test_source_object_store import GcsStore

        return GcsStore(gcs_endpoint)


# --- api (a REST server on 127.0.0.1) ---------------------------------------------------------------------------
@needs_provider(Category.SOURCE, "api")
class TestApiSource(SourceContract):
    @pytest.fixture
    def api(self) -> Iterator[tuple[str, Any]]:
        from test_source_api import _serve

        with _serve() as served:
            yield served

    @pytest.fixture
    def make_source(self, api: tuple[str, Any]) -> Callable[[], Any]:
        from test_source_api import _source

        base, _ = api
        return lambda: _source(f"{base}/page", items_path="$.data", pagination={"type": "page", "size": 2})

    @pytest.fixture
    def change_item(self, api: tuple[str, Any]) -> Callable[[], str]:
        base, state = api

        def change() -> str:
            state.articles[1]["attributes"]["body"] = "Widget fact number 2, revised: sprockets come in pairs."
            return f"{base.split('//', 1)[1]}/page#2"

        return change

    @pytest.fixture
    def make_failing_source(self, api: tuple[str, Any]) -> Callable[[], Any]:
        from test_source_api import _source

        base, _ = api
        return lambda: _source(f"{base}/bad", items_path="$.data")  # records without id or text, a duplicate


# --- web (a website on 127.0.0.1) -------------------------------------------------------------------------------
@needs_provider(Category.SOURCE, "web")
class TestWebSource(SourceContract):
    @pytest.fixture
    def site(self) -> Iterator[Any]:
        from test_source_web import A_MAIN, B_MAIN, _page, _serve

        with _serve() as site:
            site.routes.update({
                "/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n"),
                "/": _page("Home", '<h1>Welcome</h1><p>The home of widgets and gadgets, since 1921.</p>'
                                   '<a href="/a">alpha</a> <a href="/b">bravo</a>'),
                "/a": _page("Alpha", A_MAIN),
                "/b": _page("Bravo", B_MAIN),
                "/empty": _page("Almost empty", "<h1>Almost empty</h1><p>Bravo links here; little to read.</p>"),
            })
            yield site

    @pytest.fixture
    def make_source(self, site: Any) -> Callable[[], Any]:
        from test_source_web import _config

        from flightdeck.data.sources.web import WebSource

        return lambda: WebSource(_config(site))

    @pytest.fixture
    def change_item(self, site: Any) -> Callable[[], str]:
        from test_source_web import A_MAIN, _page

        def change() -> str:
            site.routes["/a"] = _page("Alpha", A_MAIN.replace("seventeen", "eighteen"))
            return site.url("/a")

        return change

    @pytest.fixture
    def make_failing_source(self, site: Any, make_source: Callable[[], Any]) -> Callable[[], Any]:
        site.routes["/"] = site.routes["/"].replace("</article>", '<a href="/missing">gone</a></article>')
        return make_source  # /missing answers 404: a failure of that page, the others still come
