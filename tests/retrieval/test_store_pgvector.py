"""pgvector on a real PostgreSQL server: the store contract (exact, HNSW, IVFFlat), SQL injection attempts,
index settings, errors for people, and a project run end to end.

The server: ``FLIGHTDECK_TEST_PGVECTOR_URL`` when set; else the local PostgreSQL (127.0.0.1:5432, db ``test``)
when it offers the ``vector`` extension; else a throwaway PostgreSQL 16 with pgvector started from the
``pgserver`` package (Debian bookworm has no postgresql-15-pgvector package). The module is skipped only
when none of these can be had.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from flightdeck import Project
from flightdeck.errors import IndexMismatchError, MissingDependencyError
from flightdeck.registry import Category, registry
from flightdeck.retrieval.filters import Condition, FilterError, matches, parse_filter
from flightdeck.retrieval.stores.base import StoreLocation, VectorStore
from flightdeck.retrieval.stores.pgvector import PgvectorConfig, PgvectorError, PgvectorStore, libpq_url
from flightdeck.testing.store_contract import SIZE, VectorStoreContract, contract_collection

psycopg = pytest.importorskip("psycopg")
sql = pytest.importorskip("psycopg.sql")

pytestmark = pytest.mark.integration

LOCAL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _vector_available(url: str) -> str | None:
    """None when ``url`` reaches a server offering pgvector, else why not."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    except psycopg.Error as exc:
        return f"cannot connect ({str(exc).strip()[:200]})"
    return None if row else "the server has no pgvector extension"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    explicit = os.environ.get("FLIGHTDECK_TEST_PGVECTOR_URL")
    if explicit:
        problem = _vector_available(explicit)
        if problem:
            pytest.skip(f"FLIGHTDECK_TEST_PGVECTOR_URL: {problem}")
        yield explicit
        return
    local_problem = _vector_available(LOCAL_URL)
    if local_problem is None:
        yield LOCAL_URL
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
            import pgserver
    except ImportError:
        pytest.skip(f"no PostgreSQL with pgvector: {LOCAL_URL}: {local_problem}, and the pgserver package (in the "
                    "dev extra) is not installed; set FLIGHTDECK_TEST_PGVECTOR_URL to a server with pgvector")
    folder = Path(tempfile.mkdtemp(prefix="flightdeck-pgvector-"))
    try:
        server = pgserver.get_server(folder, cleanup_mode="delete")
    except Exception as exc:  # noqa: BLE001 - any failure to start means no server for this module
        pytest.skip(f"no PostgreSQL with pgvector: {LOCAL_URL}: {local_problem}; pgserver failed to start one in "
                    f"{folder}: {exc}")
    try:
        yield libpq_url(server.get_uri()).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


def _location(dim: int = 16) -> StoreLocation:
    return StoreLocation(Path(tempfile.gettempdir()) / "unused", f"fd_pgv_{uuid.uuid4().hex[:12]}", dim)


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(libpq_url(url), autocommit=True)


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def opened(pg_url: str) -> Iterator[Callable[..., PgvectorStore]]:
    """Open stores with settings; every one is dropped and closed afterwards."""
    made: list[PgvectorStore] = []

    def make(location: StoreLocation | None = None, **settings: Any) -> PgvectorStore:
        store = PgvectorStore(PgvectorConfig(url=pg_url, **settings))
        store.open(location or _location())
        made.append(store)
        return store

    yield make
    for store in made:
        try:
            store.drop()
        finally:
            store.close()


# --- the contract, in each index mode ----------------------------------------------------------------------
class TestPgvectorExact(VectorStoreContract):
    @pytest.fixture
    def make_store(self, pg_url: str) -> Callable[[], VectorStore]:
        return lambda: PgvectorStore(PgvectorConfig(url=pg_url, index="none"))


class TestPgvectorHnsw(VectorStoreContract):
    # ef_search above the collection size makes HNSW exhaustive on the 60 contract vectors;
    # exact_filter_below=0 sends filtered searches through the index (and its fallback when it comes back short)
    @pytest.fixture
    def make_store(self, pg_url: str) -> Callable[[], VectorStore]:
        return lambda: PgvectorStore(PgvectorConfig(url=pg_url, index="hnsw", hnsw_ef_search=100,
                                                    exact_filter_below=0))


