"""The audit log (checklist 8.1, audit logs): append-only, hash-chained, optionally signed and anchored.

Each entry (a row of ``audit_log``) holds a sequence number (1, 2, 3 … with no gap), the time, the actor
(``user:<OS user>`` for the CLI and the library, ``key:<key id>`` for an API key), the action (``run.finished``,
``key.created`` …: :data:`ACTIONS`), its target, its details as canonical JSON, the previous entry's hash and its own::

    hash = sha256(prev_hash ␟ seq ␟ repr(at) ␟ actor ␟ action ␟ target ␟ details)      (␟ is \\x1f)

Editing, deleting, inserting or reordering rows breaks the chain where it happened, and :meth:`AuditLog.verify`
names the first entry that is wrong. Two attacks a chain alone cannot see are what the two optional settings are for:

- a chain rewritten from some entry on with every hash recomputed: with a signing key (kept outside the workspace),
  each entry's ``signature`` is HMAC-SHA256(key, hash), which nobody without the key can recompute;
- the newest entries deleted (what remains is still a valid chain): the head is *anchored* every ``anchor_every``
  entries (and on demand), a JSON line appended to a file outside the workspace; a log that ends before the newest
  anchor, or whose entry differs from an anchor, was truncated or rewritten.

Writers serialise on SQLite's write lock: the last entry is read and the next one inserted in one ``BEGIN IMMEDIATE``
transaction, so the server and a CLI command appending at once never fork the chain, and a process killed at any
moment leaves the whole entry or none of it (WAL).

Retention (:meth:`AuditLog.prune`) deletes the oldest entries and keeps the rest verifiable: the last pruned entry's
seq and hash become the genesis the chain starts from (the ``state`` row ``audit_genesis``), and the pruning is
itself an entry (``audit.pruned``) that records them; :meth:`AuditLog.verify` starts from it.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from flightdeck.core.durations import duration_seconds
from flightdeck.errors import WorkspaceError

__all__ = ["AuditLog", "AuditEntry", "AuditVerification", "PruneResult", "ACTIONS", "GENESIS_HASH",
           "canonical_json", "entry_hash", "local_actor", "parse_since"]

_log = logging.getLogger(__name__)

#: The previous hash of entry 1.
GENESIS_HASH = "0" * 64
_SEP = "\x1f"
_GENESIS_STATE = "audit_genesis"  # {"seq", "hash", "signature"}: the last pruned entry
_SIGNED_FROM_STATE = "audit_signed_from"  # {"seq", "signature"}: entries from seq on must be signed
_COLUMNS = "seq, at, actor, action, target, details, prev_hash, hash, signature"

#: What flightdeck records, and the details of each. Releases (governance/releases.py) add ``release.created``,
#: ``release.approved``, ``release.rejected``, ``release.promoted``, ``release.rolled_back`` … with the same call.
ACTIONS: dict[str, str] = {
    "spec.changed": "a run started with a spec whose hash differs from the last recorded one (old, new)",
    "run.finished": "a `flightdeck run` ended (status, dataset and index versions, spec hash, seconds, error)",
    "document.uploaded": "a document was uploaded over the API (document id, content hash, dataset and index "
                         "versions, replaced)",
    "document.deleted": "an uploaded document was deleted over the API (dataset and index versions after)",
    "key.created": "an API key was created (role, name, expiry)",
    "key.revoked": "an API key was revoked (role)",
    "eval.finished": "an evaluation run ended (status, set, gates passed, index and dataset versions)",
    "tune.finished": "a tuning study ended (status, set, trials, index version)",
    "query.answered": "with governance.audit.log_queries: a query or chat was answered (trace id, operation, the "
                      "question PII-redacted, found)",
    "audit.pruned": "entries older than the retention were deleted (through_seq, through_hash, deleted, older_than)",
    "automation.cycle": "a cycle of `flightdeck schedule` ended (trigger, each step's outcome, the release it made "
                        "or promoted)",
}


def canonical_json(details: Any) -> str:
    """The one text of ``details`` that is hashed: sorted keys, no spaces, ASCII (other values as ``str``)."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(prev_hash: str, seq: int, at: float, actor: str, action: str, target: str, details: str) -> str:
    """The hash of one entry (``details`` already canonical JSON)."""
    payload = f"{prev_hash}{_SEP}{seq}{_SEP}{at!r}{_SEP}{actor}{_SEP}{action}{_SEP}{target}{_SEP}{details}"
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), "sha256").hexdigest()


