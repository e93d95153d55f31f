"""Messages from Anthropic's API (Claude) or any server that speaks its wire format (``POST /v1/messages``).

Talks through the official ``anthropic`` SDK, which retries 429, 5xx and dropped connections with backoff. The
system message goes in the request's ``system`` parameter, the user and assistant turns in ``messages``, stop
strings in ``stop_sequences``. The Messages API takes no seed, so ``seed`` is unused, and ``temperature`` is sent
only when set (API version 2026-10-21, the one anthropic SDK 2 speaks, takes none). The prompt budget is counted
without the server's tokenizer, at three characters a token — a safe overestimate for English prose.

Where the key goes, as for the ``openai`` generator: a key the spec names (``api_key: ${MY_KEY}``) goes to the
spec's endpoint, whatever it is. ``$ANTHROPIC_API_KEY`` from the environment is sent to
``https://api.anthropic.com`` and to the endpoint ``$ANTHROPIC_BASE_URL`` names, never to another ``base_url`` a
spec sets; to send it there, name it: ``api_key: ${ANTHROPIC_API_KEY}``. What the SDK would take from the
environment besides (``ANTHROPIC_AUTH_TOKEN``, ``ANTHROPIC_CUSTOM_HEADERS``) is never sent to such an endpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from flightdeck.errors import FlightdeckError
from flightdeck.errors import api_error_message as _message
from flightdeck.models.generators.base import Completion, LlmGenerator, LlmSettings
from flightdeck.openai_endpoint import endpoint_host
from flightdeck.registry.lookup import optional_import

__all__ = ["AnthropicConfig", "AnthropicGenerator", "AnthropicGeneratorError", "ANTHROPIC_BASE_URL",
           "messages_request"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_HOST = "api.anthropic.com"
CHARS_PER_TOKEN = 3
_NO_KEY = "not-needed"  # local servers may take any key, but the SDK refuses to send a request without one
_SECTION = "model.generator"
# The Messages API's stop reasons, in the words the other generators use (``Completion.finish_reason``).
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AnthropicGeneratorError(FlightdeckError):
    """A Messages request failed: the server is unreachable, refused the key, lacks the model or the request."""


class AnthropicConfig(LlmSettings):
    """Settings of ``model.generator: {provider: anthropic, ...}``; ``${ENV}`` references are resolved first."""

    model: str = Field("claude-sonnet-4-5", min_length=1, description="model name as the server knows it")
    base_url: str | None = Field(None, description="Messages API endpoint, without /v1 (the SDK adds /v1/messages);"
                                                   f" default: $ANTHROPIC_BASE_URL, else {ANTHROPIC_BASE_URL}")
    api_key: SecretStr | None = Field(None, description="API key, best as a reference: api_key: ${MY_KEY};"
                                                        " default: $ANTHROPIC_API_KEY, sent only to api.anthropic.com"
                                                        " or $ANTHROPIC_BASE_URL")
    temperature: float | None = Field(
        None, ge=0, le=1, description="sent only when set: API version 2026-10-21 (anthropic SDK 2) takes no "
        "temperature and answers 400 to one; older versions take 0-1 (default: the server's)")
    timeout: float = Field(120.0, gt=0, description="seconds per request")
    max_retries: int = Field(3, ge=0, le=20, description="retries of 429/5xx/connection errors, with backoff")


def endpoint_url(setting: str | None) -> str:
    """The endpoint in use: the setting, else ``$ANTHROPIC_BASE_URL``, else Anthropic's."""
    return (setting or os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_BASE_URL).rstrip("/")


def environment_applies(url: str) -> bool:
    """Whether ``$ANTHROPIC_API_KEY`` (and the SDK's other environment settings) may be sent to ``url``: yes for
    Anthropic's own API over https and for the endpoint ``$ANTHROPIC_BASE_URL`` names, no for any other."""
    parts = urlsplit(url)
    if parts.scheme == "https" and (parts.hostname or "").rstrip(".") == ANTHROPIC_HOST and parts.port in (None, 443):
        return True
    paired = os.environ.get("ANTHROPIC_BASE_URL")
    return bool(paired) and paired.rstrip("/") == url.rstrip("/")


def _api_key(setting: SecretStr | None, url: str) -> str:
    if setting is not None:
        return setting.get_secret_value()
    key = os.environ.get("ANTHROPIC_API_KEY")
    if key and environment_applies(url):
        return key
    if endpoint_host(url) == ANTHROPIC_HOST:
        hint = " (and use https://)" if key else ""
        raise AnthropicGeneratorError(
            f"generator 'anthropic' needs an API key for {url}: set the ANTHROPIC_API_KEY environment variable"
            f"{hint}, or `api_key: ${{YOUR_KEY_VAR}}` under {_SECTION} in the spec")
    return _NO_KEY


def _key_source(setting: SecretStr | None, url: str) -> str | None:
    if setting is not None:
        return "the `api_key` setting"
    if os.environ.get("ANTHROPIC_API_KEY") and environment_applies(url):
        return "the ANTHROPIC_API_KEY environment variable"
    return None


def _no_key_hint(url: str) -> str:
    if os.environ.get("ANTHROPIC_API_KEY"):
        return (f"the ANTHROPIC_API_KEY environment variable is sent only to {ANTHROPIC_BASE_URL} (or to the "
                f"endpoint $ANTHROPIC_BASE_URL names), not to {endpoint_host(url)}; to send it there, name it "
                f"under {_SECTION}: `api_key: ${{ANTHROPIC_API_KEY}}`")
    return f"set one under {_SECTION}: `api_key: ${{YOUR_KEY_VAR}}`"


