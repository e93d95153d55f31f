"""The items of OpenAI's Responses API as flightdeck reads and writes them, shared by ``/v1/responses``,
``/v1/conversations`` and the Assistants shapes.

What comes in is checked here and every problem is a ``ValueError`` naming the field (``input[2].call_id: ...``),
which the API answers with 422: messages (text parts only), ``function_call`` and ``function_call_output`` items,
and ``file_search_call`` items replayed by a client (kept, not read by the model). Tools are ``function`` tools (the
client runs them) and ``file_search`` (the server's index, searched by the spec's agent); other hosted tools are
refused by name. What goes out is built here too: ``message`` items whose ``output_text`` carries ``file_citation``
annotations, ``file_search_call`` and ``function_call`` items.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flightdeck.agents.tools.base import ToolError, ToolSpec
from flightdeck.serving.openai_store import new_id

__all__ = ["normalize_items", "parse_tools", "chat_tool_choice", "chat_messages", "agent_question", "message_item",
           "citations", "content_text", "function_call_item", "file_search_item", "file_name", "text_of",
           "MAX_ITEM_TEXT", "MAX_ITEMS"]

MAX_ITEM_TEXT = 16000
MAX_ITEMS = 256
ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: a string, not {type(value).__name__}")
    if len(value) > MAX_ITEM_TEXT:
        raise ValueError(f"{where}: over {MAX_ITEM_TEXT} characters")
    return value


def content_text(content: Any, where: str) -> str:
    """The text of a message's content: a string, or a list of text parts."""
    if isinstance(content, str):
        return _text(content, where)
    if not isinstance(content, list) or not content:
        raise ValueError(f"{where}: a string or a list of text parts")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") not in TEXT_PARTS:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise ValueError(f"{where}[{j}]: only text parts (input_text, output_text) are served, not {kind!r}")
        texts.append(_text(part.get("text"), f"{where}[{j}].text"))
    return "\n".join(texts)


def _output(value: Any, where: str) -> str:
    """A function call's output: a string or a list of text parts."""
    return value if isinstance(value, str) and len(value) <= MAX_ITEM_TEXT else content_text(value, where)


