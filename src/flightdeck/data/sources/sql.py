"""The ``sql`` source: the rows of a table or of one read-only query, from any SQLAlchemy URL.

Each row becomes one record (``application/x-record``): the ``text`` columns joined into the document
text, ``title`` as its title and the other columns as metadata. With an ``incremental_key`` (an
``updated_at`` column or an ever-growing id) a scan reads only ``id`` and the key, so that an unchanged
source reads no row bodies; without one, a scan reads every row and hashes it.

This module also holds what the warehouse sources (``snowflake``, ``bigquery``) share with it: the
config fields (:class:`RowSourceConfig`), the read-only query check (:func:`check_select_only`), the
row-to-record mapping (:class:`RecordMapping`) and the scan/read/retry logic (:class:`RowSource`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flightdeck.core import RetryPolicy
from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers.records import RECORD_FIELDS_KEY, RECORD_MEDIA_TYPE
from flightdeck.data.sources.base import ItemFailure
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import missing_dependency, optional_import
from flightdeck.spec.resolve import ENV_REF

__all__ = [
    "RowSourceConfig", "SqlConfig", "SqlSource", "RowSource", "RowReader", "RecordMapping",
    "TransientSourceError", "check_select_only", "resolve_column", "resolve_sqlite_url", "to_scalar", "safe_url",
]

_T = TypeVar("_T")

# A scan without an incremental key keeps the records it built for read(); past this many bytes it keeps
# only their hashes and read() fetches the rows again by id.
_SCAN_CACHE_BYTES = 256 * 1024 * 1024

# sqlglot dialect of each SQLAlchemy backend whose SQL sqlglot can parse precisely.
_GLOT_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite",
                  "mssql": "tsql", "oracle": "oracle", "snowflake": "snowflake", "bigquery": "bigquery",
                  "duckdb": "duckdb", "redshift": "redshift", "trino": "trino", "clickhouse": "clickhouse"}
# The driver the `sql` extra installs, used when a URL names the database but no driver.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                    "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
_DRIVER_TIMEOUT_ARG = {"psycopg": "connect_timeout", "psycopg2": "connect_timeout", "pymysql": "connect_timeout",
                       "mysqldb": "connect_timeout", "pysqlite": "timeout"}


# Query parameters of a database URL that carry credentials (``?password=``, a token, an SSL key's passphrase):
# their values are masked wherever the URL is shown or stored, like the password of ``user:password@``.
_CREDENTIAL_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|credential|sig", re.IGNORECASE)
_MASK = "***"


def _has_env_ref(value: str | None) -> bool:
    return bool(value) and ENV_REF.search(value or "") is not None


def safe_url(url: Any) -> str:
    """A SQLAlchemy URL (object or string) fit to show and to store: no password, no credential in the query.

    ``postgresql+psycopg://app:s3cret@db/kb?password=x&sslmode=require`` becomes
    ``postgresql+psycopg://app:***@db/kb?password=***&sslmode=require``. Source URIs (which documents and
    citations keep) and every error of the SQL source are built from this form.
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:  # noqa: BLE001 - whatever it is, it is not shown
        return "<a database URL that cannot be read>"
    query = {k: (_MASK if _CREDENTIAL_PARAM.search(k) else v) for k, v in parsed.query.items()}
    rendered: str = parsed.set(query=query).render_as_string(hide_password=True)
    return rendered.replace("%2A%2A%2A", _MASK)


def url_secrets(url: Any) -> list[str]:
    """The secret parts of a SQLAlchemy URL (its password, credential query values), longest first."""
    found = [str(url.password)] if url.password else []
    for key, value in url.query.items():
        if _CREDENTIAL_PARAM.search(key):
            found += [value] if isinstance(value, str) else list(value)
    return sorted({v for v in found if v}, key=len, reverse=True)


# ---------------------------------------------------------------------------------------------------------
# The read-only query check


