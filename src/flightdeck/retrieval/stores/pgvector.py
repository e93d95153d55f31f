"""pgvector: one PostgreSQL table per collection, cosine search pushed into the server, filters over jsonb.

The table is ``(id text primary key, embedding vector(d), payload jsonb)`` with a GIN index on the payload
and, by default, an HNSW index on the embedding (``index: hnsw``; ``ivfflat`` and ``none`` — exact scans —
are the others). Writes are ``INSERT ... ON CONFLICT (id) DO UPDATE`` in one transaction per batch, so a
re-run after a kill upserts again without duplicates.

Search orders by the cosine distance ``<=>`` and reports ``1 - distance``. Metadata filters become SQL over
the jsonb payload with every value *and* every key bound as a parameter (identifiers are quoted by psycopg,
never pasted into the statement):

- equality and ``$in`` use jsonb containment (``payload @> '{"kind": "faq"}'``), which compares JSON types
  as the filter language wants (``true`` is not ``1``, ``"2015"`` is not ``2015``) and uses the GIN index;
- ranges read the field as ``float8`` only where ``jsonb_typeof`` says it is a number, under a ``CASE`` so
  that PostgreSQL never casts a string.

An approximate index filters *after* it has found its candidates (pgvector before 0.8 has no iterative
scan), so a selective filter could return fewer than ``k`` rows. The store therefore scores a filter that
matches fewer than ``exact_filter_below`` rows exactly (the GIN index finds the rows, no vector index), and
reruns any search that came back short of ``k`` rows as an exact scan.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.errors import FlightdeckError, IndexMismatchError
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import AllOf, AnyOf, Condition, Filter
from flightdeck.retrieval.stores.base import StoreLocation, check_batch

__all__ = ["PgvectorConfig", "PgvectorStore", "PgvectorError", "libpq_url"]

_T = TypeVar("_T")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_PG_URL = re.compile(r"^postgres(?:ql)?(?:\+[A-Za-z0-9_]+)?://", re.IGNORECASE)
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
# HNSW and IVFFlat indexes hold at most this many dimensions of the `vector` type (pgvector's limit).
MAX_INDEXED_DIMENSION = 2000
# hnsw.ef_search accepts at most 1000.
_MAX_EF_SEARCH = 1000
_RANGE_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class PgvectorError(FlightdeckError):
    """The PostgreSQL server, the pgvector extension or the collection's table cannot be used as configured."""


def _driver() -> tuple[Any, Any]:
    psycopg = optional_import("psycopg", "pgvector", "vector_store 'pgvector'")
    return psycopg, optional_import("pgvector.psycopg", "pgvector", "vector_store 'pgvector'").register_vector