def normalize_items(raw: str | Sequence[Any] | None, field: str = "input") -> list[dict[str, Any]]:
    """The request's ``input`` (a string or a list of items) as items in the shape the API returns them, each with
    a new id of the server's (a client's own ids are not trusted to be unique)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [message_item("user", _text(raw, field))]
    if not isinstance(raw, list):
        raise ValueError(f"{field}: a string or a list of items")
    if len(raw) > MAX_ITEMS:
        raise ValueError(f"{field}: at most {MAX_ITEMS} items")
    items = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: an item object, not {type(item).__name__}")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise ValueError(f"{where}.role: one of {', '.join(ROLES)}, not {role!r}")
            items.append(message_item(role, content_text(item.get("content"), f"{where}.content")))
        elif kind == "function_call":
            call_id = _text(item.get("call_id"), f"{where}.call_id")
            name = _text(item.get("name"), f"{where}.name")
            arguments = _text(item.get("arguments", "{}"), f"{where}.arguments")
            try:
                json.loads(arguments or "{}")
            except ValueError:
                raise ValueError(f"{where}.arguments: not JSON") from None
            items.append(function_call_item(call_id, name, arguments))
        elif kind == "function_call_output":
            items.append({"type": "function_call_output", "id": new_id("fco"),
                          "call_id": _text(item.get("call_id"), f"{where}.call_id"),
                          "output": _output(item.get("output"), f"{where}.output"), "status": "completed"})
        elif kind == "file_search_call":  # the client replays the server's earlier search: kept, not re-run
            queries = item.get("queries") or []
            if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
                raise ValueError(f"{where}.queries: a list of strings")
            items.append({"type": "file_search_call", "id": new_id("fs"), "queries": queries,
                          "status": "completed", "results": None})
        else:
            raise ValueError(f"{where}.type: {kind!r} is not served here; message, function_call, "
                             "function_call_output and file_search_call are")
    return items


def text_of(item: Mapping[str, Any]) -> str:
    """The text of a ``message`` item."""
    return "\n".join(str(p.get("text") or "") for p in item.get("content") or [] if p.get("type") in TEXT_PARTS)


def parse_tools(tools: Sequence[Any] | None) -> tuple[list[dict[str, Any]], bool, list[dict[str, Any]]]:
    """The request's tools: its function tools in the chat shape (what the agent code reads), whether it asks for
    ``file_search``, and the tools as the response echoes them. Function tools come in the Responses shape
    (``{type, name, description, parameters}``) or the chat shape (``{type, function: {...}}``)."""
    functions: list[dict[str, Any]] = []
    echoed: list[dict[str, Any]] = []
    file_search = False
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, Mapping):
            raise ValueError(f"tools[{i}]: a tool object")
        kind = tool.get("type")
        if kind == "function":
            spec = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
            name = spec.get("name")
            if not isinstance(name, str):
                raise ValueError(f"tools[{i}].name: a function tool needs a name")
            parameters = spec.get("parameters") or {"type": "object", "properties": {}}
            if not isinstance(parameters, Mapping):
                raise ValueError(f"tools[{i}].parameters: a JSON schema object")
            description = str(spec.get("description") or "")
            try:
                ToolSpec(name, description, dict(parameters))  # the name and schema rules every tool keeps
            except ToolError as exc:
                raise ValueError(f"tools[{i}]: {exc}") from None
            if any(f["function"]["name"] == name for f in functions):
                raise ValueError(f"tools[{i}].name: two function tools are named {name!r}")
            functions.append({"type": "function", "function": {"name": name, "description": description,
                                                               "parameters": dict(parameters)}})
            echoed.append({"type": "function", "name": name, "description": description,
                           "parameters": dict(parameters), "strict": bool(spec.get("strict", False))})
        elif kind == "file_search":
            if file_search:
                raise ValueError(f"tools[{i}]: file_search is there twice")
            file_search = True
            stores = tool.get("vector_store_ids") or []
            echoed.append({"type": "file_search", "vector_store_ids": stores if isinstance(stores, list) else []})
        else:
            raise ValueError(f"tools[{i}].type: {kind!r} is not served here; function and file_search are")
    return functions, file_search, echoed


def chat_tool_choice(choice: Any) -> Any:
    """A Responses ``tool_choice`` in the chat shape (``{type: function, name}`` → ``{type, function: {name}}``)."""
    if isinstance(choice, Mapping) and choice.get("type") == "function" and "function" not in choice:
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, Mapping) and choice.get("type") == "file_search":
        raise ValueError("tool_choice: file_search is chosen by the agent; use auto")
    return choice


def chat_messages(items: Sequence[Mapping[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """A conversation of items as chat messages (what :func:`~flightdeck.agents.tool_calls.tool_call_turn` reads):
    ``instructions`` first, the client's calls as an assistant's ``tool_calls``, their outputs as ``tool``
    messages; a replayed file search is left out."""
    out: list[dict[str, Any]] = []
    if instructions and instructions.strip():
        out.append({"role": "system", "content": instructions, "tool_calls": None, "tool_call_id": None})
    for item in items:
        kind = item.get("type")
        if kind == "message":
            out.append({"role": item["role"], "content": text_of(item), "tool_calls": None, "tool_call_id": None})
        elif kind == "function_call":
            out.append({"role": "assistant", "content": None, "tool_call_id": None, "tool_calls": [
                {"id": item["call_id"], "type": "function",
                 "function": {"name": item["name"], "arguments": item["arguments"]}}]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "content": str(item["output"]), "tool_call_id": item["call_id"],
                        "tool_calls": None})
    return out


def agent_question(items: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, str]], str]:
    """What an agent run starts from: the last user message, the user and assistant turns before it, and the
    system and developer messages (instructions)."""
    last = max((i for i, item in enumerate(items) if item.get("type") == "message" and item.get("role") == "user"),
               default=None)
    if last is None:
        raise ValueError("input: no user message to answer")
    history = [{"role": str(item["role"]), "content": text_of(item)} for item in items[:last]
               if item.get("type") == "message" and item.get("role") in ("user", "assistant")]
    system = "\n\n".join(text_of(item) for item in items
                         if item.get("type") == "message" and item.get("role") in ("system", "developer"))
    return text_of(items[last]), history, system


def file_name(source: Mapping[str, Any]) -> str:
    """The file name a citation shows: the last part of the source's URI (else its document id)."""
    uri = str(source.get("source_uri") or source.get("document_id") or "")
    return uri.rstrip("/").rsplit("/", 1)[-1] or uri


def message_item(role: str, text: str, annotations: Sequence[dict[str, Any]] = (), *,
                 status: str = "completed") -> dict[str, Any]:
    part = "output_text" if role == "assistant" else "input_text"
    content: dict[str, Any] = {"type": part, "text": text}
    if role == "assistant":
        content.update(annotations=list(annotations), logprobs=[])
    return {"type": "message", "id": new_id("msg"), "role": role, "status": status, "content": [content]}


def citations(cited: Sequence[Mapping[str, Any]], text: str) -> list[dict[str, Any]]:
    """``file_citation`` annotations of an answer's citations of documents (one per file), each placed after its
    ``[n]`` marker in ``text`` when the answer has one, else at its end."""
    out: dict[str, dict[str, Any]] = {}
    for cite in cited:
        if cite.get("document_id") and cite["document_id"] not in out:
            marker = f"[{cite.get('number')}]"
            at = text.find(marker)
            out[cite["document_id"]] = {"type": "file_citation", "file_id": cite["document_id"],
                                        "filename": file_name(cite), "index": len(text) if at < 0 else at + len(marker)}
    return list(out.values())


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "id": new_id("fc"), "call_id": call_id, "name": name, "arguments": arguments,
            "status": "completed"}


def file_search_item(step: Any, sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``file_search_call`` item of an agent's search step: its query and the passages it found."""
    query = (step.arguments or {}).get("query")
    results = []
    for source in sources:
        attributes = {k: source[k] for k in ("chunk_id", "title") if isinstance(source.get(k), str | int | float)}
        results.append({"file_id": source.get("document_id"), "filename": file_name(source),
                        "score": source.get("score"), "text": None, "attributes": attributes})
    return {"type": "file_search_call", "id": new_id("fs"), "queries": [str(query)] if query else [],
            "status": "completed" if step.ok else "failed", "results": results}