def messages_request(messages: list[dict[str, str]]) -> tuple[str | None, list[dict[str, str]]]:
    """Chat messages as the Messages API takes them: the system messages joined into the ``system`` text, and the
    user and assistant turns, consecutive turns of one role joined (the API wants them alternating)."""
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            system.append(content)
        elif role not in ("user", "assistant"):
            raise AnthropicGeneratorError(f"generator 'anthropic': a message has role {role!r}; the Messages API "
                                          "takes system, user and assistant messages")
        elif turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n\n{content}"}
        else:
            turns.append({"role": role, "content": content})
    return ("\n\n".join(system) if system else None), turns


class AnthropicGenerator(LlmGenerator):
    """Messages over HTTP; the client is built on first use."""

    def __init__(self, config: AnthropicConfig | None = None) -> None:
        self.config = config or AnthropicConfig()
        self._client: Any = None
        self.model_id = f"anthropic:{self.host}/{self.config.model}"

    @property
    def base_url(self) -> str:
        return endpoint_url(self.config.base_url)

    @property
    def host(self) -> str:
        return endpoint_host(self.base_url)

    @property
    def _where(self) -> str:
        return f"generator 'anthropic' ({self.base_url}, model {self.config.model!r})"

    def _sdk(self) -> Any:
        if self._client is None:
            key = _api_key(self.config.api_key, self.base_url)
            sdk = optional_import("anthropic", "anthropic", "generator 'anthropic'")
            client = sdk.Anthropic(base_url=self.base_url, api_key=key, timeout=self.config.timeout,
                                   max_retries=self.config.max_retries)
            client.auth_token = None  # only the key is sent (SDKs before 1.0 read $ANTHROPIC_AUTH_TOKEN anyway)
            if not environment_applies(self.base_url) and isinstance(getattr(client, "_custom_headers", None), dict):
                client._custom_headers = {}  # only $ANTHROPIC_CUSTOM_HEADERS fills it: no default_headers are passed
            self._client = client
        return self._client

    def count_tokens(self, text: str) -> int:
        return len(text) // CHARS_PER_TOKEN + 1

    def _request(self, messages: list[dict[str, str]], max_tokens: int | None, temperature: float | None,
                 stop: list[str] | None) -> dict[str, Any]:
        system, turns = messages_request(messages)
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": turns,
                                  "max_tokens": max_tokens or self.config.max_tokens}
        if system is not None:
            kwargs["system"] = system
        if stop:
            kwargs["stop_sequences"] = list(stop)
        temperature = self.config.temperature if temperature is None else temperature
        if temperature is not None:  # the SDK lost the argument in version 1; the body still carries it
            kwargs["extra_body"] = {"temperature": temperature}
        return kwargs

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None, stop: list[str] | None = None) -> Completion:
        client = self._sdk()
        import anthropic

        t0 = time.perf_counter()
        try:
            message = client.messages.create(**self._request(messages, max_tokens, temperature, stop))
        except anthropic.AnthropicError as e:
            raise self._failure(e) from e
        text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
        return self._completion(text, message, t0)

    def complete_stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                        temperature: float | None = None, stop: list[str] | None = None) -> Iterator[str | Completion]:
        """The text deltas of a streamed Messages request (server-sent events), then the :class:`Completion`.
        Closing the iterator early closes the HTTP response, which ends the stream at the server."""
        client = self._sdk()
        import anthropic

        t0 = time.perf_counter()
        pieces: list[str] = []
        try:
            with client.messages.stream(**self._request(messages, max_tokens, temperature, stop)) as stream:
                for text in stream.text_stream:
                    if text:
                        pieces.append(text)
                        yield text
                message = stream.get_final_message()
        except anthropic.AnthropicError as e:
            raise self._failure(e) from e
        yield self._completion("".join(pieces), message, t0)

    def _completion(self, text: str, message: Any, t0: float) -> Completion:
        usage = message.usage
        prompt = sum(int(getattr(usage, name, 0) or 0)
                     for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        reason = str(message.stop_reason or "")
        return Completion(text.strip(), prompt, int(getattr(usage, "output_tokens", 0) or 0),
                          _FINISH.get(reason, reason), round((time.perf_counter() - t0) * 1000, 3))

    def _failure(self, e: Exception) -> AnthropicGeneratorError:
        """The SDK's exception ``e`` as an error that names the server, the model and what to do."""
        import anthropic

        where = self._where
        if isinstance(e, anthropic.APIConnectionError):  # also APITimeoutError
            return AnthropicGeneratorError(
                f"{where}: the server could not be reached after {self.config.max_retries} retries "
                f"({e.__cause__ or e}); start it, or fix `base_url` under {_SECTION}")
        if isinstance(e, (anthropic.AuthenticationError, anthropic.PermissionDeniedError)):
            source = _key_source(self.config.api_key, self.base_url)
            if source is None:
                return AnthropicGeneratorError(f"{where}: the server wants an API key ({e.status_code}) and none "
                                               f"was sent: {_no_key_hint(self.base_url)}")
            return AnthropicGeneratorError(f"{where}: the API key was refused ({e.status_code}: {_message(e)}; it "
                                           f"came from {source}); set a valid one with `api_key: ${{YOUR_KEY_VAR}}` "
                                           f"under {_SECTION}")
        if isinstance(e, anthropic.NotFoundError):
            return AnthropicGeneratorError(f"{where}: 404 ({_message(e)}) — the server does not serve this model or "
                                           "path; check `model`, and `base_url` (without /v1: the SDK adds "
                                           "/v1/messages)")
        if isinstance(e, anthropic.APIStatusError):
            return AnthropicGeneratorError(f"{where}: the server answered {e.status_code}: {_message(e)}")
        return AnthropicGeneratorError(f"{where}: {type(e).__name__}: {str(e)[:300]}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