def check_select_only(query: str, dialect: str | None = None, *, unparsable_ok: bool = False) -> None:
    """Raise ``ValueError`` unless ``query`` is exactly one read-only ``SELECT`` (or ``WITH … SELECT``,
    ``UNION`` …) statement.

    Refused: several statements, anything that writes or changes the schema (INSERT, UPDATE, DELETE,
    MERGE, CREATE, DROP, ALTER…, also inside a CTE), ``SELECT … INTO``, ``SELECT … FOR UPDATE`` and
    statements the parser does not know (``CALL``, ``VACUUM``…). The query is parsed with sqlglot in the
    database's dialect, never matched with regular expressions. ``unparsable_ok`` lets a query the parser
    cannot read pass (used while the dialect is not known yet: the check runs again once it is).
    """
    sqlglot = optional_import("sqlglot", "sql", "checking a source query")  # it ships with the `sql` extra
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    where = f" (parsed as {dialect} SQL)" if dialect else ""
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except SqlglotError as e:
        if unparsable_ok:
            return
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"query is not valid SQL{where}: {first}; write one SELECT statement") from None
    if not statements:
        raise ValueError("query is empty; write one SELECT statement, or set `table` instead")
    if len(statements) > 1:
        kinds = ", ".join(_statement_kind(s) for s in statements)
        raise ValueError(f"query holds {len(statements)} statements ({kinds}); a source query must be exactly "
                         "one read-only SELECT statement")
    stmt = statements[0]
    if not isinstance(stmt, exp.Query):
        raise ValueError(f"query is a {_statement_kind(stmt)} statement; a source query must be one read-only "
                         "SELECT statement (flightdeck never writes to a source)")
    forbidden = tuple(getattr(exp, n) for n in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Command", "Copy",
        "Set", "Use", "Transaction", "Commit", "Rollback", "Grant", "Revoke", "Pragma", "LoadData", "Into",
        "Lock") if hasattr(exp, n))
    for node in stmt.walk():
        if isinstance(node, forbidden):
            if isinstance(node, exp.Into):
                what = "SELECT … INTO (it creates a table)"
            elif isinstance(node, exp.Lock):
                what = "SELECT … FOR UPDATE/SHARE (it locks rows)"
            else:
                what = f"a {_statement_kind(node)} inside the SELECT"
            raise ValueError(f"query contains {what}; a source query must be one read-only SELECT statement")


def _statement_kind(node: Any) -> str:
    name = type(node).__name__
    if name == "Command":
        return str(node.this).upper() if getattr(node, "this", None) else "command"
    return {"TruncateTable": "TRUNCATE", "Into": "SELECT INTO"}.get(name, name.upper())


# ---------------------------------------------------------------------------------------------------------
# Config shared by the SQL and warehouse sources


