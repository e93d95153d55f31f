"""A local server that speaks Anthropic's Messages API wire format, answering with a real model.

``POST /v1/messages`` (JSON, or server-sent events with ``"stream": true``) and ``GET /v1/models``, on 127.0.0.1,
for the tests of the ``anthropic`` generator. The text comes from a GGUF model run by llama-cpp-python (the
packaged Gemma 3 270M in the tests): the ``system`` text and the turns are written out as one text with
flightdeck's ``render_completion_prompt``, as the packaged base model needs, and continued greedily (or sampled
at a ``temperature`` the request sets). A turn ends at a blank line (``end_turn``, the layout of that text), at
one of the request's ``stop_sequences`` (``stop_sequence``) or after ``max_tokens`` (``max_tokens``).

The server checks what Anthropic's API checks: the key, as ``x-api-key`` or ``Authorization: Bearer`` (401
``authentication_error``); the ``anthropic-version`` header, 2023-06-01 or 2026-10-21, and the request (400
``invalid_request_error``, also for a ``temperature`` under 2026-10-21, which has none); the model (404
``not_found_error``).
It appends one JSON line per request to ``--record``: the headers' names, the body, whether the key was right
(never the key) and how the answer ended, including a stream the client closed before its end.

Run: ``python tests/anthropic_server.py --model-path M.gguf --model-name NAME --api-key K --port P --record F``;
:func:`running_anthropic_server` starts it on a free port and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flightdeck.models.generators.base import render_completion_prompt

END_OF_TURN = "\n\n"
SEED = 0
API_VERSIONS = ("2023-06-01", "2026-10-21")  # what the SDKs before 2, and SDK 2, send
SAMPLING_REMOVED = "2026-10-21"  # the version that takes no temperature, top_p or top_k


class ApiError(Exception):
    """An answer in Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _text(content: Any, where: str) -> str:
    """A message's or the system's content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) and b.get("type") == "text"
                                         and isinstance(b.get("text"), str) for b in content):
        return "".join(b["text"] for b in content)
    raise ApiError(400, "invalid_request_error", f"{where}: Input should be a valid string or a list of text blocks")


@dataclass
class Request:
    """A checked ``POST /v1/messages`` body."""

    turns: list[dict[str, str]]  # system first when there is one, as render_completion_prompt takes them
    max_tokens: int
    temperature: float
    stops: list[str]
    stream: bool


class Model:
    """The GGUF model; one generation at a time (a llama.cpp context is not thread-safe)."""

    def __init__(self, path: str, name: str, n_ctx: int, n_threads: int) -> None:
        import llama_cpp

        self.name = name
        self.llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_batch=512, seed=SEED,
                                   verbose=False)
        self.lock = threading.Lock()

    def count(self, prompt: str, request: Request) -> int:
        """The prompt's tokens; a 400 when they and ``max_tokens`` do not fit the context."""
        tokens = len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True))
        if tokens + request.max_tokens > self.llm.n_ctx():
            raise ApiError(400, "invalid_request_error", f"prompt is too long: {tokens} tokens + max_tokens "
                           f"{request.max_tokens} > {self.llm.n_ctx()} maximum")
        return tokens

    def generate(self, prompt: str, request: Request, ended: dict[str, Any]) -> Iterator[str]:
        """The text of the turn, piece by piece; ``ended`` gets ``stop_reason``, ``stop_sequence`` and
        ``output_tokens``. Closing the iterator stops the model."""
        stops = [*request.stops, END_OF_TURN]
        with self.lock:
            self.llm.reset()
            pieces = self.llm.create_completion(prompt, max_tokens=request.max_tokens, seed=SEED,
                                                temperature=request.temperature, stream=True)
            text, sent, tokens = "", 0, 0
            try:
                for chunk in pieces:
                    choice = chunk["choices"][0]
                    if choice["finish_reason"] is None:  # one chunk a token, then one that says why it ended
                        tokens += 1
                        ended["output_tokens"] = tokens
                    text += choice["text"]
                    found = [(text.find(s), -len(s), s) for s in stops if s in text]
                    if found:
                        at, _, stop = min(found)
                        if at > sent:
                            yield text[sent:at]
                        ended["stop_reason"] = "stop_sequence" if stop in request.stops else "end_turn"
                        ended["stop_sequence"] = stop if stop in request.stops else None
                        return
                    # hold back an end that may be the start of a stop sequence
                    held = max((n for s in stops for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
                    if len(text) - held > sent:
                        yield text[sent:len(text) - held]
                        sent = len(text) - held
                if len(text) > sent:
                    yield text[sent:]
                ended["stop_reason"] = "max_tokens" if tokens >= request.max_tokens else "end_turn"
            finally:
                pieces.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature of the base class
        pass

    # --- answers ----------------------------------------------------------------------------------------------

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: ApiError) -> None:
        self._send(error.status, {"type": "error", "error": {"type": error.kind, "message": error.message}})

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, name: str, payload: dict[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())

    # --- checks -----------------------------------------------------------------------------------------------

    def _authorize(self) -> None:
        """The key comes as ``x-api-key`` (SDKs before 2) or ``Authorization: Bearer`` (SDK 2); x-api-key wins."""
        bearer = self.headers.get("authorization", "")
        key = self.headers.get("x-api-key")
        self.record["key_header"] = "x-api-key" if key is not None else "authorization" if bearer else None
        if key is None and bearer.lower().startswith("bearer "):
            key = bearer[len("bearer "):]
        self.record["key_ok"] = key == self.server.api_key
        if key is None:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        if not self.record["key_ok"]:
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        version = self.headers.get("anthropic-version")
        if not version:
            raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
        if version not in API_VERSIONS:
            raise ApiError(400, "invalid_request_error", f"anthropic-version: {version!r} is not a valid version")

    def _request(self, body: Any) -> Request:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request_error", "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str):
            raise ApiError(400, "invalid_request_error", "model: Field required")
        if model != self.server.model.name:
            raise ApiError(404, "not_found_error", f"model: {model}")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ApiError(400, "invalid_request_error", "max_tokens: Field required (an integer >= 1)")
        if self.headers.get("anthropic-version") == SAMPLING_REMOVED:
            for name in ("temperature", "top_p", "top_k"):
                if name in body:
                    raise ApiError(400, "invalid_request_error", f"{name}: Extra inputs are not permitted")
        temperature = body.get("temperature", 0.0)  # none given: greedy, so that an answer repeats
        if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1:
            raise ApiError(400, "invalid_request_error", "temperature: range: 0..1")
        stops = body.get("stop_sequences", [])
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise ApiError(400, "invalid_request_error", "stop_sequences: a list of non-empty strings")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "invalid_request_error", "messages: at least one message is required")
        turns: list[dict[str, str]] = []
        if "system" in body:
            turns.append({"role": "system", "content": _text(body["system"], "system")})
        for n, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role == "system":
                raise ApiError(400, "invalid_request_error", f'messages.{n}: Unexpected role "system". The Messages '
                               'API accepts a top-level `system` parameter, not "system" as an input message role.')
            if role not in ("user", "assistant"):
                raise ApiError(400, "invalid_request_error", f"messages.{n}.role: Input should be 'user' or "
                               "'assistant'")
            turns.append({"role": role, "content": _text(message.get("content"), f"messages.{n}.content")})
        return Request(turns, max_tokens, float(temperature), stops, bool(body.get("stream", False)))

    # --- routes -----------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.record = {"method": "GET", "path": self.path, "headers": sorted(k.lower() for k in self.headers)}
        try:
            if self.path.split("?")[0] != "/v1/models":
                raise ApiError(404, "not_found_error", f"Not Found: {self.path}")
            self._authorize()
            name = self.server.model.name
            self._send(200, {"data": [{"type": "model", "id": name, "display_name": name,
                                       "created_at": "2025-03-12T00:00:00Z"}],
                             "has_more": False, "first_id": name, "last_id": name})
        except ApiError as e:
            self._error(e)

    def do_POST(self) -> None:
        self.record = {"method": "POST", "path": self.path, "headers": sorted(k.lower() for k in self.headers),
                       "anthropic_version": self.headers.get("anthropic-version")}
        try:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?")[0] != "/v1/messages":
                raise ApiError(404, "not_found_error", f"Not Found: {self.path}")
            self._authorize()
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise ApiError(400, "invalid_request_error", f"the request body is not JSON: {e}") from e
            self.record["body"] = body
            request = self._request(body)
            prompt = render_completion_prompt(request.turns)
            self.record["prompt"] = prompt
            (self._stream if request.stream else self._answer)(prompt, request)
        except ApiError as e:
            self.record["outcome"] = f"error {e.status} {e.kind}"
            self._error(e)
        finally:
            self.server.write_record(self.record)

    def _message(self, content: list[dict[str, Any]], stop_reason: str | None, stop_sequence: str | None,
                 usage: dict[str, int]) -> dict[str, Any]:
        return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
                "model": self.server.model.name, "content": content, "stop_reason": stop_reason,
                "stop_sequence": stop_sequence, "usage": usage}

    def _answer(self, prompt: str, request: Request) -> None:
        model = self.server.model
        ended: dict[str, Any] = {"output_tokens": 0, "stop_reason": None, "stop_sequence": None}
        input_tokens = model.count(prompt, request)
        text = "".join(model.generate(prompt, request, ended))
        usage = {"input_tokens": input_tokens, "output_tokens": ended["output_tokens"]}
        self.record.update(outcome=ended["stop_reason"], output_tokens=ended["output_tokens"], text=text)
        self._send(200, self._message([{"type": "text", "text": text}], ended["stop_reason"],
                                      ended["stop_sequence"], usage))

    def _stream(self, prompt: str, request: Request) -> None:
        model = self.server.model
        ended: dict[str, Any] = {"output_tokens": 0, "stop_reason": None, "stop_sequence": None}
        input_tokens = model.count(prompt, request)  # a 400 comes before the stream starts
        pieces = model.generate(prompt, request, ended)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        written: list[str] = []
        try:
            self._event("message_start", {"type": "message_start", "message": self._message(
                [], None, None, {"input_tokens": input_tokens, "output_tokens": 1})})
            self._event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}})
            self._event("ping", {"type": "ping"})
            for piece in pieces:
                self._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "text_delta", "text": piece}})
                written.append(piece)
            self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
            self._event("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": ended["stop_reason"], "stop_sequence": ended["stop_sequence"]},
                "usage": {"output_tokens": ended["output_tokens"]}})
            self._event("message_stop", {"type": "message_stop"})
            self._chunk(b"")  # the end of the chunked body
            self.record.update(outcome=ended["stop_reason"])
        except (BrokenPipeError, ConnectionResetError):
            self.record.update(outcome="client closed the stream")
            self.close_connection = True
        finally:
            pieces.close()  # stops the model when the client went away
            self.record.update(output_tokens=ended["output_tokens"], text="".join(written), deltas=len(written))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, model: Model, api_key: str, record: Path) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.model, self.api_key, self.record = model, api_key, record
        self._record_lock = threading.Lock()

    def write_record(self, entry: dict[str, Any]) -> None:
        with self._record_lock, self.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")


