"""Tool calling for clients that run their own agent loop (checklist 3.3: LangChain, LlamaIndex and CrewAI agents on
flightdeck's model): one chat turn that either calls one of the *client's* tools or answers, in the OpenAI shape.

The client sends its tools (``{"type": "function", "function": {name, description, parameters}}``) and the
conversation so far (its system prompt, the user's turns, its earlier ``tool_calls`` and the ``tool`` results).
:func:`tool_call_turn` asks the agent model for one action under the same JSON schema the agent loop uses (a
llama.cpp grammar for local models), so even a small local model returns a well-formed call of a tool that exists.
``tool_choice`` is honoured: ``none`` (answer only), ``required`` (a call only), or one named function.

Tool results are untrusted data here too: each ``tool`` message reaches the model as a fenced ``<source>`` block.
Nothing is executed on the server: the client runs its tools.

**Citations.** Sources are numbered as the client numbered them where its tool results do (a result written as
``[1] text`` / ``[2] text`` lines, as flightdeck's :class:`~flightdeck.agents.frameworks.base.RunRecorder` writes
them, becomes one ``<source>`` block per number), else one number per ``tool`` message. The answer may cite only
those numbers (the schema holds the model to them), and each number it cites is written into the answer's text as
``[n]`` where the model did not write it, so a client that reads citations from the text (the frameworks do) gets
them.
"""

from __future__ import annotations

import json
import re
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


_LABEL = re.compile(r"^\[(\d{1,4}(?:, ?\d{1,4})*)\] ?", re.MULTILINE)


def _labelled_blocks(content: str, after: int) -> list[tuple[list[int], str]]:
    """``content`` split into the client's numbered sources when it is written as ``[n] text`` lines numbered on
    from ``after`` + 1 (a line that breaks the sequence stays inside the block before it); ``[]`` when it is not."""
    blocks: list[tuple[list[int], str]] = []
    expected = after + 1
    starts: list[tuple[int, int, list[int]]] = []
    for match in _LABEL.finditer(content):
        numbers = [int(n) for n in re.split(r", ?", match.group(1))]
        if numbers != list(range(expected, expected + len(numbers))) or (not starts and match.start() != 0):
            continue
        starts.append((match.start(), match.end(), numbers))
        expected = numbers[-1] + 1
    for i, (_, body_start, numbers) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(content)
        blocks.append((numbers, content[body_start:end].rstrip("\n")))
    return blocks


def _messages(conversation: Sequence[Mapping[str, Any]],
              tools: list[ClientTool]) -> tuple[list[dict[str, str]], list[int]]:
    """The client's conversation as the loop's turns: its system prompt after flightdeck's, its calls as the JSON
    actions the model writes, each tool result fenced as numbered sources; and the source numbers given."""
    described = "\n".join(f"- {t.spec.name}: {t.spec.description.strip()} Arguments (JSON schema): "
                          f"{json.dumps(dict(t.spec.parameters), sort_keys=True)}" for t in tools)
    system = AGENT_SYSTEM_PROMPT + (described or "(none: answer directly)")
    instructions = [str(m.get("content") or "") for m in conversation if m.get("role") in ("system", "developer")]
    out = [{"role": "system", "content": system + "".join("\n\n" + i for i in instructions if i.strip())}]
    names: dict[str, str] = {}
    numbers: list[int] = []
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
            name = fence_attribute(names.get(str(m.get("tool_call_id")), "tool"))
            content = str(m.get("content") or "")
            last = numbers[-1] if numbers else 0
            blocks = _labelled_blocks(content, last) or [([last + 1], content)]
            fenced = []
            for given, text in blocks:
                numbers.extend(given)
                label = ", ".join(str(n) for n in given)
                fenced.append(f'<source id="{label}" tool="{name}">\n{fence_text(text)}\n</source>')
            out.append({"role": "user", "content": "\n".join(fenced)})
    return out, numbers


def _with_markers(answer: str, cites: Any, numbers: Sequence[int]) -> str:
    """``answer`` with ``[n]`` added for each source number it cites but does not write."""
    given = set(numbers)
    cited = [n for n in dict.fromkeys(cites) if isinstance(n, int) and n in given] if isinstance(cites, list) else []
    written = {int(n) for group in re.findall(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]", answer)
               for n in group.split(",")}
    missing = [n for n in cited if n not in written]
    return answer.rstrip() + "".join(f" [{n}]" for n in missing) if missing else answer


def tool_call_turn(model: Any, conversation: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], *,
                   tool_choice: Any = None, max_tokens: int | None = None) -> ToolCallTurn:
    """One assistant turn for ``conversation`` (OpenAI chat messages) with the client's ``tools``."""
    offered = client_tools(tools)
    allowed, mode = _choose(offered, tool_choice)
    if mode == "required" and not allowed:
        raise ValueError("tool_choice: required, but the request has no tools")
    messages, numbers = _messages(conversation, offered)
    schema = action_schema(allowed, allow_tools=mode != "none", sources=len(numbers))  # numbered 1..n
    if mode == "required":
        schema = {"anyOf": schema["anyOf"][:-1]} if len(schema.get("anyOf", [])) > 2 else schema["anyOf"][0]
    completion = model.complete_json(messages, schema, max_tokens=max_tokens)
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
        answer = _with_markers(action["answer"], action.get("cites"), numbers)
        return ToolCallTurn(answer, [], completion.prompt_tokens, completion.completion_tokens, "stop")
    # a reply that does not parse (a provider that cannot hold the model to the schema, or a cut reply): its text
    return ToolCallTurn(completion.text, [], completion.prompt_tokens, completion.completion_tokens,
                        "length" if completion.finish_reason == "length" else "stop")
