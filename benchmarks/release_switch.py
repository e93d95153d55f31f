"""Promotion and rollback under load (checklist 5.4): `flightdeck serve --release production` switching releases
without a restart, beside the way a server without it switches: stopping it and starting it on the new build.

A project of ``--docs`` pages is built twice (v2 adds pages), each build a release (approvals not required here:
``governance.approvals: {required: 0, gates_must_pass: false}``). One real server process (uvicorn, the packaged
MiniLM embedding model, the extractive answerer) takes ``--clients`` threads of back-to-back ``POST /v1/search``
requests (keep-alive; a viewer key) for ``--seconds`` seconds while an admin key moves production between v1 and v2
every ``--every`` seconds over the API (``POST /v1/releases/rollback {"to": …}``). Counted: requests, failed requests
(any status but 200, any transport error), which release answered each one, and each switch's latency (from the
call returning to the first answer from the new release).

The peer, in the same run: the same load against the same project served without ``--release``, where switching
builds means stopping the server and starting it again (what a deployment without hot switching does); the
restarts happen on the same schedule. Request latency is reported as median and p95 for both.

    python benchmarks/release_switch.py                    # 60 s each, 4 clients, a switch every 5 s
    python benchmarks/release_switch.py --seconds 20 --every 4

Results: benchmarks/results/release_switch.json. Rules: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
FLIGHTDECK = [sys.executable, "-m", "flightdeck"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TOPICS = ["virtual environments", "sorting lists", "reading JSON", "regular expressions", "file handling",
          "dates and times", "logging", "unit tests", "packaging", "threads"]


def cli(root: Path, *args: str) -> str:
    done = subprocess.run([*FLIGHTDECK, *args, "--spec", str(root)], capture_output=True, text=True, env=ENV,
                          timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"flightdeck {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def write_docs(root: Path, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        topic = TOPICS[i % len(TOPICS)]
        (root / "docs" / f"page{i:03d}.md").write_text(
            f"# {topic.title()} {i}\n\nThis page explains {topic} in Python, part {i}. " * 3 + "\n", "utf-8")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([*FLIGHTDECK, "serve", "--port", str(port), "--log-format", "text", *extra,
                                "--spec", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               text=True, env=ENV)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit("the server exited while starting")
        time.sleep(0.1)
    raise SystemExit("the server did not become ready in 180 s")


def stop_server(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Load:
    """``clients`` threads of back-to-back searches; every answer's time, status and release are kept."""

    def __init__(self, url: str, key: str, clients: int) -> None:
        self.url, self.key, self.clients = url, key, clients
        self.records: list[tuple[float, float, int, str | None]] = []  # (start, seconds, status, release)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)]

    def _run(self, n: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                query = f"how do I use {TOPICS[(n + i) % len(TOPICS)]}"
                t0 = time.perf_counter()
                try:
                    r = client.post(f"{self.url}/v1/search", json={"query": query, "k": 3})
                    status, release = r.status_code, (r.json().get("release") if r.status_code == 200 else None)
                except httpx.HTTPError:
                    status, release = 0, None
                    time.sleep(0.05)  # a client backing off before it tries again, not a tight loop of errors
                with self.lock:
                    self.records.append((t0, time.perf_counter() - t0, status, release))
                i += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def summary(records: list[tuple[float, float, int, str | None]]) -> dict[str, Any]:
    ok = [r for r in records if r[2] == 200]
    times = sorted(r[1] * 1000 for r in ok)
    return {"requests": len(records), "failed": len(records) - len(ok),
            "median_ms": round(statistics.median(times), 2) if times else None,
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2) if times else None}


def hot_switch(root: Path, args: argparse.Namespace, ids: list[str], viewer: str, admin: str) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(root, port, "--release", "production")
    latencies: list[float] = []
    try:
        with Load(url, viewer, args.clients) as load:
            end = time.monotonic() + args.seconds
            target = 1
            while time.monotonic() + args.every < end:
                time.sleep(args.every)
                r = httpx.post(f"{url}/v1/releases/rollback", json={"to": ids[target]},
                               headers={"Authorization": f"Bearer {admin}"}, timeout=60)
                if r.status_code != 200:
                    raise SystemExit(f"rollback failed: {r.text}")
                moved = time.perf_counter()
                while True:  # the first answer from the new release
                    with load.lock:
                        seen = [rec for rec in load.records if rec[0] >= moved and rec[3] == ids[target]]
                    if seen:
                        latencies.append(min(rec[0] + rec[1] for rec in seen) - moved)
                        break
                    if time.perf_counter() - moved > 60:
                        raise SystemExit("the server did not switch in 60 s")
                    time.sleep(0.01)
                target = 1 - target
            time.sleep(max(0.0, end - time.monotonic()))
        records = load.records
    finally:
        stop_server(server)
    return {**summary(records), "switches": len(latencies),
            "switch_latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
            "switch_latency_max_s": round(max(latencies), 3) if latencies else None,
            "answered_by": {rid: sum(1 for r in records if r[3] == rid) for rid in ids}}


def restarts(root: Path, args: argparse.Namespace, viewer: str) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(root, port)
    downtime: list[float] = []
    try:
        with Load(url, viewer, args.clients) as load:
            end = time.monotonic() + args.seconds
            while time.monotonic() + args.every < end:
                time.sleep(args.every)
                t0 = time.perf_counter()
                stop_server(server)
                server = start_server(root, port)
                downtime.append(time.perf_counter() - t0)
            time.sleep(max(0.0, end - time.monotonic()))
        records = load.records
    finally:
        stop_server(server)
    return {**summary(records), "switches": len(downtime),
            "downtime_median_s": round(statistics.median(downtime), 3) if downtime else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flightdeck-release-switch-") as tmp:
        root = Path(tmp) / "project"
        (root / "docs").mkdir(parents=True)
        write_docs(root, args.docs)
        (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
            project: release-switch
            data:
              sources: [{provider: files, path: ./docs}]
            model:
              generator: {provider: extractive, max_sentences: 1}
            governance:
              approvals: {required: 0, gates_must_pass: false}
            """), "utf-8")
        os.environ["LOGNAME"] = "bench"
        cli(root, "run")
        v1 = json.loads(cli(root, "release", "create", "--json"))["release"]["id"]
        cli(root, "release", "promote", v1)
        write_docs(root, 5, start=args.docs)
        cli(root, "run")
        v2 = json.loads(cli(root, "release", "create", "--json"))["release"]["id"]
        cli(root, "release", "promote", v2)
        cli(root, "release", "rollback", "--to", v1)
        viewer = json.loads(cli(root, "keys", "create", "--role", "viewer", "--json"))["key"]
        admin = json.loads(cli(root, "keys", "create", "--role", "admin", "--json"))["key"]
        load_before = os.getloadavg()[0]
        hot = hot_switch(root, args, [v1, v2], viewer, admin)
        peer = restarts(root, args, viewer)
        result = {"command": "python benchmarks/release_switch.py " + " ".join(sys.argv[1:]),
                  "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                              "python": platform.python_version()},
                  "load_1m_before": round(load_before, 2), "load_1m_after": round(os.getloadavg()[0], 2),
                  "settings": vars(args), "hot_switch": hot, "restart": peer}
    out = ROOT / "benchmarks" / "results" / "release_switch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