def _clean(text: str) -> str:
    """A field as it can be hashed unambiguously: no field separator inside, and UTF-8 (a lone surrogate from a
    file name becomes U+FFFD)."""
    return str(text).replace(_SEP, "\\x1f").encode("utf-8", "replace").decode("utf-8")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_actor() -> str:
    """``user:<OS user>``: who acts from the CLI or the library."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = f"uid-{os.getuid()}"
    return f"user:{user}"




def parse_since(text: str, now: float | None = None) -> float:
    """The unix time ``text`` names: a duration back from ``now`` (``7d``, ``12h``, ``30m``, ``2w``) or an ISO date or
    time (``2026-12-01``, ``2026-12-01T08:00``; UTC unless it gives its offset)."""
    seconds = duration_seconds(text or "")
    if seconds is not None:
        return (time.time() if now is None else now) - seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a date such as 2026-12-01 (or 2026-12-01T08:00) or a duration such as 7d, 12h, "
                         f"30m, got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the log."""

    seq: int
    at: float
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": _iso(self.at), **asdict(self)}


@dataclass(frozen=True)
class AuditVerification:
    """What :meth:`AuditLog.verify` found: ``ok``, or the first bad entry (``first_bad_seq``) and what is wrong with
    it in words (``problem``). ``checked`` entries were found intact (hash, link, signature when ``signatures``);
    ``anchors`` anchor lines were compared with the log; ``warnings`` say what could not be checked."""

    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str | None
    first_bad_seq: int | None = None
    problem: str | None = None
    genesis_seq: int = 0
    signatures: bool = False
    anchors: int = 0
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        """One line for people."""
        if not self.ok:
            return f"audit log check FAILED: {self.problem}"
        if self.head_seq is None:
            return "audit log is empty: nothing to check"
        span = f"entries {self.genesis_seq + 1}-{self.head_seq}" if self.checked else "no entries"
        checks = ["hash chain"] + (["signatures"] if self.signatures else []) \
            + ([f"{self.anchors} anchor{'s' if self.anchors != 1 else ''}"] if self.anchors else [])
        return (f"audit log intact: {self.checked} entries checked ({span}; {', '.join(checks)}), head "
                f"{self.head_seq} {self.head_hash[:16] if self.head_hash else ''}…")


@dataclass(frozen=True)
class PruneResult:
    """What :meth:`AuditLog.prune` did: ``pruned`` entries deleted, through ``through_seq`` (the new genesis, with
    ``through_hash``), recorded by ``entry`` (None when there was nothing to prune)."""

    pruned: int
    through_seq: int
    through_hash: str
    entry: AuditEntry | None

    def to_dict(self) -> dict[str, Any]:
        return {"pruned": self.pruned, "through_seq": self.through_seq, "through_hash": self.through_hash,
                "entry": None if self.entry is None else self.entry.to_dict()}


@dataclass
class _Anchors:
    """The anchor file as read: seq -> [(line number, hash)], and what is wrong with it."""

    path: Path | None
    by_seq: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    newest: tuple[int, int, str] | None = None  # (seq, line, hash) of the highest seq anchored
    problem: str | None = None
    lines: int = 0


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


