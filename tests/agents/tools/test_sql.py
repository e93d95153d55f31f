"""The SQL tools (``sql_schema``, ``sql_query``) against SQLite and this machine's real PostgreSQL and MariaDB.

Each backend gets a small shop (customers, orders, products) and a ``secrets`` table that is not allow-listed,
under a table-name prefix unique to the run, dropped at the end. Every tool runs the tool contract; an attack list
(statements that write, read files, run programs, sleep, change settings, or read ``secrets`` by every road) must be
refused before it reaches the database, with the tables, their rows and the file system unchanged; an allowed but
slow statement is stopped by the statement timeout; the rows are capped.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from flightdeck.agents.tools.base import ToolError, ToolResult
from flightdeck.agents.tools.sql import (
    QueryRefused,
    SqlConnectionError,
    SqlDatabase,
    SqlQueryTool,
    SqlSchemaTool,
    SqlToolConfig,
    check_query,
    parse_allow_list,
    sql_tools,
)
from flightdeck.errors import MissingDependencyError
from flightdeck.testing.tool_contract import ToolContract
from needs import missing, need, needs

pytestmark = needs("sql", "sqlglot")

SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
BACKENDS = ["sqlite", "postgresql", "mariadb"]
DRIVERS = {"postgresql": "psycopg", "mariadb": "pymysql"}
# How each backend names the default schema in a schema-qualified reference, and quotes an identifier.
QUALIFIER = {"sqlite": "main", "postgresql": "public", "mariadb": "test"}
QUOTE = {"sqlite": '"{}"', "postgresql": '"{}"', "mariadb": "`{}`"}
SECRET = "TOP-SECRET-7f3a"
PRODUCTS = 300  # a four-way cross join of them (8.1e9 rows) outlasts any timeout of the tests


@dataclass
class Demo:
    """One database holding the demo shop under ``prefix``."""

    backend: str
    url: str
    engine: sa.engine.Engine
    prefix: str
    markers: Path
    tables: dict[str, sa.Table] = field(default_factory=dict)

    def name(self, table: str) -> str:
        return self.tables[table].name

    @property
    def allowed(self) -> list[str]:
        return [self.name(t) for t in ("customers", "orders", "products")]

    def config(self, **settings: Any) -> SqlToolConfig:
        return SqlToolConfig(url=self.url, tables=self.allowed, **settings)

    def snapshot(self) -> dict[str, Any]:
        """The prefixed tables, their columns and row counts: what no refused statement may change."""
        inspector = sa.inspect(self.engine)
        names = sorted(n for n in inspector.get_table_names() if n.lower().startswith(self.prefix))
        with self.engine.connect() as conn:
            counts = {n: conn.exec_driver_sql(f"SELECT count(*) FROM {n}").scalar() for n in names}
        columns = {n: [c["name"] for c in inspector.get_columns(n)] for n in names}
        return {"tables": names, "counts": counts, "columns": columns}

    def fill(self, query: str) -> str:
        upper = {f"{k.upper()}": v.name.upper() for k, v in self.tables.items()}
        quoted = {f"q_{k}": QUOTE[self.backend].format(v.name) for k, v in self.tables.items()}
        return query.format(**{k: v.name for k, v in self.tables.items()}, **upper, **quoted,
                            schema=QUALIFIER[self.backend], prefix=self.prefix, markers=self.markers)


def _schema(prefix: str) -> dict[str, sa.Table]:
    md = sa.MetaData()
    secrets = sa.Table(f"{prefix}secrets", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                       sa.Column("token", sa.String(100)))
    customers = sa.Table(f"{prefix}customers", md,
                         sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                         sa.Column("name", sa.String(100), nullable=False), sa.Column("city", sa.String(100)),
                         # a key to the table that is not allow-listed: sql_schema must not name it
                         sa.Column("secret_id", sa.Integer, sa.ForeignKey(secrets.c.id)))
    products = sa.Table(f"{prefix}products", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                        sa.Column("title", sa.String(100)), sa.Column("price", sa.Numeric(10, 2)))
    orders = sa.Table(f"{prefix}orders", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                      sa.Column("customer_id", sa.Integer, sa.ForeignKey(customers.c.id), nullable=False),
                      sa.Column("product_id", sa.Integer, sa.ForeignKey(products.c.id), nullable=False),
                      sa.Column("quantity", sa.Integer, nullable=False))
    return {"secrets": secrets, "customers": customers, "products": products, "orders": orders}


CUSTOMERS = [{"id": 1, "name": "Ada Lovelace", "city": "London", "secret_id": 1},
             {"id": 2, "name": "Grace Hopper", "city": "New York", "secret_id": None},
             {"id": 3, "name": "Edsger Dijkstra", "city": "Nuenen", "secret_id": None},
             {"id": 4, "name": "Barbara Liskov", "city": "Boston", "secret_id": None}]
ORDERS = [{"id": i, "customer_id": 1 + i % 4, "product_id": 1 + i % 7, "quantity": 1 + i % 3} for i in range(1, 251)]


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    backend = request.param
    if backend in DRIVERS:
        need("sql", DRIVERS[backend])
    folder = tmp_path_factory.mktemp(f"sql-{backend}")
    if backend == "sqlite":
        path = folder / "shop.db"
        sqlite3.connect(path).close()
        url = f"sqlite:///{path}"
    else:
        url = SERVERS[backend]
    engine = sa.create_engine(url)
    try:
        engine.connect().close()
    except sa.exc.OperationalError as e:
        pytest.skip(f"no {backend} server at {url}: {str(e.orig).strip()[:200]}")
    prefix = f"fd_sqlt_{uuid.uuid4().hex[:8]}_"
    tables = _schema(prefix)
    metadata = next(iter(tables.values())).metadata
    markers = Path("/tmp") / f"{prefix}markers"  # where a server-side write would land: it must stay empty
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(tables["secrets"].insert(), [{"id": 1, "token": SECRET}])
            conn.execute(tables["customers"].insert(), CUSTOMERS)
            products = [{"id": i, "title": f"Widget {i}", "price": Decimal(f"{i}.50")} for i in range(1, PRODUCTS + 1)]
            conn.execute(tables["products"].insert(), products)
            conn.execute(tables["orders"].insert(), ORDERS)
        yield Demo(backend, url, engine, prefix, markers, tables)
    finally:
        metadata.drop_all(engine, checkfirst=True)
        with engine.connect() as conn:  # whatever an attack might have created, under the run's prefix
            for name in sa.inspect(conn).get_table_names():
                if name.lower().startswith(prefix):
                    conn.exec_driver_sql(f"DROP TABLE {name}")
            conn.commit()
        engine.dispose()


@pytest.fixture
def query_tool(demo: Demo) -> Iterator[SqlQueryTool]:
    schema, query = sql_tools(demo.config())
    yield query
    query.database.close()


@pytest.fixture
def schema_tool(demo: Demo) -> Iterator[SqlSchemaTool]:
    schema, query = sql_tools(demo.config())
    yield schema
    schema.database.close()


# --- the tool contract, per backend -----------------------------------------------------------------------


@pytest.mark.integration
class TestSqlQueryToolContract(ToolContract):
    @pytest.fixture
    def tool(self, query_tool: SqlQueryTool) -> SqlQueryTool:
        return query_tool

    @pytest.fixture
    def good_arguments(self, demo: Demo) -> dict[str, Any]:
        return {"query": demo.fill("SELECT name, city FROM {customers} ORDER BY id")}

    @pytest.fixture
    def bad_arguments(self, demo: Demo) -> list[Any]:
        return [{}, {"query": 5}, {"query": ""}, {"query": "SELECT 1", "limit": 3}, {"sql": "SELECT 1"},
                {"query": demo.fill("SELECT * FROM {secrets}")}, {"query": demo.fill("DROP TABLE {orders}")},
                {"query": demo.fill("SELECT no_such_column FROM {customers}")}]


@pytest.mark.integration
class TestSqlSchemaToolContract(ToolContract):
    @pytest.fixture
    def tool(self, schema_tool: SqlSchemaTool) -> SqlSchemaTool:
        return schema_tool

    @pytest.fixture
    def good_arguments(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def bad_arguments(self, demo: Demo) -> list[Any]:
        return [{"tables": [demo.name("secrets")]}, {"tables": "customers"}, {"tables": []}, {"tables": [3]},
                {"table": [demo.name("customers")]}]


# --- what an allowed query gives ------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_join_with_an_aggregate_gives_the_rows_a_table_and_its_sources(demo: Demo, query_tool: SqlQueryTool) -> None:
    result = query_tool.call({"query": demo.fill(
        "SELECT c.name, SUM(o.quantity) AS items FROM {customers} c JOIN {orders} o ON o.customer_id = c.id "
        "WHERE c.city LIKE '%o%' GROUP BY c.name ORDER BY c.name")})
    assert result.ok, result.error
    expected: dict[str, int] = {}
    for order in ORDERS:
        customer = CUSTOMERS[order["customer_id"] - 1]
        if "o" in customer["city"]:
            expected[customer["name"]] = expected.get(customer["name"], 0) + order["quantity"]
    assert result.data["columns"] == ["name", "items"]
    assert [[name, int(items)] for name, items in result.data["rows"]] == sorted(map(list, expected.items()))
    assert result.data["truncated"] is False
    assert result.sources == [{"id": f"sql:{demo.name('customers')}", "table": demo.name("customers")},
                              {"id": f"sql:{demo.name('orders')}", "table": demo.name("orders")}]
    lines = result.content.splitlines()
    assert lines[0] == "name | items" and lines[1].startswith("Ada Lovelace | ")
    assert lines[-1] == f"({len(expected)} rows)"
    json.dumps(result.to_dict())


@pytest.mark.integration
def test_ctes_unions_and_a_recursive_cte_over_allowed_tables_run(demo: Demo, query_tool: SqlQueryTool) -> None:
    union = query_tool.call({"query": demo.fill(
        "WITH big AS (SELECT customer_id FROM {orders} WHERE quantity = 3) "
        "SELECT name FROM {customers} WHERE id IN (SELECT customer_id FROM big) "
        "UNION SELECT title FROM {products} WHERE id = 1 ORDER BY 1")})
    assert union.ok, union.error
    assert [r[0] for r in union.data["rows"]] == sorted([c["name"] for c in CUSTOMERS] + ["Widget 1"])
    counting = query_tool.call({"query": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
                                         "SELECT SUM(n) AS total FROM r"})
    assert counting.ok, counting.error
    assert int(counting.data["rows"][0][0]) == 15 and counting.sources == []


@pytest.mark.integration
def test_rows_are_capped_at_max_rows_and_the_model_is_told(demo: Demo) -> None:
    schema, tool = sql_tools(demo.config(max_rows=5))
    try:
        capped = tool.call({"query": demo.fill("SELECT id, quantity FROM {orders} ORDER BY id")})
        assert capped.ok, capped.error
        assert [r[0] for r in capped.data["rows"]] == [1, 2, 3, 4, 5]
        assert capped.data["truncated"] is True
        assert "LIMIT 6" in capped.data["sql"]  # never more than max_rows + 1 rows leave the server
        assert capped.content.splitlines()[-1].startswith("(first 5 rows; the query returns more")
        # a smaller LIMIT of the model's own is kept; a larger one is lowered
        small = tool.call({"query": demo.fill("SELECT id FROM {orders} ORDER BY id LIMIT 3")})
        assert [r[0] for r in small.data["rows"]] == [1, 2, 3] and small.data["truncated"] is False
        large = tool.call({"query": demo.fill("SELECT id FROM {orders} ORDER BY id LIMIT 100000")})
        assert len(large.data["rows"]) == 5 and large.data["truncated"] is True and "LIMIT 6" in large.data["sql"]
    finally:
        tool.database.close()


@pytest.mark.integration
def test_the_text_the_model_reads_is_cut_at_max_chars(demo: Demo) -> None:
    schema, tool = sql_tools(demo.config(max_chars=400))
    try:
        result = tool.call({"query": demo.fill("SELECT o.id, c.name, c.city FROM {orders} o "
                                               "JOIN {customers} c ON c.id = o.customer_id ORDER BY o.id")})
        assert result.ok, result.error
        assert len(result.content) <= 400
        assert len(result.data["rows"]) == 200 and result.data["truncated"] is True
        assert "(cut at 400 characters:" in result.content and "of 200 rows shown" in result.content
    finally:
        tool.database.close()


# --- the attack list ---------------------------------------------------------------------------------------------

# (id, statement, backends it is run on: None for all three; the few others are no attack in another dialect, where
# they read as a comment or a column name). Each must be refused by the checks, before the database sees it, with
# nothing changed.
ATTACKS: list[tuple[str, str, tuple[str, ...] | None]] = [
    # several statements, writes, schema changes
    ("stacked-drop", "SELECT 1; DROP TABLE {customers}", None),
    ("stacked-delete-after-select", "SELECT * FROM {customers}; DELETE FROM {orders}", None),
    ("stacked-after-comment", "SELECT 1 /* harmless */ ; DELETE FROM {orders} -- bye", None),
    ("drop", "DROP TABLE {customers}", None),
    ("delete", "DELETE FROM {orders}", None),
    ("update", "UPDATE {customers} SET name = 'pwned'", None),
    ("insert", "INSERT INTO {customers} (id, name) VALUES (99, 'pwned')", None),
    ("insert-select", "INSERT INTO {customers} (id, name) SELECT id + 100, token FROM {secrets}", None),
    ("create", "CREATE TABLE {prefix}pwned (id INT)", None),
    ("create-as", "CREATE TABLE {prefix}pwned AS SELECT * FROM {customers}", None),
    ("alter", "ALTER TABLE {customers} ADD COLUMN pwned INT", None),
    ("truncate", "TRUNCATE TABLE {orders}", None),
    ("grant", "GRANT SELECT ON {secrets} TO PUBLIC", None),
    ("merge", "MERGE INTO {customers} c USING {orders} o ON c.id = o.id WHEN MATCHED THEN DELETE", None),
    ("delete-in-cte", "WITH d AS (DELETE FROM {orders} RETURNING *) SELECT * FROM d", None),
    ("select-into-table", "SELECT * INTO {prefix}copy FROM {customers}", None),
    ("explain-analyze-delete", "EXPLAIN ANALYZE DELETE FROM {orders}", None),
    ("do-block", "DO $$ BEGIN DELETE FROM {orders}; END $$", None),
    ("prepare", "PREPARE p AS DELETE FROM {orders}", None),
    ("set-timeout-off", "SET statement_timeout = 0", None),
    ("set-session", "SET SESSION max_statement_time = 0", None),
    ("pragma", "PRAGMA writable_schema = 1", None),
    ("attach", "ATTACH DATABASE '{markers}.db' AS pwned", None),
    # files and programs on the server
    ("copy-to-program", "COPY (SELECT 1) TO PROGRAM 'touch {markers}'", None),
    ("copy-from-program", "COPY {customers} FROM PROGRAM 'id'", None),
    ("copy-to-file", "COPY {secrets} TO '{markers}'", None),
    ("pg-read-file", "SELECT pg_read_file('/etc/passwd')", None),
    ("pg-read-binary-file", "SELECT pg_read_binary_file('/etc/passwd')", None),
    ("pg-ls-dir", "SELECT * FROM pg_ls_dir('.')", None),
    ("lo-import", "SELECT lo_import('/etc/passwd')", None),
    ("load-file", "SELECT LOAD_FILE('/etc/passwd')", None),
    ("load-extension", "SELECT load_extension('/tmp/nothing')", None),
    ("into-outfile", "SELECT * FROM {secrets} INTO OUTFILE '{markers}'", None),
    ("into-dumpfile", "SELECT token FROM {secrets} INTO DUMPFILE '{markers}'", None),
    ("dblink", "SELECT * FROM dblink('dbname=test', 'DELETE FROM {orders}') AS t(x text)", None),
    # the table that is not allow-listed, by every road
    ("secrets-direct", "SELECT * FROM {secrets}", None),
    ("secrets-subquery", "SELECT * FROM {customers} WHERE secret_id IN (SELECT id FROM {secrets})", None),
    ("secrets-scalar-subquery", "SELECT (SELECT token FROM {secrets} LIMIT 1) AS t", None),
    ("secrets-exists", "SELECT name FROM {customers} WHERE EXISTS (SELECT 1 FROM {secrets} WHERE token LIKE 'T%')",
     None),
    ("secrets-cte", "WITH s AS (SELECT * FROM {secrets}) SELECT * FROM s", None),
    ("secrets-cte-named-like-allowed", "WITH {customers} AS (SELECT * FROM {secrets}) SELECT * FROM {customers}", None),
    ("secrets-union", "SELECT name FROM {customers} UNION SELECT token FROM {secrets}", None),
    ("secrets-join", "SELECT c.name, s.token FROM {customers} c JOIN {secrets} s ON s.id = c.secret_id", None),
    ("secrets-lateral", "SELECT c.name, x.token FROM {customers} c CROSS JOIN LATERAL "
                        "(SELECT token FROM {secrets} s WHERE s.id = c.secret_id) x", None),
    ("secrets-schema-qualified", "SELECT * FROM {schema}.{secrets}", None),
    ("secrets-quoted", "SELECT * FROM {q_secrets}", None),
    ("secrets-upper-case", "SELECT * FROM {SECRETS}", None),
    ("secrets-cte-out-of-scope", "SELECT * FROM (WITH {secrets} AS (SELECT 1 AS id) SELECT id FROM {secrets}) q, "
                                 "{secrets}", None),
    ("secrets-derived-alias", "SELECT * FROM (SELECT 1 AS id) AS {secrets}, {secrets}", None),
    ("secrets-self-cte", "WITH {secrets} AS (SELECT * FROM {secrets}) SELECT * FROM {secrets}", None),
    ("secrets-table-statement", "TABLE {secrets}", None),
    ("secrets-query-to-xml", "SELECT query_to_xml('SELECT * FROM {secrets}', true, true, '')", None),
    ("secrets-ts-stat", "SELECT * FROM ts_stat('SELECT to_tsvector(token) FROM {secrets}')", None),
    ("secrets-pragma-function", "SELECT * FROM pragma_table_info('{secrets}')", None),
    # system catalogs
    ("information-schema", "SELECT table_name FROM information_schema.tables", None),
    ("pg-catalog", "SELECT * FROM pg_catalog.pg_tables", None),
    ("pg-shadow", "SELECT usename, passwd FROM pg_shadow", None),
    ("mysql-user", "SELECT user, password FROM mysql.user", None),
    ("performance-schema", "SELECT * FROM performance_schema.threads", None),
    ("sqlite-master", "SELECT sql FROM sqlite_master", None),
    # sleeping, hogging, locking
    ("pg-sleep", "SELECT pg_sleep(10)", None),
    ("sleep", "SELECT SLEEP(10)", None),
    ("sleep-in-where", "SELECT * FROM {customers} WHERE SLEEP(10) = 0", None),
    ("benchmark", "SELECT BENCHMARK(100000000, MD5('x'))", None),
    ("get-lock", "SELECT GET_LOCK('fd', 10)", None),
    ("for-update", "SELECT * FROM {customers} FOR UPDATE", None),
    ("for-share", "SELECT * FROM {customers} FOR SHARE", None),
    ("lock-in-share-mode", "SELECT * FROM {customers} LOCK IN SHARE MODE", None),
    # settings and state
    ("set-config", "SELECT set_config('statement_timeout', '0', false)", None),
    ("current-setting", "SELECT current_setting('data_directory')", None),
    ("nextval", "SELECT nextval('fd_seq')", None),
    ("session-variable", "SELECT @@secure_file_priv", ("mariadb",)),
    ("user-variable", "SELECT @x := 1", None),
    ("hint-set-var", "SELECT /*+ SET_VAR(max_statement_time=0) */ * FROM {customers}", ("mariadb",)),
    ("bind-parameter", "SELECT * FROM {customers} WHERE id = $1", ("postgresql",)),
    ("qualified-function", "SELECT pg_catalog.pg_read_file('/etc/passwd')", None),
    # comments that hide SQL
    ("executable-comment-drop", "/*!50000 DROP TABLE {customers} */", None),
    ("executable-comment-union", "SELECT name FROM {customers} /*!50000 UNION SELECT token FROM {secrets} */", None),
    ("mariadb-executable-comment", "SELECT 1 /*M!100000 , (SELECT token FROM {secrets}) */", None),
    ("comment-then-stacked", "SELECT 1 -- comment\n; DROP TABLE {customers}", None),
    # what cannot be parsed, or is no SELECT at all
    ("procedure-analyse", "SELECT * FROM {customers} PROCEDURE ANALYSE()", None),
    ("garbage", "SELEC * FRM {customers}", None),
    ("show", "SHOW TABLES", None),
    ("call", "CALL fd_proc()", None),
    ("nul-byte", "SELECT 1\x00; DROP TABLE {customers}", None),
]
_ATTACK_PARAMS = [pytest.param(query, backends, id=name) for name, query, backends in ATTACKS]


def _no_secret_or_file(result: ToolResult) -> None:
    text = json.dumps(result.to_dict(), default=str)
    assert SECRET not in text and "root:x:0:0" not in text


@pytest.mark.integration
@pytest.mark.parametrize(("attack", "backends"), _ATTACK_PARAMS)
def test_an_attack_is_refused_before_the_database_and_nothing_changes(demo: Demo, query_tool: SqlQueryTool,
                                                                      attack: str, backends: tuple[str, ...] | None
                                                                      ) -> None:
    if backends is not None and demo.backend not in backends:
        pytest.skip(f"no attack in {demo.backend}'s dialect")
    before = demo.snapshot()
    started = time.monotonic()
    result = query_tool.call({"query": demo.fill(attack)})
    elapsed = time.monotonic() - started
    assert not result.ok and result.content.startswith("error:"), result.content
    assert not result.error.startswith("the database refused"), f"reached the database: {result.error}"
    assert elapsed < 3, f"a refusal took {elapsed:.1f} s"  # sleeping and hogging statements never ran
    _no_secret_or_file(result)
    assert demo.snapshot() == before
    assert not demo.markers.exists() and not Path(f"{demo.markers}.db").exists()


@pytest.mark.unit
def test_the_attack_list_is_long_enough() -> None:
    assert len(ATTACKS) >= 30 and len({name for name, _, _ in ATTACKS}) == len(ATTACKS)


@pytest.mark.integration
def test_a_comment_hides_nothing_the_rendered_statement_is_what_runs(demo: Demo, query_tool: SqlQueryTool) -> None:
    before = demo.snapshot()
    result = query_tool.call({"query": demo.fill("SELECT 1 AS one -- ;DROP TABLE {customers}")})
    assert result.ok, result.error
    assert result.data["rows"] == [[1]] and "DROP" not in result.data["sql"] and "--" not in result.data["sql"]
    assert demo.snapshot() == before


@pytest.mark.integration
def test_the_session_itself_is_read_only_behind_the_checks(demo: Demo) -> None:
    database = SqlDatabase(demo.config())
    try:
        with database.session() as conn:
            # reach past the checks on purpose: the read-only transaction refuses the write itself
            with pytest.raises(QueryRefused, match=r"(?i)the database refused the query: .*read.only|readonly"):
                database.execute(conn, demo.fill("DELETE FROM {orders}"), 10)
        assert demo.snapshot()["counts"][demo.name("orders")] == len(ORDERS)
    finally:
        database.close()


@pytest.mark.integration
def test_an_allowed_but_slow_query_is_stopped_by_the_statement_timeout(demo: Demo) -> None:
    schema, tool = sql_tools(demo.config(timeout_s=1))
    try:
        started = time.monotonic()
        result = tool.call({"query": demo.fill("SELECT COUNT(*) FROM {products} a, {products} b, {products} c, "
                                               "{products} d WHERE a.price + b.price + c.price + d.price > 0")})
        elapsed = time.monotonic() - started
        assert not result.ok, result.content
        assert "ran past the 1 s statement timeout" in result.error
        assert elapsed < 8, f"stopped only after {elapsed:.1f} s"
        # the connection is sound afterwards
        after = tool.call({"query": demo.fill("SELECT COUNT(*) AS n FROM {customers}")})
        assert after.ok and after.data["rows"] == [[len(CUSTOMERS)]]
    finally:
        tool.database.close()


@pytest.mark.integration
def test_an_error_of_the_database_is_a_refusal_with_its_message(demo: Demo, query_tool: SqlQueryTool) -> None:
    result = query_tool.call({"query": demo.fill("SELECT no_such_column FROM {customers}")})
    assert not result.ok and result.error.startswith("the database refused the query: ")
    assert "no_such_column" in result.error and len(result.error) < 600
    assert result.data["sql"].startswith("SELECT no_such_column")


# --- sql_schema -----------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_schema_shows_allowed_tables_keys_and_samples_and_never_the_secrets(demo: Demo,
                                                                               schema_tool: SqlSchemaTool) -> None:
    result = schema_tool.call({})
    assert result.ok, result.error
    tables = {t["name"]: t for t in result.data["tables"]}
    assert list(tables) == demo.allowed
    orders = tables[demo.name("orders")]
    assert [c["name"] for c in orders["columns"]] == ["id", "customer_id", "product_id", "quantity"]
    assert orders["primary_key"] == ["id"]
    assert {fk["references"] for fk in orders["foreign_keys"]} == {demo.name("customers"), demo.name("products")}
    assert orders["sample"]["columns"] == ["id", "customer_id", "product_id", "quantity"]
    assert len(orders["sample"]["rows"]) == 3
    customers = tables[demo.name("customers")]
    assert customers["foreign_keys"] == []  # its key to the secrets table is not shown
    assert next(c for c in customers["columns"] if c["name"] == "name")["nullable"] is False
    text = json.dumps(result.to_dict(), default=str)
    assert demo.name("secrets") not in text and SECRET not in text
    assert f"table {demo.name('orders')}\n  id " in result.content
    assert f"foreign key (customer_id) references {demo.name('customers')} (id)" in result.content
    assert "sample rows:" in result.content
    assert [s["table"] for s in result.sources] == demo.allowed
    one = schema_tool.call({"tables": [demo.name("products")]})
    assert [t["name"] for t in one.data["tables"]] == [demo.name("products")]


@pytest.mark.integration
def test_a_listed_table_that_does_not_exist_is_said_so(demo: Demo) -> None:
    schema, _ = sql_tools(SqlToolConfig(url=demo.url, tables=[demo.name("customers"), f"{demo.prefix}missing"]))
    try:
        result = schema.call({})
        assert result.ok, result.error
        assert f"table {demo.prefix}missing: not found in the database" in result.content
        assert [s["table"] for s in result.sources] == [demo.name("customers")]
    finally:
        schema.database.close()


# --- outages --------------------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:1/test",
                                 "mysql+pymysql://root@127.0.0.1:1/test"])
def test_a_database_that_is_down_raises_an_outage(url: str) -> None:
    need("sql", DRIVERS["postgresql" if url.startswith("postgresql") else "mariadb"])
    schema, tool = sql_tools({"url": url, "tables": ["customers"], "connect_timeout": 2})
    with pytest.raises(SqlConnectionError, match="cannot connect to 127.0.0.1:1"):
        tool.call({"query": "SELECT * FROM customers"})
    with pytest.raises(SqlConnectionError):
        schema.call({})
    # a refused statement never needs the database
    assert not tool.call({"query": "DROP TABLE customers"}).ok


@pytest.mark.integration
def test_a_missing_sqlite_file_is_an_outage_and_is_not_created(tmp_path: Path) -> None:
    _, tool = sql_tools({"url": f"sqlite:///{tmp_path}/nope.db", "tables": ["customers"]})
    with pytest.raises(SqlConnectionError, match="cannot connect to SQLite database"):
        tool.call({"query": "SELECT * FROM customers"})
    assert not (tmp_path / "nope.db").exists()  # opened read-only: never created


# --- config and checker, no database --------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(("settings", "expected"), [
    ({"tables": []}, "name at least one table"),
    ({"tables": "customers"}, "a list of table names"),
    ({"tables": ["customers", "customers"]}, "listed twice"),
    ({"tables": [" "]}, "is empty"),
    ({"url": "mssql+pyodbc://u@h/db"}, "support PostgreSQL, MySQL/MariaDB and SQLite"),
    ({"url": "not a url"}, "not a SQLAlchemy URL"),
    ({"max_rows": 0}, "greater than or equal to 1"),
    ({"timeout_s": 0}, "greater than 0"),
    ({"allow_functions": ["pg_read_file"]}, "cannot be allowed: it reads or writes files"),
    ({"allow_functions": ["x); DROP"]}, "not a function name"),
    ({"table": ["customers"]}, "Extra inputs are not permitted"),
])
def test_config_mistakes_say_what_to_do(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        SqlToolConfig(**{"url": "postgresql+psycopg://u:pa55word@db/shop", "tables": ["customers"], **settings})


@pytest.mark.unit
def test_the_config_never_shows_the_password() -> None:
    config = SqlToolConfig(url="postgresql+psycopg://agent:pa55word@db/shop", tables=["customers"])
    assert "pa55word" not in repr(config) and "***" in repr(config)
    with pytest.raises(ValidationError) as err:
        SqlToolConfig(url="postgresql+psycopg://agent:pa55word@db/shop", tables=[])
    assert "pa55word" not in str(err.value)


@pytest.mark.unit
def test_an_allow_list_entry_that_is_no_table_name_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="not a table name"):
        SqlDatabase(SqlToolConfig(url="sqlite://", tables=["shop.public.customers"]))
    with pytest.raises(ToolError, match="name the same table"):
        SqlDatabase(SqlToolConfig(url="postgresql+psycopg://u@h/db", tables=["customers", "CUSTOMERS"]))


@pytest.mark.unit
@pytest.mark.parametrize(("dialect", "query", "tables"), [
    # names compared as the database compares them
    ("postgres", "SELECT * FROM CUSTOMERS", ("customers",)),
    ("sqlite", 'SELECT * FROM "CUSTOMERS"', ("customers",)),
    ("postgres", "SELECT * FROM sales.orders", ("sales.orders",)),
    ("postgres", "SELECT * FROM SALES.ORDERS o JOIN customers c ON c.id = o.customer_id",
     ("sales.orders", "customers")),
    # CTE names are no tables, where they are visible
    ("postgres", "WITH customers AS (SELECT 1 AS id) SELECT * FROM customers", ()),
    ("mysql", "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b", ()),
    ("postgres", "SELECT * FROM customers c WHERE EXISTS (WITH x AS (SELECT 1) SELECT * FROM x)", ("customers",)),
    # table functions and standard functions
    ("postgres", "SELECT n, date_trunc('month', now()) FROM generate_series(1, 3) AS g(n)", ()),
    ("mysql", "SELECT IFNULL(name, '-'), DATE_FORMAT(NOW(), '%Y') FROM customers", ("customers",)),
    ("sqlite", "SELECT strftime('%Y', 'now'), julianday('now'), printf('%d', 1)", ()),
    ("postgres", "SELECT age(now()) FROM customers", ("customers",)),  # unknown to sqlglot, on the harmless list
    ("sqlite", "SELECT sqlite_version()", ()),
])
def test_allowed_statements_pass_and_name_the_tables_they_read(dialect: str, query: str,
                                                                tables: tuple[str, ...]) -> None:
    allowed = parse_allow_list(["customers", "sales.orders"], dialect)
    assert check_query(query, dialect, allowed).tables == tables


@pytest.mark.unit
@pytest.mark.parametrize(("dialect", "query", "expected"), [
    ("postgres", "SELECT * FROM orders", "the table orders is not one the tool may read (write it as listed: "
                                         "sales.orders)"),
    ("postgres", 'SELECT * FROM "Customers"', 'the table Customers is not one the tool may read'),
    ("mysql", "SELECT * FROM CUSTOMERS", "the table CUSTOMERS is not one the tool may read"),
    ("postgres", "WITH Customers AS (SELECT 1) SELECT * FROM secrets", "the table secrets"),
    ("mysql", "SELECT age(now()) FROM customers", "the function age() is not allowed"),
    ("postgres", "SELECT my_udf(id) FROM customers", "the function my_udf() is not allowed"),
    ("postgres", 'SELECT "pg_read_file"(\'/etc/passwd\')', "is refused"),
    ("postgres", "SELECT PG_SLEEP(1)", "the function PG_SLEEP() is refused: it sleeps or holds locks"),
    ("sqlite", "SELECT * FROM pragma_table_info('customers')", "pragma_table_info() is refused"),
    ("postgres", "SELECT * FROM generate_series(1, 3) AS lo_x(n)", "lo_x() is refused"),  # the rendered text
    ("postgres", "(" * 3000 + "SELECT 1" + ")" * 3000, "nested too deeply"),
    ("postgres", "SELECT " + "1 + " * 6000 + "1", "characters long"),
])
def test_refusals_say_why(dialect: str, query: str, expected: str) -> None:
    allowed = parse_allow_list(["customers", "sales.orders"], dialect)
    with pytest.raises(QueryRefused, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_query(query, dialect, allowed)


@pytest.mark.unit
@pytest.mark.parametrize(("query", "rendered"), [
    ("SELECT * FROM customers", "SELECT * FROM customers LIMIT 11"),
    ("SELECT * FROM customers LIMIT ALL", "SELECT * FROM customers LIMIT 11"),
    ("SELECT * FROM customers LIMIT 500 OFFSET 10", "SELECT * FROM customers LIMIT 11 OFFSET 10"),
    ("SELECT * FROM customers LIMIT 3", "SELECT * FROM customers LIMIT 3"),
    ("SELECT id FROM customers UNION SELECT 1 ORDER BY 1",
     "SELECT id FROM customers UNION SELECT 1 ORDER BY 1 LIMIT 11"),
    ("SELECT * FROM customers FETCH FIRST 50 ROWS ONLY", "SELECT * FROM customers FETCH FIRST 50 ROWS ONLY"),
])
def test_the_row_limit_is_added_or_lowered_never_raised(query: str, rendered: str) -> None:
    allowed = parse_allow_list(["customers"], "postgres")
    assert check_query(query, "postgres", allowed, row_limit=11).sql == rendered


@pytest.mark.unit
def test_an_operator_may_allow_a_function_sqlglot_does_not_know() -> None:
    allowed = parse_allow_list(["customers"], "postgres")
    with pytest.raises(QueryRefused):
        check_query("SELECT my_udf(id) FROM customers", "postgres", allowed)
    assert check_query("SELECT my_udf(id) FROM customers", "postgres", allowed, ["my_udf"]).tables == ("customers",)


@pytest.mark.unit
def test_a_missing_driver_names_the_extra() -> None:
    if not missing("psycopg2"):
        pytest.skip("psycopg2 is installed here")
    _, tool = sql_tools({"url": "postgresql+psycopg2://u@127.0.0.1:5432/test", "tables": ["customers"]})
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[sql\]'.*psycopg2"):
        tool.call({"query": "SELECT * FROM customers"})