class TestPgvectorIvfflat(VectorStoreContract):
    # probes == lists visits every list, so IVFFlat is exact here
    @pytest.fixture
    def make_store(self, pg_url: str) -> Callable[[], VectorStore]:
        return lambda: PgvectorStore(PgvectorConfig(url=pg_url, index="ivfflat", ivf_lists=4, ivf_probes=4,
                                                    exact_filter_below=0))


# --- SQL injection -----------------------------------------------------------------------------------------
EVIL = [
    "x'); DROP TABLE {table}; --",
    "O'Brien",
    "\"; DELETE FROM {table}; --",
    "' OR '1'='1",
    "$$; DROP TABLE {table}; $$",
    "\\'; select pg_sleep(5); --",
]


def test_injection_attempts_in_filter_values_are_plain_values(opened: Callable[..., PgvectorStore]) -> None:
    store = opened()
    ids, vectors, payloads = contract_collection()
    table = store.table
    evil = [e.format(table=table) for e in EVIL]
    extra_ids = [f"evil-{i}" for i in range(len(evil))]
    store.upsert(ids + extra_ids, np.vstack([vectors, _unit(len(evil), 16, seed=4)]),
                 payloads + [{"kind": e, "title": e} for e in evil])
    for i, value in enumerate(evil):
        got = store.search(vectors[0], 100, parse_filter({"kind": value}))
        assert [cid for cid, _ in got] == [extra_ids[i]], value
        got = store.search(vectors[0], 100, parse_filter({"title": {"$in": [value, "no such title"]}}))
        assert [cid for cid, _ in got] == [extra_ids[i]], value
    assert len(store) == SIZE + len(evil)  # nothing was dropped or deleted
    # an always-true condition spelt as a value matches nothing, as the reference semantics say
    assert store.search(vectors[0], 100, parse_filter({"kind": "' OR 1=1 --"})) == []


def test_injection_attempts_in_filter_keys_are_refused_or_harmless(opened: Callable[..., PgvectorStore]) -> None:
    store = opened()
    ids, vectors, payloads = contract_collection()
    store.upsert(ids, vectors, payloads)
    for key in ["kind') OR true --", "kind\" = 'faq' OR \"1", "a; DROP TABLE x", "kind'--", "$where"]:
        with pytest.raises(FilterError):
            parse_filter({key: "faq"})
    # a tree built by hand, around parse_filter: the key is a bound parameter too, so it names no field
    for key in [f"kind') OR true; DROP TABLE {store.table}; --", "kind' OR 'a'='a"]:
        for condition in (Condition(key, "$eq", "faq"), Condition(key, "$gte", 0.0),
                          Condition(key, "$in", ("faq", "guide"))):
            assert store.search(vectors[0], 100, condition) == []
    assert len(store) == SIZE
    # and the real key still works
    f = parse_filter({"kind": "faq"})
    assert {cid for cid, _ in store.search(vectors[0], 100, f)} == {ids[i] for i, p in enumerate(payloads)
                                                                   if matches(f, p)}


def test_typed_equality_and_ranges_on_mixed_types(opened: Callable[..., PgvectorStore]) -> None:
    # the same key holding a number, a numeric string, a boolean and nothing
    store = opened(index="none")
    payloads = [{"v": 1.0}, {"v": "1"}, {"v": True}, {"v": "abc"}, {}, {"v": 2.5}, {"v": False}, {"v": 0.0}]
    ids = [f"r{i}" for i in range(len(payloads))]
    store.upsert(ids, _unit(len(ids), 16, seed=2), payloads)
    q = _unit(1, 16, seed=3)[0]
    for raw in [{"v": 1}, {"v": "1"}, {"v": True}, {"v": False}, {"v": 0}, {"v": {"$gte": 1}},
                {"v": {"$lt": 3}}, {"v": {"$in": [True, 2.5, "abc"]}}, {"v": {"$gt": -1, "$lte": 1}}]:
        f = parse_filter(raw)
        expected = {ids[i] for i, p in enumerate(payloads) if matches(f, p)}
        assert {cid for cid, _ in store.search(q, 100, f)} == expected, raw


