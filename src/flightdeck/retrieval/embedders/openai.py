"""The OpenAI embeddings API and any OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio, TEI…).

Talks to ``POST {base_url}/embeddings`` through the official ``openai`` SDK, which retries 429 and 5xx
answers with backoff. Nothing runs locally but the HTTP client, so there is no local tokenizer either: the
chunker counts tokens with the ``tokenizer`` setting's ``tokenizer.json`` (by default the packaged
all-MiniLM-L6-v2 WordPiece tokenizer). That count is an approximation of the server's own tokens — close for
English prose, and often lower than a BPE/SentencePiece count on code or other languages — so leave some
room between the chunk size and the server's context (``max_tokens``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from flightdeck.errors import FlightdeckError
from flightdeck.errors import api_error_message as _message
from flightdeck.openai_endpoint import (
    OPENAI_BASE_URL,
    api_key,
    endpoint_host,
    endpoint_url,
    key_source,
    no_key_hint,
    sdk_client,
)

__all__ = ["OpenAIConfig", "OpenAIEmbedder", "OpenAIEmbedderError", "OPENAI_BASE_URL"]

# text-embedding-3-small/-large and ada-002 all take at most 8191 tokens per input.
OPENAI_MAX_TOKENS = 8191
# Used when a compatible server does not say its context length and the max_tokens setting is unset.
FALLBACK_MAX_TOKENS = 512
# Fields in which OpenAI-compatible servers report a model's context in GET /models.
_CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context_length", "n_ctx", "n_ctx_train")


class OpenAIEmbedderError(FlightdeckError):
    """An embeddings request failed: the server is unreachable, refused the key, or lacks the model."""


class OpenAIConfig(BaseModel):
    """Settings of ``embedding_model: {provider: openai, ...}``.

    ``${ENV}`` references in any value are resolved before this config is built and never written back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    # Settings that are local paths, resolved against the spec's folder (``model`` is a name here, not a path).
    path_settings: ClassVar[tuple[str, ...]] = ("tokenizer",)

    model: str = Field("text-embedding-3-small", min_length=1,
                       description="model name as the server knows it (text-embedding-3-small, nomic-embed-text…)")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1;"
                                                   f" default: $OPENAI_BASE_URL, else {OPENAI_BASE_URL}")
    api_key: SecretStr | None = Field(None, description="API key, best as a reference: api_key: ${MY_KEY};"
                                                        " default: $OPENAI_API_KEY, sent only to api.openai.com"
                                                        " or $OPENAI_BASE_URL (a local server needs none)")
    dimensions: int | None = Field(None, ge=1, description="shorter vectors (text-embedding-3 models); sent "
                                                           "only when set, else the model's native size")
    batch_size: int = Field(64, ge=1, le=2048, description="texts per request (OpenAI takes up to 2048 and "
                                                           "300k tokens per request)")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(5, ge=0, le=20, description="retries of 429/5xx/connection errors, with backoff")
    query_prefix: str = Field("", description="prepended to queries (e.g. 'search_query: ' for nomic-embed)")
    document_prefix: str = Field("", description="prepended to documents (e.g. 'search_document: ')")
    normalize: bool = Field(True, description="L2-normalise every vector (servers differ; the stores expect "
                                              "unit vectors for cosine scores)")
    max_tokens: int | None = Field(None, ge=8, description="the model's input limit in tokens; default 8191 "
                                                           "for api.openai.com, else what the server reports "
                                                           f"in GET /models, else {FALLBACK_MAX_TOKENS}")
    tokenizer: str | None = Field(None, description="local folder with the tokenizer.json that chunking counts "
                                                    "tokens with; default: the packaged all-MiniLM-L6-v2 "
                                                    "(an approximation of the server's tokenizer)")


