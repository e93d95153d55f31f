"""PostgreSQL full-text search as the keyword index (``retrieval.search.keyword_index: postgres``).

One table per workspace and text search configuration, on the server at ``retrieval.search.keyword_url``::

    chunk_id text PRIMARY KEY, text text, payload jsonb,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('<keyword_language>', text)) STORED   -- GIN-indexed

The index step syncs it incrementally, as it syncs a live vector store: it upserts the chunks whose text or
payload changed and deletes the chunks that are gone, and records what it wrote in ``store_sync``.

A query is never parsed as tsquery syntax: it is split into words, each word becomes a lexeme through
``plainto_tsquery`` with the word as a bound parameter, and the lexemes are ORed, as BM25 takes any query
term. Hits are ranked by ``ts_rank_cd`` (cover density) and metadata filters are compiled into the WHERE
clause by the pgvector store's jsonb filter compiler, with every key and value bound.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flightdeck.core import stable_hash
from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import, pip_install_hint
from flightdeck.retrieval.filters import Filter
from flightdeck.retrieval.stores.pgvector import compile_filter, libpq_url
from flightdeck.spec.resolve import resolve_env

__all__ = ["PostgresKeywordIndex", "PostgresFtsError", "keyword_table", "from_settings", "RANK_NORMALIZATION"]

_T = TypeVar("_T")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # as the BM25 index splits words
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
SETTING = "retrieval.search.keyword_url"
# ts_rank_cd's normalisation: 1 divides the cover density by 1 + log(document length); 32 (rank/(rank+1)) keeps
# the raw order. On SciFact train (benchmarks/keyword_postgres.py) 1 scored nDCG@10 0.4408 against 0.4313.
RANK_NORMALIZATION = 1
# Each query word is one bound parameter; PostgreSQL takes at most 65535 per statement.
MAX_WORDS = 1024
_COLUMNS = {"chunk_id": "text", "text": "text", "tsv": "tsvector", "payload": "jsonb"}


class PostgresFtsError(FlightdeckError):
    """The PostgreSQL server or the keyword table cannot be used as configured."""


def _psycopg() -> Any:
    return optional_import("psycopg", "pgvector", "keyword_index 'postgres'", alternative=pip_install_hint("sql"))


def keyword_table(workspace_root: Path, language: str) -> str:
    """The keyword table of a workspace and text search configuration (a new language makes a new table)."""
    digest = stable_hash({"workspace": str(workspace_root), "keyword_index": "postgres", "language": language})
    return f"flightdeck_fts_{digest[:20]}"


def from_settings(workspace_root: Path, settings: Any, where: str = "spec") -> PostgresKeywordIndex:
    """The keyword index that ``retrieval.search`` settings describe, ``${ENV}`` references in the URL resolved
    (``where`` names the spec in the error for an unset variable)."""
    if not (settings.keyword_url or "").strip():
        raise PostgresFtsError(f"keyword_index 'postgres' needs {SETTING}, the URL of the PostgreSQL server that "
                               "holds the keyword index, e.g. keyword_url: \"${KB_PG_URL}\"")
    url = resolve_env(settings.keyword_url, where=where)
    return PostgresKeywordIndex(url, keyword_table(workspace_root, settings.keyword_language),
                                settings.keyword_language)


class PostgresKeywordIndex:
    """The keyword table on a PostgreSQL server; connects on first use, one connection shared by threads."""

    def __init__(self, url: str, table: str, language: str = "english", connect_timeout: int = 10,
                 normalization: int = RANK_NORMALIZATION) -> None:
        self.url = url
        self.table = table
        self.language = language
        self.connect_timeout = connect_timeout
        self.normalization = normalization
        self._conn: Any = None
        self._ready = False
        self._lock = threading.RLock()

    def describe(self) -> dict[str, str]:
        """What identifies the index's content (the URL without its password): hashed into the index step's
        config, so a new server, table or language syncs again."""
        return {"url": _PASSWORD.sub(r"\1***@", libpq_url(self.url)), "table": self.table, "language": self.language}

    # connection ------------------------------------------------------------------------------------
    def _server(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(libpq_url(self.url))
        except _psycopg().ProgrammingError:
            return self.describe()["url"]
        return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"

    def _connect(self) -> Any:
        psycopg = _psycopg()
        try:
            return psycopg.connect(libpq_url(self.url), autocommit=True, connect_timeout=self.connect_timeout)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
            message = _PASSWORD.sub(r"\1***@", str(exc)).strip()
            raise PostgresFtsError(
                f"keyword_index 'postgres': cannot connect to the PostgreSQL server at {self._server()} "
                f"({self.describe()['url']}, from {SETTING}): {message}; check {SETTING} and that the server "
                "is running") from exc

    def _run(self, action: Callable[[Any], _T]) -> _T:
        """``action(connection)``, once more on a fresh connection if the server dropped this one (every action
        is idempotent: reads, upserts of whole rows, deletes by id)."""
        psycopg = _psycopg()
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                return action(self._conn)
            except psycopg.OperationalError:
                if not (self._conn.broken or self._conn.closed):
                    raise
                self._conn.close()
                self._conn = self._connect()
                return action(self._conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    # the table -------------------------------------------------------------------------------------
    def _columns(self, conn: Any) -> dict[str, str]:
        rows = conn.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                            (self.table,)).fetchall()
        return dict(rows)

    def _check_columns(self, columns: dict[str, str]) -> None:
        if any(columns.get(name) != kind for name, kind in _COLUMNS.items()):
            found = ", ".join(f"{n} {k}" for n, k in sorted(columns.items()))
            raise PostgresFtsError(f"keyword_index 'postgres': table {self.table} at {self._server()} has other "
                                   f"columns ({found}) than a flightdeck keyword table; drop it or rename it")

    def _ensure_table(self, conn: Any) -> None:
        from psycopg import sql

        table = sql.Identifier(self.table)
        with conn.transaction():
            # one process at a time creates the table and its indexes (CREATE ... IF NOT EXISTS still races)
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"flightdeck:fts:{self.table}",))
            columns = self._columns(conn)
            if not columns:
                if not conn.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = %s", (self.language,)).fetchone():
                    names = [r[0] for r in conn.execute("SELECT cfgname FROM pg_ts_config ORDER BY 1")]
                    raise PostgresFtsError(
                        f"keyword_index 'postgres': the server at {self._server()} has no text search configuration "
                        f"{self.language!r} (retrieval.search.keyword_language); it has: {', '.join(names)}")
                conn.execute(sql.SQL(
                    "CREATE TABLE {} (chunk_id text PRIMARY KEY, text text NOT NULL, "
                    "tsv tsvector GENERATED ALWAYS AS (to_tsvector({}::regconfig, text)) STORED, "
                    "payload jsonb NOT NULL DEFAULT '{{}}'::jsonb)").format(table, sql.Literal(self.language)))
                columns = self._columns(conn)
            self._check_columns(columns)
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (tsv)")
                         .format(sql.Identifier(f"{self.table}_tsv_idx"), table))
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (payload jsonb_path_ops)")
                         .format(sql.Identifier(f"{self.table}_payload_idx"), table))

    def _writable(self, conn: Any) -> Any:
        if not self._ready:
            self._ensure_table(conn)
            self._ready = True
        return conn

    def _readable(self, conn: Any) -> Any:
        if not self._ready:
            columns = self._columns(conn)
            if not columns:
                raise PostgresFtsError(f"keyword_index 'postgres': there is no keyword table {self.table} at "
                                       f"{self._server()} yet; run `flightdeck run` to build it")
            self._check_columns(columns)
            self._ready = True
        return conn

    def drop(self) -> None:
        """Drop the table (the next write makes an empty one)."""
        from psycopg import sql

        self._run(lambda conn: conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table))))
        self._ready = False

    # writes (the index step) -----------------------------------------------------------------------
    def upsert(self, ids: list[str], texts: list[str], payloads: list[dict[str, Any]]) -> None:
        """Insert or replace these chunks, in one transaction."""
        if not ids:
            return
        from psycopg import sql
        from psycopg.types.json import Jsonb

        statement = sql.SQL("INSERT INTO {} (chunk_id, text, payload) VALUES (%s, %s, %s) ON CONFLICT (chunk_id) "
                            "DO UPDATE SET text = EXCLUDED.text, payload = EXCLUDED.payload").format(
            sql.Identifier(self.table))
        # PostgreSQL text cannot hold NUL characters; they carry no words anyway
        rows = [(cid, t.replace("\x00", ""), Jsonb(dict(p))) for cid, t, p in zip(ids, texts, payloads, strict=True)]

        def write(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(statement, rows)

        self._run(lambda conn: write(self._writable(conn)))

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        from psycopg import sql

        statement = sql.SQL("DELETE FROM {} WHERE chunk_id = ANY(%s)").format(sql.Identifier(self.table))
        self._run(lambda conn: self._writable(conn).execute(statement, (list(ids),)))

    def ids(self) -> set[str]:
        """Every chunk id in the table (creates the table when missing: the index step is about to fill it)."""
        from psycopg import sql

        statement = sql.SQL("SELECT chunk_id FROM {}").format(sql.Identifier(self.table))
        return self._run(lambda conn: {r[0] for r in self._writable(conn).execute(statement)})

    def __len__(self) -> int:
        from psycopg import sql

        statement = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.table))
        return int(self._run(lambda conn: self._readable(conn).execute(statement).fetchone()[0]))

    # reads -----------------------------------------------------------------------------------------
    def statement(self, query: str, k: int, where: Filter | None = None) -> tuple[Any, list[Any]] | None:
        """The search's SQL and its parameters; None when the query has no word."""
        from psycopg import sql

        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_WORDS]
        if not words:
            return None
        lexeme = sql.SQL("plainto_tsquery({}::regconfig, %s)").format(sql.Literal(self.language))
        params: list[Any] = list(words)
        condition = sql.SQL("")
        if where is not None:
            condition = sql.SQL(" AND {}").format(compile_filter(where, params))
        params.append(k)
        # the one-row subquery is folded into a constant tsquery, so the GIN index answers `tsv @@ query`
        statement = sql.SQL(
            "SELECT chunk_id, ts_rank_cd(tsv, query, {}) AS score FROM {}, (SELECT {} AS query) AS q "
            "WHERE tsv @@ query{} ORDER BY score DESC, chunk_id LIMIT %s").format(
            sql.Literal(self.normalization), sql.Identifier(self.table), sql.SQL(" || ").join([lexeme] * len(words)),
            condition)
        return statement, params

    def search(self, query: str, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        """``(chunk_id, ts_rank_cd score)`` of the chunks that contain a query word, best first; ``where`` is
        applied in the same SQL query (pushed down)."""
        built = self.statement(query, k, where) if k > 0 else None
        if built is None:
            return []
        statement, params = built
        rows = self._run(lambda conn: self._readable(conn).execute(statement, params).fetchall())
        return [(cid, float(score)) for cid, score in rows]