# --- index modes ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_hnsw(pg_url: str) -> Iterator[tuple[PgvectorStore, list[str], np.ndarray, list[dict[str, Any]]]]:
    vectors = _unit(3000, 32, seed=5)
    ids = [f"c{i}" for i in range(3000)]
    payloads: list[dict[str, Any]] = [{"tenant": "rare" if i % 300 == 0 else "common"} for i in range(3000)]
    store = PgvectorStore(PgvectorConfig(url=pg_url, index="hnsw"))
    store.open(_location(32))
    try:
        for start in range(0, 3000, 512):
            store.upsert(ids[start:start + 512], vectors[start:start + 512], payloads[start:start + 512])
        store.flush()
        yield store, ids, vectors, payloads
    finally:
        store.drop()
        store.close()


def test_hnsw_index_serves_unfiltered_search_with_good_recall(big_hnsw: Any) -> None:
    store, ids, vectors, _ = big_hnsw
    plan = store.explain(vectors[0], 10)
    assert "_hnsw_idx" in plan, plan
    recalls = []
    for q in _unit(40, 32, seed=9):
        exact = set(np.argsort(-(vectors @ q))[:10].tolist())
        got = store.search(q, 10)
        assert len(got) == 10
        recalls.append(len(exact & {int(cid[1:]) for cid, _ in got}) / 10)
    assert np.mean(recalls) >= 0.9, np.mean(recalls)


def test_a_selective_filter_is_scored_exactly_and_returns_k_hits(big_hnsw: Any, pg_url: str) -> None:
    store, ids, vectors, payloads = big_hnsw
    f = parse_filter({"tenant": "rare"})
    rare = [i for i, p in enumerate(payloads) if p["tenant"] == "rare"]
    q = vectors[7]
    expected = [ids[rare[i]] for i in np.argsort(-(vectors[rare] @ q))[:5]]
    assert "_hnsw_idx" not in store.explain(q, 5, f)  # 10 matching rows < exact_filter_below
    assert [cid for cid, _ in store.search(q, 5, f)] == expected
    # through the index (exact_filter_below=0): HNSW post-filters its 40 candidates and finds too few of the
    # 10 rare rows, so the store reruns the search exactly rather than return fewer than k
    through_index = PgvectorStore(PgvectorConfig(url=pg_url, index="hnsw", exact_filter_below=0,
                                                 table=store.table.split(".")[1]))
    through_index.open(_location(32))
    try:
        assert "_hnsw_idx" in through_index.explain(q, 5, f)
        assert [cid for cid, _ in through_index.search(q, 5, f)] == expected
    finally:
        through_index.close()


def _indexes(url: str, table: str) -> dict[str, str]:
    with _connect(url) as conn:
        return {name: definition for name, definition in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname || '.' || tablename = %s", (table,))}


def test_ivfflat_is_built_at_the_first_flush_with_rows(opened: Callable[..., PgvectorStore], pg_url: str) -> None:
    store = opened(index="ivfflat")
    assert not any("ivfflat" in d for d in _indexes(pg_url, store.table).values())
    store.flush()  # no rows: nothing to cluster yet
    assert not any("ivfflat" in d for d in _indexes(pg_url, store.table).values())
    vectors = _unit(3000, 16, seed=1)
    for start in range(0, 3000, 1000):
        store.upsert([f"v{i}" for i in range(start, start + 1000)], vectors[start:start + 1000],
                     [{} for _ in range(1000)])
    store.flush()
    ivf = [d for d in _indexes(pg_url, store.table).values() if "ivfflat" in d]
    assert len(ivf) == 1 and "lists='3'" in ivf[0], ivf  # 3000 rows -> rows/1000 lists
    assert "_ivfflat_idx" in store.explain(vectors[0], 5)
    assert store.search(vectors[3], 1)[0][0] == "v3"


def test_index_settings_are_applied_to_an_existing_table(opened: Callable[..., PgvectorStore], pg_url: str) -> None:
    location = _location()
    first = opened(location, index="hnsw", hnsw_m=16)
    first.upsert(["a", "b"], _unit(2, 16, seed=1), [{}, {}])
    defs = _indexes(pg_url, first.table)
    assert any("hnsw" in d and "m='16'" in d for d in defs.values()), defs
    assert any("gin" in d and "jsonb_path_ops" in d for d in defs.values()), defs
    first.close()
    second = opened(location, index="hnsw", hnsw_m=8, hnsw_ef_construction=32)
    defs = _indexes(pg_url, second.table)
    assert any("hnsw" in d and "m='8'" in d and "ef_construction='32'" in d for d in defs.values()), defs
    assert not any("m='16'" in d for d in defs.values())
    second.close()
    third = opened(location, index="none")
    assert not any("hnsw" in d for d in _indexes(pg_url, third.table).values())
    assert len(third) == 2 and "_hnsw_idx" not in third.explain(_unit(1, 16, seed=2)[0], 1)


# --- settings: table, schema, url --------------------------------------------------------------------------
def test_table_and_schema_settings(opened: Callable[..., PgvectorStore], pg_url: str) -> None:
    schema, table = f"fd_schema_{uuid.uuid4().hex[:8]}", f"fd_table_{uuid.uuid4().hex[:8]}"
    store = opened(table=table, schema=schema)
    assert store.table == f"{schema}.{table}"
    store.upsert(["x"], _unit(1, 16, seed=1), [{"k": "v"}])
    with _connect(pg_url) as conn:
        assert conn.execute(sql.SQL("SELECT id, payload FROM {}").format(sql.Identifier(schema, table))
                            ).fetchall() == [("x", {"k": "v"})]
    store.drop()
    with _connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)).fetchone() == (None,)
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.parametrize("name", ["bad-name", 'x"; DROP TABLE t; --', "Upper", "1starts_with_digit", "", "a" * 49,
                                  "public.t"])