class RowSourceConfig(BaseModel):
    """Which rows to read and how a row becomes a record; shared by ``sql``, ``snowflake``, ``bigquery``.

    Exactly one of ``table`` (a table name, ``schema.table`` allowed; quoted by the library, never pasted
    into SQL) or ``query`` (one read-only SELECT, checked when the spec is validated). ``id`` names the
    column that identifies a row; ``text`` the columns joined, in order with a blank line between them,
    into the document text; ``title`` the title column; ``metadata`` the columns kept as metadata (default:
    every other column). ``incremental_key`` (e.g. ``updated_at`` or an ever-growing id) makes a scan
    read only ``id`` and the key, so an unchanged source reads no row bodies. A connection that fails is
    retried ``retries`` times, waiting ``retry_backoff`` seconds, then twice that, and so on.
    """

    # Inputs stay out of error messages: a resolved URL or password must never be printed.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, hide_input_in_errors=True)

    #: sqlglot dialect used to check ``query``; ``None``: the generic dialect
    glot_dialect: ClassVar[str | None] = None

    table: str | None = None
    query: str | None = None
    id: str
    text: list[str]
    title: str | None = None
    metadata: list[str] | None = None
    incremental_key: str | None = None
    retries: int = Field(3, ge=0, le=20)
    retry_backoff: float = Field(0.5, ge=0, le=60)
    connect_timeout: float = Field(10, gt=0, le=600)
    batch_size: int = Field(500, ge=1, le=100_000)

    @field_validator("id", "title", "incremental_key")
    @classmethod
    def _column_name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("empty column name")
        return v

    @field_validator("text")
    @classmethod
    def _text_columns(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("name at least one text column, e.g. text: [title, body]")
        if any(not c.strip() for c in v):
            raise ValueError("empty column name in `text`")
        if len(set(v)) != len(v):
            raise ValueError(f"a column is listed twice in `text`: {v}")
        return v

    def query_dialect(self) -> str | None:
        """The sqlglot dialect the query is written in."""
        return self.glot_dialect

    @model_validator(mode="after")
    def _table_or_query(self) -> RowSourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of `table` (a table name) or `query` (one SELECT statement)")
        if self.table is not None and not self.table.strip():
            raise ValueError("`table` is empty; name a table, e.g. table: articles")
        if self.query is not None and not _has_env_ref(self.query):
            if _has_env_ref(self._url_for_check()):
                # The database is not known before ${ENV} is resolved: check with the generic dialect now,
                # in the database's own dialect when the source is built.
                check_select_only(self.query, None, unparsable_ok=True)
            else:
                check_select_only(self.query, self.query_dialect())
        if self.id in self.text:
            raise ValueError(f"the id column {self.id!r} is also a text column; text columns hold the document's "
                             "words, the id only names the row")
        return self

    def _url_for_check(self) -> str | None:
        return None

    @property
    def base_name(self) -> str:
        """The first part of an item URI: the table name, or ``query``."""
        return self.table if self.table is not None else "query"


# ---------------------------------------------------------------------------------------------------------
# Row -> record


_SKIP = object()


def to_scalar(value: Any) -> Any:
    """A JSON scalar for a database value (dates as ISO strings, decimals as numbers), or ``_SKIP``.

    Binary values, arrays and JSON objects are not kept: metadata must stay filterable scalars.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    return _SKIP


def _canonical(value: Any) -> Any:
    """A JSON-able, exact form of ``value`` for hashing (decimals and times keep every digit)."""
    if isinstance(value, (Decimal, datetime, date, dtime, timedelta, UUID)):
        return f"{type(value).__name__}:{value.isoformat() if hasattr(value, 'isoformat') else value}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes:" + bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return f"float:{value}"
    return value


def _id_text(value: Any) -> str | None:
    """The id as it appears in URIs, or ``None`` when the value cannot identify a row."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, str, Decimal, float, UUID, date)):
        text = value.isoformat() if isinstance(value, date) else str(value)
        return text if text.strip() else None
    return None


def resolve_column(name: str, available: list[str], role: str, where: str) -> str:
    """The column of ``available`` that ``name`` means: an exact match, else the only case-insensitive one.

    Warehouses fold unquoted names (Snowflake to upper case), so ``id`` finds ``ID``.
    """
    if name in available:
        return name
    folded = [c for c in available if c.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    if len(folded) > 1:
        raise SourceError(f"{where}: {role} column {name!r} matches {folded} except for case; write it exactly")
    raise SourceError(f"{where}: no {role} column {name!r}; the columns are: {', '.join(available) or '(none)'}; "
                      f"fix `{role}` in the source settings")


@dataclass(frozen=True)
class RecordMapping:
    """How a row (column name -> value) becomes the JSON of one record, with the real column names."""

    base: str  # table name or "query": the first part of item URIs
    id: str
    text: tuple[str, ...]
    title: str | None
    metadata: tuple[str, ...]
    incremental_key: str | None
    text_field: str  # the record key that holds the joined text

    @classmethod
    def resolve(cls, config: RowSourceConfig, columns: list[str], where: str) -> RecordMapping:
        """Match the configured names against the columns the table or query really has."""
        if len(set(columns)) != len(columns):
            twice = sorted({c for c in columns if columns.count(c) > 1})
            raise SourceError(f"{where}: the {'query' if config.query else 'table'} returns column(s) "
                              f"{', '.join(twice)} more than once; give each column a distinct name (AS ...)")
        id_col = resolve_column(config.id, columns, "id", where)
        text = tuple(resolve_column(c, columns, "text", where) for c in config.text)
        title = resolve_column(config.title, columns, "title", where) if config.title else None
        key = (resolve_column(config.incremental_key, columns, "incremental_key", where)
               if config.incremental_key else None)
        if config.metadata is None:
            metadata = tuple(c for c in columns if c not in (id_col, title, *text))
        else:
            metadata = tuple(resolve_column(c, columns, "metadata", where) for c in config.metadata)
        used = {id_col, title, *metadata}
        text_field = next(f for f in ("text", "_text", "__text", "__flightdeck_text") if f not in used)
        return cls(config.base_name, id_col, text, title, metadata, key, text_field)

    @property
    def record_fields(self) -> dict[str, str]:
        """What the record parser reads (see :mod:`flightdeck.data.parsers.records`)."""
        # Without a title column, point the parser at a key no record has, so that no metadata column
        # called "title" is taken for one.
        return {"id": self.id, "title": self.title or "\x00no-title", "text": self.text_field}

    @property
    def fingerprint(self) -> str:
        """Changes whenever the mapping does, so that changing it re-processes every row."""
        return json.dumps([self.base, self.id, self.text, self.title, self.metadata, self.incremental_key,
                           self.text_field])

    def uri(self, id_text: str) -> str:
        return f"{self.base}#{id_text}"

    def record(self, row: Mapping[str, Any]) -> bytes:
        """The record JSON of ``row``; ``ValueError`` naming the problem when the row has no text."""
        parts: list[str] = []
        for col in self.text:
            value = row.get(col)
            if value is None:
                continue
            if isinstance(value, (bytes, bytearray, memoryview)):
                try:
                    value = bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError(f"text column {col!r} holds binary data, not UTF-8 text") from None
            s = str(value).strip()
            if s:
                parts.append(s)
        if not parts:
            raise ValueError(f"its text column{'s' if len(self.text) > 1 else ''} "
                             f"{', '.join(self.text)} {'are' if len(self.text) > 1 else 'is'} empty or NULL; "
                             "there is nothing to index")
        record: dict[str, Any] = {}
        for col in self.metadata:
            v = to_scalar(row.get(col))
            if v is not _SKIP:
                record[col] = v
        rid = to_scalar(row.get(self.id))
        record[self.id] = rid if rid is not _SKIP else _id_text(row.get(self.id))
        if self.title is not None:
            t = row.get(self.title)
            record[self.title] = None if t is None else str(t).strip()
        record[self.text_field] = "\n\n".join(parts)
        return json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")

    def item(self, id_text: str, digest_of: str | bytes) -> SourceItem:
        payload = digest_of.encode("utf-8") if isinstance(digest_of, str) else digest_of
        return SourceItem(self.uri(id_text), content_hash(self.fingerprint.encode("utf-8") + b"\x00" + payload),
                          RECORD_MEDIA_TYPE, {RECORD_FIELDS_KEY: self.record_fields})


# ---------------------------------------------------------------------------------------------------------
# Scan, read, retry: shared by every row source


class TransientSourceError(SourceError):
    """The source could not be reached (connection refused, reset, timed out): worth retrying."""


class RowReader(Protocol):
    """An open connection to a table or query, as a :class:`RowSource` backend provides it."""

    def columns(self) -> list[str]:
        """The column names of the table or query, in order."""
        ...

    def rows(self, columns: list[str] | None, id_column: str | None = None,
             ids: list[Any] | None = None) -> Iterator[Mapping[str, Any]]:
        """The rows (``columns``, or every column when ``None``), only those whose ``id_column`` is in ``ids``
        when given."""
        ...


class RowSource:
    """Scan and read rows as records; subclasses open the connection (:meth:`connect`).

    ``scan()`` lists one item per row, ``<table or 'query'>#<id>``, sorted by URI. With an incremental
    key its content hash comes from ``(id, key)`` and ``read()`` fetches the rows it is asked for in
    batches of ids; without one, the scan builds every record, hashes it and keeps it for ``read()``.
    Rows with a duplicate or NULL id, or without text, are reported in ``failures`` with the row's id; a
    source that cannot be reached raises :class:`~flightdeck.errors.SourceError` after ``retries``
    retries.
    """

    provider: ClassVar[str] = "rows"

    def __init__(self, config: RowSourceConfig) -> None:
        self.config = config
        self.failures: list[ItemFailure] = []
        self._mapping: RecordMapping | None = None
        self._ids: dict[str, Any] = {}  # uri -> raw id value, for fetching by id
        self._order: list[str] = []  # uris in scan order
        self._position: dict[str, int] = {}
        self._cache: dict[str, bytes] = {}
        self._errors: dict[str, str] = {}
        self._window = 1
        self._last_fetched = -1

    # backends ------------------------------------------------------------------------------------
    def describe(self) -> str:
        """Where the rows come from, without secrets (e.g. the URL with the password masked)."""
        raise NotImplementedError

    def connect(self) -> AbstractContextManager[RowReader]:
        """Open a connection; raise :class:`TransientSourceError` when it may work on a retry."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections held between scan and reads (they are opened again when needed)."""

    def source_uri(self, item: SourceItem) -> str:
        """Where a citation points: the source's location, then ``#<table or query>/<id>``."""
        base = self.config.base_name
        rid = item.uri[len(base) + 1:] if item.uri.startswith(base + "#") else item.uri.rpartition("#")[2]
        return f"{self.describe()}#{base}/{rid}"

    # retries -------------------------------------------------------------------------------------
    def _retrying(self, what: str, fn: Callable[[], _T]) -> _T:
        attempts = self.config.retries + 1
        try:
            return RetryPolicy(attempts, self.config.retry_backoff).run(fn, transient=(TransientSourceError,))
        except TransientSourceError as last:
            raise SourceError(f"{self.provider} source {self.describe()}: cannot {what}: {last} "
                              f"(tried {attempts} time{'s' if attempts != 1 else ''}); check that the server is "
                              "running and reachable and that the connection settings are right") from last

    # scan ----------------------------------------------------------------------------------------
    def scan(self) -> Iterator[SourceItem]:
        """Yield one item per row in URI order; rows that cannot be records go to ``failures``."""
        self.failures = []
        items = self._retrying("read the rows", self._scan_once)
        yield from items

    def _scan_once(self) -> list[SourceItem]:
        self._ids, self._cache, self._errors = {}, {}, {}
        self._window, self._last_fetched = 1, -1
        failures: list[ItemFailure] = []
        found: dict[str, SourceItem] = {}
        counts: dict[str, int] = {}
        cached_bytes = 0
        with self.connect() as reader:
            mapping = RecordMapping.resolve(self.config, reader.columns(), self.describe())
            self._mapping = mapping
            if mapping.incremental_key is not None:
                rows = reader.rows(list(dict.fromkeys([mapping.id, mapping.incremental_key])))
            else:
                rows = reader.rows(None)
            for n, row in enumerate(rows, 1):
                raw_id = row.get(mapping.id)
                rid = _id_text(raw_id)
                if rid is None:
                    failures.append(ItemFailure(f"{mapping.base}#?", f"row {n} of the scan has no usable id in "
                                                f"column {mapping.id!r} (got {raw_id!r}); give every row an id"))
                    continue
                uri = mapping.uri(rid)
                counts[uri] = counts.get(uri, 0) + 1
                if counts[uri] > 1:
                    continue
                self._ids[uri] = raw_id
                if mapping.incremental_key is not None:
                    key = json.dumps([_canonical(raw_id), _canonical(row.get(mapping.incremental_key))],
                                     default=str)
                    found[uri] = mapping.item(rid, key)
                    continue
                try:
                    record = mapping.record(row)
                except ValueError as e:
                    failures.append(ItemFailure(uri, f"row {mapping.id}={rid}: {e}"))
                    continue
                found[uri] = mapping.item(rid, record)
                if cached_bytes + len(record) <= _SCAN_CACHE_BYTES:
                    self._cache[uri] = record
                    cached_bytes += len(record)
        for uri, count in counts.items():
            if count > 1:
                rid = uri[len(mapping.base) + 1:]
                failures.append(ItemFailure(uri, f"duplicate id: {count} rows have {mapping.id}={rid}; ids must be "
                                                 "unique, so none of them is ingested; fix the data or choose "
                                                 "another `id` column"))
                found.pop(uri, None)
                self._cache.pop(uri, None)
                self._ids.pop(uri, None)
        # URI order is the order the ingest step reads changed items in (its manifest is sorted by
        # document id), which lets read() fetch consecutive rows in growing batches.
        items = sorted(found.values(), key=lambda i: i.uri)
        self._order = [i.uri for i in items]
        self._position = {u: n for n, u in enumerate(self._order)}
        self.failures = sorted(failures, key=lambda f: f.uri)
        return items

    # read ----------------------------------------------------------------------------------------
    def read(self, item: SourceItem) -> bytes:
        """The record JSON of a listed row (fetched by id, in batches, when the scan did not keep it)."""
        uri = item.uri
        if uri in self._cache:
            return self._cache.pop(uri)
        if uri in self._errors:
            raise SourceError(f"{uri}: {self._errors.pop(uri)}")
        if uri not in self._position or self._mapping is None:
            raise SourceError(f"{uri}: not a row of the last scan of {self.describe()}; run scan() before read()")
        batch = self._next_batch(uri)
        mapping = self._mapping
        ids = [self._ids[u] for u in batch]

        def fetch() -> list[Mapping[str, Any]]:
            with self.connect() as reader:
                return list(reader.rows(None, mapping.id, ids))

        rows = self._retrying("read rows by id", fetch)
        seen: set[str] = set()
        for row in rows:
            rid = _id_text(row.get(mapping.id))
            if rid is None:
                continue
            u = mapping.uri(rid)
            if u in seen:  # a duplicate appeared after the scan
                self._cache.pop(u, None)
                self._errors[u] = f"duplicate id: several rows have {mapping.id}={rid}; ids must be unique"
                continue
            seen.add(u)
            try:
                self._cache[u] = mapping.record(row)
            except ValueError as e:
                self._errors[u] = f"row {mapping.id}={rid}: {e}"
        for u in batch:
            if u not in seen and u not in self._errors:
                self._errors[u] = (f"row {mapping.id}={u[len(mapping.base) + 1:]} is gone since the scan; it is picked "
                                   "up (or removed) on the next run")
        return self.read(item)

    def _next_batch(self, uri: str) -> list[str]:
        """``uri`` and, when reads have been consecutive, the rows after it (the window doubles each time).

        Readers ask for changed rows in scan order: a first run reads every row, so batches grow to
        ``batch_size``; a re-run that reads a few scattered rows fetches them one by one.
        """
        pos = self._position[uri]
        if pos == self._last_fetched + 1:
            self._window = min(self._window * 2, self.config.batch_size)
        else:
            self._window = 1
        end = min(pos + self._window, len(self._order))
        batch = [u for u in self._order[pos:end] if u == uri or (u not in self._cache and u not in self._errors)]
        self._last_fetched = end - 1
        return batch


# ---------------------------------------------------------------------------------------------------------
# The SQLAlchemy source


class SqlConfig(RowSourceConfig):
    """Options of the ``sql`` source: a SQLAlchemy ``url`` plus the row settings of :class:`RowSourceConfig`.

    ``url`` is any SQLAlchemy URL, e.g. ``sqlite:////data/kb.db``,
    ``postgresql+psycopg://user:${PGPASSWORD}@db:5432/kb`` or ``mysql+pymysql://root@db:3306/kb``; a URL
    without a driver (``postgresql://``, ``mysql://``) uses the driver the ``sql`` extra installs (psycopg,
    PyMySQL). The file of a relative SQLite URL (``sqlite:///data/kb.db``) is found from the spec's folder,
    as every path of a spec is. The session is read-only where the database supports it (PostgreSQL,
    MySQL/MariaDB, SQLite), on top of the parse check of ``query``.
    """

    # Shown masked (see __repr_args__): a resolved URL may hold a password.
    url: str = Field(repr=False)

    def __repr_args__(self) -> Any:
        yield "url", safe_url(self.url)
        yield from super().__repr_args__()

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with a relative SQLite ``url`` resolved from ``base_dir`` (the spec's folder)."""
        if isinstance(settings.get("url"), str):
            settings["url"] = resolve_sqlite_url(settings["url"], base_dir)
        return settings

    @field_validator("url")
    @classmethod
    def _valid_url(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("url is empty; set a SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/db")
        if _has_env_ref(v):
            return v  # checked once the environment variable is resolved
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(v)
        except (ArgumentError, ValueError) as e:
            raise ValueError(f"url is not a SQLAlchemy URL ({e}); write e.g. "
                             "postgresql+psycopg://user@host:5432/db or sqlite:////path/to/file.db") from None
        return v

    def _url_for_check(self) -> str | None:
        return self.url

    def query_dialect(self) -> str | None:
        from sqlalchemy.engine import make_url

        try:
            return _GLOT_DIALECTS.get(make_url(self.url).get_backend_name())
        except Exception:  # an invalid URL is reported by its own validator
            return None


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """``url`` with its SQLite database file made absolute from ``base_dir`` when it is relative.

    Every other URL comes back unchanged: another database, an absolute file (``sqlite:////abs/kb.db``),
    the in-memory database (``sqlite://``, ``sqlite:///:memory:``), a ``file:`` URI, and a URL SQLAlchemy
    cannot read (its validator reports that).
    """
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # ImportError (the error comes when the source is built) or an invalid URL
        return url
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:") or Path(database).is_absolute():
        return url
    # "~/kb.db" is the home folder, as in every other path of a spec (SQLite itself would not expand it).
    resolved = (Path(base_dir) / Path(database).expanduser()).resolve()
    return parsed.set(database=str(resolved)).render_as_string(hide_password=False)


class _SqlReader:
    def __init__(self, conn: Any, source: SqlSource) -> None:
        self.conn = conn
        self.source = source
        self._selectable: Any = None
        self._columns: list[str] | None = None

    def _reflect(self) -> None:
        from sqlalchemy import MetaData, Table, column, text
        from sqlalchemy.exc import NoSuchTableError

        cfg = self.source.config
        if cfg.table is not None:
            schema, _, name = cfg.table.rpartition(".")
            try:
                table = Table(name, MetaData(), schema=schema or None, autoload_with=self.conn)
            except NoSuchTableError:
                raise SourceError(f"{self.source.describe()}: no table {cfg.table!r}; check `table` (and the "
                                  "database in the URL)") from None
            self._selectable = table
            self._columns = [c.name for c in table.columns]
            return
        assert cfg.query is not None
        # Colons are escaped so that SQLAlchemy does not read ":name" in the query as a bind parameter.
        body = cfg.query.strip().rstrip(";").replace(":", "\\:")
        result = self.source._execute(self.conn, text(f"SELECT * FROM (\n{body}\n) AS fd_q WHERE 1=0"))
        self._columns = list(result.keys())
        result.close()
        # The newline ends a trailing "-- comment" before SQLAlchemy closes the parenthesis.
        self._selectable = text(body + "\n").columns(*[column(c) for c in self._columns]).subquery("fd_q")

    def columns(self) -> list[str]:
        if self._columns is None:
            self._reflect()
        assert self._columns is not None
        return list(self._columns)

    def rows(self, columns: list[str] | None, id_column: str | None = None,
             ids: list[Any] | None = None) -> Iterator[Mapping[str, Any]]:
        from sqlalchemy import select

        if self._selectable is None:
            self._reflect()
        sel = self._selectable
        stmt = select(*[sel.c[c] for c in columns]) if columns else select(sel)
        if ids is not None and id_column is not None:
            stmt = stmt.where(sel.c[id_column].in_(ids))
        result = self.source._execute(self.conn.execution_options(yield_per=1000), stmt)
        for row in result.mappings():
            yield dict(row)


class SqlSource(RowSource):
    """Rows of a table or query in any database SQLAlchemy reaches (see :class:`SqlConfig`)."""

    provider = "sql"

    def __init__(self, config: SqlConfig) -> None:
        super().__init__(config)
        self.config: SqlConfig = config
        from sqlalchemy.engine import make_url

        url = make_url(config.url)
        if url.drivername in _DEFAULT_DRIVERS:
            url = url.set(drivername=_DEFAULT_DRIVERS[url.drivername])
        self._url = url
        self._engine: Any = None

    def describe(self) -> str:
        return safe_url(self._url)

    def _scrub(self, message: str) -> str:
        for secret in url_secrets(self._url):
            message = message.replace(secret, _MASK)
        return message

    def _where(self) -> str:
        url = self._url
        if url.get_backend_name() == "sqlite":
            return f"database file {url.database or ':memory:'}"
        return f"{url.host or 'localhost'}" + (f":{url.port}" if url.port else "")

    def _engine_or_create(self) -> Any:
        if self._engine is not None:
            return self._engine
        from sqlalchemy import create_engine, event
        from sqlalchemy.pool import NullPool

        url = self._url
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        timeout_arg = _DRIVER_TIMEOUT_ARG.get(url.get_driver_name())
        if timeout_arg:
            connect_args[timeout_arg] = (max(1, round(self.config.connect_timeout)) if timeout_arg != "timeout"
                                         else self.config.connect_timeout)
        try:
            if backend == "sqlite":
                pool: dict[str, Any] = {"poolclass": NullPool}  # opening a file is cheap
            else:
                # One pooled connection serves the scan and the reads that follow it; pre-ping replaces a
                # connection the server dropped in between.
                pool = {"pool_size": 1, "max_overflow": 4, "pool_pre_ping": True}
            engine = create_engine(url, connect_args=connect_args, **pool)
        except ImportError as e:
            raise missing_dependency(
                f"source 'sql' with {url.drivername}:// (the extra brings psycopg for PostgreSQL, PyMySQL for "
                "MySQL/MariaDB)", "sql", e.name or str(e), alternative="install the driver the URL names") from e
        except Exception as e:  # an unknown dialect or a bad URL option
            raise SourceError(f"{self.describe()}: SQLAlchemy cannot use this URL: {self._scrub(str(e))}") from e
        read_only = {"postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                     "mysql": "SET SESSION TRANSACTION READ ONLY", "mariadb": "SET SESSION TRANSACTION READ ONLY",
                     "sqlite": "PRAGMA query_only = ON"}.get(backend)
        if read_only:
            # Defence in depth behind the SELECT-only check: the session itself refuses writes.
            @event.listens_for(engine, "connect")
            def _read_only(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                try:
                    cur.execute(read_only)
                finally:
                    cur.close()
                if backend != "sqlite":
                    dbapi_conn.commit()

        self._engine = engine
        return engine

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def _execute(self, conn: Any, stmt: Any) -> Any:
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        try:
            return conn.execute(stmt)
        except DBAPIError as e:
            detail = self._scrub(str(e.orig).strip().splitlines()[0] if e.orig else str(e))
            if e.connection_invalidated:
                raise TransientSourceError(f"connection to {self._where()} lost: {detail}") from e
            raise SourceError(f"{self.describe()}: the database refused the query: {detail}; check the "
                              "`table`/`query` and column settings") from e
        except SQLAlchemyError as e:
            raise SourceError(f"{self.describe()}: {self._scrub(str(e))}") from e

    def connect(self) -> AbstractContextManager[RowReader]:
        from contextlib import contextmanager

        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        url = self._url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not str(url.database).startswith("file:") and not Path(url.database).is_file():
            # SQLite would create an empty file and then find no table: say what is wrong instead.
            raise SourceError(f"{self.describe()}: no SQLite database file {url.database}; check `url` "
                              "(sqlite:////absolute/path.db has four slashes)")
        engine = self._engine_or_create()

        @contextmanager
        def opened() -> Iterator[RowReader]:
            try:
                conn = engine.connect()
            except (DBAPIError, OSError) as e:
                orig = getattr(e, "orig", None) or e
                detail = self._scrub(" ".join(str(orig).split()))
                raise TransientSourceError(f"cannot connect to {self._where()}: {detail}") from e
            except SQLAlchemyError as e:
                raise SourceError(f"{self.describe()}: cannot connect: {self._scrub(str(e))}") from e
            try:
                yield _SqlReader(conn, self)
            except DBAPIError as e:  # raised while streaming rows
                detail = self._scrub(str(e.orig).strip().splitlines()[0] if e.orig else str(e))
                if e.connection_invalidated:
                    raise TransientSourceError(f"connection to {self._where()} lost: {detail}") from e
                raise SourceError(f"{self.describe()}: the database refused the query: {detail}") from e
            finally:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - a dead connection may not close cleanly
                    pass

        return opened()