class OpenAIEmbedder:
    """Embeds through an OpenAI-compatible ``/embeddings`` endpoint; connects on first use (``warm_up``)."""

    def __init__(self, config: OpenAIConfig | None = None) -> None:
        self.config = config or OpenAIConfig()
        self._client: Any = None
        self._dim: int | None = self.config.dimensions
        self._server_max_tokens: int | None = None
        self._models: list[dict[str, Any]] | None = None
        self._checked = False
        self._tokenizer_dir = self._resolve_tokenizer_dir(self.config.tokenizer)

    # identity -------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The endpoint in use: the setting, else ``$OPENAI_BASE_URL``, else OpenAI's."""
        return endpoint_url(self.config.base_url)

    @property
    def host(self) -> str:
        """``host[:port]`` of the endpoint: part of ``model_id``, since another server may serve other vectors."""
        return endpoint_host(self.base_url)

    @property
    def is_openai(self) -> bool:
        """Whether the endpoint is OpenAI's own API (not a compatible server)."""
        return self.host == "api.openai.com"

    @property
    def model_id(self) -> str:
        """``openai:<host>/<model>@<dimensions|native>/<hash of normalize and document_prefix>``."""
        c = self.config
        extras = hashlib.sha256(f"{c.normalize}|{c.document_prefix}".encode()).hexdigest()[:8]
        size = c.dimensions or "native"
        return f"openai:{self.host}/{c.model}@{size}/{extras}"

    @property
    def model_dir(self) -> str:
        """The folder of the tokenizer that chunking counts tokens with (no model weights live here)."""
        return str(self._tokenizer_dir)

    @staticmethod
    def _resolve_tokenizer_dir(value: str | None) -> Path:
        if value is None:
            from flightdeck.retrieval.embedders.sentence_transformers import packaged_model_dir

            return packaged_model_dir(
                "openai", "embedder 'openai' (chunk tokens are counted with the packaged all-MiniLM-L6-v2 tokenizer)",
                alternative="set `tokenizer:` to a folder with a tokenizer.json")
        folder = Path(value).expanduser().resolve()
        if not (folder / "tokenizer.json").is_file():
            raise OpenAIEmbedderError(
                f"embedder 'openai': tokenizer folder {str(folder)!r} has no tokenizer.json; point `tokenizer:` "
                "at a local folder that has one (the server's model folder, or leave it unset for the packaged "
                "all-MiniLM-L6-v2 approximation)")
        return folder

    # limits ---------------------------------------------------------------------------------------
    @property
    def max_tokens(self) -> int:
        """The model's input limit: the setting, 8191 for OpenAI, the server's report, or 512."""
        if self.config.max_tokens is not None:
            return self.config.max_tokens
        if self.is_openai:
            return OPENAI_MAX_TOKENS
        if self._server_max_tokens is None:
            self._server_max_tokens = self._ask_context_length() or FALLBACK_MAX_TOKENS
        return self._server_max_tokens

    def _ask_context_length(self) -> int | None:
        """The context length a compatible server reports for the model in GET /models (vLLM, llama.cpp)."""
        models = self._listed_models()
        for m in models:
            if len(models) == 1 or _serves(m.get("id"), self.config.model):
                found = _find_context(m)
                if found:
                    return found
        return None

    def _listed_models(self) -> list[dict[str, Any]]:
        """GET /models, once; [] when the server has no such endpoint or the key may not list models."""
        if self._models is None:
            client = self.warm_client()  # first: it turns a missing SDK into the install hint
            import openai

            try:
                self._models = [m.model_dump() for m in client.models.list()]
            except openai.APIConnectionError as exc:
                raise self._unreachable(exc) from exc
            except Exception:  # noqa: BLE001 - listing is optional; the embeddings call reports the rest
                self._models = []
        return self._models

    def _check_model(self) -> None:
        """Refuse a model the server does not list (when it lists any)."""
        if self._checked:
            return
        ids = [str(m.get("id")) for m in self._listed_models() if m.get("id")]
        if ids and not any(_serves(i, self.config.model) for i in ids):
            raise OpenAIEmbedderError(
                f"embedder 'openai': the server at {self.base_url} does not serve model {self.config.model!r}. "
                + self._models_hint(ids))
        self._checked = True

    def _unreachable(self, exc: Any) -> OpenAIEmbedderError:
        import openai

        timed_out = isinstance(exc, openai.APITimeoutError)
        what = f"did not answer within {self.config.timeout:g} s" if timed_out else "could not be reached"
        return OpenAIEmbedderError(
            f"embedder 'openai': the server at {self.base_url} {what} (after {self.config.max_retries} retries): "
            f"{exc.__cause__ or exc}. Start the server, or fix `base_url` under retrieval.embedding_model "
            "(OpenAI-compatible servers usually end in /v1)")

    @property
    def dimension(self) -> int:
        """The ``dimensions`` setting, else the length of the vectors the server returned (one request)."""
        if self._dim is None:
            self.warm_up()
        assert self._dim is not None
        return self._dim

    # the client -----------------------------------------------------------------------------------
    def warm_client(self) -> Any:
        """The SDK client (built once), without any request."""
        if self._client is None:
            key = api_key(self.config.api_key, self.base_url, who="embedder 'openai'",
                          section="retrieval.embedding_model", error=OpenAIEmbedderError)
            self._client = sdk_client(self.base_url, key, timeout=self.config.timeout,
                                      max_retries=self.config.max_retries, who="embedder 'openai'")
        return self._client

    def warm_up(self) -> Any:
        """Connect, check that the server serves the model, and learn the dimension with one short request.

        Some compatible servers (llama-cpp-python among them) answer for *any* model name with the one model
        they have; the check against GET /models turns that silent mix-up into an error.
        """
        client = self.warm_client()
        self._check_model()
        if self._dim is None:
            self._request(["warm up"])
        return client

    # embedding ------------------------------------------------------------------------------------
    def _request(self, texts: list[str]) -> np.ndarray:
        client = self.warm_client()
        import openai

        kwargs: dict[str, Any] = {"model": self.config.model, "input": texts, "encoding_format": "float"}
        if self.config.dimensions is not None:
            kwargs["dimensions"] = self.config.dimensions
        try:
            response = client.embeddings.create(**kwargs)
        except openai.APIConnectionError as exc:  # also APITimeoutError
            raise self._unreachable(exc) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            source = key_source(self.config.api_key, self.base_url)
            if source is None:
                raise OpenAIEmbedderError(
                    f"embedder 'openai': {self.base_url} wants an API key ({exc.status_code}: {_message(exc)}) and "
                    f"none was sent: {no_key_hint(self.base_url, section='retrieval.embedding_model')}") from exc
            raise OpenAIEmbedderError(
                f"embedder 'openai': {self.base_url} refused the API key from {source} "
                f"({exc.status_code}: {_message(exc)}). Set a valid key in {source}, or "
                "`api_key: ${YOUR_KEY_VAR}` under retrieval.embedding_model") from exc
        except openai.NotFoundError as exc:
            raise OpenAIEmbedderError(
                f"embedder 'openai': {self.base_url}/embeddings answered 404 for model {self.config.model!r} "
                f"({_message(exc)}). {self._models_hint()}") from exc
        except openai.RateLimitError as exc:
            raise OpenAIEmbedderError(
                f"embedder 'openai': {self.base_url} still rate-limits after {self.config.max_retries} retries "
                f"({_message(exc)}); lower `batch_size` or raise `max_retries`") from exc
        except openai.BadRequestError as exc:
            raise OpenAIEmbedderError(
                f"embedder 'openai': {self.base_url} rejected a batch of {len(texts)} texts for model "
                f"{self.config.model!r} ({_message(exc)}). If a text is too long, lower data.chunking.size or "
                "`max_tokens`; if the request is, lower `batch_size`; `dimensions` works only with models "
                "that support it") from exc
        except openai.APIStatusError as exc:
            raise OpenAIEmbedderError(
                f"embedder 'openai': {self.base_url} answered {exc.status_code} ({_message(exc)})") from exc
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise OpenAIEmbedderError(f"embedder 'openai': {self.base_url} returned {len(data)} vectors for "
                                      f"{len(texts)} texts")
        try:
            vectors = np.asarray([d.embedding for d in data], dtype=np.float32)
        except ValueError as exc:  # ragged: one vector per token
            raise OpenAIEmbedderError(_TOKEN_LEVEL.format(url=self.base_url)) from exc
        if vectors.ndim != 2:
            raise OpenAIEmbedderError(_TOKEN_LEVEL.format(url=self.base_url))
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise OpenAIEmbedderError(
                f"embedder 'openai': {self.base_url} returned {vectors.shape[1]}-d vectors for model "
                f"{self.config.model!r}, expected {self._dim}" + (" (the `dimensions` setting)"
                                                                  if self.config.dimensions else ""))
        if self.config.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _models_hint(self, ids: list[str] | None = None) -> str:
        names = sorted(ids if ids is not None else (str(m.get("id")) for m in self._listed_models() if m.get("id")))
        if names:
            shown = ", ".join(names[:20]) + (f" … ({len(names)} in all)" if len(names) > 20 else "")
            return (f"Set `model` under retrieval.embedding_model to one it lists: {shown}; or check "
                    "`base_url` (OpenAI-compatible servers usually end in /v1)")
        return ("Check `model` under retrieval.embedding_model and `base_url` (OpenAI-compatible servers usually "
                "end in /v1)")

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # OpenAI rejects empty strings; a space embeds as "nothing" without failing the whole batch
        texts = [t if t else " " for t in texts]
        self._check_model()
        size = self.config.batch_size
        return np.concatenate([self._request(texts[i:i + size]) for i in range(0, len(texts), size)])

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """``document_prefix`` + each text, in requests of ``batch_size``; one row per text, in order."""
        prefix = self.config.document_prefix
        return self._encode([prefix + t for t in texts] if prefix else list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        """``query_prefix`` + ``text`` as one vector."""
        return self._encode([self.config.query_prefix + text])[0]


_TOKEN_LEVEL = ("embedder 'openai': {url} returned one vector per token instead of one per text; start the "
                "server with a pooling type (llama.cpp: --pooling mean; llama-cpp-python: pooling_type 1)")



def _serves(listed: Any, model: str) -> bool:
    """Whether a GET /models id names ``model``: exactly, as Ollama's ``name:tag``, or as a model file's path."""
    if not isinstance(listed, str):
        return False
    if listed == model or listed.startswith(model + ":"):
        return True
    name = listed.replace("\\", "/").rsplit("/", 1)[-1]
    return model in (name, name.rsplit(".", 1)[0])


def _find_context(obj: Any, depth: int = 0) -> int | None:
    if depth > 3 or not isinstance(obj, dict):
        return None
    for key in _CONTEXT_FIELDS:
        value = obj.get(key)
        if isinstance(value, int) and value > 0:
            return value
    for value in obj.values():
        found = _find_context(value, depth + 1)
        if found:
            return found
    return None
