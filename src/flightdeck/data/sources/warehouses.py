"""The warehouse sources: ``snowflake`` (snowflake-connector-python) and ``bigquery`` (google-cloud-bigquery).

Both read a table or one read-only query like the ``sql`` source, with the same row settings, the same
row-to-record mapping and the same incremental scan (see :mod:`flightdeck.data.sources.sql`). The SQL they
send is built with sqlglot in the warehouse's dialect: identifiers are quoted and ids rendered as escaped
literals by sqlglot, never pasted into the text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator

from flightdeck.data.sources.sql import RowReader, RowSource, RowSourceConfig, TransientSourceError, _has_env_ref
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["SnowflakeConfig", "SnowflakeSource", "BigQueryConfig", "BigQuerySource", "bigquery_rows"]


def _check_table_name(table: str | None, dialect: str) -> None:
    if table is None or _has_env_ref(table):
        return
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        ref = exp.to_table(table, dialect=dialect)
    except SqlglotError as e:
        raise ValueError(f"table {table!r} is not a table name ({e}); write table, schema.table or "
                         "database.schema.table") from None
    if len(ref.parts) > 3:
        raise ValueError(f"table {table!r} has {len(ref.parts)} parts; write table, schema.table or "
                         "database.schema.table")


def _literal(value: Any, dialect: str) -> str:
    from sqlglot import exp

    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        value = str(value)
    return exp.convert(value).sql(dialect=dialect)


class _GlotReader:
    """A table or query read through a warehouse client, with SQL built by sqlglot."""

    def __init__(self, config: RowSourceConfig, dialect: str,
                 execute: Callable[[str], tuple[list[str], Iterator[Sequence[Any] | Mapping[str, Any]]]],
                 columns: Callable[[str], list[str]] | None = None, identify: bool = False) -> None:
        self.config = config
        self.dialect = dialect
        self._execute = execute
        self._columns_fn = columns
        self._identify = identify
        self._columns: list[str] | None = None

    def from_sql(self) -> str:
        from sqlglot import exp

        cfg = self.config
        if cfg.table is not None:
            return exp.to_table(cfg.table, dialect=self.dialect).sql(dialect=self.dialect, identify=self._identify)
        assert cfg.query is not None
        return f"(\n{cfg.query.strip().rstrip(';')}\n) AS fd_q"

    def _column(self, name: str) -> str:
        from sqlglot import exp

        return exp.column(name, quoted=True).sql(dialect=self.dialect)

    def columns(self) -> list[str]:
        if self._columns is None:
            if self._columns_fn is not None:
                self._columns = self._columns_fn(self.from_sql())
            else:
                names, _ = self._execute(f"SELECT * FROM {self.from_sql()} LIMIT 0")
                self._columns = names
        return list(self._columns)

    def rows(self, columns: list[str] | None, id_column: str | None = None,
             ids: list[Any] | None = None) -> Iterator[Mapping[str, Any]]:
        select = ", ".join(self._column(c) for c in columns) if columns else "*"
        sql = f"SELECT {select} FROM {self.from_sql()}"
        if ids is not None and id_column is not None:
            if not ids:
                return
            sql += f" WHERE {self._column(id_column)} IN ({', '.join(_literal(v, self.dialect) for v in ids)})"
        names, rows = self._execute(sql)
        for row in rows:
            yield row if isinstance(row, Mapping) else dict(zip(names, row, strict=True))


# ---------------------------------------------------------------------------------------------------------
# Snowflake


class SnowflakeConfig(RowSourceConfig):
    """Options of the ``snowflake`` source: the connection, then the row settings of the ``sql`` source.

    ``account``, ``user`` and ``password`` (or ``authenticator``/``private_key_file``) as for
    ``snowflake.connector.connect``; ``database``, ``schema`` and ``warehouse`` say where the table or
    query runs. ``host``/``port``/``protocol`` override the account's endpoint (private link, proxies).
    Secrets come as ``${ENV}`` references; ``password`` is kept as a secret (never in a repr, an error or a
    URI). Unquoted Snowflake names are upper case: ``id: id`` finds ``ID``.
    """

    glot_dialect = "snowflake"

    account: str
    user: str
    password: SecretStr | None = None
    authenticator: str | None = None
    private_key_file: str | None = None
    database: str
    schema_: str = Field(alias="schema")
    warehouse: str | None = None
    role: str | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    protocol: str | None = None

    @model_validator(mode="after")
    def _table_name(self) -> SnowflakeConfig:
        _check_table_name(self.table, "snowflake")
        if self.password is None and self.authenticator is None and self.private_key_file is None:
            raise ValueError("set `password` (e.g. password: ${SNOWFLAKE_PASSWORD}), `private_key_file` or "
                             "`authenticator`")
        return self


class SnowflakeSource(RowSource):
    """Rows of a Snowflake table or query (see :class:`SnowflakeConfig`), via ``snowflake.connector``."""

    provider = "snowflake"

    def __init__(self, config: SnowflakeConfig) -> None:
        super().__init__(config)
        self.config: SnowflakeConfig = config
        self._conn: Any = None  # one session serves the scan and the reads after it (a login costs seconds)

    def describe(self) -> str:
        cfg = self.config
        where = cfg.host or f"{cfg.account}.snowflakecomputing.com"
        if cfg.port:
            where += f":{cfg.port}"
        return f"snowflake://{cfg.user}@{where}/{cfg.database}/{cfg.schema_}"

    def _scrub(self, message: str) -> str:
        password = self.config.password.get_secret_value() if self.config.password else ""
        if password:
            message = message.replace(password, "***")
        return " ".join(message.split())

    def connect(self) -> AbstractContextManager[RowReader]:
        connector = optional_import("snowflake.connector", "snowflake", "source 'snowflake'")
        sf_errors = optional_import("snowflake.connector.errors", "snowflake", "source 'snowflake'")
        cfg = self.config
        kwargs: dict[str, Any] = {
            "account": cfg.account, "user": cfg.user, "database": cfg.database, "schema": cfg.schema_,
            "login_timeout": cfg.connect_timeout, "network_timeout": max(cfg.connect_timeout, 60),
            "application": "flightdeck",
        }
        for key in ("password", "authenticator", "private_key_file", "warehouse", "role", "host", "port",
                    "protocol"):
            value = getattr(cfg, key)
            if value is not None:
                kwargs[key] = value.get_secret_value() if isinstance(value, SecretStr) else value

        @contextmanager
        def opened() -> Iterator[RowReader]:
            conn = self._conn
            if conn is None or conn.is_closed():
                self._conn = None
                try:
                    conn = connector.connect(**kwargs)
                except sf_errors.ProgrammingError as e:
                    raise SourceError(f"{self.describe()}: Snowflake refused the connection: "
                                      f"{self._scrub(str(e))}") from e
                except (sf_errors.Error, OSError) as e:
                    raise TransientSourceError(f"cannot connect to {self.describe()}: {self._scrub(str(e))}") from e
                self._conn = conn

            def execute(sql: str) -> tuple[list[str], Iterator[Sequence[Any]]]:
                cur = conn.cursor()
                try:
                    cur.execute(sql)
                except sf_errors.ProgrammingError as e:
                    raise SourceError(f"{self.describe()}: Snowflake refused the query: {self._scrub(str(e))}; "
                                      "check `table`/`query` and the column settings") from e
                except (sf_errors.Error, OSError) as e:
                    raise TransientSourceError(f"{self.describe()}: query failed: {self._scrub(str(e))}") from e
                names = [d[0] for d in cur.description or []]

                def fetch() -> Iterator[Sequence[Any]]:
                    try:
                        while batch := cur.fetchmany(1000):
                            yield from batch
                    finally:
                        cur.close()

                return names, fetch()

            try:
                yield _GlotReader(cfg, "snowflake", execute)
            except TransientSourceError:
                self.close()  # the next attempt logs in again
                raise

        return opened()

    def close(self) -> None:
        """Close the Snowflake session, if one is open."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may not close cleanly
                pass


