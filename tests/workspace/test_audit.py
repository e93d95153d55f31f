"""The hash-chained audit log (checklist 8.1, audit logs): the SQLite file is tampered with directly, in each way an
attacker with write access could, and verification names the first bad entry; signatures catch a recomputed chain,
anchors a truncated one; retention keeps the rest verifiable; kill -9 and two writers at once leave the chain whole."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flightdeck.data.pii import redact_value
from flightdeck.errors import WorkspaceError
from flightdeck.workspace import Workspace
from flightdeck.workspace.audit import GENESIS_HASH, AuditLog, canonical_json, entry_hash, parse_since

pytestmark = pytest.mark.unit

KEY = b"k3y-0f-the-aud1t-l0g-0123456789abcdef"
T0 = 1_800_000_000.0


class Clock:
    """One second later at every call."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def _log(ws: Workspace, **kwargs: object) -> AuditLog:
    return AuditLog(ws, clock=kwargs.pop("clock", Clock()), **kwargs)  # type: ignore[arg-type]


def _fill(log: AuditLog, n: int, start: int = 0) -> None:
    actions = ("run.finished", "key.created", "document.uploaded", "key.revoked")
    for i in range(start, start + n):
        log.append(f"user:u{i % 3}", actions[i % len(actions)], f"target-{i}", {"i": i, "note": f"entry {i}"})


def _db(ws: Workspace) -> sqlite3.Connection:
    """The workspace's DB opened as an attacker would: plain sqlite3, no flightdeck."""
    return sqlite3.connect(ws.root / "metadata.db", isolation_level=None)


def _row(db: sqlite3.Connection, seq: int) -> tuple:
    return db.execute("SELECT seq, at, actor, action, target, details, prev_hash, hash, signature FROM audit_log "
                      "WHERE seq = ?", (seq,)).fetchone()


def _shift(db: sqlite3.Connection, first: int, by: int) -> None:
    """Renumber the entries from ``first`` on by ``by`` (through a free range: seq is the primary key)."""
    db.execute("UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= ?", (first,))
    db.execute("UPDATE audit_log SET seq = seq - 1000000 + ? WHERE seq >= 1000000", (by,))


def _recompute(db: sqlite3.Connection, first: int, *, signatures: str = "keep") -> None:
    """Rewrite the chain from entry ``first`` on with recomputed hashes, as an attacker without the key can."""
    prev = _row(db, first - 1)[7] if first > 1 else GENESIS_HASH
    for seq, at, actor, action, target, details, _, _, signature in db.execute(
            "SELECT * FROM audit_log WHERE seq >= ? ORDER BY seq", (first,)).fetchall():
        digest = entry_hash(prev, seq, at, actor, action, target, details)
        db.execute("UPDATE audit_log SET prev_hash = ?, hash = ?, signature = ? WHERE seq = ?",
                   (prev, digest, None if signatures == "null" else signature, seq))
        prev = digest


def _bad(log: AuditLog, seq: int, words: str) -> None:
    result = log.verify()
    assert not result.ok, result
    assert result.first_bad_seq == seq, result.problem
    assert words in (result.problem or ""), result.problem