def test_unusable_table_and_schema_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="not a usable table or schema name"):
        PgvectorConfig(url=LOCAL_URL, table=name)
    with pytest.raises(ValidationError, match="not a usable table or schema name"):
        PgvectorConfig(url=LOCAL_URL, schema=name)


def test_url_forms() -> None:
    assert libpq_url("postgresql+psycopg://u:p@h:5432/db") == "postgresql://u:p@h:5432/db"
    assert libpq_url("postgres://u@h/db?sslmode=require") == "postgresql://u@h/db?sslmode=require"
    PgvectorConfig(url="postgresql+psycopg://u:${PGPASSWORD}@h/db")  # checked once resolved
    with pytest.raises(ValidationError, match="is not a PostgreSQL URL"):
        PgvectorConfig(url="mysql+pymysql://root:secret@h/db")
    with pytest.raises(ValidationError) as err:
        PgvectorConfig(url="sqlite:////tmp/x.db")
    assert "postgresql+psycopg://" in str(err.value)
    with pytest.raises(ValidationError, match="extra"):
        PgvectorConfig(url=LOCAL_URL, collection="x")  # type: ignore[call-arg]


# --- errors for people ------------------------------------------------------------------------------------
def test_an_unreachable_server_is_named_without_its_password() -> None:
    store = PgvectorStore(PgvectorConfig(url="postgresql+psycopg://fd:s3cret-pw@127.0.0.1:1/db", connect_timeout=2))
    with pytest.raises(PgvectorError) as err:
        store.open(_location())
    message = str(err.value)
    assert "cannot connect to postgresql://fd:***@127.0.0.1:1/db" in message and "s3cret-pw" not in message
    assert "check the url setting" in message


def test_too_many_dimensions_for_an_index_are_refused_before_connecting() -> None:
    store = PgvectorStore(PgvectorConfig(url="postgresql://nobody@127.0.0.1:1/db"))
    with pytest.raises(PgvectorError, match="at most 2000 dimensions and the embedder gives 3072; set index: none"):
        store.open(_location(3072))


def test_a_server_without_pgvector_is_explained() -> None:
    if _vector_available(LOCAL_URL) != "the server has no pgvector extension":
        pytest.skip(f"{LOCAL_URL} is not a server without pgvector ({_vector_available(LOCAL_URL) or 'it has it'})")
    store = PgvectorStore(PgvectorConfig(url=LOCAL_URL))
    with pytest.raises(PgvectorError, match="has no pgvector extension; install it on the server"):
        store.open(_location())


