"""SQL database tools for agents (checklist 6.1 "SQL database agents"): ``sql_schema`` and ``sql_query``.

``sql_schema`` shows the model the tables it may read (columns, types, primary and foreign keys, three sample
rows); ``sql_query`` runs one read-only ``SELECT`` the model wrote and returns the rows as a compact text table.
Both share one :class:`SqlDatabase` (the connection helper) built from a :class:`SqlToolConfig`: a SQLAlchemy URL
(PostgreSQL through psycopg, MySQL/MariaDB through PyMySQL, SQLite) and the allow-list of tables.

SQL written by a model is untrusted input, so a statement passes four checks before anything runs:

1. It is parsed with sqlglot in the database's dialect, never matched with regular expressions: exactly one
   statement, a ``SELECT`` (``WITH … SELECT`` and ``UNION``/``INTERSECT``/``EXCEPT`` of SELECTs included).
   Anything else is refused: several statements, DDL/DML anywhere in the tree (also in a CTE), ``COPY``,
   ``SELECT … INTO``, ``FOR UPDATE``/``FOR SHARE``, optimizer hints, session variables and bind parameters,
   statements sqlglot only knows as a generic command, and text sqlglot cannot parse.
2. Every table reference (in joins, subqueries, CTE bodies, set operations) is in the allow-list, compared
   the way the database compares names (PostgreSQL folds unquoted names to lower case, SQLite ignores case,
   MySQL/MariaDB compare them as written). A CTE name is not a table, in the scope where it is visible only.
   System catalogs (``information_schema``, ``pg_catalog``, ``mysql``, ``performance_schema``,
   ``sqlite_master``…) are never readable unless allow-listed.
3. Functions: those sqlglot knows (``count``, ``lower``, ``date_trunc``, ``coalesce`` and hundreds
   more) are allowed; a function it does not know is refused unless it is in a short list of harmless ones or
   the operator adds it (``allow_functions``). On top, a deny-list no setting lifts: functions that read or
   write files (``pg_read_file``, ``lo_import``, ``LOAD_FILE``…), run SQL given as text and so get round the
   table allow-list (``query_to_xml``, ``ts_stat``, ``dblink``…), sleep or hold locks (``pg_sleep``,
   ``SLEEP``, ``BENCHMARK``, ``GET_LOCK``), or read and change settings and state (``set_config``,
   ``current_setting``, ``nextval``…), and every ``pg_*`` and ``lo_*`` function.
4. What runs is sqlglot's rendering of the checked tree, with comments dropped, never the model's text: a
   MySQL executable comment (``/*! DROP … */``) or any other text the parser read differently from the
   database cannot reach the server. The rendering is parsed and checked once more.

Then, as defence in depth, the statement runs in a read-only transaction with a statement timeout, always
rolled back: PostgreSQL ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout``; MariaDB
``max_statement_time`` (MySQL ``max_execution_time``) and ``START TRANSACTION READ ONLY``; SQLite opened with
``mode=ro`` and ``PRAGMA query_only``, the timeout enforced by a progress handler. The session is read-only
too. At most ``max_rows`` rows come back (a ``LIMIT`` is added or lowered, and one row more is fetched to
tell that there are more); the text the model reads is cut at ``max_chars``.

**The operator should also give the tool a database role that can only SELECT the allow-listed tables**, so
that the database itself refuses whatever the checks above might miss::

    -- PostgreSQL
    CREATE ROLE flightdeck_agent LOGIN PASSWORD '...';
    GRANT CONNECT ON DATABASE shop TO flightdeck_agent;
    GRANT USAGE ON SCHEMA public TO flightdeck_agent;
    GRANT SELECT ON public.customers, public.orders, public.products TO flightdeck_agent;
    ALTER ROLE flightdeck_agent SET default_transaction_read_only = on;
    ALTER ROLE flightdeck_agent SET statement_timeout = '5s';

    -- MySQL / MariaDB
    CREATE USER 'flightdeck_agent'@'%' IDENTIFIED BY '...';
    GRANT SELECT ON shop.customers TO 'flightdeck_agent'@'%';
    GRANT SELECT ON shop.orders TO 'flightdeck_agent'@'%';
    GRANT SELECT ON shop.products TO 'flightdeck_agent'@'%';

    -- SQLite: let the service user only read the file (chmod 0440), or point the URL at a copy

A statement the checks refuse, and an error of the database (a syntax it rejects, the timeout), is a
:meth:`ToolResult.refused` the model reads; a database that cannot be reached raises
:class:`SqlConnectionError` (an outage, see :mod:`flightdeck.agents.tools.base`).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.agents.tools.base import ToolError, ToolResult, ToolSpec
from flightdeck.data.sources.sql import resolve_sqlite_url, safe_url, url_secrets
from flightdeck.errors import MissingDependencyError
from flightdeck.registry.lookup import missing_dependency, optional_import

__all__ = [
    "SqlToolConfig", "SqlDatabase", "SqlQueryTool", "SqlSchemaTool", "SqlConnectionError", "QueryRefused",
    "CheckedQuery", "check_query", "parse_allow_list", "sql_tools",
]

# sqlglot dialect of each backend the tool supports: one whose read-only transaction and statement timeout it
# knows how to set. Any other database is refused when the config is read (deny by default).
_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
_DIALECT_NAMES = {"postgres": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}
# The driver the `sql` extra installs, used when a URL names the database but no driver.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                    "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
_CONNECT_TIMEOUT_ARG = {"psycopg": "connect_timeout", "psycopg2": "connect_timeout", "pymysql": "connect_timeout",
                        "mysqldb": "connect_timeout"}
_SESSION_READ_ONLY = {"postgres": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                      "mysql": "SET SESSION TRANSACTION READ ONLY", "sqlite": "PRAGMA query_only = ON"}

_MAX_QUERY_CHARS = 20_000  # a longer statement is refused before it is parsed
_CELL_CHARS = 300  # a cell in the text table the model reads is cut here
_SAMPLE_ROWS = 3
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!")
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Nodes refused wherever they appear in a statement's tree (sqlglot class name -> what it is).
_FORBIDDEN_NODES = {
    "Insert": "an INSERT", "Update": "an UPDATE", "Delete": "a DELETE", "Merge": "a MERGE",
    "Create": "a CREATE", "Drop": "a DROP", "Alter": "an ALTER", "TruncateTable": "a TRUNCATE",
    "Copy": "a COPY", "Command": "a statement sqlglot only knows as a command", "Set": "a SET",
    "Use": "a USE", "Transaction": "a transaction statement", "Commit": "a COMMIT", "Rollback": "a ROLLBACK",
    "Grant": "a GRANT", "Revoke": "a REVOKE", "Pragma": "a PRAGMA", "LoadData": "a LOAD DATA",
    "Into": "SELECT … INTO (it writes a table or a file)", "Lock": "FOR UPDATE/FOR SHARE (it locks rows)",
    "Hint": "an optimizer hint (it can change session settings)", "Describe": "a DESCRIBE", "Show": "a SHOW",
    "Kill": "a KILL", "Analyze": "an ANALYZE", "Attach": "an ATTACH", "Detach": "a DETACH",
    "SessionParameter": "a session variable (@@…)", "Parameter": "a variable or bind parameter",
    "Placeholder": "a bind parameter (write the value itself)", "Execute": "an EXECUTE",
}

# Functions refused whatever the settings say, by lower-case name: what each does that a read-only query
# must not. Checked on the tree and again on the SQL text that runs.
_FILES = "reads or writes files on the database server"
_RUNS_SQL = "runs SQL given as text, which gets round the table allow-list"
_WAITS = "sleeps or holds locks"
_STATE = "reads or changes server settings or state"
_DENIED_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(("pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_file_write",
                     "pg_file_rename", "pg_file_unlink", "pg_logdir_ls", "load_file", "load_extension",
                     "readfile", "writefile", "edit", "lo_import", "lo_export", "lo_get", "lo_put",
                     "lo_from_bytea", "sys_exec", "sys_eval"), _FILES),
    **dict.fromkeys(("dblink", "dblink_exec", "dblink_open", "dblink_fetch", "dblink_send_query", "query_to_xml",
                     "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml", "table_to_xmlschema",
                     "table_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema", "schema_to_xml",
                     "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml",
                     "database_to_xmlschema", "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite",
                     "xpath_table", "crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby"), _RUNS_SQL),
    **dict.fromkeys(("pg_sleep", "pg_sleep_for", "pg_sleep_until", "sleep", "benchmark", "get_lock",
                     "release_lock", "release_all_locks", "is_free_lock", "is_used_lock", "master_pos_wait",
                     "master_gtid_wait", "source_pos_wait", "wait_for_executed_gtid_set"), _WAITS),
    **dict.fromkeys(("set_config", "current_setting", "nextval", "setval", "currval", "lastval",
                     "txid_current", "last_insert_id", "last_insert_rowid", "changes", "total_changes",
                     "found_rows", "row_count", "sqlite_compileoption_get", "sqlite_compileoption_used",
                     "sqlite_offset"), _STATE),
}
_DENIED_PREFIXES = (("pg_", "is a PostgreSQL server administration function"),
                    ("lo_", "works on large objects, server-side files"), ("dblink", _RUNS_SQL),
                    ("pragma_", "reads database settings and the schema (SQLite PRAGMA functions)"))
# sqlglot classes refused (functions it knows in other dialects that read files or advance sequences).
_DENIED_CLASSES = ("ReadCSV", "ReadParquet", "ToFile", "NextValueFor")

# Functions sqlglot does not know that are harmless: pure functions of their arguments.
_SAFE_UNTYPED: dict[str, frozenset[str]] = {
    "postgres": frozenset({
        "age", "make_date", "make_time", "make_timestamp", "make_timestamptz", "make_interval", "date_bin",
        "json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array", "json_agg",
        "jsonb_agg", "json_object_agg", "jsonb_object_agg", "to_json", "to_jsonb", "row_to_json",
        "array_to_json", "json_typeof", "jsonb_typeof", "jsonb_pretty", "json_array_length", "jsonb_array_length",
        "jsonb_extract_path_text", "json_extract_path_text", "every", "array_length", "array_to_string",
        "array_position", "array_remove", "array_append", "array_prepend", "array_cat", "cardinality",
        "string_to_array", "regexp_match", "regexp_matches", "btrim", "ltrim", "rtrim", "translate",
        "quote_ident", "quote_literal", "bit_length", "octet_length", "char_length", "to_number", "width_bucket",
        "num_nulls", "num_nonnulls", "isfinite", "justify_hours", "justify_interval", "date_trunc", "timezone",
        "mode", "percentile_disc", "bool_or", "bit_and", "bit_or", "regr_slope", "regr_intercept", "covar_samp",
        "covar_pop", "stddev_samp", "stddev_pop", "var_samp", "var_pop", "cbrt", "degrees", "radians", "pi",
        "log10", "gcd", "lcm", "factorial", "div", "scale", "trim_scale", "ntile", "percent_rank", "cume_dist",
        "dense_rank", "lag", "lead", "first_value", "last_value", "nth_value",
    }),
    "mysql": frozenset({
        "now", "curdate", "curtime", "sysdate", "unix_timestamp", "utc_date", "utc_time", "utc_timestamp",
        "dayname", "monthname", "dayofmonth", "dayofyear", "weekday", "weekofyear", "yearweek", "hour",
        "minute", "second", "microsecond", "makedate", "maketime", "period_add", "period_diff", "sec_to_time",
        "time_to_sec", "to_days", "from_days", "time_format", "timediff", "addtime", "subtime", "convert_tz",
        "field", "elt", "find_in_set", "insert", "instr", "lcase", "ucase", "mid", "space", "strcmp",
        "soundex", "char", "ord", "oct", "bin", "conv", "crc32", "sha1", "sha2", "json_object", "json_array",
        "json_arrayagg", "json_objectagg", "json_unquote", "json_contains", "json_keys", "json_length",
        "json_valid", "json_type", "json_search", "std", "stddev_samp", "stddev_pop", "var_samp", "var_pop",
        "bit_and", "bit_or", "bit_xor", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
        "first_value", "last_value", "nth_value", "degrees", "radians", "pi", "cot", "log2", "log10",
        "inet_aton", "inet_ntoa", "format", "regexp_substr", "regexp_instr", "regexp_like", "weight_string",
    }),
    "sqlite": frozenset({
        "datetime", "time", "julianday", "unixepoch", "timediff", "printf", "format", "total", "likelihood",
        "likely", "unlikely", "quote", "char", "unicode", "ltrim", "rtrim", "soundex", "sign", "glob", "like",
        "json", "json_array", "json_object", "json_group_array", "json_group_object", "json_array_length",
        "json_type", "json_valid", "json_quote", "json_each", "json_tree", "dense_rank", "percent_rank",
        "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value", "median", "octet_length",
    }),
}

# What system catalogs are, to say so when a query reads one (they are refused like any table not listed).
_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"})
_SYSTEM_TABLE = re.compile(r"^(pg_|sqlite_)", re.IGNORECASE)


class SqlConnectionError(ToolError):
    """The database cannot be reached (down, refused, a dropped connection): an outage, which ``call`` raises."""


class QueryRefused(ValueError):
    """A statement the tool will not run, or one the database rejected; the message is for the model."""


# ---------------------------------------------------------------------------------------------------------
# Config


class SqlToolConfig(BaseModel):
    """Settings of the SQL tools.

    ``url`` is a SQLAlchemy URL: ``postgresql+psycopg://agent@db:5432/shop``, ``mysql+pymysql://agent@db/shop``
    or ``sqlite:////data/shop.db`` (a URL without a driver uses the one the ``sql`` extra installs). ``tables``
    is the allow-list, the only tables the model may see or read, as the model must write them: ``customers``,
    or ``sales.orders`` (schema-qualified). ``max_rows`` rows at most come back from a query, which may run
    ``timeout_s`` seconds; the text the model reads is cut at ``max_chars`` characters. ``allow_functions``
    adds functions sqlglot does not know (the database's own or user-defined ones) to those the model may call;
    it cannot lift the deny-list (see the module docstring).
    """

    # Inputs stay out of error messages: a URL may hold a password.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(repr=False)
    tables: tuple[str, ...]
    max_rows: int = Field(200, ge=1, le=10_000)
    timeout_s: float = Field(5, gt=0, le=300)
    max_chars: int = Field(8_000, ge=200, le=1_000_000)
    allow_functions: tuple[str, ...] = ()
    connect_timeout: float = Field(10, gt=0, le=600)

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with a relative SQLite ``url`` resolved from ``base_dir`` (the spec's folder)."""
        if isinstance(settings.get("url"), str):
            settings["url"] = resolve_sqlite_url(settings["url"], base_dir)
        return settings

    def __repr_args__(self) -> Any:
        yield "url", safe_url(self.url)
        yield from ((k, v) for k, v in super().__repr_args__() if k != "url")

    @field_validator("url")
    @classmethod
    def _supported_url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if not v.strip():
            raise ValueError("url is empty; set a SQLAlchemy URL, e.g. postgresql+psycopg://agent@host:5432/shop")
        try:
            backend = make_url(v).get_backend_name()
        except (ArgumentError, ValueError) as e:
            raise ValueError(f"url is not a SQLAlchemy URL ({e}); write e.g. postgresql+psycopg://agent@host/shop, "
                             "mysql+pymysql://agent@host/shop or sqlite:////path/to/shop.db") from None
        if backend not in _DIALECTS:
            raise ValueError(f"the SQL tools support PostgreSQL, MySQL/MariaDB and SQLite, not {backend!r}: they "
                             "must know how to make its session read-only and bound its statements in time")
        return v

    @field_validator("tables", mode="before")
    @classmethod
    def _listed_tables(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError(f"tables must be a list of table names, e.g. [{v!r}], not one string")
        return v

    @field_validator("tables")
    @classmethod
    def _allow_list(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("name at least one table the model may read, e.g. tables: [customers, orders]; "
                             "the tools read only allow-listed tables")
        if any(not t.strip() for t in v):
            raise ValueError("an entry of `tables` is empty; write a table name, e.g. customers or sales.orders")
        if len(set(v)) != len(v):
            raise ValueError(f"a table is listed twice in `tables`: {sorted({t for t in v if v.count(t) > 1})}")
        return tuple(t.strip() for t in v)

    @field_validator("allow_functions")
    @classmethod
    def _extra_functions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not _FUNCTION_NAME.match(name):
                raise ValueError(f"allow_functions: {name!r} is not a function name (letters, digits and _)")
            denied = _denial(name)
            if denied:
                raise ValueError(f"allow_functions: {name}() cannot be allowed: it {denied}")
        return tuple(n.lower() for n in v)


# ---------------------------------------------------------------------------------------------------------
# The statement check


@dataclass(frozen=True)
class CheckedQuery:
    """A statement that passed the checks: ``sql`` (sqlglot's rendering, what runs) and the allow-list entries
    of the tables it reads, in the order they appear."""

    sql: str
    tables: tuple[str, ...]


def _denial(name: str) -> str | None:
    """What the function ``name`` does that is refused, or ``None``."""
    lower = name.lower()
    if lower in _DENIED_FUNCTIONS:
        return _DENIED_FUNCTIONS[lower]
    for prefix, reason in _DENIED_PREFIXES:
        if lower.startswith(prefix):
            return reason
    return None


def _glot() -> Any:
    return optional_import("sqlglot", "sql", "the SQL tools (checking the model's statements)")


def _table_key(table: Any) -> tuple[str, str, str]:
    return (table.catalog or "", table.db or "", table.name or "")


def _show(key: tuple[str, ...]) -> str:
    return ".".join(p for p in key if p)


def parse_allow_list(tables: Sequence[str], dialect: str) -> dict[tuple[str, str, str], str]:
    """The allow-list as normalized ``(catalog, schema, name)`` keys -> the entry as written.

    Raises :class:`ToolError` for an entry that is not a table name, or names a database (catalog) too.
    """
    _glot()
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    keys: dict[tuple[str, str, str], str] = {}
    for entry in tables:
        try:
            table = normalize_identifiers(exp.to_table(entry, dialect=dialect), dialect=dialect)
        except (SqlglotError, ValueError) as e:
            raise ToolError(f"tables: {entry!r} is not a table name ({str(e).splitlines()[0]}); write name or "
                            "schema.name") from None
        if not isinstance(table.this, exp.Identifier) or table.catalog or not table.name:
            raise ToolError(f"tables: {entry!r} is not a table name; write name or schema.name (the database is "
                            "the one in the URL)")
        key = _table_key(table)
        if key in keys:
            raise ToolError(f"tables: {keys[key]!r} and {entry!r} name the same table in {dialect}")
        keys[key] = entry
    return keys


def check_query(query: Any, dialect: str, allowed: Mapping[tuple[str, str, str], str],
                allow_functions: Sequence[str] = (), *, row_limit: int | None = None) -> CheckedQuery:
    """``query`` checked and rendered for ``dialect`` (``postgres``, ``mysql``, ``sqlite``), or
    :class:`QueryRefused` saying why not (see the module docstring for the rules).

    ``allowed`` is the allow-list as :func:`parse_allow_list` gives it. With ``row_limit`` the rendered
    statement returns at most that many rows (a LIMIT is added, or a larger literal one lowered).
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryRefused("the query is empty; write one SELECT statement")
    if len(query) > _MAX_QUERY_CHARS:
        raise QueryRefused(f"the query is {len(query):,} characters long; the limit is {_MAX_QUERY_CHARS:,}")
    if "\x00" in query:
        raise QueryRefused("the query holds a NUL character")
    if _EXECUTABLE_COMMENT.search(query):
        raise QueryRefused("the query holds a MySQL executable comment (/*! … */ or /*M! … */), whose text the "
                           "database runs; write plain SQL without it")
    try:
        tree = _parse_one(query, dialect)
        tables = _check_tree(tree, dialect, allowed, allow_functions)
        if row_limit is not None:
            _cap_rows(tree, row_limit)
        sql = tree.sql(dialect=dialect, comments=False)
        # What runs is the rendering: check it again as the database will read it, and the function names in it.
        again = _parse_one(sql, dialect)
        if _check_tree(again, dialect, allowed, allow_functions) != tables:
            raise QueryRefused("the query reads differently once rendered; write it more plainly")
        _check_called_names(sql, dialect)
    except QueryRefused:
        raise
    except RecursionError:
        raise QueryRefused("the query is nested too deeply to check; write it more plainly") from None
    except MissingDependencyError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever cannot be checked is refused (deny by default)
        first = (str(e).splitlines() or [type(e).__name__])[0][:300]
        raise QueryRefused(f"the query cannot be checked ({first}); write it more plainly") from None
    return CheckedQuery(sql, tables)


def _parse_one(query: str, dialect: str) -> Any:
    sqlglot = _glot()
    from sqlglot import exp
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    where = _DIALECT_NAMES.get(dialect, dialect)
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except RecursionError:
        raise QueryRefused("the query is nested too deeply to check; write it more plainly") from None
    except Exception as e:  # noqa: BLE001 - sqlglot raises ParseError, TokenError and others: all are refusals
        first = (str(e).splitlines() or [type(e).__name__])[0][:300]
        raise QueryRefused(f"the query is not valid {where} SQL as the checker reads it ({first}); write one "
                           "plain SELECT statement") from None
    if not statements:
        raise QueryRefused("the query holds no statement (only comments?); write one SELECT statement")
    if len(statements) > 1:
        kinds = ", ".join(_kind(s) for s in statements)
        raise QueryRefused(f"the query holds {len(statements)} statements ({kinds}); send exactly one SELECT")
    stmt = statements[0]
    if not isinstance(stmt, (exp.Select, exp.SetOperation)):
        what = _kind(stmt)
        raise QueryRefused(f"the query is {what}{'' if what.startswith('something') else ' statement'}; only one "
                           "read-only SELECT is allowed")
    return normalize_identifiers(stmt, dialect=dialect)


def _kind(node: Any) -> str:
    """``node`` in words, with its article: "a DROP", "an EXPLAIN", "something other than a SELECT"."""
    from sqlglot import exp

    name = type(node).__name__
    if name == "Command" and getattr(node, "this", None):
        word = str(node.this).upper()
    elif name in _FORBIDDEN_NODES:
        return _FORBIDDEN_NODES[name]
    elif isinstance(node, (exp.Query, exp.DDL, exp.DML)) or name in ("Describe", "Show", "Drop", "Command"):
        word = name.upper()
    else:  # an expression that is no statement at all (sqlglot reads "TABLE t" or "SELEC x" as an alias)
        return "something other than a SELECT"
    return f"{'an' if word[:1] in 'AEIOU' else 'a'} {word}"


def _check_tree(tree: Any, dialect: str, allowed: Mapping[tuple[str, str, str], str],
                allow_functions: Sequence[str]) -> tuple[str, ...]:
    """Refuse forbidden nodes, functions and tables in ``tree``; the allow-list entries it reads."""
    from sqlglot import exp

    forbidden = tuple(getattr(exp, n) for n in _FORBIDDEN_NODES if hasattr(exp, n))
    denied_classes = tuple(getattr(exp, n) for n in _DENIED_CLASSES if hasattr(exp, n))
    anonymous = tuple(getattr(exp, n) for n in ("Anonymous", "AnonymousAggFunc") if hasattr(exp, n))
    safe = _SAFE_UNTYPED.get(dialect, frozenset()) | set(allow_functions)
    for node in tree.walk():
        if isinstance(node, forbidden):
            raise QueryRefused(f"the query contains {_kind(node)}; only a read-only SELECT is allowed")
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            raise QueryRefused(f"schema-qualified function calls are refused ({node.sql(dialect=dialect)[:80]}); "
                               "call built-in functions by their plain name")
        if isinstance(node, exp.Func):
            shown = node.name if isinstance(node, anonymous) else node.sql_name()
            reason = _denial(shown) or (_denial(node.name) if isinstance(node, anonymous) else None)
            if reason or isinstance(node, denied_classes):
                raise QueryRefused(f"the function {shown}() is refused: it {reason or _FILES}")
            if isinstance(node, anonymous) and node.name.lower() not in safe:
                raise QueryRefused(f"the function {node.name}() is not allowed: only standard SQL functions and a "
                                   "few harmless ones may be called (an operator can allow more with "
                                   "allow_functions)")
    return _check_tables(tree, dialect, allowed)


def _check_tables(tree: Any, dialect: str, allowed: Mapping[tuple[str, str, str], str]) -> tuple[str, ...]:
    from sqlglot import exp
    from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

    # Table nodes that name a CTE visible where they stand; every other Table node is a real table.
    cte_refs: set[int] = set()
    try:
        for scope in traverse_scope(tree):
            for table in scope.tables:
                source = scope.sources.get(table.alias_or_name)
                if not isinstance(source, Scope) or source.scope_type != ScopeType.CTE or table.db or table.catalog:
                    continue
                # The CTE whose body holds the source (its anchor, for a recursive CTE's reference to itself).
                cte = source.expression if isinstance(source.expression, exp.CTE) \
                    else source.expression.find_ancestor(exp.CTE)
                if cte is not None and cte.alias == table.name:
                    cte_refs.add(id(table))
    except RecursionError:
        raise QueryRefused("the query is nested too deeply to check; write it more plainly") from None
    except Exception as e:  # noqa: BLE001 - sqlglot's OptimizeError and others: the tables are not known
        raise QueryRefused(f"the tables the query reads cannot be worked out ({str(e)[:200]}); write it more "
                           "plainly") from None
    read: list[str] = []
    listed = ", ".join(allowed.values())
    for table in tree.find_all(exp.Table):
        if id(table) in cte_refs:
            continue
        if isinstance(table.this, exp.Func) and not table.db and not table.catalog:
            continue  # a table function (generate_series, unnest): its function is checked as any other
        if not isinstance(table.this, exp.Identifier):
            raise QueryRefused(f"the query reads {table.sql(dialect=dialect)[:80]!r}, which is not a plain table; "
                               f"it may read: {listed}")
        key = _table_key(table)
        if key not in allowed:
            shown = _show(key)
            if (key[1] and key[1].lower() in _SYSTEM_SCHEMAS) or _SYSTEM_TABLE.match(key[2]):
                raise QueryRefused(f"the table {shown} is a system catalog, which the tool does not read; it may "
                                   f"read: {listed}")
            near = [entry for k, entry in allowed.items() if k[2] == key[2]]
            hint = f" (write it as listed: {near[0]})" if near else ""
            raise QueryRefused(f"the table {shown} is not one the tool may read{hint}; it may read: {listed}")
        if allowed[key] not in read:
            read.append(allowed[key])
    return tuple(read)


def _cap_rows(tree: Any, row_limit: int) -> None:
    """Add ``LIMIT row_limit`` to ``tree``, or lower a larger literal one; leave FETCH FIRST and a computed limit
    alone (the rows fetched are capped anyway)."""
    from sqlglot import exp

    if tree.args.get("fetch") is not None:
        return
    limit = tree.args.get("limit")
    if limit is None:
        tree.set("limit", exp.Limit(expression=exp.Literal.number(row_limit)))
        return
    value = limit.expression
    if (isinstance(value, exp.Literal) and value.is_int and int(value.this) > row_limit) \
            or (isinstance(value, exp.Var) and value.name.upper() == "ALL"):
        limit.set("expression", exp.Literal.number(row_limit))


def _check_called_names(sql: str, dialect: str) -> None:
    """Refuse a denied function called in the SQL text itself: every ``name(`` but those in string literals."""
    sqlglot = _glot()
    from sqlglot.tokens import TokenType

    literal = (TokenType.STRING, TokenType.NATIONAL_STRING)
    tokens = sqlglot.tokenize(sql, read=dialect)
    for token, after in zip(tokens, tokens[1:], strict=False):
        if after.token_type == TokenType.L_PAREN and token.token_type not in literal:
            reason = _denial(token.text)
            if reason:
                raise QueryRefused(f"the function {token.text}() is refused: it {reason}")


# ---------------------------------------------------------------------------------------------------------
# Values and text


def _cell(value: Any, max_chars: int) -> Any:
    """A JSON value for a database value (exact decimals as numbers, times as ISO text, bytes described)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + "…"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value():
            return int(value)
        return float(value) if Decimal(repr(float(value))) == value else str(value)
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str, ensure_ascii=False)
        return json.loads(text) if len(text) <= max_chars else text[:max_chars] + "…"
    return _cell(str(value), max_chars)


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n").replace("|", "\\|")
    return text if len(text) <= _CELL_CHARS else text[:_CELL_CHARS] + "…"


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_chars: int, footer: str) -> str:
    """``columns`` and ``rows`` as ``a | b`` lines, cut at ``max_chars`` characters with ``footer`` kept last."""
    lines = [" | ".join(_text(c) for c in columns)] + [" | ".join(_text(v) for v in row) for row in rows]
    body = "\n".join(lines)
    if len(body) + len(footer) + 1 <= max_chars:
        return f"{body}\n{footer}"
    kept: list[str] = []
    size = 0
    cut_note = f"(cut at {max_chars:,} characters: {{shown}} of {len(rows)} rows shown) {footer}"
    budget = max_chars - len(cut_note) - 16
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # not even the header fits: cut it
        kept = [lines[0][: max(budget, 0)] + "…"]
    return "\n".join(kept) + "\n" + cut_note.format(shown=max(len(kept) - 1, 0))


# ---------------------------------------------------------------------------------------------------------
# The connection helper


@dataclass(frozen=True)
class Rows:
    """What a statement returned: its ``columns``, at most ``max_rows`` ``rows``, and whether there were more."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class SqlDatabase:
    """The connection the SQL tools share: checks statements against the allow-list and runs them read-only.

    Building one is cheap (no connection); the engine is created on first use. ``check`` gives the statement
    that would run or :class:`QueryRefused`; ``fetch`` runs a checked statement in a read-only, time-bounded,
    rolled-back transaction.
    """

    def __init__(self, config: SqlToolConfig) -> None:
        from sqlalchemy.engine import make_url

        self.config = config
        url = make_url(config.url)
        if url.drivername in _DEFAULT_DRIVERS:
            url = url.set(drivername=_DEFAULT_DRIVERS[url.drivername])
        self.backend = url.get_backend_name()
        self.dialect = _DIALECTS[self.backend]
        if self.backend == "sqlite":
            url = _read_only_sqlite(url)
        self._url = url
        self.allowed = parse_allow_list(config.tables, self.dialect)
        self._engine: Any = None
        self._lock = threading.Lock()  # tools may be called from several threads: one engine for all

    def describe(self) -> str:
        """The database as it may be shown: its URL without password."""
        return safe_url(self._url)

    @property
    def dialect_name(self) -> str:
        return _DIALECT_NAMES[self.dialect]

    def check(self, query: Any) -> CheckedQuery:
        """``query`` as it would run (capped at ``max_rows`` + 1 rows), or :class:`QueryRefused`."""
        return check_query(query, self.dialect, self.allowed, self.config.allow_functions,
                           row_limit=self.config.max_rows + 1)

    def close(self) -> None:
        """Close the pooled connections (the next call opens new ones)."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    # -- connection

    def _scrub(self, message: str) -> str:
        for secret in url_secrets(self._url):
            message = message.replace(secret, "***")
        return message

    def _where(self) -> str:
        url = self._url
        if self.backend == "sqlite":
            return f"SQLite database {url.database}"
        return f"{url.host or 'localhost'}" + (f":{url.port}" if url.port else "")

    def _engine_or_create(self) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Any:
        from sqlalchemy import create_engine, event
        from sqlalchemy.pool import NullPool

        url = self._url
        connect_args: dict[str, Any] = {}
        timeout_arg = _CONNECT_TIMEOUT_ARG.get(url.get_driver_name())
        if timeout_arg:
            connect_args[timeout_arg] = max(1, round(self.config.connect_timeout))
        if self.backend == "sqlite":
            memory = url.database in (None, "", ":memory:")
            pool: dict[str, Any] = {} if memory else {"poolclass": NullPool}  # opening a file is cheap
        else:
            pool = {"pool_size": 1, "max_overflow": 4, "pool_pre_ping": True}
        try:
            engine = create_engine(url, connect_args=connect_args, **pool)
        except ImportError as e:
            raise missing_dependency(f"the SQL tools with {url.drivername}:// (the extra brings psycopg for "
                                     "PostgreSQL, PyMySQL for MySQL/MariaDB)", "sql", e.name or str(e)) from e
        except Exception as e:  # noqa: BLE001 - an unknown dialect option or a bad URL
            raise ToolError(f"{self.describe()}: SQLAlchemy cannot use this URL: {self._scrub(str(e))}") from e
        read_only = _SESSION_READ_ONLY[self.dialect]
        backend = self.backend

        @event.listens_for(engine, "connect")
        def _read_only_session(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(read_only)
            finally:
                cursor.close()
            if backend != "sqlite":
                dbapi_conn.commit()

        return engine

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A SQLAlchemy connection in a read-only transaction whose statements stop after ``timeout_s``; rolled
        back at the end, whatever happened. A database that cannot be reached raises :class:`SqlConnectionError`."""
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        engine = self._engine_or_create()
        try:
            conn = engine.connect()
        except (DBAPIError, OSError) as e:
            orig = getattr(e, "orig", None) or e
            detail = self._scrub(" ".join(str(orig).split()))[:500]
            raise SqlConnectionError(f"cannot connect to {self._where()}: {detail}") from e
        except SQLAlchemyError as e:
            raise SqlConnectionError(f"{self.describe()}: cannot connect: {self._scrub(str(e))[:500]}") from e
        restore: Any = None
        try:
            try:
                restore = self._begin(conn)
            except DBAPIError as e:
                raise SqlConnectionError(f"{self._where()}: cannot start a read-only, time-bounded transaction: "
                                         f"{self._message(e)}") from e
            yield conn
        finally:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - a dead connection may not roll back; it is discarded
                pass
            if restore is not None:
                restore()
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def _begin(self, conn: Any) -> Any:
        """Start the read-only transaction with the statement timeout; a callable that undoes what outlives it."""
        timeout = self.config.timeout_s
        if self.dialect == "postgres":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
            return None
        if self.dialect == "mysql":
            if getattr(conn.dialect, "is_mariadb", False):
                conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout:.3f}")
            else:
                conn.exec_driver_sql(f"SET SESSION max_execution_time = {max(1, round(timeout * 1000))}")
            conn.exec_driver_sql("START TRANSACTION READ ONLY")
            return None
        raw = conn.connection.dbapi_connection
        deadline = time.monotonic() + timeout
        # SQLite has no statement timeout: the progress handler, called every few thousand VM steps, interrupts
        # the statement once the deadline has passed.
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 2_000)
        return lambda: raw.set_progress_handler(None, 0)

    def _message(self, error: Any) -> str:
        orig = getattr(error, "orig", None) or error
        text = " ".join(str(orig).split())
        return self._scrub(text)[:500] or type(orig).__name__

    def _timed_out(self, error: Any) -> bool:
        orig = getattr(error, "orig", None)
        if self.dialect == "postgres":
            return getattr(orig, "sqlstate", None) == "57014"
        if self.dialect == "mysql":
            code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
            return code in (1969, 3024)
        return "interrupted" in str(orig).lower()

    def refusal(self, error: Any) -> QueryRefused:
        """The refusal the model reads for a database error (the timeout said in words)."""
        if self._timed_out(error):
            return QueryRefused(f"the query ran past the {self.config.timeout_s:g} s statement timeout and was "
                                "stopped; make it cheaper (filter with WHERE, aggregate, join on keys)")
        return QueryRefused(f"the database refused the query: {self._message(error)}")

    def execute(self, conn: Any, sql: str, max_rows: int) -> Rows:
        """Run ``sql`` on ``conn`` (from :meth:`session`) and fetch at most ``max_rows`` rows (one more to tell
        whether there were more). A database error is :class:`QueryRefused`; a lost connection raises."""
        from sqlalchemy.exc import DBAPIError

        try:
            # no_parameters: the text goes to cursor.execute() alone, so that '%' is no placeholder to the driver
            result = conn.execution_options(no_parameters=True).exec_driver_sql(sql)
            columns = [str(c) for c in result.keys()]
            fetched = result.fetchmany(max_rows + 1) if result.returns_rows else []
            result.close()
        except DBAPIError as e:
            if e.connection_invalidated:
                raise SqlConnectionError(f"the connection to {self._where()} was lost: {self._message(e)}") from e
            raise self.refusal(e) from e
        rows = [[_cell(v, self.config.max_chars) for v in row] for row in fetched[:max_rows]]
        return Rows(columns, rows, len(fetched) > max_rows)

    def fetch(self, checked: CheckedQuery) -> Rows:
        """Run a checked statement in its own read-only session."""
        with self.session() as conn:
            return self.execute(conn, checked.sql, self.config.max_rows)


def _read_only_sqlite(url: Any) -> Any:
    """A SQLite file URL opened read-only (``file:…?mode=ro``); an in-memory database as it is."""
    database = url.database
    if database in (None, "", ":memory:"):
        return url
    query = dict(url.query)
    query.update({"mode": "ro", "uri": "true"})
    if not str(database).startswith("file:"):
        database = "file:" + str(Path(database).expanduser().resolve())
    return url.set(database=database, query=query)


# ---------------------------------------------------------------------------------------------------------
# The tools


def _arguments(arguments: Any, allowed: set[str]) -> str | None:
    """Why ``arguments`` are not an object with only ``allowed`` keys, or ``None``."""
    if not isinstance(arguments, Mapping):
        return f"arguments must be a JSON object, not {type(arguments).__name__}"
    unknown = sorted(str(k) for k in arguments if k not in allowed)
    if unknown:
        return f"unknown argument(s) {', '.join(unknown)}; the arguments are: {', '.join(sorted(allowed))}"
    return None


class SqlQueryTool:
    """``sql_query``: run one read-only SELECT over the allow-listed tables and read the rows."""

    def __init__(self, database: SqlDatabase, name: str = "sql_query") -> None:
        self.database = database
        cfg = database.config
        self.spec = ToolSpec(
            name=name,
            description=(f"Run one read-only SQL SELECT on the {database.dialect_name} database and get the rows "
                         f"back (at most {cfg.max_rows}). Only these tables can be read: "
                         f"{', '.join(database.allowed.values())}; call sql_schema first to see their columns. "
                         "One statement, no writes, standard SQL functions, written in the "
                         f"{database.dialect_name} dialect."),
            parameters={"type": "object", "additionalProperties": False, "required": ["query"],
                        "properties": {"query": {"type": "string", "description": "one SQL SELECT statement"}}},
        )

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Check the statement, run it read-only and return the rows (see the module docstring)."""
        problem = _arguments(arguments, {"query"})
        if problem:
            return ToolResult.refused(problem)
        query = arguments.get("query")
        if not isinstance(query, str):
            return ToolResult.refused("give `query`: one SQL SELECT statement as a string")
        try:
            checked = self.database.check(query)
        except QueryRefused as e:
            return ToolResult.refused(str(e), sql=query[:2_000])
        try:
            rows = self.database.fetch(checked)
        except QueryRefused as e:
            return ToolResult.refused(str(e), sql=checked.sql)
        cfg = self.database.config
        if rows.truncated:
            footer = (f"(first {len(rows.rows)} rows; the query returns more: narrow it with WHERE, aggregate, or "
                      "add ORDER BY … LIMIT)")
        else:
            footer = f"({len(rows.rows)} row{'s' if len(rows.rows) != 1 else ''})"
        content = text_table(rows.columns, rows.rows, cfg.max_chars, footer)
        return ToolResult(
            content=content,
            data={"columns": rows.columns, "rows": rows.rows, "truncated": rows.truncated, "sql": checked.sql},
            sources=[{"id": f"sql:{t}", "table": t} for t in checked.tables],
        )


class SqlSchemaTool:
    """``sql_schema``: the allow-listed tables with their columns, types, keys and a few sample rows."""

    def __init__(self, database: SqlDatabase, name: str = "sql_schema") -> None:
        self.database = database
        listed = ", ".join(database.allowed.values())
        self.spec = ToolSpec(
            name=name,
            description=(f"Show the tables of the {database.dialect_name} database that can be queried ({listed}): "
                         f"their columns, types, primary and foreign keys and {_SAMPLE_ROWS} sample rows. Give "
                         "`tables` to see only some of them."),
            parameters={"type": "object", "additionalProperties": False,
                        "properties": {"tables": {"type": "array", "items": {"type": "string"},
                                                  "description": f"tables to describe, of: {listed}"}}},
        )

    def _wanted(self, arguments: Mapping[str, Any]) -> list[tuple[tuple[str, str, str], str]] | str:
        everything = list(self.database.allowed.items())
        names = arguments.get("tables")
        if names is None:
            return everything
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            return "`tables` must be a non-empty list of table names"
        by_entry = {entry.lower(): (key, entry) for key, entry in everything}
        wanted = []
        for name in names:
            found = by_entry.get(name.strip().lower())
            if found is None:
                return (f"the table {name!r} is not one the tool may describe; it may describe: "
                        f"{', '.join(self.database.allowed.values())}")
            if found not in wanted:
                wanted.append(found)
        return wanted

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Describe the allow-listed tables (or those asked for): only allow-listed tables are ever shown."""
        problem = _arguments(arguments, {"tables"})
        if problem:
            return ToolResult.refused(problem)
        wanted = self._wanted(arguments)
        if isinstance(wanted, str):
            return ToolResult.refused(wanted)
        db = self.database
        from sqlalchemy import inspect
        from sqlalchemy.exc import DBAPIError

        described: list[dict[str, Any]] = []
        with db.session() as conn:
            inspector = inspect(conn)
            for key, entry in wanted:
                try:
                    described.append(self._describe(conn, inspector, key, entry))
                except DBAPIError as e:
                    if e.connection_invalidated:
                        raise SqlConnectionError(f"the connection to {db._where()} was lost: {db._message(e)}") \
                            from e
                    return ToolResult.refused(f"describing {entry}: {db.refusal(e)}")
        content = self._text(described)
        return ToolResult(content=content, data={"tables": described},
                          sources=[{"id": f"sql:{t['name']}", "table": t["name"]} for t in described
                                   if t.get("exists")])

    def _describe(self, conn: Any, inspector: Any, key: tuple[str, str, str], entry: str) -> dict[str, Any]:
        from sqlglot import exp

        db = self.database
        _, schema, name = key
        schema_arg = schema or None
        if not inspector.has_table(name, schema=schema_arg):
            return {"name": entry, "exists": False}
        columns = []
        for col in inspector.get_columns(name, schema=schema_arg):
            try:
                type_text = col["type"].compile(dialect=conn.dialect)
            except Exception:  # noqa: BLE001 - a type SQLAlchemy cannot render: its class name
                type_text = type(col["type"]).__name__
            columns.append({"name": col["name"], "type": str(type_text), "nullable": bool(col.get("nullable", True))})
        primary_key = list((inspector.get_pk_constraint(name, schema=schema_arg) or {}).get("constrained_columns")
                           or [])
        foreign_keys = []
        for fk in inspector.get_foreign_keys(name, schema=schema_arg):
            target = self._listed(fk.get("referred_schema"), fk.get("referred_table"), schema)
            if target is None:
                continue  # a table not allow-listed is never named
            foreign_keys.append({"columns": list(fk.get("constrained_columns") or []), "references": target,
                                 "referred_columns": list(fk.get("referred_columns") or [])})
        table = exp.Table(this=exp.to_identifier(name, quoted=True),
                          db=exp.to_identifier(schema, quoted=True) if schema else None)
        sample_sql = exp.select("*").from_(table).limit(_SAMPLE_ROWS).sql(dialect=db.dialect)
        try:
            sample = db.execute(conn, sample_sql, _SAMPLE_ROWS)
        except QueryRefused as e:
            sample_data: dict[str, Any] = {"error": str(e)}
        else:
            sample_data = {"columns": sample.columns, "rows": sample.rows}
        return {"name": entry, "exists": True, "columns": columns, "primary_key": primary_key,
                "foreign_keys": foreign_keys, "sample": sample_data}

    def _listed(self, schema: str | None, table: str | None, own_schema: str) -> str | None:
        """The allow-list entry of a foreign key's target, or ``None`` when it is not listed."""
        if not table:
            return None
        for key, entry in self.database.allowed.items():
            if key[2] == table and (key[1] == (schema or own_schema) or (not schema and not key[1])):
                return entry
        return None

    def _text(self, described: list[dict[str, Any]]) -> str:
        cfg = self.database.config
        parts = []
        for t in described:
            if not t.get("exists"):
                parts.append(f"table {t['name']}: not found in the database")
                continue
            lines = [f"table {t['name']}"]
            for col in t["columns"]:
                flags = " PRIMARY KEY" if col["name"] in t["primary_key"] and len(t["primary_key"]) == 1 else ""
                flags += "" if col["nullable"] else " NOT NULL"
                lines.append(f"  {col['name']} {col['type']}{flags}")
            if len(t["primary_key"]) > 1:
                lines.append(f"  primary key ({', '.join(t['primary_key'])})")
            for fk in t["foreign_keys"]:
                lines.append(f"  foreign key ({', '.join(fk['columns'])}) references "
                             f"{fk['references']} ({', '.join(fk['referred_columns'])})")
            sample = t["sample"]
            if "error" in sample:
                lines.append(f"  sample rows: {sample['error']}")
            elif sample["rows"]:
                lines.append("  sample rows:")
                table = text_table(sample["columns"], sample["rows"], cfg.max_chars, "")
                lines += ["    " + line for line in table.rstrip("\n").splitlines()]
            else:
                lines.append("  (no rows)")
            parts.append("\n".join(lines))
        text = "\n\n".join(parts)
        if len(text) > cfg.max_chars:
            note = f"\n(cut at {cfg.max_chars:,} characters; ask for fewer tables)"
            text = text[: cfg.max_chars - len(note)] + note
        return text


def sql_tools(config: SqlToolConfig | Mapping[str, Any]) -> tuple[SqlSchemaTool, SqlQueryTool]:
    """The two SQL tools (``sql_schema``, ``sql_query``) over one shared :class:`SqlDatabase`."""
    cfg = config if isinstance(config, SqlToolConfig) else SqlToolConfig.model_validate(dict(config))
    database = SqlDatabase(cfg)
    return SqlSchemaTool(database), SqlQueryTool(database)
