"""The workspace: metadata DB migrated on open, key/value state, the writer lock, the artifact store."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from flightdeck.errors import WorkspaceError
from flightdeck.workspace import ArtifactStore, Workspace
from flightdeck.workspace.db import HEAD_REVISION

pytestmark = pytest.mark.unit

TABLES = {"documents", "chunks", "embeddings", "runs", "step_runs", "dataset_versions", "index_versions",
          "state", "chunks_fts", "synthetic_sets", "synthetic_examples", "synthetic_generations", "api_keys",
          "traces", "eval_sets", "experiment_runs", "audit_log", "releases", "release_events", "release_aliases",
          "automation_cycles", "agent_messages", "agent_facts", "openai_objects", "openai_items"}


@pytest.fixture
def ws(tmp_path: Path):
    workspace = Workspace(tmp_path / ".flightdeck")
    yield workspace
    workspace.close()


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _revision(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]


# --- the metadata DB ------------------------------------------------------------------------------------------


def test_open_creates_the_db_with_every_table_at_head(tmp_path: Path) -> None:
    root = tmp_path / "nested" / ".flightdeck"
    ws = Workspace(root)
    try:
        db = root / "metadata.db"
        assert db.is_file()
        assert TABLES <= _tables(db), TABLES - _tables(db)
        assert HEAD_REVISION == "0011"
        assert _revision(db) == ["0011"]
        assert ws.artifacts.root == root / "artifacts"
    finally:
        ws.close()


def test_journal_mode_is_wal(ws: Workspace) -> None:
    with ws.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar().lower() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    # WAL is persistent in the file: a plain connection sees it too.
    with sqlite3.connect(ws.root / "metadata.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_fts_table_is_searchable(ws: Workspace) -> None:
    with ws.engine.begin() as conn:
        conn.execute(text("INSERT INTO chunks_fts(chunk_id, indexed_text) VALUES ('c1', 'running dogs bark')"))
    with ws.engine.connect() as conn:
        rows = conn.execute(text("SELECT chunk_id FROM chunks_fts WHERE chunks_fts MATCH 'run'")).all()
    assert [r[0] for r in rows] == ["c1"]  # porter stemming: run ~ running


def test_opening_twice_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    root = tmp_path / ".flightdeck"
    first = Workspace(root)
    with first.engine.begin() as conn:
        Workspace.set_state(conn, "index", "abc")
    first.close()
    second = Workspace(root)
    try:
        assert second.get_state("index") == "abc"
        assert _revision(root / "metadata.db") == ["0011"]
        assert TABLES <= _tables(root / "metadata.db")
        # two live handles on one workspace see the same data
        third = Workspace(root)
        try:
            assert third.get_state("index") == "abc"
        finally:
            third.close()
    finally:
        second.close()


def test_state_round_trip_and_overwrite(ws: Workspace) -> None:
    assert ws.get_state("missing") is None
    with ws.engine.begin() as conn:
        Workspace.set_state(conn, "k", "v1")
        Workspace.set_state(conn, "other", "x")
    assert ws.get_state("k") == "v1"
    with ws.engine.begin() as conn:
        Workspace.set_state(conn, "k", "v2")
    assert ws.get_state("k") == "v2"
    assert ws.get_state("other") == "x"
    with ws.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM state WHERE key='k'")).scalar() == 1


def test_state_commits_with_its_transaction(ws: Workspace) -> None:
    with ws.engine.begin() as conn:
        Workspace.set_state(conn, "k", "committed")
    with pytest.raises(RuntimeError), ws.engine.begin() as conn:
        Workspace.set_state(conn, "k", "rolled back")
        Workspace.set_state(conn, "new", "rolled back")
        raise RuntimeError("killed mid-run")
    assert ws.get_state("k") == "committed"
    assert ws.get_state("new") is None


# --- the writer lock ------------------------------------------------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from flightdeck.workspace import Workspace

    ws = Workspace(Path(sys.argv[1]))
    with ws.writer_lock():
        print("locked", flush=True)
        sys.stdin.readline()  # hold the lock until the parent says so
    print("released", flush=True)
""")