def test_create_extension_setting(pg_url: str) -> None:
    # a fresh database without the extension: refused with create_extension false, enabled with true
    db = f"fd_noext_{uuid.uuid4().hex[:8]}"
    with _connect(pg_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    base = psycopg.conninfo.conninfo_to_dict(libpq_url(pg_url))
    url = "postgresql+psycopg:///?" + "&".join(f"{k}={v}" for k, v in {**base, "dbname": db}.items() if v != "")
    try:
        refused = PgvectorStore(PgvectorConfig(url=url, create_extension=False))
        with pytest.raises(PgvectorError, match="run CREATE EXTENSION vector there"):
            refused.open(_location())
        store = PgvectorStore(PgvectorConfig(url=url, create_extension=True))
        store.open(_location())
        store.upsert(["a"], _unit(1, 16, seed=1), [{}])
        assert store.search(_unit(1, 16, seed=1)[0], 1)[0][0] == "a"
        store.close()
        with psycopg.connect(libpq_url(url)) as conn:
            assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() == (1,)
    finally:
        with _connect(pg_url) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def test_another_dimension_or_a_foreign_table_is_refused(opened: Callable[..., PgvectorStore], pg_url: str) -> None:
    location = _location(16)
    opened(location, index="none").upsert(["a"], _unit(1, 16, seed=1), [{}])
    with pytest.raises(IndexMismatchError, match=r"holds vector\(16\) vectors but the embedder gives dimension 8"):
        PgvectorStore(PgvectorConfig(url=pg_url)).open(StoreLocation(location.folder, location.collection, 8))
    foreign = f"fd_foreign_{uuid.uuid4().hex[:8]}"
    with _connect(pg_url) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int primary key, body text)").format(sql.Identifier(foreign)))
    try:
        with pytest.raises(PgvectorError, match="exists with other columns"):
            PgvectorStore(PgvectorConfig(url=pg_url, table=foreign)).open(_location())
    finally:
        with _connect(pg_url) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(foreign)))


def test_a_dropped_connection_is_replaced(opened: Callable[..., PgvectorStore], pg_url: str) -> None:
    store = opened()
    vectors = _unit(5, 16, seed=1)
    store.upsert([f"v{i}" for i in range(5)], vectors, [{} for _ in range(5)])
    pid = store._conn.info.backend_pid
    with _connect(pg_url) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    assert store.search(vectors[2], 1)[0][0] == "v2"
    assert store._conn.info.backend_pid != pid


def test_threads_share_one_store(opened: Callable[..., PgvectorStore]) -> None:
    # a served index searches from several threads at once; each search's SET LOCAL stays its own
    from concurrent.futures import ThreadPoolExecutor

    store = opened(index="hnsw", exact_filter_below=0)
    ids, vectors, payloads = contract_collection()
    store.upsert(ids, vectors, payloads)
    filters = [None, parse_filter({"kind": "faq"}), parse_filter({"year": {"$gte": 2015}})]
    jobs = [(row, filters[row % 3]) for row in range(SIZE)]
    alone = [store.search(vectors[row], 7, f) for row, f in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: store.search(vectors[job[0]], 7, job[1]), jobs))
    assert together == alone


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pgvector.psycopg", None)
    store = PgvectorStore(PgvectorConfig(url=LOCAL_URL))
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[pgvector\]'") as err:
        store.open(_location())
    assert isinstance(err.value.__cause__, ImportError)


def test_registered_without_a_checklist_option() -> None:
    flavor = registry().get(Category.VECTOR_STORE, "pgvector")
    assert flavor.options == () and flavor.extra == "pgvector"
    assert isinstance(registry().create(Category.VECTOR_STORE, "pgvector", {"url": LOCAL_URL}), PgvectorStore)


# --- end to end through a project ------------------------------------------------------------------------
SPEC = """\
project: pgvector-e2e
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources:
    - {provider: files, path: ./docs}
  chunking: {provider: recursive, size: 64, overlap: 16}
retrieval:
  embedding_model: sentence_transformers
  vector_database: {provider: pgvector, url: "${FD_TEST_PGVECTOR_URL}", index: hnsw}
  system: [hybrid_search, metadata_filtering]
  search: {mode: hybrid, k: 5}
"""

