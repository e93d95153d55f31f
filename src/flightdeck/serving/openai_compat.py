"""The OpenAI wire format of ``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/models``, over the service.

The official ``openai`` SDK pointed at ``flightdeck serve`` (``base_url=http://host:8000/v1``,
``api_key=<flightdeck key>``) gets grounded answers. The last user message is the question; earlier user
messages condense a follow-up into the retrieval query; system messages are ignored (the grounded prompt is
the server's, and a caller cannot replace it). The answer's citations, trace id and index version ride in an
extra field, ``flightdeck``, of the completion (and of the last chunk of a stream), which the SDK keeps:
``completion.model_extra["flightdeck"]``. ``model`` is echoed back and does not choose anything: the spec
chooses the generator and the embedder.

With ``tools`` the request is a turn of the *client's* agent loop (LangChain, LlamaIndex, CrewAI, the OpenAI Agents
SDK): the agent model (``agents.generator``) calls one of the client's tools (``tool_calls``) or answers, held to a
schema of those tools (:mod:`flightdeck.agents.tool_calls`); no grounding is added, and nothing runs on the server.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChatCompletionRequest", "EmbeddingsRequest", "chat_question", "chat_completion",
           "chat_completion_chunks", "embeddings_response", "models_response", "validate_inputs", "tool_messages",
           "tool_completion", "tool_completion_chunks"]

MAX_TEXT = 4000
MAX_MESSAGES = 64
MAX_INPUTS = 256


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name…: accepted, not used
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[dict[str, Any]] | None = None  # an assistant's earlier calls (with tools)
    tool_call_id: str | None = None  # the call a tool message answers


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # OpenAI has many optional parameters (temperature, top_p, user, …); unknown ones are accepted and
    # ignored, as compatible servers do, so that existing clients work unchanged.
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    n: int = Field(1, ge=1, le=1, description="one choice only")
    tools: list[dict[str, Any]] | None = Field(None, max_length=64, description="function tools the client runs: "
                                               "the model calls one of them or answers (no grounding then)")
    tool_choice: str | dict[str, Any] | None = None


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(description="a text or a list of texts (token arrays are not accepted)")
    encoding_format: Literal["float", "base64"] = "float"


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, str) or message.content is None:
        return message.content or ""
    parts = [p.text or "" for p in message.content if p.type == "text"]
    if len(parts) != len(message.content):
        raise ValueError("messages: only text content parts are supported")
    return "\n".join(parts)


def chat_question(request: ChatCompletionRequest) -> tuple[str, list[str]]:
    """The question (the last message, which must be the user's) and the earlier user turns."""
    last = request.messages[-1]
    if last.role != "user":
        raise ValueError(f"messages: the last message must be the user's question, not {last.role!r}")
    question = _text(last).strip()
    if not question:
        raise ValueError("messages: the last user message is empty")
    if len(question) > MAX_TEXT:
        raise ValueError(f"messages: the question is over {MAX_TEXT} characters")
    history = [_text(m)[:MAX_TEXT] for m in request.messages[:-1] if m.role == "user"]
    return question, history


def tool_messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    """The conversation of a request with tools, as plain dicts (text content only)."""
    out = []
    for m in request.messages:
        content = _text(m)
        if len(content) > MAX_TEXT * 4:
            raise ValueError(f"messages: a message is over {MAX_TEXT * 4} characters")
        out.append({"role": m.role, "content": content, "tool_calls": m.tool_calls, "tool_call_id": m.tool_call_id})
    return out


def tool_completion(model: str, turn: Any, trace_id: str) -> dict[str, Any]:
    """A ``chat.completion`` of a turn with tools: its ``tool_calls`` (finish_reason ``tool_calls``) or its text."""
    usage = {"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens,
             "total_tokens": turn.prompt_tokens + turn.completion_tokens}
    return {"id": "chatcmpl-" + trace_id.removeprefix("tr_"), "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": turn.message(), "finish_reason": turn.finish_reason,
                                         "logprobs": None}],
            "usage": usage, "flightdeck": {"trace_id": trace_id}}


