"""Shared fixtures: offline always, small corpora written per test."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from llm_fixtures import (  # noqa: F401 - fixtures shared by the retrieval, models and data tests
    anthropic_server,
    gemma_gguf,
    llama_chat_server,
    llama_generator,
    llama_server,
    start_llama_server,
    unused_port,
)


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