class AuditLog:
    """The hash-chained audit log of one workspace's metadata DB.

    ``db`` is a :class:`~flightdeck.workspace.Workspace` or its SQLAlchemy engine (SQLite). ``key`` signs each
    entry (HMAC-SHA256 of its hash); keep it outside the workspace. ``anchor`` is a file outside the workspace
    that the head is appended to every ``anchor_every`` entries (one anchor file per log). ``clock`` gives the time
    of an entry; ``redact`` is applied to the details of an entry appended with ``redact=True`` (flightdeck passes
    :func:`flightdeck.data.pii.redact_value`).
    """

    def __init__(self, db: Any, *, key: bytes | None = None, anchor: str | Path | None = None,
                 anchor_every: int = 100, clock: Callable[[], float] = time.time,
                 redact: Callable[[Any], Any] | None = None) -> None:
        engine: Engine = getattr(db, "engine", db)
        if engine.dialect.name != "sqlite":
            raise WorkspaceError(f"the audit log needs the workspace's SQLite metadata DB (its writers serialise on "
                                 f"BEGIN IMMEDIATE); got a {engine.dialect.name} database")
        if anchor_every < 1:
            raise ValueError(f"anchor_every must be at least 1, got {anchor_every}")
        self.engine = engine
        database = engine.url.database
        self.root: Path | None = Path(db.root) if hasattr(db, "root") else \
            (Path(database).resolve().parent if database and database != ":memory:" else None)
        self.key = bytes(key) if key else None
        self.anchor = Path(anchor).expanduser().absolute() if anchor is not None else None
        if self.anchor is not None and self.root is not None and _inside(self.anchor, self.root):
            raise WorkspaceError(f"{self.anchor}: the audit anchor must live outside the workspace {self.root}: "
                                 "whoever can truncate the log there could rewrite an anchor kept beside it; put it on "
                                 "another disk or mount (governance.audit.anchor)")
        self.anchor_every = anchor_every
        self.clock = clock
        self.redact = redact
        self._anchored: int | None = None  # the newest seq this object knows to be anchored
        self._pending: dict[int, list[AuditEntry]] = {}  # id(connection of transaction()) -> its entries

    # transactions -----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _immediate(self) -> Iterator[Any]:
        """A cursor in a write transaction that holds SQLite's write lock from its first statement."""
        raw = self.engine.raw_connection()
        try:
            conn = raw.driver_connection
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            raw.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A SQLAlchemy connection in a write transaction (``BEGIN IMMEDIATE``) for a change and its entries
        (``append(..., conn=conn)``): they commit together when the block ends, then the head is anchored if due::

            with audit.transaction() as conn:
                conn.execute(update(api_keys)...)
                audit.append(actor, "key.revoked", key_id, {...}, conn=conn)
        """
        pending: list[AuditEntry] = []
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            self._pending[id(conn)] = pending
            try:
                yield conn
                conn.commit()
            except BaseException:
                pending.clear()
                conn.rollback()
                raise
            finally:
                self._pending.pop(id(conn), None)
        if pending:
            self._anchor_if_due(pending[-1])

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """A cursor in a read transaction: the state rows and the entries it reads are one moment's."""
        raw = self.engine.raw_connection()
        try:
            conn = raw.driver_connection
            cur = conn.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            finally:
                conn.rollback()
        finally:
            raw.close()

    @staticmethod
    def _state(cur: Any, key: str) -> dict[str, Any] | None:
        row = cur.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise WorkspaceError(f"the state row {key!r} of the metadata DB is not the JSON object flightdeck wrote "
                                 f"({str(row[0])[:80]!r}): it was altered; `flightdeck audit verify` says what else")
        return value

    @staticmethod
    def _set_state(cur: Any, key: str, value: dict[str, Any]) -> None:
        cur.execute("INSERT INTO state (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, json.dumps(value, sort_keys=True)))

    def _genesis(self, cur: Any) -> tuple[int, str, dict[str, Any] | None]:
        """(seq, hash) the chain starts after: the last pruned entry, or (0, 64 zeros); and the state row."""
        state = self._state(cur, _GENESIS_STATE)
        if state is None:
            return 0, GENESIS_HASH, None
        return int(state.get("seq", 0)), str(state.get("hash", "")), state

    def _sign(self, entry_hash_: str) -> str | None:
        return None if self.key is None else _mac(self.key, entry_hash_)

    # writing ----------------------------------------------------------------------------------------------------
    def _append_on(self, cur: Any, actor: str, action: str, target: str, details: str, at: float) -> AuditEntry:
        last = cur.execute("SELECT seq, hash, signature FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None:
            last_seq, last_hash, _ = self._genesis(cur)
        else:
            last_seq, last_hash = int(last[0]), str(last[1])
        seq = last_seq + 1
        digest = entry_hash(last_hash, seq, at, actor, action, target, details)
        signature = self._sign(digest)
        if signature is not None and last is not None and last[2] is None:
            # The first signed entry after unsigned ones (the key was set later): from here on every entry must be
            # signed, and this record says so under the key, so that it cannot be moved without it.
            self._set_state(cur, _SIGNED_FROM_STATE, {"seq": seq, "signature": _mac(self.key, f"signed-from:{seq}")})
        cur.execute(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, at, actor, action, target, details, last_hash, digest, signature))
        return AuditEntry(seq, at, actor, action, target, json.loads(details), last_hash, digest, signature)

    def append(self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None, *,
               redact: bool = False, conn: Connection | None = None) -> AuditEntry:
        """Append an entry and return it. ``redact`` passes ``details`` through the PII redaction first.

        ``conn``: a SQLAlchemy connection whose transaction the entry joins, so that the change and its entry
        commit together (or neither does): best one of :meth:`transaction`, which anchors the head when it commits
        (with another connection, a later append does). Without it the entry is its own ``BEGIN IMMEDIATE``
        transaction.
        """
        if not actor or not action:
            raise ValueError("an audit entry needs an actor and an action")
        values: Any = dict(details or {})
        if redact:
            if self.redact is None:
                raise ValueError("redact=True, but this AuditLog was built without a redaction function (redact=...)")
            values = self.redact(values)
        text = canonical_json(values)
        fields = (_clean(actor), _clean(action), _clean(target))
        at = float(self.clock())
        if conn is not None:
            driver = conn.connection.driver_connection
            if not driver.in_transaction:  # the caller has not written yet: take the write lock now
                driver.execute("BEGIN IMMEDIATE")
            entry = self._append_on(driver.cursor(), *fields, text, at)
            self._pending.get(id(conn), []).append(entry)
            return entry
        with self._immediate() as cur:
            entry = self._append_on(cur, *fields, text, at)
        self._anchor_if_due(entry)
        return entry

    # anchors ----------------------------------------------------------------------------------------------------
    def _anchor_if_due(self, head: AuditEntry) -> None:
        if self.anchor is None:
            return
        if self._anchored is None or head.seq - self._anchored >= self.anchor_every:
            self._anchored = self._newest_anchored()  # another process may have anchored meanwhile
        if head.seq - self._anchored >= self.anchor_every:
            try:
                self._write_anchor(head)
            except OSError as exc:  # the entry is committed; a missing anchor weakens only truncation detection
                _log.warning("could not write the audit anchor %s: %s", self.anchor, exc)

    def _newest_anchored(self) -> int:
        """The seq of the anchor file's last line (0: no file, no line)."""
        assert self.anchor is not None
        try:
            with self.anchor.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4096))
                tail = fh.read().splitlines()
        except FileNotFoundError:
            return 0
        for line in reversed(tail):
            try:
                return int(json.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                continue
        return 0

    def _write_anchor(self, head: AuditEntry) -> dict[str, Any]:
        assert self.anchor is not None
        line = {"seq": head.seq, "hash": head.hash, "at": head.at, "time": _iso(head.at),
                "anchored_at": time.time(),
                "signature": None if self.key is None else _mac(self.key, f"anchor:{head.seq}:{head.hash}"),
                "log": str(self.root) if self.root is not None else None}
        self.anchor.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.anchor, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._anchored = max(self._anchored or 0, head.seq)
        return line

    def anchor_now(self) -> dict[str, Any]:
        """Append the head to the anchor file now; the line written."""
        if self.anchor is None:
            raise WorkspaceError("no anchor file: set governance.audit.anchor to a file outside the workspace")
        head = self.head()
        if head is None:
            raise WorkspaceError("the audit log is empty: there is no head to anchor yet")
        return self._write_anchor(head)

    def _read_anchors(self, key: bytes | None) -> _Anchors:
        found = _Anchors(self.anchor)
        if self.anchor is None or not self.anchor.exists():
            return found
        for number, raw in enumerate(self.anchor.read_text("utf-8", errors="replace").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                seq, digest = int(line["seq"]), str(line["hash"])
            except (ValueError, KeyError, TypeError):
                found.problem = found.problem or f"the anchor file {self.anchor} line {number} is not an anchor " \
                                                 "flightdeck wrote (seq, hash): it was altered"
                continue
            signature = line.get("signature")
            if key is not None and signature is not None \
                    and not hmac.compare_digest(str(signature), _mac(key, f"anchor:{seq}:{digest}")):
                found.problem = found.problem or f"the anchor file {self.anchor} line {number} (entry {seq}) has a " \
                                                 "wrong signature: it was altered, or was written under another key"
                continue
            found.lines += 1
            found.by_seq.setdefault(seq, []).append((number, digest))
            if found.newest is None or seq > found.newest[0]:
                found.newest = (seq, number, digest)
        return found

    # reading ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _entry(row: Any) -> AuditEntry:
        seq, at, actor, action, target, details, prev_hash, digest, signature = row
        try:
            parsed = json.loads(details)
        except (TypeError, ValueError):
            parsed = {"unreadable": str(details)}
        return AuditEntry(int(seq), float(at), actor, action, target, parsed if isinstance(parsed, dict) else
                          {"value": parsed}, prev_hash, digest, signature)

    def head(self) -> AuditEntry | None:
        """The newest entry, or None when the log is empty."""
        with self._snapshot() as cur:
            row = cur.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else self._entry(row)

    def last(self, action: str) -> AuditEntry | None:
        """The newest entry with ``action``, or None."""
        found = self.entries(action=action, limit=1)
        return found[0] if found else None

    def entries(self, since: float | None = None, actor: str | None = None, action: str | None = None,
                limit: int | None = None, *, until: float | None = None) -> list[AuditEntry]:
        """Entries oldest first, from ``since`` (unix time) to ``until``, by ``actor`` and ``action`` (``release.*``:
        every action starting ``release.``); with ``limit``, the newest ``limit`` of them."""
        where, params = [], []
        if since is not None:
            where.append("at >= ?")
            params.append(float(since))
        if until is not None:
            where.append("at < ?")
            params.append(float(until))
        if actor:
            where.append("actor = ?")
            params.append(actor)
        if action:
            if action.endswith("*"):
                where.append("substr(action, 1, ?) = ?")
                params += [len(action) - 1, action[:-1]]
            else:
                where.append("action = ?")
                params.append(action)
        sql = f"SELECT {_COLUMNS} FROM audit_log" + (f" WHERE {' AND '.join(where)}" if where else "")
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit must be at least 1, got {limit}")
            sql += " ORDER BY seq DESC LIMIT ?"
            params.append(int(limit))
        else:
            sql += " ORDER BY seq"
        with self._snapshot() as cur:
            rows = cur.execute(sql, params).fetchall()
        found = [self._entry(r) for r in rows]
        return found[::-1] if limit is not None else found

    def export_jsonl(self, path: str | Path) -> int:
        """Write every entry to ``path`` as JSON lines, oldest first (written whole, then moved into place); the
        count. ``details`` is the parsed object: re-serialised with :func:`canonical_json` it hashes as stored."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        count = 0
        with self._snapshot() as cur, part.open("w", encoding="utf-8") as out:
            for row in cur.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq"):
                out.write(json.dumps(self._entry(row).to_dict(), sort_keys=True) + "\n")
                count += 1
        os.replace(part, target)
        return count

    # verification -----------------------------------------------------------------------------------------------
    def verify(self, key: bytes | None = None) -> AuditVerification:
        """Check the whole log (under ``key``, default this log's key): every entry's hash against its content,
        each link to the entry before, the sequence without gaps, the signatures, the anchors, the pruned genesis.
        Names the first bad entry and what is wrong with it."""
        key = key or self.key
        t0 = time.perf_counter()
        anchors = self._read_anchors(key)  # first: an anchor on file implies its entry was committed before
        with self._snapshot() as cur:
            try:
                g_seq, g_hash, g_state = self._genesis(cur)
                signed_state = self._state(cur, _SIGNED_FROM_STATE)
            except WorkspaceError as exc:
                return AuditVerification(False, 0, None, None, None, str(exc), seconds=time.perf_counter() - t0)
            try:
                result = self._walk(cur, key, g_seq, g_hash, g_state, signed_state, anchors)
            except sqlite3.DatabaseError as exc:  # the table itself was dropped or damaged
                return AuditVerification(False, 0, None, None, None, f"the audit log cannot be read: {exc}",
                                         seconds=time.perf_counter() - t0)
        return AuditVerification(**{**result, "seconds": time.perf_counter() - t0})

    def _walk(self, cur: Any, key: bytes | None, g_seq: int, g_hash: str, g_state: dict[str, Any] | None,
              signed_state: dict[str, Any] | None, anchors: _Anchors) -> dict[str, Any]:
        warnings: list[str] = []
        base = {"genesis_seq": g_seq, "signatures": key is not None, "anchors": 0}
        signed_from = g_seq + 1  # with a key: from this seq on an entry must be signed
        if key is not None and signed_state is not None:
            seq = signed_state.get("seq")
            if not isinstance(seq, int) or not hmac.compare_digest(str(signed_state.get("signature")),
                                                                   _mac(key, f"signed-from:{seq}")):
                return {**base, "ok": False, "checked": 0, "head_seq": None, "head_hash": None, "first_bad_seq": None,
                        "problem": "the state row audit_signed_from (where signing started) was altered: its "
                                   "signature does not match under this key"}
            signed_from = max(signed_from, seq)
        if key is not None and g_state is not None and g_seq:
            if g_state.get("signature") is None:
                warnings.append(f"the pruned genesis (entry {g_seq}) was recorded without a signing key")
            elif not hmac.compare_digest(str(g_state["signature"]), _mac(key, f"genesis:{g_seq}:{g_hash}")):
                return {**base, "ok": False, "checked": 0, "head_seq": None, "head_hash": None,
                        "first_bad_seq": g_seq + 1,
                        "problem": f"the state row audit_genesis (the log starts after entry {g_seq}) was altered: "
                                   "its signature does not match under this key"}

        sha256 = hashlib.sha256
        digest_of = hmac.digest
        by_seq = anchors.by_seq
        expected, last, before = g_seq + 1, g_hash, ""
        checked = unsigned = signed = matched = 0
        bad: tuple[Any, ...] | None = None
        reason = "chain"
        pruned: tuple[int, str] | None = None
        rows = cur.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq")
        try:
            for row in rows:
                seq, at, actor, action, target, details, prev, digest, signature = row
                if seq != expected or prev != last:
                    bad = row
                    break
                payload = f"{prev}{_SEP}{seq}{_SEP}{at!r}{_SEP}{actor}{_SEP}{action}{_SEP}{target}{_SEP}{details}"
                if sha256(payload.encode("utf-8", "surrogatepass")).hexdigest() != digest or payload.count(_SEP) != 6:
                    bad = row
                    break
                if signature is not None:
                    signed += 1
                if key is not None:
                    if signature is None:
                        if seq >= signed_from:
                            bad, reason = row, "unsigned"
                            break
                        unsigned += 1
                    elif digest_of(key, digest.encode(), "sha256").hex() != signature:
                        bad, reason = row, "signature"
                        break
                if seq in by_seq:
                    wrong = [(n, h) for n, h in by_seq[seq] if h != digest]
                    if wrong:
                        bad, reason = row, "anchor"
                        break
                    matched += 1
                if action == "audit.pruned":
                    pruned = (seq, details)
                before, last = last, digest
                expected += 1
                checked += 1
        except sqlite3.DatabaseError as exc:  # a field that is not UTF-8 text cannot even be read back
            seq = cur.execute("SELECT MIN(seq) FROM audit_log WHERE seq >= ?", (expected,)).fetchone()[0]
            return {**base, "ok": False, "checked": checked, "head_seq": None, "head_hash": None,
                    "first_bad_seq": seq, "warnings": tuple(warnings),
                    "problem": f"entry {seq} was edited (a field cannot be read as the text flightdeck wrote: "
                               f"{exc})"}
        base["anchors"] = matched
        head_seq = expected - 1 if checked or g_seq else None
        head_hash = last if head_seq is not None else None
        if bad is not None:
            try:
                nxt = rows.fetchone()
            except sqlite3.DatabaseError:
                nxt = None
            first, problem = self._diagnose(bad, nxt, expected, last, before, reason, signed_from,
                                            signed_state is not None, by_seq, anchors.path)
            newest = cur.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            return {**base, "ok": False, "checked": checked, "head_seq": newest[0], "head_hash": newest[1],
                    "first_bad_seq": first, "problem": problem, "warnings": tuple(warnings)}

        def failed(first: int | None, problem: str) -> dict[str, Any]:
            return {**base, "ok": False, "checked": checked, "head_seq": head_seq, "head_hash": head_hash,
                    "first_bad_seq": first, "problem": problem, "warnings": tuple(warnings)}

        if anchors.newest is not None and anchors.newest[0] > (head_seq or 0):
            seq, line, digest = anchors.newest
            ends = f"ends at entry {head_seq}" if head_seq is not None else "is empty"
            return failed((head_seq or 0) + 1, f"the log was truncated: the anchor at {anchors.path} (line {line}) "
                                               f"recorded entry {seq} (hash {digest[:16]}…) and the log {ends}")
        if g_seq:
            recorded: Any = None
            if pruned is not None:
                with contextlib.suppress(TypeError, ValueError):
                    recorded = json.loads(pruned[1])
            recorded = recorded if isinstance(recorded, dict) else {}
            if (recorded.get("through_seq"), recorded.get("through_hash")) != (g_seq, g_hash):
                earlier = recorded.get("through_seq")
                return failed(earlier + 1 if isinstance(earlier, int) else 1,
                              f"the log starts after entry {g_seq} (the state row audit_genesis), but no audit.pruned "
                              f"entry records pruning through it: entries up to {g_seq} were deleted outside "
                              "`flightdeck audit prune`, or the genesis was moved")
        if anchors.problem:
            return failed(None, anchors.problem)
        if self.anchor is None:
            warnings.append("no anchor file (governance.audit.anchor): a truncated tail cannot be detected")
        elif anchors.lines == 0:
            warnings.append(f"no anchor in {self.anchor} yet (one is written every {self.anchor_every} entries, or by "
                            "`flightdeck audit anchor`): a truncated tail cannot be detected until then")
        if key is None:
            warnings.append(f"{signed} entries are signed, but no key was given: their signatures were not checked"
                            if signed else "no signing key: a chain rewritten with recomputed hashes cannot be "
                                           "detected (set FLIGHTDECK_AUDIT_KEY or governance.audit.signing_key_file)")
        elif unsigned:
            warnings.append(f"{unsigned} entries before entry {signed_from} were written before the signing key was "
                            "set: they are chained but not signed")
        return {**base, "ok": True, "checked": checked, "head_seq": head_seq, "head_hash": head_hash,
                "first_bad_seq": None, "problem": None, "warnings": tuple(warnings)}

    @staticmethod
    def _rehash(row: Any, seq: int) -> str:
        """The hash ``row`` would have at ``seq`` ("" when its fields cannot be what flightdeck wrote)."""
        _, at, actor, action, target, details, prev, _, _ = row
        payload = f"{prev}{_SEP}{seq}{_SEP}{at!r}{_SEP}{actor}{_SEP}{action}{_SEP}{target}{_SEP}{details}"
        if payload.count(_SEP) != 6:
            return ""
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()

    def _diagnose(self, bad: Any, nxt: Any, expected: int, last: str, before: str, reason: str, signed_from: int,
                  started: bool, by_seq: dict[int, list[tuple[int, str]]], anchor_path: Path | None) -> tuple[int, str]:
        """The first bad entry and what is wrong with it in words, from the row where the walk stopped (``bad``), the
        row after it (``nxt``), the hash of the last good entry (``last``) and of the one before (``before``)."""
        seq, prev, digest = bad[0], bad[6], bad[7]
        if reason == "unsigned":
            if started:
                return seq, (f"entry {seq} is not signed, though the log is signed from entry {signed_from} on: it was "
                             "written or rewritten without the key")
            return seq, (f"entry {seq} is not signed, though a key was given: it was written or rewritten without the "
                         "key (a log written before the key was set starts signing at its next entry; verify it "
                         "without the key until then)")
        if reason == "signature":
            return seq, (f"entry {seq}'s signature is wrong: the entry was rewritten with a recomputed hash (or the "
                         "key is not the one that signed the log)")
        if reason == "anchor":
            number, recorded = next((n, h) for n, h in by_seq[seq] if h != digest)
            return seq, (f"entry {seq} differs from the anchor at {anchor_path} (line {number}), which recorded hash "
                         f"{recorded[:16]}… where the log has {digest[:16]}…: the log was rewritten at or before "
                         f"entry {seq}")
        if seq > expected:
            gap = f"entry {expected} is missing" if seq == expected + 1 else f"entries {expected}-{seq - 1} are missing"
            start = f"the log starts at entry {seq}" if expected == 1 else f"seq jumps {expected - 1}→{seq}"
            return expected, f"{gap} ({start})"
        if seq < expected:
            return seq, (f"entry {seq} was inserted: the log was pruned through entry {expected - 1} and starts after "
                         "it")
        intact = self._rehash(bad, seq) == digest
        written_as = next((s for s in (seq + 1, seq - 1, seq + 2) if s > 0 and self._rehash(bad, s) == digest), None)
        if not intact:
            if written_as == seq + 1 and nxt is not None and self._rehash(nxt, seq) == nxt[7]:
                return seq, (f"entries {seq} and {seq + 1} were swapped (reordered): the row at {seq} was written as "
                             f"entry {seq + 1}")
            if written_as == seq + 1:
                return seq, (f"entry {seq} was deleted and the entries after it renumbered: the row at {seq} was "
                             f"written as entry {seq + 1}")
            if written_as == seq - 1 and prev == before:
                return seq - 1, (f"entry {seq - 1} was inserted and the entries after it renumbered: the row at {seq} "
                                 f"was written as entry {seq - 1} and follows entry {seq - 2}")
            if written_as is not None:
                return seq, f"entry {seq} was moved: it was written as entry {written_as} (reordered)"
            if nxt is not None and nxt[6] == last:
                return seq, f"entry {seq} was inserted (entry {seq + 1} follows entry {seq - 1} directly)"
            return seq, f"entry {seq} was edited (its hash does not match its content)"
        if before and prev == before:
            return seq - 1, f"entry {seq - 1} was inserted (entry {seq} follows entry {seq - 2} directly)"
        if nxt is not None and prev == nxt[7]:
            return seq, f"entries {seq} and {seq + 1} were swapped (reordered)"
        return seq, (f"entry {seq} was inserted or reordered (its prev_hash does not match entry {seq - 1}'s hash; or "
                     f"entry {seq - 1} was rewritten with a recomputed hash)")

    # retention --------------------------------------------------------------------------------------------------
    def prune(self, older_than: float, actor: str) -> PruneResult:
        """Delete the entries written before ``older_than`` (unix time), oldest first and without a hole: the last one
        deleted becomes the genesis the chain starts from, recorded in the state table and by an ``audit.pruned``
        entry (in the same transaction). Refuses when the log does not verify: pruning would destroy the evidence."""
        check = self.verify()
        if not check.ok:
            raise WorkspaceError(f"the audit log does not verify, so nothing is pruned (that would delete the "
                                 f"evidence): {check.problem}")
        with self._immediate() as cur:
            g_seq, g_hash, _ = self._genesis(cur)
            head = cur.execute("SELECT MAX(seq) FROM audit_log").fetchone()[0]
            newer = cur.execute("SELECT MIN(seq) FROM audit_log WHERE at >= ?", (float(older_than),)).fetchone()[0]
            through = (newer - 1) if newer is not None else head
            if through is None or through <= g_seq:
                return PruneResult(0, g_seq, g_hash, None)
            through_hash = cur.execute("SELECT hash FROM audit_log WHERE seq = ?", (through,)).fetchone()[0]
            deleted = cur.execute("DELETE FROM audit_log WHERE seq <= ?", (through,)).rowcount
            self._set_state(cur, _GENESIS_STATE, {
                "seq": through, "hash": through_hash,
                "signature": None if self.key is None else _mac(self.key, f"genesis:{through}:{through_hash}")})
            details = canonical_json({"through_seq": through, "through_hash": through_hash, "deleted": deleted,
                                      "older_than": float(older_than), "older_than_time": _iso(older_than)})
            entry = self._append_on(cur, _clean(actor), "audit.pruned", "audit_log", details, float(self.clock()))
        self._anchor_if_due(entry)
        return PruneResult(deleted, through, through_hash, entry)