def tool_completion_chunks(model: str, completion: dict[str, Any]) -> Iterator[dict[str, Any] | str]:
    """A finished turn with tools as stream chunks (the turn is written whole first: its calls must parse)."""
    cid, created = completion["id"], completion["created"]
    message = completion["choices"][0]["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
    yield _chunk(cid, created, model, delta, None)
    last = _chunk(cid, created, model, {}, completion["choices"][0]["finish_reason"])
    last["flightdeck"] = completion["flightdeck"]
    yield last
    yield "[DONE]"


def _extra(answer: dict[str, Any]) -> dict[str, Any]:
    return {"trace_id": answer.get("trace_id"), "index_version": answer.get("index_version"),
            "found": answer.get("found"), "citations": answer.get("citations", []),
            "flags": answer.get("flags", []), "prompt": answer.get("prompt", {})}


def _usage(answer: dict[str, Any]) -> dict[str, int]:
    usage = answer.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion_id(answer: dict[str, Any]) -> str:
    return "chatcmpl-" + str(answer.get("trace_id") or "").removeprefix("tr_")


def chat_completion(model: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` object holding ``answer`` (the service's answer dict)."""
    return {"id": _completion_id(answer), "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": answer.get("index_version"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer["answer"]},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(answer), "flightdeck": _extra(answer)}


def chat_completion_chunks(model: str, events: Iterator[dict[str, Any]], *,
                           include_usage: bool = False) -> Iterator[dict[str, Any] | str]:
    """The service's answer events as ``chat.completion.chunk`` objects, then ``[DONE]``.

    The text streams as the model writes it; an LLM's raw text may hold a citation number it invented,
    which the last chunk's ``flightdeck.answer`` (the checked answer) leaves out. Closing this iterator
    closes ``events`` (and so stops the generation)."""
    created = int(time.time())
    chunk_id = ""
    try:
        for event in events:
            if event["event"] == "sources":
                chunk_id = "chatcmpl-" + str(event["trace_id"]).removeprefix("tr_")
                yield _chunk(chunk_id, created, model, {"role": "assistant", "content": ""}, None)
            elif event["event"] == "token":
                yield _chunk(chunk_id, created, model, {"content": event["text"]}, None)
            elif event["event"] == "answer":
                answer = event["answer"]
                last = _chunk(chunk_id, created, model, {}, "stop")
                last["flightdeck"] = {**_extra(answer), "answer": answer["answer"]}
                yield last
                if include_usage:
                    usage = _chunk(chunk_id, created, model, {}, None)
                    usage["choices"], usage["usage"] = [], _usage(answer)
                    yield usage
        yield "[DONE]"
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _chunk(chunk_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


def embeddings_response(model: str, vectors: list[list[float]], tokens: int,
                        encoding_format: str) -> dict[str, Any]:
    """An embeddings ``list`` (``base64``: little-endian float32, as the OpenAI SDK decodes it); ``tokens`` are
    the inputs' tokens as the embedder's tokenizer counts them."""

    def encode(vector: list[float]) -> list[float] | str:
        if encoding_format == "base64":
            return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
        return vector

    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def validate_inputs(texts: list[str]) -> None:
    if not texts or len(texts) > MAX_INPUTS:
        raise ValueError(f"input: between 1 and {MAX_INPUTS} texts")
    for i, text in enumerate(texts):
        if not text.strip() or len(text) > MAX_TEXT:
            raise ValueError(f"input[{i}]: a text of 1 to {MAX_TEXT} characters")


def models_response(project: str, models: dict[str, str]) -> dict[str, Any]:
    """The models list: the project (what chat completions answer with) and its embedder."""
    created = int(time.time())
    return {"object": "list", "data": [
        {"id": project, "object": "model", "created": created, "owned_by": "flightdeck",
         "flightdeck": {"generator": models["generator"]}},
        {"id": models["embedder"], "object": "model", "created": created, "owned_by": "flightdeck",
         "flightdeck": {"embedder": models["embedder"]}}]}
