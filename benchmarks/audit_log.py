"""The audit log (checklist 8.1): append throughput beside plain sqlite3, and `audit verify` on a million entries.

- **append**: `AuditLog.append` as production calls it — one ``BEGIN IMMEDIATE`` transaction per entry that reads the
  last entry, hashes and signs the new one (HMAC-SHA256) and inserts it — into a fresh workspace's metadata DB (WAL,
  synchronous=NORMAL). Beside it, in the same run, **plain sqlite3**: the very same rows (read back from the audit
  log) inserted into the same table of another fresh workspace, one transaction (``INSERT`` + ``COMMIT``) each, no
  chain, no hashing. The ratio is what the chain and its serialisation cost.
- **verify**: a log of ``--entries`` chained, signed entries is written fast (hashes computed in Python, rows inserted
  with ``executemany`` in one transaction), then ``AuditLog.verify`` checks all of it — hash, link, sequence and
  signature of every entry — ``--repeats`` times; beside it, a plain scan of the same rows (``SELECT`` every column,
  no hashing): the floor of reading them.

    python benchmarks/audit_log.py                       # 2,000 appends x 3, verify 1,000,000 entries x 3
    python benchmarks/audit_log.py --appends 500 --entries 100000 --repeats 1

Medians of ``--repeats``; the machine (CPU, cores, Python, SQLite) and the 1-minute load average before and after each
phase are recorded. Results: benchmarks/results/audit_log.json. Rules: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from flightdeck.workspace import Workspace  # noqa: E402
from flightdeck.workspace.audit import GENESIS_HASH, AuditLog, canonical_json, entry_hash  # noqa: E402

KEY = b"benchmark-audit-key-0123456789abcdef"
COLUMNS = "seq, at, actor, action, target, details, prev_hash, hash, signature"


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "platform": platform.platform()}


def _details(i: int) -> dict[str, Any]:
    """What a run.finished entry carries."""
    return {"status": "succeeded", "spec_hash": hashlib.sha256(b"spec").hexdigest(), "seconds": 12.5 + i % 7,
            "dataset_version": hashlib.sha256(f"d{i // 10}".encode()).hexdigest(),
            "index_version": hashlib.sha256(f"i{i // 10}".encode()).hexdigest(), "error": None}


def bench_append(n: int, work: Path, repeat: int) -> dict[str, Any]:
    ws = Workspace(work / f"append-{repeat}")
    log = AuditLog(ws, key=KEY)
    load = [_load()]
    t0 = time.perf_counter()
    for i in range(n):
        log.append("user:bench", "run.finished", f"run-{i:08d}", _details(i))
    flightdeck_s = time.perf_counter() - t0
    assert log.verify().ok
    raw = sqlite3.connect(ws.root / "metadata.db")
    rows = raw.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq").fetchall()
    raw.close()
    ws.close()
    # the peer: the same rows, the same table (a second fresh workspace), plain sqlite3 with the workspace's pragmas
    plain_ws = Workspace(work / f"plain-{repeat}")
    plain_ws.close()
    db = sqlite3.connect(plain_ws.root / "metadata.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    insert = f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    t0 = time.perf_counter()
    for row in rows:
        db.execute(insert, row)
        db.commit()
    plain_s = time.perf_counter() - t0
    db.close()
    load.append(_load())
    return {"entries": n, "flightdeck_s": flightdeck_s, "plain_sqlite3_s": plain_s,
            "flightdeck_per_s": n / flightdeck_s, "plain_sqlite3_per_s": n / plain_s, "loadavg1": load}


def build_log(n: int, work: Path) -> Workspace:
    """A workspace whose audit log holds ``n`` chained, signed entries (written in one transaction)."""
    ws = Workspace(work / "verify")
    db = sqlite3.connect(ws.root / "metadata.db")
    actions = ("run.finished", "key.created", "document.uploaded", "query.answered", "eval.finished")
    prev, at, batch = GENESIS_HASH, 1_800_000_000.0, []
    db.execute("BEGIN")
    for seq in range(1, n + 1):
        at += 0.25
        action = actions[seq % len(actions)]
        details = canonical_json(_details(seq))
        digest = entry_hash(prev, seq, at, f"user:u{seq % 5}", action, f"target-{seq:08d}", details)
        signature = hmac.new(KEY, digest.encode(), "sha256").hexdigest()
        batch.append((seq, at, f"user:u{seq % 5}", action, f"target-{seq:08d}", details, prev, digest, signature))
        prev = digest
        if len(batch) == 50_000:
            db.executemany(f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
            batch = []
    if batch:
        db.executemany(f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
    db.commit()
    db.close()
    return ws


def bench_verify(ws: Workspace, repeats: int) -> dict[str, Any]:
    log = AuditLog(ws, key=KEY)
    runs = []
    for _ in range(repeats):
        load0 = _load()
        result = log.verify()
        assert result.ok, result.problem
        t0 = time.perf_counter()
        db = sqlite3.connect(ws.root / "metadata.db")
        scanned = sum(1 for _ in db.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq"))
        scan_s = time.perf_counter() - t0
        db.close()
        runs.append({"verify_s": result.seconds, "checked": result.checked, "signatures": result.signatures,
                     "plain_scan_s": scan_s, "scanned": scanned, "loadavg1": [load0, _load()]})
    return {"entries": runs[0]["checked"], "runs": runs,
            "verify_s_median": statistics.median(r["verify_s"] for r in runs),
            "plain_scan_s_median": statistics.median(r["plain_scan_s"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=2000, help="entries appended per repeat (default 2000)")
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries of the log verified (default 1M)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (default 3; medians)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "audit_log.json")
    args = parser.parse_args()

    out: dict[str, Any] = {"machine": _machine(), "command": " ".join(["python", *sys.argv])}
    with tempfile.TemporaryDirectory(prefix="fd-audit-bench-") as tmp:
        work = Path(tmp)
        appends = [bench_append(args.appends, work, r) for r in range(args.repeats)]
        out["append"] = {"runs": appends,
                         "flightdeck_per_s_median": statistics.median(r["flightdeck_per_s"] for r in appends),
                         "plain_sqlite3_per_s_median": statistics.median(r["plain_sqlite3_per_s"] for r in appends)}
        t0 = time.perf_counter()
        ws = build_log(args.entries, work)
        out["build_s"] = time.perf_counter() - t0
        out["db_bytes"] = (ws.root / "metadata.db").stat().st_size
        out["verify"] = bench_verify(ws, args.repeats)
        ws.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")

    a, v = out["append"], out["verify"]
    ratio = a["flightdeck_per_s_median"] / a["plain_sqlite3_per_s_median"]
    print(f"machine: {out['machine']['cpu']}, {out['machine']['cores']} cores, Python {out['machine']['python']}, "
          f"SQLite {out['machine']['sqlite']}")
    print()
    print("| measurement | flightdeck | plain sqlite3 | ratio |")
    print("|---|---|---|---|")
    print(f"| append, one transaction per entry ({args.appends} entries, median of {args.repeats}) | "
          f"{a['flightdeck_per_s_median']:,.0f} entries/s | {a['plain_sqlite3_per_s_median']:,.0f} rows/s | "
          f"{ratio:.2f} |")
    print(f"| verify {v['entries']:,} entries (hash, link, seq, HMAC; median of {args.repeats}) | "
          f"{v['verify_s_median']:.2f} s | {v['plain_scan_s_median']:.2f} s (scan only) | "
          f"{v['verify_s_median'] / v['plain_scan_s_median']:.1f}x the scan |")
    print()
    print(f"log of {v['entries']:,} entries built in {out['build_s']:.1f} s, {out['db_bytes'] / 1e6:,.0f} MB; "
          f"load average per run: append {[r['loadavg1'] for r in a['runs']]}, "
          f"verify {[r['loadavg1'] for r in v['runs']]}; results in {args.out}")
    if v["verify_s_median"] >= 10:
        print(f"warning: verify took {v['verify_s_median']:.1f} s, over the 10 s goal", file=sys.stderr)


if __name__ == "__main__":
    main()
