"""Tool calling for clients that run their own agent loop (checklist 3.3: LangChain, LlamaIndex and CrewAI agents on
flightdeck's model): one chat turn that either calls one of the *client's* tools or answers, in the OpenAI shape.

The client sends its tools (``{"type": "function", "function": {name, description, parameters}}``) and the
conversation so far (its system prompt, the user's turns, its earlier ``tool_calls`` and the ``tool`` results).
:func:`tool_call_turn` asks the agent model for one action under the same JSON schema the agent loop uses (a
llama.cpp grammar for local models), so even a small local model returns a well-formed call of a tool that exists.
``tool_choice`` is honoured: ``none`` (answer only), ``required`` (a call only), or one named function.

Tool results are untrusted data here too: each ``tool`` message reaches the model as a fenced ``<source>`` block.
Nothing is executed on the server: the client runs its tools.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flightdeck.agents.runtime import AGENT_SYSTEM_PROMPT, action_schema
from flightdeck.agents.tools.base import ToolError, ToolResult, ToolSpec
from flightdeck.models.generators.untrusted import fence_attribute, fence_text

__all__ = ["ClientTool", "ToolCallTurn", "tool_call_turn", "client_tools"]

MAX_TOOLS = 64


class ClientTool:
    """A tool the client runs: only its spec is here (calling it is the client's job)."""

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:  # pragma: no cover - never called on the server
        return ToolResult.refused("this tool runs on the client")


@dataclass
class ToolCallTurn:
    """One turn: ``tool_calls`` (OpenAI's shape, arguments as a JSON string) or ``content``, and its tokens."""

    content: str | None
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out


def client_tools(tools: Sequence[Mapping[str, Any]]) -> list[ClientTool]:
    """The request's function tools as :class:`ClientTool` objects; a ValueError names the bad one."""
    if len(tools) > MAX_TOOLS:
        raise ValueError(f"tools: at most {MAX_TOOLS}")
    out: list[ClientTool] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if tool.get("type") == "function" else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ValueError(f"tools[{i}]: a function tool {{type: function, function: {{name, parameters}}}}")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        try:
            out.append(ClientTool(ToolSpec(function["name"], str(function.get("description") or ""),
                                           dict(parameters))))
        except ToolError as exc:
            raise ValueError(f"tools[{i}]: {exc}") from None
    names = [t.spec.name for t in out]
    if len(set(names)) != len(names):
        raise ValueError("tools: two tools share a name")
    return out


def _choose(tools: list[ClientTool], tool_choice: Any) -> tuple[list[ClientTool], str]:
    """The tools the model may call and whether it may (``auto``), must (``required``) or may not (``none``)."""
    if tool_choice in (None, "auto"):
        return tools, "auto"
    if tool_choice == "none":
        return [], "none"
    if tool_choice == "required":
        return tools, "required"
    if isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [t for t in tools if t.spec.name == name]
        if not chosen:
            raise ValueError(f"tool_choice: no tool named {name!r} among the request's tools")
        return chosen, "required"
    raise ValueError("tool_choice: none, auto, required or {type: function, function: {name}}")


def _messages(conversation: Sequence[Mapping[str, Any]], tools: list[ClientTool]) -> list[dict[str, str]]:
    """The client's conversation as the loop's turns: its system prompt after flightdeck's, its calls as the JSON
    actions the model writes, each tool result a fenced source."""
    described = "\n".join(f"- {t.spec.name}: {t.spec.description.strip()} Arguments (JSON schema): "
                          f"{json.dumps(dict(t.spec.parameters), sort_keys=True)}" for t in tools)
    system = AGENT_SYSTEM_PROMPT + (described or "(none: answer directly)")
    instructions = [str(m.get("content") or "") for m in conversation if m.get("role") in ("system", "developer")]
    out = [{"role": "system", "content": system + "".join("\n\n" + i for i in instructions if i.strip())}]
    names: dict[str, str] = {}
    number = 0
    for m in conversation:
        role = m.get("role")
        if role == "user":
            out.append({"role": "user", "content": str(m.get("content") or "")})
        elif role == "assistant":
            calls = m.get("tool_calls") or []
            for call in calls:
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                out.append({"role": "assistant", "content": json.dumps(
                    {"tool": function.get("name"), "arguments": arguments}, ensure_ascii=False)})
            if not calls and m.get("content"):
                out.append({"role": "assistant", "content": json.dumps({"answer": str(m["content"]), "cites": []})})
        elif role == "tool":
            number += 1
            name = names.get(str(m.get("tool_call_id")), "tool")
            out.append({"role": "user", "content": f'<source id="{number}" tool="{fence_attribute(name)}">\n'
                                                   f"{fence_text(str(m.get('content') or ''))}\n</source>"})
    return out


def tool_call_turn(model: Any, conversation: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], *,
                   tool_choice: Any = None, max_tokens: int | None = None) -> ToolCallTurn:
    """One assistant turn for ``conversation`` (OpenAI chat messages) with the client's ``tools``."""
    offered = client_tools(tools)
    allowed, mode = _choose(offered, tool_choice)
    if mode == "required" and not allowed:
        raise ValueError("tool_choice: required, but the request has no tools")
    schema = action_schema(allowed, allow_tools=mode != "none")
    if mode == "required":
        schema = {"anyOf": schema["anyOf"][:-1]} if len(schema.get("anyOf", [])) > 2 else schema["anyOf"][0]
    completion = model.complete_json(_messages(conversation, offered), schema, max_tokens=max_tokens)
    try:
        action = json.loads(completion.text)
    except ValueError:
        action = None
    if isinstance(action, dict) and action.get("tool") in {t.spec.name for t in allowed}:
        call = {"id": "call_" + secrets.token_hex(12), "type": "function",
                "function": {"name": action["tool"], "arguments": json.dumps(action.get("arguments") or {},
                                                                             ensure_ascii=False)}}
        return ToolCallTurn(None, [call], completion.prompt_tokens, completion.completion_tokens, "tool_calls")
    if isinstance(action, dict) and isinstance(action.get("answer"), str):
        return ToolCallTurn(action["answer"], [], completion.prompt_tokens, completion.completion_tokens, "stop")
    # a reply that does not parse (a provider that cannot hold the model to the schema, or a cut reply): its text
    return ToolCallTurn(completion.text, [], completion.prompt_tokens, completion.completion_tokens,
                        "length" if completion.finish_reason == "length" else "stop")
