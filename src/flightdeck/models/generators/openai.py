"""Chat completions from the OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio…).

Talks to ``POST {base_url}/chat/completions`` through the official ``openai`` SDK, which retries 429, 5xx and
dropped connections with backoff. The prompt budget is counted without the server's tokenizer, at three
characters a token — a safe overestimate for English prose, so prompts stay inside the server's context.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field, SecretStr

from flightdeck.errors import FlightdeckError
from flightdeck.errors import api_error_message as _message
from flightdeck.models.generators.base import (
    COMPLETION_STOP,
    Completion,
    LlmGenerator,
    LlmSettings,
    render_completion_prompt,
)
from flightdeck.openai_endpoint import (
    OPENAI_BASE_URL,
    api_key,
    endpoint_host,
    endpoint_url,
    key_source,
    no_key_hint,
    sdk_client,
)

__all__ = ["OpenAIGeneratorConfig", "OpenAIGenerator", "OpenAIGeneratorError"]

CHARS_PER_TOKEN = 3


class OpenAIGeneratorError(FlightdeckError):
    """A chat request failed: the server is unreachable, refused the key, lacks the model or the request."""


class OpenAIGeneratorConfig(LlmSettings):
    """Settings of ``model.generator: {provider: openai, ...}``; ``${ENV}`` references are resolved first."""

    model: str = Field("gpt-4o-mini", min_length=1, description="model name as the server knows it")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1;"
                                                   f" default: $OPENAI_BASE_URL, else {OPENAI_BASE_URL}")
    api_key: SecretStr | None = Field(None, description="API key, best as a reference: api_key: ${MY_KEY};"
                                                        " default: $OPENAI_API_KEY, sent only to api.openai.com"
                                                        " or $OPENAI_BASE_URL (a local server needs none)")
    timeout: float = Field(120.0, gt=0, description="seconds per request")
    max_retries: int = Field(3, ge=0, le=20, description="retries of 429/5xx/connection errors, with backoff")
    prompt_format: Literal["chat", "completion"] = Field(
        "chat", description="chat: POST /chat/completions (instruction-tuned models); completion: POST "
        "/completions with the turns written out as one text (base models served by vLLM, llama.cpp…)")


class OpenAIGenerator(LlmGenerator):
    """Chat completions over HTTP; the client is built on first use."""

    def __init__(self, config: OpenAIGeneratorConfig | None = None) -> None:
        self.config = config or OpenAIGeneratorConfig()
        self._client: Any = None
        self._stream_options = True  # asks for the usage in the stream's last chunk, until a server refuses it
        self.model_id = f"openai:{self.host}/{self.config.model}"

    @property
    def base_url(self) -> str:
        return endpoint_url(self.config.base_url)

    @property
    def host(self) -> str:
        return endpoint_host(self.base_url)

    def _sdk(self) -> Any:
        if self._client is None:
            key = api_key(self.config.api_key, self.base_url, who="generator 'openai'", section="model.generator",
                          error=OpenAIGeneratorError)
            self._client = sdk_client(self.base_url, key, timeout=self.config.timeout,
                                      max_retries=self.config.max_retries, who="generator 'openai'")
        return self._client

    def count_tokens(self, text: str) -> int:
        return len(text) // CHARS_PER_TOKEN + 1

    @property
    def _where(self) -> str:
        return f"generator 'openai' ({self.base_url}, model {self.config.model!r})"

    def _request(self, messages: list[dict[str, str]], max_tokens: int | None, temperature: float | None,
                 stop: list[str] | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.config.model, "max_tokens": max_tokens or self.config.max_tokens,
            "temperature": self.config.temperature if temperature is None else temperature,
            "seed": self.config.seed}
        if self.config.prompt_format == "chat":
            kwargs.update(messages=messages, **({"stop": stop} if stop else {}))
        else:
            kwargs.update(prompt=render_completion_prompt(messages), stop=[*COMPLETION_STOP, *(stop or [])])
        return kwargs

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The SDK's errors as :class:`OpenAIGeneratorError` naming the server, the model and the fix."""
        import openai

        where = self._where
        try:
            yield
        except openai.APIConnectionError as e:  # also APITimeoutError
            raise OpenAIGeneratorError(
                f"{where}: the server could not be reached after {self.config.max_retries} retries "
                f"({e.__cause__ or e}); start it, or fix `base_url` under model.generator") from e
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            source = key_source(self.config.api_key, self.base_url)
            if source is None:
                raise OpenAIGeneratorError(f"{where}: the server wants an API key ({e.status_code}) and none was "
                                           f"sent: {no_key_hint(self.base_url, section='model.generator')}") from e
            raise OpenAIGeneratorError(f"{where}: the API key was refused ({e.status_code}; it came from {source});"
                                       " set a valid one with `api_key: ${YOUR_KEY_VAR}` under model.generator") from e
        except openai.NotFoundError as e:
            raise OpenAIGeneratorError(f"{where}: 404 — the server does not serve this model or path; check "
                                       "`model` and `base_url` (compatible servers usually end in /v1)") from e
        except openai.APIStatusError as e:
            raise OpenAIGeneratorError(f"{where}: the server answered {e.status_code}: {_message(e)}") from e
        except openai.APIError as e:  # an error event in the middle of a stream
            raise OpenAIGeneratorError(f"{where}: {_message(e)}") from e

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None, stop: list[str] | None = None) -> Completion:
        client = self._sdk()
        t0 = time.perf_counter()
        chat = self.config.prompt_format == "chat"
        with self._errors():
            response = (client.chat.completions if chat else client.completions).create(
                **self._request(messages, max_tokens, temperature, stop))
        if not response.choices:
            raise OpenAIGeneratorError(f"{self._where}: the answer held no choices")
        choice = response.choices[0]
        usage = response.usage
        text = choice.message.content if chat else choice.text
        return Completion((text or "").strip(), int(getattr(usage, "prompt_tokens", 0) or 0),
                          int(getattr(usage, "completion_tokens", 0) or 0), str(choice.finish_reason or ""),
                          round((time.perf_counter() - t0) * 1000, 3))

    def complete_json(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *,
                      max_tokens: int | None = None) -> Completion:
        """A chat completion held to ``schema`` by ``response_format: {type: json_schema}`` (OpenAI, llama.cpp's
        server, vLLM and most compatible servers honour it; one that does not still gets the schema in the
        request, and the caller checks the reply)."""
        if self.config.prompt_format != "chat":
            return super().complete_json(messages, schema, max_tokens=max_tokens)
        client = self._sdk()
        t0 = time.perf_counter()
        request = self._request(messages, max_tokens, 0.0, None)
        request["response_format"] = {"type": "json_schema",
                                      "json_schema": {"name": "action", "schema": dict(schema), "strict": False}}
        with self._errors():
            response = client.chat.completions.create(**request)
        if not response.choices:
            raise OpenAIGeneratorError(f"{self._where}: the answer held no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion((choice.message.content or "").strip(), int(getattr(usage, "prompt_tokens", 0) or 0),
                          int(getattr(usage, "completion_tokens", 0) or 0), str(choice.finish_reason or ""),
                          round((time.perf_counter() - t0) * 1000, 3))

    def complete_stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                        temperature: float | None = None, stop: list[str] | None = None) -> Iterator[str | Completion]:
        """:meth:`complete` as server-sent events. The usage comes from the server's last chunk when it honours
        ``stream_options.include_usage`` (OpenAI, vLLM); a server that rejects the option is asked again
        without it, and one that sends no usage has its tokens counted here (:meth:`count_tokens`)."""
        client = self._sdk()
        import openai

        t0 = time.perf_counter()
        chat = self.config.prompt_format == "chat"
        request = self._request(messages, max_tokens, temperature, stop)
        endpoint = client.chat.completions if chat else client.completions
        with self._errors():
            stream = None
            if self._stream_options:
                try:
                    stream = endpoint.create(**request, stream=True, stream_options={"include_usage": True})
                except openai.BadRequestError as e:
                    if "stream_options" not in str(e) and "include_usage" not in str(e):
                        raise
                    self._stream_options = False  # an older server: it is not asked again
            if stream is None:
                stream = endpoint.create(**request, stream=True)
        pieces: list[str] = []
        finish = ""
        usage: Any = None
        try:
            while True:
                with self._errors():
                    chunk = next(stream, None)
                if chunk is None:
                    break
                usage = getattr(chunk, "usage", None) or usage
                if not chunk.choices:  # the usage chunk
                    continue
                choice = chunk.choices[0]
                delta = (choice.delta.content if choice.delta else None) if chat else choice.text
                finish = str(choice.finish_reason or finish)
                if delta:
                    pieces.append(delta)
                    yield delta
        finally:
            stream.close()  # an early close drops the connection, and the server stops generating
        text = "".join(pieces)
        if usage is not None:
            prompt_tokens, completion_tokens = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
        else:
            prompt = request.get("prompt") or "".join(m["content"] for m in messages)
            prompt_tokens, completion_tokens = self.count_tokens(prompt), self.count_tokens(text) if text else 0
        yield Completion(text.strip(), prompt_tokens, completion_tokens, finish,
                         round((time.perf_counter() - t0) * 1000, 3))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