# ---------------------------------------------------------------------------------------------------------
# BigQuery


class BigQueryConfig(RowSourceConfig):
    """Options of the ``bigquery`` source: the project and credentials, then the row settings of ``sql``.

    ``table`` is ``dataset.table`` or ``project.dataset.table``. Credentials: ``credentials_file`` (a
    service-account key file, e.g. ``${GOOGLE_APPLICATION_CREDENTIALS}``), ``credentials_json`` (the key
    itself, e.g. ``${BQ_KEY_JSON}``, kept as a secret: never in a repr or an error), or neither for
    Application Default Credentials; ``anonymous: true`` with ``endpoint`` talks to an emulator.
    """

    glot_dialect = "bigquery"

    project: str
    location: str | None = None
    credentials_file: str | None = None
    credentials_json: SecretStr | None = None
    anonymous: bool = False
    endpoint: str | None = None
    timeout: float = Field(60, gt=0, le=3600)

    @model_validator(mode="after")
    def _checks(self) -> BigQueryConfig:
        _check_table_name(self.table, "bigquery")
        if sum(x for x in (self.credentials_file is not None, self.credentials_json is not None,
                           self.anonymous)) > 1:
            raise ValueError("set at most one of `credentials_file`, `credentials_json` and `anonymous`")
        return self


