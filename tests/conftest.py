"""Shared fixtures: offline always, small corpora written per test."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_fixtures import (  # noqa: F401 - fixtures shared by the retrieval, models and data tests
    anthropic_server,
    free_port,
    gemma_gguf,
    llama_chat_server,
    llama_generator,
    llama_server,
    start_llama_server,
    unused_port,
)
from needs import need


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-verified", action="store_true", default=False,
                     help="after a full green run, write src/flightdeck/spec/verified.json (what the checklist "
                          "reads as proof) from this run's passing @pytest.mark.exercises tests")


def pytest_configure(config: pytest.Config) -> None:
    from checklist_verification import ChecklistVerification

    config.pluginmanager.register(ChecklistVerification(config), "checklist_verification")


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SPEC = """\
project: test-project
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - {{provider: files, path: ./docs}}
  chunking: {{provider: recursive, size: {size}, overlap: 16}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
  search: {{mode: hybrid, k: 5}}
"""

DOCS = {
    "guide/install.md": """\
        # Installing Widgets

        Widgets are installed with the widget installer. Run `widget install` in a terminal.

        ## Requirements

        A widget needs a frame, two sprockets and a license key. The license key is printed on the box.

        ## Troubleshooting

        If the installer stops with error W42, the sprockets are not aligned. Align them and run it again.
        """,
    "guide/care.html": """\
        <html><head><title>Caring for widgets</title><script>var tracking = 1;</script></head>
        <body><nav>Home | Guides | Contact</nav>
        <div role="main"><h1>Caring for widgets<a class="headerlink" href="#c">¶</a></h1>
        <p>Clean a widget with a soft cloth once a week. Never use water on the sprockets.</p>
        <h2>Storage</h2><p>Store widgets in a dry place between 5 and 25 degrees Celsius.</p>
        </div><footer>Copyright Widget Corp</footer></body></html>
        """,
    "notes.txt": "Widget colours: red, blue and green. Green widgets are the most popular in spring.\n",
}


def write_docs(root: Path, docs: dict[str, str] | None = None) -> Path:
    docs_dir = root / "docs"
    for rel, body in (docs or DOCS).items():
        path = docs_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body), encoding="utf-8")
    return docs_dir


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A folder with flightdeck.yaml and a small docs/ corpus (markdown, HTML, text)."""
    write_docs(tmp_path)
    (tmp_path / "flightdeck.yaml").write_text(SPEC.format(size=64), encoding="utf-8")
    return tmp_path


@pytest.fixture
def records_file(tmp_path: Path) -> Path:
    rows = [{"_id": f"d{i}", "title": f"Title {i}", "text": f"Record number {i} talks about topic {i % 3}."}
            for i in range(10)]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket of this process tries to connect to during the test.

    A safety net as well as a witness: a connection to anything but loopback fails here, so that a test of
    the guard can never send traffic to a private or public address, even when the guard is broken.
    """
    seen: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def _check(address: Any) -> None:
        seen.append(address)
        host = address[0] if isinstance(address, tuple) else ""
        if not ipaddress.ip_address(str(host).split("%")[0]).is_loopback:
            raise OSError(f"test safety net: no traffic to {host} from this test")

    def connect(self: socket.socket, address: Any) -> None:
        _check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return seen


# The PostgreSQL server of this machine (trust auth, database `test`).
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def pg_url() -> str:
    """The URL of the PostgreSQL server, or a skip that says why it cannot be reached."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL}: {str(exc).strip()[:200]}")
    return POSTGRES_URL


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to resolve or connect to anything but loopback is recorded and refused."""
    attempts: list[str] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def local(host: Any) -> bool:
        return str(host) in ("127.0.0.1", "::1", "localhost", "") or str(host).startswith("127.")

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and not local(address[0]):
            attempts.append(f"connect {address}")
            raise OSError(f"test: no network ({address})")
        return connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not local(host):
            attempts.append(f"resolve {host}")
            raise socket.gaierror(f"test: no network ({host})")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


# --- a small evaluated project: three pages and a question on each (releases, registries, automation) -----------
EVAL_DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv followed by the folder "
               "name. Activate it before installing packages with pip.\n",
    "json.md": "# JSON\n\nThe json module reads JSON text with json.loads and writes it with json.dumps.\n",
    "regex.md": "# Regular expressions\n\nUse re.search to find the first match of a pattern in a string.\n",
}
EVAL_QUESTIONS = [
    {"id": "venv", "question": "How do I create a virtual environment?", "reference_answer":
     "Create a virtual environment with python -m venv followed by the folder name.", "reference_sources": ["venv.md"]},
    {"id": "json", "question": "How do I read JSON text?", "reference_answer": "Read JSON text with json.loads.",
     "reference_sources": ["json.md"]},
    {"id": "regex", "question": "How do I find the first match of a pattern?", "reference_answer":
     "Use re.search to find the first match of a pattern in a string.", "reference_sources": ["regex.md"]},
]
PASSING_GATES = '{"recall@3": ">= 0.5"}'
FAILING_GATES = '{"recall@3": ">= 0.5", "mrr@3": "<= 0.01"}'  # every question finds its page: mrr is high


def write_eval_project(root: Path, *, project: str = "release-test", k: int = 3, gates: str = PASSING_GATES,
                       extra: str = "") -> Path:
    """:data:`EVAL_DOCS` and :data:`EVAL_QUESTIONS` under ``root`` with a spec (extractive answers, hybrid search
    at ``k``, the f1 metrics, ``gates``); ``extra`` is YAML appended at the top level (a ``governance:``
    section…). Returns ``root``."""
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in EVAL_DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "eval").mkdir(exist_ok=True)
    (root / "eval" / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in EVAL_QUESTIONS), "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: {project}
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: 64, overlap: 8}}
        retrieval:
          system: [hybrid_search]
          search: {{mode: hybrid, k: {k}}}
        model:
          generator: {{provider: extractive, max_sentences: 1}}
        evaluation:
          metrics: [f1]
          sets: [eval/qa.jsonl]
          k: 3
          gates: {gates}
        """) + extra, "utf-8")
    return root


# --- a real MLflow tracking server ----------------------------------------------------------------------------
def _http_status(url: str, timeout: float = 2) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (127.0.0.1)
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free port of 127.0.0.1: SQLite backend, artifacts proxied into a folder; yields its URL
    (the MLflow tracker's and the MLflow registry's tests, one server per test module)."""
    need("mlflow", "mlflow")
    need("dev", "flask", "fastapi", "uvicorn", "alembic")  # what the server runs on, beside mlflow-skinny
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = folder / "server.log"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
           "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("wb") as out:  # its own session: the uvicorn worker it starts is stopped with it
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if _http_status(f"{url}/health") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer /health within 90 s:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