# the chain ---------------------------------------------------------------------------------------------------------
@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_entries_are_chained_from_the_genesis_and_verify(ws: Workspace) -> None:
    log = _log(ws)
    first = log.append("user:alice", "key.created", "0123456789ab", {"role": "viewer", "b": [1, 2]})
    assert (first.seq, first.prev_hash, first.signature) == (1, GENESIS_HASH, None)
    assert first.hash == entry_hash(GENESIS_HASH, 1, first.at, "user:alice", "key.created", "0123456789ab",
                                    '{"b":[1,2],"role":"viewer"}')
    _fill(log, 29)
    rows = _db(ws).execute("SELECT seq, prev_hash, hash, details FROM audit_log ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, 31))
    assert all(b[1] == a[2] for a, b in zip(rows, rows[1:], strict=False))  # each links to the one before
    assert rows[3][3] == canonical_json({"note": "entry 2", "i": 2}) == '{"i":2,"note":"entry 2"}'
    result = log.verify()
    assert result.ok and result.checked == 30 and (result.head_seq, result.head_hash) == (30, rows[-1][2])
    assert result.problem is None and result.first_bad_seq is None
    assert "no anchor file" in " ".join(result.warnings) and "no signing key" in " ".join(result.warnings)
    assert log.head() is not None and log.head().seq == 30  # type: ignore[union-attr]


def test_entries_are_read_back_filtered_oldest_first(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 12)
    assert [e.seq for e in log.entries()] == list(range(1, 13))
    assert [e.seq for e in log.entries(limit=3)] == [10, 11, 12]  # the newest three, oldest first
    assert {e.actor for e in log.entries(actor="user:u1")} == {"user:u1"}
    assert [e.seq for e in log.entries(action="key.*")] == [2, 4, 6, 8, 10, 12]
    assert [e.seq for e in log.entries(since=T0 + 10)] == [10, 11, 12]  # the clock gave entry n the time T0 + n
    assert log.entries(action="run.finished", limit=1)[0].details == {"i": 8, "note": "entry 8"}
    assert log.last("document.uploaded").seq == 11  # type: ignore[union-attr]
    assert log.last("nothing.like.this") is None


def test_since_reads_dates_and_durations() -> None:
    assert parse_since("7d", now=T0) == T0 - 7 * 86400
    assert parse_since("12h", now=T0) == T0 - 12 * 3600
    assert parse_since("2026-12-01") == 1796083200.0  # midnight UTC
    assert parse_since("2026-12-01T08:00+02:00") == 1796083200.0 + 6 * 3600
    with pytest.raises(ValueError, match="a date such as 2026-12-01"):
        parse_since("last tuesday")


# tampering: each way, the first bad entry named -----------------------------------------------------------------
@pytest.mark.exercises("governance.model_governance.audit_logs")
@pytest.mark.parametrize(("column", "value"), [("details", '{"i":16,"note":"nothing happened"}'),
                                               ("actor", "user:mallory"), ("action", "key.revoked"),
                                               ("target", "someone-else"), ("at", T0 + 1.5), ("at", "yesterday")])
def test_an_edited_entry_is_named(ws: Workspace, column: str, value: object) -> None:
    log = _log(ws)
    _fill(log, 30)
    _db(ws).execute(f"UPDATE audit_log SET {column} = ? WHERE seq = 17", (value,))
    _bad(log, 17, "entry 17 was edited (its hash does not match its content)")


def test_an_entry_edited_into_bytes_that_are_not_text_is_named(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 10)
    db = _db(ws)
    db.execute("UPDATE audit_log SET target = CAST(X'ff00fe' AS TEXT) WHERE seq = 6")
    _bad(log, 6, "entry 6 was edited (a field cannot be read as the text flightdeck wrote")
    db.execute("DROP TABLE audit_log")
    result = log.verify()
    assert not result.ok and "the audit log cannot be read: no such table: audit_log" in str(result.problem)


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_a_deleted_entry_is_named(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 30)
    db = _db(ws)
    db.execute("DELETE FROM audit_log WHERE seq = 18")
    _bad(log, 18, "entry 18 is missing (seq jumps 17→19)")
    db.execute("DELETE FROM audit_log WHERE seq IN (19, 20)")
    _bad(log, 18, "entries 18-20 are missing (seq jumps 17→21)")
    db.execute("DELETE FROM audit_log WHERE seq = 1")
    _bad(log, 1, "entry 1 is missing (the log starts at entry 2)")


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_a_deleted_entry_is_named_when_the_rest_were_renumbered_to_hide_the_gap(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 30)
    db = _db(ws)
    db.execute("DELETE FROM audit_log WHERE seq = 18")
    _shift(db, 19, -1)
    _bad(log, 18, "entry 18 was deleted and the entries after it renumbered")


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_an_inserted_entry_is_named(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 30)
    db = _db(ws)
    _shift(db, 12, +1)
    # an entry that links to entry 11 and whose hash matches its content: only the entry after it gives it away
    prev = _row(db, 11)[7]
    details = canonical_json({"role": "admin"})
    digest = entry_hash(prev, 12, T0 + 11.5, "user:mallory", "key.created", "fdk-backdoor", details)
    db.execute("INSERT INTO audit_log VALUES (12, ?, 'user:mallory', 'key.created', 'fdk-backdoor', ?, ?, ?, NULL)",
               (T0 + 11.5, details, prev, digest))
    _bad(log, 12, "entry 12 was inserted")


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_a_clumsily_inserted_entry_is_named(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 30)
    db = _db(ws)
    _shift(db, 12, +1)
    db.execute("INSERT INTO audit_log VALUES (12, ?, 'user:mallory', 'key.created', 'x', '{}', ?, ?, NULL)",
               (T0 + 11.5, "f" * 64, "e" * 64))
    _bad(log, 12, "entry 12 was inserted (entry 13 follows entry 11 directly)")


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_two_swapped_entries_are_named(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 30)
    db = _db(ws)
    db.execute("UPDATE audit_log SET seq = -5 WHERE seq = 5")
    db.execute("UPDATE audit_log SET seq = 5 WHERE seq = 6")
    db.execute("UPDATE audit_log SET seq = 6 WHERE seq = -5")
    _bad(log, 5, "entries 5 and 6 were swapped (reordered)")


def test_a_field_separator_cannot_move_text_from_one_field_to_the_next(ws: Workspace) -> None:
    log = _log(ws)
    entry = log.append("user:a\x1fb", "x.y", "t", {})
    assert entry.actor == "user:a\\x1fb"  # stored escaped: the hashed text has exactly one separator per field
    _fill(log, 3)
    # the same hashed text with "b" moved from the actor to the action: refused, though the sha256 is the same
    row = _row(_db(ws), 2)
    _db(ws).execute("UPDATE audit_log SET actor = ?, action = ? WHERE seq = 2",
                    (f"{row[2]}\x1f{row[3][:3]}", row[3][3:]))
    _bad(log, 2, "entry 2 was edited")


# signatures, anchors -------------------------------------------------------------------------------------------
@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_a_chain_recomputed_without_the_key_is_caught_by_its_signatures(ws: Workspace) -> None:
    log = _log(ws, key=KEY)
    _fill(log, 20)
    assert log.verify().ok and log.verify().signatures
    db = _db(ws)
    db.execute("UPDATE audit_log SET details = '{\"i\":5,\"note\":\"all is well\"}' WHERE seq = 5")
    _recompute(db, 5)
    # the chain alone is consistent again: only the key can tell
    unsigned_check = _log(ws).verify()
    assert unsigned_check.ok and "were not checked" in " ".join(unsigned_check.warnings)
    _bad(log, 5, "entry 5's signature is wrong")
    _recompute(db, 5, signatures="null")
    _bad(log, 5, "entry 5 is not signed, though a key was given")


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_the_wrong_key_fails_at_the_first_entry(ws: Workspace) -> None:
    _fill(_log(ws, key=KEY), 3)
    result = _log(ws).verify(key=b"another-key-0123456789")
    assert not result.ok and result.first_bad_seq == 1 and "entry 1's signature is wrong" in (result.problem or "")


def test_a_key_set_later_signs_from_then_on_and_that_start_cannot_be_moved(ws: Workspace) -> None:
    clock = Clock()
    _fill(_log(ws, clock=clock), 3)
    signed = _log(ws, key=KEY, clock=clock)
    _fill(signed, 3, start=3)
    result = signed.verify()
    assert result.ok and result.signatures
    assert "3 entries before entry 4 were written before the signing key was set" in " ".join(result.warnings)
    db = _db(ws)
    db.execute("UPDATE audit_log SET signature = NULL WHERE seq = 5")
    _bad(signed, 5, "entry 5 is not signed, though the log is signed from entry 4 on")
    db.execute("UPDATE state SET value = ? WHERE key = 'audit_signed_from'", (json.dumps({"seq": 6}),))
    assert "audit_signed_from (where signing started) was altered" in (signed.verify().problem or "")


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_a_truncated_log_is_caught_by_its_anchor(ws: Workspace, tmp_path: Path) -> None:
    anchor = tmp_path / "outside" / "anchor.jsonl"
    log = _log(ws, anchor=anchor, anchor_every=10)
    _fill(log, 25)
    lines = [json.loads(line) for line in anchor.read_text().splitlines()]
    assert [a["seq"] for a in lines] == [10, 20]
    assert log.anchor_now()["seq"] == 25
    result = log.verify()
    assert result.ok and result.anchors == 3
    _db(ws).execute("DELETE FROM audit_log WHERE seq > 22")
    _bad(log, 23, f"the log was truncated: the anchor at {anchor} (line 3) recorded entry 25 (hash ")
    assert "and the log ends at entry 22" in (log.verify().problem or "")
    # without the anchor file, what remains is a valid chain: verification can only say it could not tell
    blind = _log(ws).verify()
    assert blind.ok and "a truncated tail cannot be detected" in " ".join(blind.warnings)


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_a_truncated_log_appended_to_again_is_caught_by_its_anchor(ws: Workspace, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.jsonl"
    log = _log(ws, anchor=anchor, anchor_every=10)
    _fill(log, 12)
    _db(ws).execute("DELETE FROM audit_log WHERE seq > 7")
    _fill(_log(ws), 5)  # written after the cut (no anchor of its own), so entry 10 is back with another hash
    _bad(log, 10, f"entry 10 differs from the anchor at {anchor} (line 1)")


def test_an_altered_anchor_line_is_refused_under_the_key(ws: Workspace, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.jsonl"
    log = _log(ws, key=KEY, anchor=anchor, anchor_every=2)
    _fill(log, 4)
    first = json.loads(anchor.read_text().splitlines()[0])
    anchor.write_text(json.dumps({**first, "seq": 4}) + "\n")  # the hash of entry 2 said to be entry 4's
    result = log.verify()
    assert not result.ok and f"the anchor file {anchor} line 1 (entry 4) has a wrong signature" in str(result.problem)


def test_the_anchor_must_live_outside_the_workspace(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="the audit anchor must live outside the workspace"):
        AuditLog(ws, anchor=ws.root / "anchors" / "audit.jsonl")
    with pytest.raises(WorkspaceError, match="outside the workspace"):  # the engine alone: its DB's folder
        AuditLog(ws.engine, anchor=ws.root / "a.jsonl")


# writing -------------------------------------------------------------------------------------------------------
def test_details_are_redacted_when_asked(ws: Workspace) -> None:
    log = _log(ws, redact=redact_value)
    entry = log.append("key:0123456789ab", "query.answered", "tr_1",
                       {"question": "mail jane.doe@example.com or call +44 20 7946 0958"}, redact=True)
    assert entry.details == {"question": "mail [EMAIL] or call [PHONE]"}
    assert "jane.doe" not in _row(_db(ws), 1)[5]
    with pytest.raises(ValueError, match="without a redaction function"):
        _log(ws).append("user:a", "x.y", "", {"q": "x"}, redact=True)


def test_a_change_and_its_entry_commit_together_or_not_at_all(ws: Workspace) -> None:
    log = _log(ws)
    with log.transaction() as conn:
        conn.exec_driver_sql("INSERT INTO state (key, value) VALUES ('thing', 'one')")
        log.append("user:a", "thing.set", "thing", {"value": "one"}, conn=conn)
    with pytest.raises(RuntimeError), log.transaction() as conn:
        conn.exec_driver_sql("UPDATE state SET value = 'two' WHERE key = 'thing'")
        log.append("user:a", "thing.set", "thing", {"value": "two"}, conn=conn)
        raise RuntimeError("the change failed after its entry was written")
    assert ws.get_state("thing") == "one"
    assert [e.details["value"] for e in log.entries()] == ["one"] and log.verify().ok


def test_an_entry_in_a_callers_transaction_is_anchored_when_it_commits(ws: Workspace, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.jsonl"
    log = _log(ws, anchor=anchor, anchor_every=1)
    with log.transaction() as conn:
        log.append("user:a", "x.y", "", {}, conn=conn)
        assert not anchor.exists()  # not before the commit: an anchor names only committed entries
    assert json.loads(anchor.read_text())["seq"] == 1


# retention -----------------------------------------------------------------------------------------------------
@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_pruning_keeps_the_rest_verifiable_and_is_itself_recorded(ws: Workspace, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.jsonl"
    clock = Clock()
    log = _log(ws, key=KEY, anchor=anchor, anchor_every=5, clock=clock)
    _fill(log, 20)
    before = _row(_db(ws), 12)[7]
    result = log.prune(older_than=T0 + 12.5, actor="user:admin")  # entries 1-12 are older
    assert (result.pruned, result.through_seq, result.through_hash) == (12, 12, before)
    assert result.entry is not None and (result.entry.seq, result.entry.action) == (21, "audit.pruned")
    assert result.entry.details["through_seq"] == 12 and result.entry.details["deleted"] == 12
    assert [e.seq for e in log.entries()][:2] == [13, 14]
    check = log.verify()
    assert check.ok and check.genesis_seq == 12 and check.checked == 9 and check.head_seq == 21
    assert log.prune(older_than=T0 + 12.5, actor="user:admin").pruned == 0  # nothing older is left
    _fill(log, 2)
    assert log.verify().ok
    db = _db(ws)
    db.execute("DELETE FROM audit_log WHERE seq = 13")
    _bad(log, 13, "entry 13 is missing (seq jumps 12→14)")


def test_entries_pruned_outside_flightdeck_are_caught(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 10)
    log.prune(older_than=T0 + 3.5, actor="user:admin")
    db = _db(ws)
    # pruning more by hand and moving the genesis to match: no audit.pruned entry records it
    db.execute("DELETE FROM audit_log WHERE seq <= 5")
    db.execute("UPDATE state SET value = ? WHERE key = 'audit_genesis'",
               (json.dumps({"seq": 5, "hash": _row_hash_before(log, 6)}),))
    _bad(log, 4, "the log starts after entry 5 (the state row audit_genesis), but no audit.pruned entry records")


def _row_hash_before(log: AuditLog, seq: int) -> str:
    return next(e.prev_hash for e in log.entries() if e.seq == seq)


def test_a_log_that_does_not_verify_is_not_pruned(ws: Workspace) -> None:
    log = _log(ws)
    _fill(log, 10)
    _db(ws).execute("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 2")
    with pytest.raises(WorkspaceError, match="nothing is pruned .* entry 2 was edited"):
        log.prune(older_than=T0 + 100, actor="user:admin")
    assert len(log.entries()) == 10


def test_an_export_holds_every_entry_and_rehashes_as_stored(ws: Workspace, tmp_path: Path) -> None:
    log = _log(ws, key=KEY)
    _fill(log, 8)
    out = tmp_path / "export" / "audit.jsonl"
    assert log.export_jsonl(out) == 8
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    prev = GENESIS_HASH
    for line in lines:
        assert line["prev_hash"] == prev
        assert line["hash"] == entry_hash(prev, line["seq"], line["at"], line["actor"], line["action"],
                                          line["target"], canonical_json(line["details"]))
        prev = line["hash"]
    assert lines[0]["time"].endswith("Z") and lines[-1]["signature"]


# processes -----------------------------------------------------------------------------------------------------
_WRITER = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from flightdeck.workspace import Workspace
    from flightdeck.workspace.audit import AuditLog
    ws = Workspace(Path(sys.argv[1]))
    log = AuditLog(ws, key=b"k3y-0f-the-aud1t-l0g-0123456789abcdef", anchor=sys.argv[2], anchor_every=7)
    count = int(sys.argv[4])
    pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0  # between appends: two writers surely overlap
    print("ready", flush=True)
    while not Path(sys.argv[3]).exists():
        time.sleep(0.005)
    i = 0
    while count < 0 or i < count:
        log.append(f"user:{sys.argv[5]}", "test.loop", f"n{i}", {"i": i, "pad": "x" * (i % 50)})
        i += 1
        if pause:
            time.sleep(pause)
    """)


def _writer(tmp_path: Path, ws: Path, go: Path, count: int, name: str, pause: float = 0.0) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(ws), str(tmp_path / "anchor.jsonl"), str(go),
                             str(count), name, str(pause)], stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _seqs(ws: Path) -> list[int]:
    db = sqlite3.connect(ws / "metadata.db")
    try:
        return [r[0] for r in db.execute("SELECT seq FROM audit_log ORDER BY seq")]
    finally:
        db.close()


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_appending_survives_kill_9_at_any_moment_with_the_chain_intact(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace(root).close()
    go = tmp_path / "go"
    go.touch()
    rng = random.Random(13)
    counts = []
    for _ in range(6):
        proc = _writer(tmp_path, root, go, -1, "writer")
        time.sleep(rng.uniform(0.05, 0.4))
        proc.kill()  # SIGKILL: no cleanup, no atexit, mid-transaction or mid-anchor as it happens
        proc.wait(timeout=30)
        seqs = _seqs(root)
        assert seqs == list(range(1, len(seqs) + 1))  # contiguous: a killed append left all of itself or nothing
        result = AuditLog(Workspace(root), key=KEY, anchor=tmp_path / "anchor.jsonl").verify()
        assert result.ok, result.problem
        counts.append(len(seqs))
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0  # each writer went on from where the last died


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_two_processes_appending_at_once_never_fork_the_chain(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace(root).close()
    go = tmp_path / "go"
    writers = [_writer(tmp_path, root, go, 150, name, pause=0.002) for name in ("server", "cli")]
    go.touch()
    for proc in writers:
        assert proc.wait(timeout=120) == 0
    assert _seqs(root) == list(range(1, 301))
    log = AuditLog(Workspace(root), key=KEY, anchor=tmp_path / "anchor.jsonl")
    result = log.verify()
    assert result.ok and result.checked == 300, result.problem
    by_actor = [e.actor for e in log.entries()]
    assert by_actor.count("user:server") == 150 and by_actor.count("user:cli") == 150
    # interleaved: the two really wrote at the same time (a writer that ran alone would hold one block)
    switches = sum(a != b for a, b in zip(by_actor, by_actor[1:], strict=False))
    assert switches > 2, switches