def test_writer_lock_excludes_another_process(ws: Workspace) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(ws.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        with pytest.raises(WorkspaceError) as info:
            with ws.writer_lock():
                pytest.fail("took a lock another process holds")
        assert str(ws.root) in str(info.value)
        assert "another `flightdeck run`" in str(info.value)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # free again once the other process let go
    with ws.writer_lock():
        pass


def test_writer_lock_is_released_after_an_error(ws: Workspace) -> None:
    with pytest.raises(ValueError), ws.writer_lock():
        raise ValueError("step failed")
    with ws.writer_lock():
        pass


def test_writer_lock_is_released_when_the_holder_dies(ws: Workspace) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(ws.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
    finally:
        holder.kill()
        holder.wait(timeout=60)
    with ws.writer_lock():
        pass


# --- the artifact store ---------------------------------------------------------------------------------------


def _leftovers(store: ArtifactStore) -> list[Path]:
    tmp = store.root / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


def test_put_bytes_is_content_addressed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    data = b"hello artifacts"
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = tmp_path / "artifacts" / "sha256" / digest[:2] / digest
    assert store.path(digest) == path
    assert path.read_bytes() == data
    assert store.exists(digest)
    assert store.get_bytes(digest) == data
    assert _leftovers(store) == []


def test_put_bytes_twice_is_idempotent(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    first = store.put_bytes(b"same")
    mtime = store.path(first).stat().st_mtime_ns
    second = store.put_bytes(b"same")
    assert first == second
    assert store.path(first).stat().st_mtime_ns == mtime
    files = [p for p in (tmp_path / "artifacts" / "sha256").rglob("*") if p.is_file()]
    assert files == [store.path(first)]
    assert _leftovers(store) == []


def test_different_bytes_get_different_artifacts(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    a, b = store.put_bytes(b"a"), store.put_bytes(b"b")
    assert a != b
    assert store.get_bytes(a) == b"a" and store.get_bytes(b) == b"b"
    assert not store.exists("0" * 64)


def test_put_file_moves_the_file_in(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    src = tmp_path / "index.faiss"
    payload = bytes(range(256)) * 5000  # more than one read block
    src.write_bytes(payload)
    digest = store.put_file(src)
    assert digest == hashlib.sha256(payload).hexdigest()
    assert not src.exists()
    assert store.get_bytes(digest) == payload
    assert _leftovers(store) == []


def test_put_file_of_known_content_removes_the_source(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest = store.put_bytes(b"already here")
    src = tmp_path / "again.bin"
    src.write_bytes(b"already here")
    assert store.put_file(src) == digest
    assert not src.exists()
    assert store.get_bytes(digest) == b"already here"


def test_temp_path_then_put_file_leaves_no_temp_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    tmp = store.temp_path()
    assert tmp.parent == store.root / "tmp"
    tmp.write_bytes(b"written by a library that wants a file name")
    digest = store.put_file(tmp)
    assert store.exists(digest)
    assert _leftovers(store) == []


def test_a_workspace_at_revision_0001_is_upgraded_in_place_keeping_its_data(tmp_path: Path) -> None:
    from alembic import command

    from flightdeck.workspace.db import _alembic_config, open_engine

    root = tmp_path / ".flightdeck"
    root.mkdir()
    engine = open_engine(root / "metadata.db")
    with engine.begin() as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        Workspace.set_state(conn, "current_index", "old")
    engine.dispose()
    assert _revision(root / "metadata.db") == ["0001"]
    ws = Workspace(root)
    try:
        assert _revision(root / "metadata.db") == ["0011"]
        assert ws.get_state("current_index") == "old"
        assert {"dataset_version_documents", "document_signatures", "dataset_splits"} <= _tables(root / "metadata.db")
    finally:
        ws.close()