DOCS = {
    "install.md": """\
        # Installing Widgets

        Widgets are installed with the widget installer. Run `widget install` in a terminal.

        ## Troubleshooting

        If the installer stops with error W42, the sprockets are not aligned. Align them and run it again.
        """,
    "care.md": """\
        # Caring for widgets

        Clean a widget with a soft cloth once a week. Never use water on the sprockets.

        ## Storage

        Store widgets in a dry place between 5 and 25 degrees Celsius.
        """,
    "colours.md": "# Colours\n\nWidgets come in red, blue and green. Green widgets sell best in spring.\n",
    "warranty.md": "# Warranty\n\nEvery widget has a two year warranty. Keep the receipt; sprockets are not covered.\n",
}


def _steps(summary: Any) -> dict[str, Any]:
    assert summary.status == "succeeded", summary.to_dict()
    return {s.step: s for s in summary.steps}


def _table_docs(url: str, collection: str) -> dict[str, str]:
    """chunk id -> document id, as the table holds them."""
    with _connect(url) as conn:
        return dict(conn.execute(sql.SQL("SELECT id, payload ->> 'document_id' FROM {}")
                                 .format(sql.Identifier(collection))).fetchall())


def _chunks_of(docs: dict[str, str], *names: str) -> set[str]:
    return {cid for cid, doc in docs.items() if doc in {f"docs/{n}" for n in names}}


def test_project_runs_searches_and_syncs_changes_through_pgvector(tmp_path: Path, pg_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FD_TEST_PGVECTOR_URL", pg_url)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, body in DOCS.items():
        (docs / name).write_text(textwrap.dedent(body), encoding="utf-8")
    (tmp_path / "flightdeck.yaml").write_text(SPEC, encoding="utf-8")
    project = Project.load(tmp_path)
    collection = None
    try:
        first = _steps(project.run())
        index = first["index"].counts
        collection = index["collection"]
        before = _table_docs(pg_url, collection)
        assert index["upserted"] == len(before) == index["vectors"] > 4 and index["deleted"] == 0
        assert set(before.values()) == {f"docs/{n}" for n in DOCS}

        hits = project.search("where should I keep widgets, how warm may it be", mode="vector", k=3).hits
        assert hits[0].document_id == "docs/care.md" and "dry place" in hits[0].text
        where = {"document_id": {"$in": ["docs/install.md", "docs/warranty.md"]}}
        filtered = project.search("sprockets", mode="vector", k=10, where=where).hits
        assert filtered and {h.document_id for h in filtered} <= {"docs/install.md", "docs/warranty.md"}
        assert {h.chunk_id for h in filtered} == _chunks_of(before, "install.md", "warranty.md")
        hybrid = project.search("error W42", where={"title": "Installing Widgets"}).hits
        assert hybrid and all(h.document_id == "docs/install.md" for h in hybrid)

        # change one file, delete another
        colours_chunks = _chunks_of(before, "colours.md")
        assert colours_chunks
        (docs / "colours.md").unlink()
        (docs / "warranty.md").write_text("# Warranty\n\nEvery widget has a five year warranty, sprockets "
                                          "included. Register the widget online to claim it.\n", encoding="utf-8")
        second = _steps(Project.load(tmp_path).run())["index"].counts
        assert second["collection"] == collection
        after = _table_docs(pg_url, collection)
        warranty_then, warranty_now = _chunks_of(before, "warranty.md"), _chunks_of(after, "warranty.md")
        # the deleted file's chunks and the changed file's old chunks go; its new chunks come
        assert second["deleted"] == len(colours_chunks | (warranty_then - warranty_now))
        assert second["upserted"] == len(warranty_now - warranty_then) >= 1
        assert set(after) == (set(before) - colours_chunks - warranty_then) | warranty_now

        again = Project.load(tmp_path)
        for mode in ("vector", "hybrid"):
            hits = again.search("red blue and green widget colours", mode=mode, k=10).hits
            assert hits and not any(h.document_id == "docs/colours.md" for h in hits)
        gone = again.search("green widgets", mode="vector", k=10, where={"document_id": "docs/colours.md"}).hits
        assert gone == []
        warranty = again.search("how long is the warranty", mode="vector", k=1,
                                where={"document_id": "docs/warranty.md"}).hits
        assert "five year warranty" in warranty[0].text

        # nothing changed: the index step does nothing
        third = _steps(Project.load(tmp_path).run())["index"]
        assert third.status == "skipped" or (third.counts["upserted"], third.counts["deleted"]) == (0, 0)
    finally:
        if collection:
            with _connect(pg_url) as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(collection)))