# --- for the tests ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnthropicServer:
    """A running ``tests/anthropic_server.py``."""

    base_url: str  # http://127.0.0.1:<port> (the SDK adds /v1/messages)
    model: str
    api_key: str
    record: Path
    log: Path

    def requests(self) -> list[dict[str, Any]]:
        """What the server recorded, one entry per request answered, oldest first."""
        if not self.record.is_file():
            return []
        return [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines() if line]


@contextmanager
def running_anthropic_server(model_path: Path, folder: Path, *, model: str = "gemma-3-270m",
                             api_key: str = "flightdeck-anthropic-test-key",
                             n_ctx: int = 4096) -> Iterator[AnthropicServer]:
    """The server on a free port of 127.0.0.1, stopped on exit."""
    import httpx
    import pytest

    from llm_fixtures import free_port, stop_process

    port = free_port()
    log, record = folder / f"anthropic-server-{port}.log", folder / f"anthropic-server-{port}.jsonl"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--model-path", str(model_path), "--model-name", model,
           "--api-key", api_key, "--port", str(port), "--record", str(record), "--n-ctx", str(n_ctx),
           "--n-threads", "2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tests/anthropic_server.py exited with {proc.returncode} before serving:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            try:
                r = httpx.get(f"{base_url}/v1/models", headers={"x-api-key": api_key,
                                                                "anthropic-version": "2023-06-01"}, timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tests/anthropic_server.py did not answer {base_url}/v1/models within 120 s:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.25)
        yield AnthropicServer(base_url, model, api_key, record, log)
    finally:
        stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=2)
    args = parser.parse_args()
    model = Model(args.model_path, args.model_name, args.n_ctx, args.n_threads)
    Server(args.port, model, args.api_key, args.record).serve_forever()


if __name__ == "__main__":
    main()
