"""Chat completions from the OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio…).

Talks to ``POST {base_url}/chat/completions`` through the official ``openai`` SDK, which retries 429, 5xx and
dropped connections with backoff. The prompt budget is counted without the server's tokenizer, at three
characters a token — a safe overestimate for English prose, so prompts stay inside the server's context.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, SecretStr

from flightdeck.errors import FlightdeckError
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

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None, stop: list[str] | None = None) -> Completion:
        client = self._sdk()
        import openai

        t0 = time.perf_counter()
        chat = self.config.prompt_format == "chat"
        kwargs: dict[str, Any] = {
            "model": self.config.model, "max_tokens": max_tokens or self.config.max_tokens,
            "temperature": self.config.temperature if temperature is None else temperature,
            "seed": self.config.seed}
        if chat:
            kwargs.update(messages=messages, **({"stop": stop} if stop else {}))
        else:
            kwargs.update(prompt=render_completion_prompt(messages), stop=[*COMPLETION_STOP, *(stop or [])])
        where = f"generator 'openai' ({self.base_url}, model {self.config.model!r})"
        try:
            response = (client.chat.completions if chat else client.completions).create(**kwargs)
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
        if not response.choices:
            raise OpenAIGeneratorError(f"{where}: the answer held no choices")
        choice = response.choices[0]
        usage = response.usage
        text = choice.message.content if chat else choice.text
        return Completion((text or "").strip(), int(getattr(usage, "prompt_tokens", 0) or 0),
                          int(getattr(usage, "completion_tokens", 0) or 0), str(choice.finish_reason or ""),
                          round((time.perf_counter() - t0) * 1000, 3))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(exc)[:300]