def libpq_url(url: str) -> str:
    """The libpq connection URI of a SQLAlchemy or libpq URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    return _PG_URL.sub("postgresql://", url, count=1)


def _hide_password(text: str) -> str:
    return _PASSWORD.sub(r"\1***@", text)


class PgvectorConfig(BaseModel):
    """Settings of ``vector_database: {provider: pgvector, url: ..., ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field(..., description="PostgreSQL URL, SQLAlchemy or libpq style, e.g. "
                                      "postgresql+psycopg://user:${PGPASSWORD}@db:5432/kb")
    table: str | None = Field(None, description="table name; default: the collection name flightdeck derives "
                                                "from the workspace, embedding model and these settings")
    schema_: str = Field("public", alias="schema", description="schema of the table (created when missing)")
    index: Literal["hnsw", "ivfflat", "none"] = Field(
        "hnsw", description="vector index: hnsw (approximate, good recall), ivfflat (approximate, built at the "
                            "first flush with data), none (exact scans)")
    hnsw_m: int = Field(16, ge=2, le=100, description="HNSW: links per node (memory vs recall)")
    hnsw_ef_construction: int = Field(64, ge=4, le=1000, description="HNSW: candidate list while building")
    hnsw_ef_search: int = Field(40, ge=1, le=_MAX_EF_SEARCH,
                                description="HNSW: candidate list while searching; raised to k per query")
    ivf_lists: int | None = Field(None, ge=1, le=32768,
                                  description="IVFFlat: number of lists; default rows/1000 (√rows above 1M rows)")
    ivf_probes: int = Field(10, ge=1, description="IVFFlat: lists visited per query")
    exact_filter_below: int = Field(
        10_000, ge=0, description="a filter matching fewer rows than this is scored exactly over those rows")
    create_extension: bool = Field(True, description="run CREATE EXTENSION IF NOT EXISTS vector when missing")
    connect_timeout: int = Field(10, ge=1, description="seconds to wait for the server")

    @field_validator("url")
    @classmethod
    def _valid_url(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("url is empty; set a PostgreSQL URL, e.g. postgresql+psycopg://user@host:5432/db")
        if _ENV_REF.search(v):
            return v  # checked once the environment variable is resolved
        if not _PG_URL.match(v):
            raise ValueError(f"url {_hide_password(v)!r} is not a PostgreSQL URL; write e.g. "
                             "postgresql+psycopg://user:${PGPASSWORD}@host:5432/db")
        return v

    @field_validator("table", "schema_")
    @classmethod
    def _valid_identifier(cls, v: str | None) -> str | None:
        if v is not None and not _IDENT.match(v):
            raise ValueError(f"{v!r} is not a usable table or schema name: use lowercase letters, digits and _, "
                             "starting with a letter or _, at most 48 characters")
        return v


class PgvectorStore:
    """A live collection in a PostgreSQL table with the pgvector extension (see the module's docstring)."""

    versioned = False

    def __init__(self, config: PgvectorConfig) -> None:
        self.config = config
        self._conn: Any = None
        self._table = ""
        self._dim = 0
        self._ready = False
        self._location: StoreLocation | None = None
        self._lock = threading.RLock()

    # connection ------------------------------------------------------------------------------------
    def _where(self) -> str:
        return _hide_password(libpq_url(self.config.url))

    def _qualified(self) -> Any:
        from psycopg import sql

        return sql.Identifier(self.config.schema_, self._table)

    def _name(self, suffix: str) -> Any:
        from psycopg import sql

        return sql.Identifier(f"{self._table}_{suffix}")

    def _connect(self) -> Any:
        psycopg, register_vector = _driver()
        try:
            conn = psycopg.connect(libpq_url(self.config.url), autocommit=True,
                                   connect_timeout=self.config.connect_timeout)
        except psycopg.OperationalError as exc:
            message = _hide_password(str(exc)).strip()
            raise PgvectorError(f"vector_store 'pgvector': cannot connect to {self._where()}: {message}; check the "
                                "url setting and that the server is running") from exc
        try:
            self._ensure_extension(conn)
            register_vector(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_extension(self, conn: Any) -> None:
        psycopg, _ = _driver()
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        available = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
                                 ).fetchone()
        if available is None:
            raise PgvectorError(
                f"vector_store 'pgvector': the PostgreSQL server at {self._where()} has no pgvector extension; "
                "install it on the server (Debian/Ubuntu: apt-get install postgresql-<major>-pgvector from the "
                "PostgreSQL apt repository; or the pgvector/pgvector Docker image)")
        if not self.config.create_extension:
            raise PgvectorError(
                f"vector_store 'pgvector': the vector extension is not enabled in the database at {self._where()}; "
                "run CREATE EXTENSION vector there (as a user allowed to), or set create_extension: true")
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('flightdeck:pgvector:extension'))")
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PgvectorError(
                f"vector_store 'pgvector': not allowed to run CREATE EXTENSION vector in the database at "
                f"{self._where()} ({str(exc).strip()}); ask its owner or a superuser to run it once") from exc

    def _db(self) -> Any:
        if self._location is None:
            raise RuntimeError("open the store before using it")
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _run(self, action: Callable[[Any], _T]) -> _T:
        """Run ``action(connection)``; once more on a fresh connection if the server dropped this one.

        Every action is idempotent (reads, upserts of whole rows, deletes by id), so repeating one is safe.
        """
        psycopg, _ = _driver()

        def attempt(conn: Any) -> _T:
            if not self._ready:
                self._ensure_table(conn)
            return action(conn)

        # one connection serves every thread: the lock keeps each action's transaction to itself
        with self._lock:
            conn = self._db()
            try:
                return attempt(conn)
            except psycopg.OperationalError:
                if not (conn.broken or conn.closed):
                    raise
                conn.close()
                self._conn = None
                return attempt(self._db())

    # lifecycle -------------------------------------------------------------------------------------
    def open(self, location: StoreLocation) -> None:
        self.close()
        self._location = location
        self._table = self.config.table or location.collection
        if not _IDENT.match(self._table):
            raise PgvectorError(f"vector_store 'pgvector': {self._table!r} is not a usable table name")
        self._dim = location.dimension
        if self.config.index != "none" and self._dim > MAX_INDEXED_DIMENSION:
            raise PgvectorError(
                f"vector_store 'pgvector': pgvector indexes hold at most {MAX_INDEXED_DIMENSION} dimensions and "
                f"the embedder gives {self._dim}; set index: none (exact search) or use a smaller embedding model")
        self._ready = False
        self._ensure_table(self._db())

    def _columns(self, conn: Any) -> dict[str, str]:
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (self._qualified().as_string(conn),)).fetchall()
        return {name: kind for name, kind in rows}

    def _ensure_table(self, conn: Any) -> None:
        from psycopg import sql

        table, where = self._qualified(), f"{self.config.schema_}.{self._table}"
        with conn.transaction():
            # one process at a time creates the table and its indexes (CREATE ... IF NOT EXISTS still races)
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"flightdeck:pgvector:{where}",))
            if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.config.schema_,)).fetchone():
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.config.schema_)))
            columns = self._columns(conn)
            if not columns:
                conn.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, embedding vector({}) NOT NULL, "
                                     "payload jsonb NOT NULL DEFAULT '{{}}'::jsonb)")
                             .format(table, sql.Literal(self._dim)))
                columns = self._columns(conn)
            expected = {"id": "text", "embedding": f"vector({self._dim})", "payload": "jsonb"}
            if columns.get("embedding", "").startswith("vector(") and columns["embedding"] != expected["embedding"]:
                raise IndexMismatchError(
                    f"vector_store 'pgvector': table {where} at {self._where()} holds {columns['embedding']} "
                    f"vectors but the embedder gives dimension {self._dim}; run `flightdeck run` after choosing "
                    "another table (setting `table`), or drop that table")
            if any(columns.get(name) != kind for name, kind in expected.items()):
                found = ", ".join(f"{n} {k}" for n, k in sorted(columns.items()))
                raise PgvectorError(
                    f"vector_store 'pgvector': table {where} at {self._where()} exists with other columns ({found}) "
                    "than a flightdeck collection (id text, embedding vector, payload jsonb); choose another table")
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (payload jsonb_path_ops)")
                         .format(self._name("payload_idx"), table))
            self._reconcile_vector_index(conn)
        self._ready = True

    def _vector_indexes(self, conn: Any) -> dict[str, list[str]]:
        """Our vector indexes on the table: name -> reloptions (e.g. ``['m=16', 'ef_construction=64']``)."""
        rows = conn.execute(
            "SELECT c.relname, coalesce(c.reloptions, '{}') FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(%s)", (self._qualified().as_string(conn),)).fetchall()
        ours = {f"{self._table}_hnsw_idx", f"{self._table}_ivfflat_idx"}
        return {name: list(opts) for name, opts in rows if name in ours}

    def _reconcile_vector_index(self, conn: Any) -> None:
        from psycopg import sql

        existing = self._vector_indexes(conn)
        wanted = f"{self._table}_{self.config.index}_idx" if self.config.index != "none" else None
        hnsw_opts = [f"m={self.config.hnsw_m}", f"ef_construction={self.config.hnsw_ef_construction}"]
        for name, opts in existing.items():
            stale = name != wanted or (self.config.index == "hnsw" and sorted(opts) != sorted(hnsw_opts))
            if stale:
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}")
                             .format(sql.Identifier(self.config.schema_, name)))
                existing = {n: o for n, o in existing.items() if n != name}
        if self.config.index == "hnsw" and wanted not in existing:
            # HNSW takes inserts one by one, so it is built now, on an empty or a filled table alike
            conn.execute(sql.SQL("CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops) "
                                 "WITH (m = {}, ef_construction = {})")
                         .format(self._name("hnsw_idx"), self._qualified(), sql.Literal(self.config.hnsw_m),
                                 sql.Literal(self.config.hnsw_ef_construction)))
        # IVFFlat clusters the rows present when it is built: see _ensure_ivfflat, called by flush()

    def _ivf_lists(self, rows: int) -> int:
        if self.config.ivf_lists is not None:
            return max(1, min(self.config.ivf_lists, rows))
        return max(1, rows // 1000) if rows <= 1_000_000 else int(math.sqrt(rows))

    def _ensure_ivfflat(self, conn: Any) -> None:
        """Build the IVFFlat index once the table has rows, and again when it has grown fourfold since."""
        from psycopg import sql

        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._qualified())).fetchone()[0]
        if rows == 0:
            return
        name = f"{self._table}_ivfflat_idx"
        comment = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')",
                               (sql.Identifier(self.config.schema_, name).as_string(conn),)).fetchone()[0]
        built_with = int(comment.rsplit("=", 1)[1]) if comment and comment.startswith("flightdeck rows=") else None
        exists = name in self._vector_indexes(conn)
        if exists and built_with is not None and rows <= 4 * built_with:
            return
        if exists and built_with is None:
            return  # built by someone else: leave it alone
        lists = self._ivf_lists(rows)
        with conn.transaction():
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(self.config.schema_, name)))
            conn.execute(sql.SQL("CREATE INDEX {} ON {} USING ivfflat (embedding vector_cosine_ops) "
                                 "WITH (lists = {})").format(self._name("ivfflat_idx"), self._qualified(),
                                                             sql.Literal(lists)))
            conn.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(
                sql.Identifier(self.config.schema_, name), sql.Literal(f"flightdeck rows={rows}")))

    def flush(self) -> None:
        # every write is committed when upsert/delete return; IVFFlat needs rows before it is built
        if self.config.index == "ivfflat":
            self._run(self._ensure_ivfflat)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def drop(self) -> None:
        from psycopg import sql

        if self._location is None:
            return
        with self._lock:
            self._db().execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._qualified()))
            self._ready = False  # the next write or read makes an empty table again

    # writes ----------------------------------------------------------------------------------------
    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        matrix = check_batch(ids, vectors, payloads, self._dim)
        if not ids:
            return
        from psycopg import sql
        from psycopg.types.json import Jsonb

        statement = sql.SQL("INSERT INTO {} (id, embedding, payload) VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE "
                            "SET embedding = EXCLUDED.embedding, payload = EXCLUDED.payload").format(self._qualified())
        rows = [(cid, vec, Jsonb(dict(payload))) for cid, vec, payload in zip(ids, matrix, payloads, strict=True)]

        def write(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(statement, rows)

        self._run(write)

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        from psycopg import sql

        statement = sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._qualified())
        self._run(lambda conn: conn.execute(statement, (list(ids),)))

    # reads -----------------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def table(self) -> str:
        """The schema-qualified table holding the collection."""
        return f"{self.config.schema_}.{self._table}"

    def ids(self) -> set[str]:
        from psycopg import sql

        statement = sql.SQL("SELECT id FROM {}").format(self._qualified())
        return self._run(lambda conn: {r[0] for r in conn.execute(statement)})

    def __len__(self) -> int:
        from psycopg import sql

        statement = sql.SQL("SELECT count(*) FROM {}").format(self._qualified())
        return int(self._run(lambda conn: conn.execute(statement).fetchone()[0]))

    def _query_vector(self, query: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self._dim:
            raise ValueError(f"query of dimension {q.shape[0]} for a collection of dimension {self._dim}")
        return q

    def _statement(self, where: Filter | None, params: list[Any]) -> Any:
        from psycopg import sql

        condition = sql.SQL(" WHERE {}").format(compile_filter(where, params)) if where is not None else sql.SQL("")
        return sql.SQL("SELECT id, embedding <=> %s AS distance FROM {}{} ORDER BY distance LIMIT %s").format(
            self._qualified(), condition)

    def _session_settings(self, conn: Any, k: int, exact: bool) -> None:
        # set_config(..., true) is SET LOCAL: it ends with the search's transaction
        if exact:
            conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
        elif self.config.index == "hnsw":
            ef = min(max(self.config.hnsw_ef_search, k), _MAX_EF_SEARCH)
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
        elif self.config.index == "ivfflat":
            conn.execute("SELECT set_config('ivfflat.probes', %s, true)", (str(self.config.ivf_probes),))

    def _query(self, conn: Any, q: np.ndarray, k: int, where: Filter | None, exact: bool,
               explain: bool = False) -> list[tuple[Any, ...]]:
        from psycopg import sql

        params: list[Any] = [q]
        statement = self._statement(where, params)
        if explain:
            statement = sql.SQL("EXPLAIN (COSTS OFF) ") + statement
        with conn.transaction():
            self._session_settings(conn, k, exact)
            return conn.execute(statement, (*params, k)).fetchall()

    def _matching_at_most(self, conn: Any, where: Filter, limit: int) -> int:
        from psycopg import sql

        params: list[Any] = []
        statement = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT %s) AS hits").format(
            self._qualified(), compile_filter(where, params))
        return int(conn.execute(statement, (*params, limit)).fetchone()[0])

    def _exact_first(self, conn: Any, where: Filter | None) -> bool:
        if self.config.index == "none":
            return True
        if where is None or self.config.exact_filter_below == 0:
            return False
        limit = self.config.exact_filter_below
        return self._matching_at_most(conn, where, limit) < limit

    def search(self, query: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        q = self._query_vector(query)

        def find(conn: Any) -> list[tuple[Any, ...]]:
            exact = self._exact_first(conn, where)
            rows = self._query(conn, q, k, where, exact)
            if not exact and len(rows) < k:
                # the approximate index ran out of candidates (a selective filter, or k above ef_search)
                rows = self._query(conn, q, k, where, exact=True)
            return rows

        return [(cid, 1.0 - float(distance)) for cid, distance in self._run(find)]

    def explain(self, query: np.ndarray, k: int, where: Filter | None = None) -> str:
        """The server's plan of the first query ``search`` sends for these arguments (for tuning indexes)."""
        q = self._query_vector(query)

        def plan(conn: Any) -> str:
            exact = self._exact_first(conn, where)
            return "\n".join(r[0] for r in self._query(conn, q, k, where, exact, explain=True))

        return self._run(plan)


def compile_filter(f: Filter, params: list[Any]) -> Any:
    """A SQL boolean over the ``payload`` jsonb column; keys and values are appended to ``params``, never inlined.

    Equality uses jsonb containment, which keeps JSON types apart (``true`` is not ``1``) and uses the GIN
    index; a range casts the field to ``float8`` only where ``jsonb_typeof`` says it is a number.
    """
    from psycopg import sql
    from psycopg.types.json import Jsonb

    if isinstance(f, (AllOf, AnyOf)):
        glue = sql.SQL(" AND " if isinstance(f, AllOf) else " OR ")
        return sql.SQL("({})").format(glue.join(compile_filter(p, params) for p in f.parts))
    assert isinstance(f, Condition)
    if f.op in ("$eq", "$in"):
        values = f.value if f.op == "$in" else (f.value,)
        parts = []
        for value in values:
            params.append(Jsonb({f.key: value}))
            parts.append(sql.SQL("payload @> %s::jsonb"))
        return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))
    params.extend([f.key, f.key, float(f.value)])
    return sql.SQL("(CASE WHEN jsonb_typeof(payload -> %s::text) = 'number' "
                   "THEN (payload ->> %s::text)::float8 {} %s::float8 ELSE false END)").format(
        sql.SQL(_RANGE_SQL[f.op]))
