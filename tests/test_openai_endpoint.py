"""Where the OpenAI-compatible providers send a key: the spec's key to the spec's endpoint, ``$OPENAI_API_KEY``
only to OpenAI (or to ``$OPENAI_BASE_URL``). Checked with the real SDK against a small OpenAI-compatible
server on 127.0.0.1 that records the headers it receives; api.openai.com is never called.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from flightdeck.errors import FlightdeckError
from flightdeck.openai_endpoint import api_key, environment_applies

pytest.importorskip("openai")

ENV_KEY = "sk-env-4b7d1f"  # what the environment holds: must reach no endpoint but OpenAI's or $OPENAI_BASE_URL
SPEC_KEY = "sk-spec-9a3e02"


@dataclass
class Endpoint:
    """A minimal OpenAI-compatible server: GET /models, POST /embeddings, POST /chat/completions."""

    base_url: str = ""
    required: str | None = None  # the key it wants (401 without it); None: any
    headers: list[dict[str, str]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [h.get("authorization", "") for h in self.headers]


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            endpoint.headers.append({k.lower(): v for k, v in self.headers.items()})
            if endpoint.required and self.headers.get("Authorization") != f"Bearer {endpoint.required}":
                self._answer(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self._authorized():
                self._answer(200, {"object": "list", "data": [
                    {"id": "tiny", "object": "model", "created": 0, "owned_by": "test"}]})

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not self._authorized():
                return
            if self.path.endswith("/embeddings"):
                texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
                return self._answer(200, {"object": "list", "model": "tiny", "data": [
                    {"object": "embedding", "index": i, "embedding": [1.0, float(len(t)), 0.5]}
                    for i, t in enumerate(texts)], "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            return self._answer(200, {
                "id": "c1", "object": "chat.completion", "created": 0, "model": "tiny",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "Paris."}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})

    return Handler


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    state = Endpoint()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _embed(endpoint: Endpoint, **settings: Any) -> Any:
    from flightdeck.retrieval.embedders.openai import OpenAIConfig, OpenAIEmbedder

    config = OpenAIConfig(**{"model": "tiny", "max_retries": 0, "max_tokens": 64, **settings})
    return OpenAIEmbedder(config).embed_query("hello")


def _chat(endpoint: Endpoint, **settings: Any) -> Any:
    from flightdeck.models.generators.openai import OpenAIGenerator, OpenAIGeneratorConfig

    generator = OpenAIGenerator(OpenAIGeneratorConfig(**{"model": "tiny", "max_retries": 0, **settings}))
    try:
        return generator.complete([{"role": "user", "content": "Capital of France?"}])
    finally:
        generator.close()


@pytest.mark.parametrize("call", [_embed, _chat], ids=["embedder", "generator"])
def test_the_environment_key_is_not_sent_to_an_endpoint_the_spec_names(
        endpoint: Endpoint, call: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env-71c2")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Env-Secret: hdr-env-55d0")
    call(endpoint, base_url=endpoint.base_url)  # a spec's base_url, no api_key: a local server takes any key
    sent = json.dumps(endpoint.headers)
    assert endpoint.headers and ENV_KEY not in sent
    assert "org-env-71c2" not in sent and "hdr-env-55d0" not in sent  # nor what else the SDK read from there
    assert set(endpoint.keys) == {"Bearer not-needed"}


@pytest.mark.parametrize("call", [_embed, _chat], ids=["embedder", "generator"])
def test_a_key_the_spec_names_goes_to_the_spec_endpoint(endpoint: Endpoint, call: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    endpoint.required = ENV_KEY
    # `api_key: ${OPENAI_API_KEY}` in the spec: resolved before the config is built, so the value arrives here
    call(endpoint, base_url=endpoint.base_url, api_key=ENV_KEY)
    assert set(endpoint.keys) == {f"Bearer {ENV_KEY}"}


@pytest.mark.parametrize("call", [_embed, _chat], ids=["embedder", "generator"])
def test_the_environment_pairs_its_key_with_its_own_base_url(endpoint: Endpoint, call: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", endpoint.base_url)
    endpoint.required = ENV_KEY
    call(endpoint)  # no base_url in the spec: both come from the environment, as the SDK would take them
    assert set(endpoint.keys) == {f"Bearer {ENV_KEY}"}


def test_a_server_that_wants_the_key_says_how_to_name_it(endpoint: Endpoint,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from flightdeck.models.generators.openai import OpenAIGeneratorError
    from flightdeck.retrieval.embedders.openai import OpenAIEmbedderError

    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    endpoint.required = ENV_KEY
    with pytest.raises(OpenAIEmbedderError) as err:
        _embed(endpoint, base_url=endpoint.base_url)
    message = str(err.value)
    assert "wants an API key (401" in message and "none was sent" in message
    assert "OPENAI_API_KEY environment variable is sent only to https://api.openai.com/v1" in message
    assert "under retrieval.embedding_model: `api_key: ${OPENAI_API_KEY}`" in message and ENV_KEY not in message
    with pytest.raises(OpenAIGeneratorError, match=r"wants an API key \(401\) and none was sent: .*under "
                                                   r"model\.generator: `api_key: \$\{OPENAI_API_KEY\}`"):
        _chat(endpoint, base_url=endpoint.base_url)
    with pytest.raises(OpenAIGeneratorError, match=r"the API key was refused \(401; it came from the `api_key` "):
        _chat(endpoint, base_url=endpoint.base_url, api_key="sk-wrong")
    assert all(ENV_KEY not in key for key in endpoint.keys)


def test_the_environment_key_belongs_to_openai_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    who = {"who": "embedder 'openai'", "section": "retrieval.embedding_model"}
    assert api_key(None, "https://api.openai.com/v1", **who) == ENV_KEY
    assert api_key(SecretStr(SPEC_KEY), "https://api.openai.com/v1", **who) == SPEC_KEY
    assert api_key(SecretStr(SPEC_KEY), "http://10.0.0.5:8000/v1", **who) == SPEC_KEY
    for elsewhere in ("http://10.0.0.5:8000/v1", "https://api.openai.com.evil.example/v1",
                      "https://api.openai.com:8443/v1", "https://proxy.example/api.openai.com/v1"):
        assert not environment_applies(elsewhere)
        assert api_key(None, elsewhere, **who) == "not-needed"
    with pytest.raises(FlightdeckError, match=r"needs an API key for http://api\.openai\.com/v1.*use https"):
        api_key(None, "http://api.openai.com/v1", **who)  # never in clear text