def _scrub_json(message: str, secret: str) -> str:
    """``message`` without any string value of the JSON ``secret`` (or ``secret`` itself) in it."""
    values: list[str] = [secret]
    try:
        data = json.loads(secret)
    except ValueError:
        data = None
    if isinstance(data, dict):
        values += [str(v) for v in data.values() if isinstance(v, (str, int)) and len(str(v)) >= 4]
    for value in sorted(set(values), key=len, reverse=True):
        message = message.replace(value, "***")
    return message


def bigquery_rows(rows: Iterator[Any]) -> Iterator[dict[str, Any]]:
    """Plain dicts of BigQuery ``Row`` objects (``google.cloud.bigquery.table.Row``)."""
    for row in rows:
        yield dict(row.items())


class BigQuerySource(RowSource):
    """Rows of a BigQuery table or query (see :class:`BigQueryConfig`), via ``google.cloud.bigquery``.

    The schema comes from the table's metadata or from a dry run of the query (free, and it confirms the
    query is a SELECT); rows come from query jobs whose results are paged by the client library.
    """

    provider = "bigquery"

    def __init__(self, config: BigQueryConfig) -> None:
        super().__init__(config)
        self.config: BigQueryConfig = config
        self._client: Any = None

    def describe(self) -> str:
        cfg = self.config
        where = cfg.endpoint.rstrip("/") + "/" if cfg.endpoint else "bigquery://"
        return f"{where}{cfg.project}" + (f" ({cfg.location})" if cfg.location else "")

    def _credentials(self) -> Any:
        cfg = self.config
        if cfg.anonymous:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        if cfg.credentials_file is None and cfg.credentials_json is None:
            return None  # Application Default Credentials, found by the client
        from google.oauth2 import service_account

        secret = cfg.credentials_json.get_secret_value() if cfg.credentials_json is not None else None
        try:
            if secret is not None:
                return service_account.Credentials.from_service_account_info(json.loads(secret))
            path = Path(cfg.credentials_file or "").expanduser()
            return service_account.Credentials.from_service_account_file(str(path))
        except (OSError, ValueError, KeyError) as e:
            which = "credentials_json" if secret is not None else f"credentials_file {cfg.credentials_file}"
            detail = f"{type(e).__name__}: {e}"
            if secret is not None:
                # The library's message may quote the key (a field of it, a bad line): only its shape is shown.
                detail = type(e).__name__ if isinstance(e, KeyError) else _scrub_json(detail, secret)
            raise SourceError(f"{self.describe()}: cannot load the service-account key from {which}: "
                              f"{detail}") from None

    def _client_or_create(self) -> Any:
        if self._client is not None:
            return self._client
        auth_exc = optional_import("google.auth.exceptions", "bigquery", "source 'bigquery'")
        bigquery = optional_import("google.cloud.bigquery", "bigquery", "source 'bigquery'")
        cfg = self.config
        options = {"api_endpoint": cfg.endpoint} if cfg.endpoint else None
        try:
            self._client = bigquery.Client(project=cfg.project, credentials=self._credentials(),
                                           location=cfg.location, client_options=options)
        except auth_exc.DefaultCredentialsError as e:
            raise SourceError(f"{self.describe()}: no Google credentials ({e}); set `credentials_file` or "
                              "`credentials_json`, or run `gcloud auth application-default login`") from e
        return self._client

    def _translate(self, what: str, e: Exception) -> Exception:
        """Sort an API error into a retryable one (server, network) or a final one, both for people."""
        import requests
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        if isinstance(e, SourceError):
            return e
        if isinstance(e, gexc.NotFound):
            return SourceError(f"{self.describe()}: {what}: not found ({e.message}); check `table`, `project` "
                               "and `location`")
        if isinstance(e, (gexc.BadRequest, gexc.Forbidden, gexc.Unauthorized)):
            return SourceError(f"{self.describe()}: {what}: {type(e).__name__}: {e.message}")
        if isinstance(e, (gexc.ServerError, gexc.TooManyRequests, gexc.RetryError, requests.exceptions.ConnectionError,
                          requests.exceptions.Timeout, auth_exc.TransportError, OSError)):
            return TransientSourceError(f"{what} at {self.describe()}: {type(e).__name__}: "
                                        f"{' '.join(str(e).split())[:300]}")
        if isinstance(e, auth_exc.GoogleAuthError):
            return SourceError(f"{self.describe()}: {what}: credentials problem: {e}")
        if isinstance(e, gexc.GoogleAPICallError):
            return SourceError(f"{self.describe()}: {what}: {type(e).__name__}: {e.message}")
        return e

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - re-raised, sorted by _translate
            translated = self._translate(what, e)
            if translated is e:
                raise
            raise translated from e

    def _paged(self, what: str, rows: Iterator[Any]) -> Iterator[dict[str, Any]]:
        # Later pages are fetched while iterating: their errors are sorted like those of the first call.
        try:
            yield from bigquery_rows(rows)
        except Exception as e:  # noqa: BLE001 - re-raised, sorted by _translate
            translated = self._translate(what, e)
            if translated is e:
                raise
            raise translated from e

    def connect(self) -> AbstractContextManager[RowReader]:
        client = self._client_or_create()
        from google.cloud import bigquery

        cfg = self.config

        def columns(from_sql: str) -> list[str]:
            if cfg.table is not None:
                table = self._call("read the table schema",
                                   lambda: client.get_table(cfg.table, retry=None, timeout=cfg.connect_timeout))
                return [f.name for f in table.schema]
            job = self._call("dry-run the query", lambda: client.query(
                f"SELECT * FROM {from_sql}", job_config=bigquery.QueryJobConfig(dry_run=True, use_query_cache=False),
                location=cfg.location, retry=None, job_retry=None, timeout=cfg.connect_timeout))
            kind = getattr(job, "statement_type", None)
            if kind not in (None, "SELECT"):
                raise SourceError(f"{self.describe()}: the query is a {kind} statement; a source query must be "
                                  "one read-only SELECT statement")
            return [f.name for f in job.schema or []]

        def execute(sql: str) -> tuple[list[str], Iterator[Mapping[str, Any]]]:
            def run() -> Any:
                job = client.query(sql, location=cfg.location, retry=None, job_retry=None, timeout=cfg.timeout)
                return job.result(page_size=cfg.batch_size, retry=None, job_retry=None, timeout=cfg.timeout)

            result = self._call("run the query", run)
            names = [f.name for f in result.schema or []]
            return names, self._paged("read the query results", iter(result))

        @contextmanager
        def opened() -> Iterator[RowReader]:
            yield _GlotReader(cfg, "bigquery", execute, columns=columns, identify=True)

        return opened()
