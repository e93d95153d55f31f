"""Cohere's embedding API (``POST /v2/embed``) through the official ``cohere`` SDK.

Documents are sent with ``input_type=search_document`` and queries with ``search_query``, as Cohere asks for
retrieval, in batches of at most 96 texts (the API's limit). Rate limits (429) and server errors (5xx) are
retried with exponential backoff, honouring ``Retry-After``; a rejected key (401) stops at once.

Token counts: Cohere's tokenizer is not available offline, and chunking counts tokens with a local
``tokenizer.json`` (``Tokenizer.from_model_dir(embedder.model_dir)``). The ``tokenizer`` setting names that
folder; the default, the packaged all-MiniLM-L6-v2 WordPiece tokenizer, is an approximation of Cohere's own
tokens, so keep chunks well below ``max_tokens`` (``truncate: END``, the default, cuts the rare overflow).

The key: ``api_key`` (``${CO_API_KEY}`` or any variable) goes to the configured endpoint. Without it,
``$CO_API_KEY`` from the environment is used only for Cohere's own API (https://api.cohere.com): a spec that
points ``base_url`` elsewhere gets it only by naming it, so that no spec can collect the key with a URL of its
own.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from flightdeck.core import RetryPolicy
from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.embedders.sentence_transformers import packaged_model_dir

__all__ = ["CohereConfig", "CohereEmbedder", "CohereError", "MAX_TEXTS_PER_CALL", "KNOWN_DIMENSIONS"]

MAX_TEXTS_PER_CALL = 96  # Cohere's documented maximum number of texts per /v2/embed call
DEFAULT_BASE_URL = "https://api.cohere.com"
_COHERE_HOSTS = frozenset({"api.cohere.com", "api.cohere.ai"})  # where $CO_API_KEY may go without being named
# Output sizes from Cohere's model documentation; v3 models have one fixed size.
KNOWN_DIMENSIONS: dict[str, int] = {
    "embed-english-v3.0": 1024,
    "embed-multilingual-v3.0": 1024,
    "embed-english-light-v3.0": 384,
    "embed-multilingual-light-v3.0": 384,
    "embed-v4.0": 1536,
}
V4_DIMENSIONS = (256, 512, 1024, 1536)  # output_dimension choices of embed-v4.0
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class CohereError(FlightdeckError):
    """The Cohere API refused or failed a request."""


class CohereConfig(BaseModel):
    """Settings of ``embedding_model: {provider: cohere, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # settings that name local paths, resolved against the spec's folder by Project
    path_settings: ClassVar[tuple[str, ...]] = ("tokenizer",)

    model: str = Field("embed-english-v3.0", description="Cohere embedding model, e.g. embed-english-v3.0, "
                                                         "embed-multilingual-v3.0, embed-v4.0")
    api_key: SecretStr | None = Field(None, description="write it as ${CO_API_KEY}; default: the CO_API_KEY "
                                                        "environment variable, for Cohere's own API only")
    base_url: str | None = Field(None, description=f"API root; default {DEFAULT_BASE_URL}")
    dimension: int | None = Field(None, ge=1, description="vector size: for embed-v4.0 one of 256, 512, 1024, "
                                  "1536 (sent as output_dimension); default: the model's documented size, else "
                                  "the size of the first response")
    max_tokens: int = Field(512, ge=8, description="tokens per text that the model reads (Cohere documents 512)")
    truncate: Literal["NONE", "START", "END"] = Field(
        "END", description="what the API does with a longer text: cut its END or START, or refuse it (NONE)")
    tokenizer: str | None = Field(None, description="local folder with the tokenizer.json that chunking counts "
                                  "tokens with; default: the packaged all-MiniLM-L6-v2 one (an approximation)")
    batch_size: int = Field(MAX_TEXTS_PER_CALL, ge=1, le=MAX_TEXTS_PER_CALL,
                            description="texts per request (the API takes at most 96)")
    max_retries: int = Field(5, ge=0, le=20, description="retries of a request after 429 or 5xx answers")
    backoff_seconds: float = Field(1.0, ge=0, description="first wait before a retry; doubled each time")
    max_backoff_seconds: float = Field(30.0, ge=0, description="longest wait between retries")
    timeout: float = Field(60.0, gt=0, description="seconds per request")

    @field_validator("tokenizer")
    @classmethod
    def _local_tokenizer(cls, value: str | None) -> str | None:
        # relative paths are checked when the embedder is built (Project resolves them against the spec)
        if value is not None:
            path = Path(value).expanduser()
            if path.is_absolute() and not (path / "tokenizer.json").is_file():
                raise ValueError(_no_tokenizer(path))
        return value

    @model_validator(mode="after")
    def _dimension_fits_model(self) -> CohereConfig:
        fixed = KNOWN_DIMENSIONS.get(self.model)
        if self.dimension is None or fixed is None:
            return self
        if self.model.startswith("embed-v4"):
            if self.dimension not in V4_DIMENSIONS:
                raise ValueError(f"{self.model} returns {', '.join(map(str, V4_DIMENSIONS))}-d vectors; "
                                 f"set dimension to one of those, not {self.dimension}")
        elif self.dimension != fixed:
            raise ValueError(f"{self.model} always returns {fixed}-d vectors (output_dimension needs embed-v4.0 "
                             f"or newer); remove dimension or set it to {fixed}")
        return self

    @property
    def output_dimension(self) -> int | None:
        """``output_dimension`` to send: only for models that take it (not the fixed-size v3 models)."""
        if self.dimension is None or (self.model in KNOWN_DIMENSIONS and not self.model.startswith("embed-v4")):
            return None
        return self.dimension


def _no_tokenizer(path: Path) -> str:
    return (f"tokenizer folder {str(path)!r} has no tokenizer.json; the cohere embedder counts chunk tokens with "
            "a local tokenizer: point `tokenizer:` at a folder with tokenizer.json, or leave it out to use the "
            "packaged all-MiniLM-L6-v2 one")


def _default_tokenizer_dir() -> Path:
    return packaged_model_dir(
        "cohere", "embedder 'cohere' (chunk tokens are counted with the packaged all-MiniLM-L6-v2 tokenizer)",
        alternative="set `tokenizer:` to a local folder with tokenizer.json")


def _is_cohere(url: str) -> bool:
    """Whether ``url`` is Cohere's own API, over https."""
    parts = urlsplit(url)
    return parts.scheme == "https" and (parts.hostname or "").rstrip(".") in _COHERE_HOSTS and parts.port in (None, 443)


def _message(body: Any) -> str:
    if isinstance(body, dict):
        text = body.get("message") or json.dumps(body)[:300]
        return f"{text} (request id {body['id']})" if body.get("id") else str(text)
    return str(body)[:300] if body else "no message"


class CohereEmbedder:
    """Embeds with Cohere's API; the client is built on first use (``warm_up``), no request is made then."""

    def __init__(self, config: CohereConfig | None = None, *, httpx_client: Any = None) -> None:
        """``httpx_client``: an ``httpx.Client`` for the SDK to send through (a proxy setup, or tests)."""
        self.config = config or CohereConfig()
        self._tok_dir = (Path(self.config.tokenizer).expanduser().resolve() if self.config.tokenizer
                         else _default_tokenizer_dir())
        tok_file = self._tok_dir / "tokenizer.json"
        if not tok_file.is_file():
            raise FlightdeckError(_no_tokenizer(self._tok_dir))
        self._tok_fingerprint = hashlib.sha256(tok_file.read_bytes()).hexdigest()[:8]
        self._httpx_client = httpx_client
        self._client: Any = None
        self._seen_dimension: int | None = None
        self._sleep: Callable[[float], None] = time.sleep

    # the Embedder protocol -----------------------------------------------------------------------
    @property
    def model_dir(self) -> str:
        """The folder of the local tokenizer that chunking counts tokens with (there are no local weights)."""
        return str(self._tok_dir)

    @property
    def model_id(self) -> str:
        c = self.config
        # the tokenizer changes the chunks (the pipeline keys chunking by model_id), truncation long vectors
        extras = hashlib.sha256(f"{c.truncate}|{self._tok_fingerprint}".encode()).hexdigest()[:8]
        return f"cohere:{c.model}@{c.dimension or 'default'}/{extras}"

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    @property
    def dimension(self) -> int:
        known = self.config.dimension or KNOWN_DIMENSIONS.get(self.config.model) or self._seen_dimension
        if known:
            return known
        return int(self.embed_query("dimension").shape[0])  # an unknown model: ask it once

    def warm_up(self) -> Any:
        """Build the SDK client (once); no request is sent."""
        if self._client is None:
            cohere = optional_import("cohere", "cohere", "embedder 'cohere'")
            key = self._api_key()
            # retries are ours (max_retries=0 in the SDK), so that the backoff and the errors are one policy
            self._client = cohere.ClientV2(api_key=key, base_url=self.config.base_url or DEFAULT_BASE_URL,
                                           timeout=self.config.timeout, max_retries=0,
                                           httpx_client=self._httpx_client, client_name="flightdeck")
        return self._client

    def _api_key(self) -> str:
        """The setting, else ``$CO_API_KEY`` when the endpoint is Cohere's own (see the module docstring)."""
        if self.config.api_key is not None and self.config.api_key.get_secret_value():
            return self.config.api_key.get_secret_value()
        base = self.config.base_url or DEFAULT_BASE_URL
        env = os.environ.get("CO_API_KEY")
        if env and _is_cohere(base):
            return env
        if env:
            raise CohereError(f"no Cohere API key for {base}: the CO_API_KEY environment variable is sent only to "
                              f"Cohere's own API ({DEFAULT_BASE_URL}); to send it to {urlsplit(base).netloc or base}, "
                              "name it in retrieval.embedding_model: `api_key: ${CO_API_KEY}`")
        raise CohereError("no Cohere API key: set `api_key: ${CO_API_KEY}` in retrieval.embedding_model "
                          "and export CO_API_KEY (keys: https://dashboard.cohere.com/api-keys)")

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed(list(texts), "search_document")

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], "search_query")[0]

    # requests ------------------------------------------------------------------------------------
    def _embed(self, texts: list[str], input_type: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.config.dimension or KNOWN_DIMENSIONS.get(self.config.model) or 0),
                            dtype=np.float32)
        client = self.warm_up()
        parts = [self._call(client, texts[i:i + self.config.batch_size], input_type)
                 for i in range(0, len(texts), self.config.batch_size)]
        vectors = np.concatenate(parts).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(norms > 0):
            raise CohereError(f"Cohere ({self.config.model}) returned an all-zero vector; cannot normalise it")
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)

    def _call(self, client: Any, texts: list[str], input_type: str) -> np.ndarray:
        import httpx
        from cohere.core.api_error import ApiError

        c = self.config
        kwargs: dict[str, Any] = {"model": c.model, "input_type": input_type, "texts": texts,
                                  "embedding_types": ["float"], "truncate": c.truncate}
        if c.output_dimension is not None:
            kwargs["output_dimension"] = c.output_dimension
        where = f"POST {(c.base_url or DEFAULT_BASE_URL).rstrip('/')}/v2/embed"
        attempts = 0

        def embed() -> Any:
            nonlocal attempts
            attempts += 1
            return client.embed(**kwargs)

        def transient(exc: Exception) -> bool:
            return isinstance(exc, httpx.TransportError) or (
                isinstance(exc, ApiError) and exc.status_code in _RETRY_STATUS)

        def retry_after(exc: Exception) -> float | None:  # 0 or none: our own backoff
            return (self._retry_after(exc.headers) or None) if isinstance(exc, ApiError) else None

        policy = RetryPolicy(c.max_retries + 1, c.backoff_seconds, max_delay=c.max_backoff_seconds)
        try:
            response = policy.run(embed, transient=transient, retry_after=retry_after, sleep=self._sleep)
        except ApiError as exc:
            status = exc.status_code
            if status == 401:
                raise CohereError(f"Cohere rejected the API key (HTTP 401: {_message(exc.body)}) at {where}; "
                                  "check `api_key` in retrieval.embedding_model (e.g. ${CO_API_KEY}) and that "
                                  "the key is active at https://dashboard.cohere.com/api-keys") from exc
            tried = f" after {attempts} attempts" if attempts > 1 else ""
            raise CohereError(f"Cohere embed failed{tried} (HTTP {status}: {_message(exc.body)}) at "
                              f"{where} for {len(texts)} texts, model {c.model}"
                              + ("; the rate limit holds: wait, or raise it at dashboard.cohere.com"
                                 if status == 429 else "")) from exc
        except httpx.TransportError as exc:
            raise CohereError(f"could not reach Cohere at {where} after {attempts} attempts: "
                              f"{type(exc).__name__}: {exc}; check base_url and the network") from exc
        return self._vectors(response, len(texts), where)

    @staticmethod
    def _retry_after(headers: dict[str, str] | None) -> float | None:
        value = {k.lower(): v for k, v in (headers or {}).items()}.get("retry-after")
        try:
            return max(float(value), 0.0) if value is not None else None
        except ValueError:  # an HTTP date: fall back to our own backoff
            return None

    def _vectors(self, response: Any, count: int, where: str) -> np.ndarray:
        floats = getattr(getattr(response, "embeddings", None), "float_", None)
        if floats is None:
            raise CohereError(f"Cohere's answer from {where} has no float embeddings (embedding_types float "
                              "was asked for); is base_url a Cohere v2 API?")
        try:
            vectors = np.asarray(floats, dtype=np.float32)
        except ValueError as exc:  # vectors of different lengths
            raise CohereError(f"Cohere returned vectors of different sizes from {where}") from exc
        if vectors.ndim != 2 or vectors.shape[0] != count:
            raise CohereError(f"Cohere returned {len(floats)} vectors for {count} texts from {where} "
                              f"(response id {getattr(response, 'id', '?')})")
        expected = self.config.dimension or KNOWN_DIMENSIONS.get(self.config.model) or self._seen_dimension
        if expected and vectors.shape[1] != expected:
            raise CohereError(f"Cohere returned {vectors.shape[1]}-d vectors for model {self.config.model}, "
                              f"expected {expected}; set `dimension:` to the model's size")
        self._seen_dimension = int(vectors.shape[1])
        return vectors
