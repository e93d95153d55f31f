"""The contract every agent tool keeps (checklist 6.1): a :class:`ToolSpec` the model reads (name, description,
JSON-schema parameters: OpenAI's function-tool shape) and ``call(arguments) -> ToolResult``.

A tool never raises for what the model asked: bad arguments, a refused statement, a sandboxed program that failed
or timed out are all a :class:`ToolResult` with ``error`` set, which the agent loop shows the model as such so it
can try again. An exception from ``call`` is a bug or an outage (a database down), and the loop records it as a
failed step. What a tool returns is **untrusted data**, like retrieved text: ``content`` is what the model reads
(capped by the tool), ``data`` the structured result for the trace and the API, ``sources`` what a final answer
may cite.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from flightdeck.errors import FlightdeckError

__all__ = ["Tool", "ToolError", "ToolResult", "ToolSpec", "check_tool_name", "TOOL_NAME"]

#: OpenAI's rule for a function name: what every provider accepts
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolError(FlightdeckError):
    """A tool that cannot be built as configured (a bad setting, a missing dependency); never raised by ``call``
    for what the model asked."""


def check_tool_name(name: str) -> str:
    """``name`` when it is a valid tool name (letters, digits, ``_`` and ``-``, at most 64), else :class:`ToolError`."""
    if not TOOL_NAME.match(name or ""):
        raise ToolError(f"tool name {name!r}: letters, digits, '_' and '-', 1 to 64 characters (e.g. sql_query)")
    return name


@dataclass(frozen=True)
class ToolSpec:
    """What the model is told of a tool: its ``name``, what it does, and its ``parameters`` as a JSON schema of
    type object."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        check_tool_name(self.name)
        if self.parameters.get("type") != "object":
            raise ToolError(f"tool {self.name}: parameters must be a JSON schema of type object")

    def to_openai(self) -> dict[str, Any]:
        """The tool in the OpenAI chat completions ``tools`` shape."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": dict(self.parameters)}}


@dataclass
class ToolResult:
    """What a call gave: ``content`` for the model (untrusted text), ``data`` for the trace, ``error`` when the call
    was refused or failed (the model is told, and may try again), ``sources`` that an answer may cite (each a dict
    with at least ``id``; chunk ids, URIs, table names). When every source carries its own ``text`` (the passages of
    a search), the model reads each as a numbered source of its own instead of ``content``."""

    content: str
    data: Any = None
    error: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def refused(cls, reason: str, **data: Any) -> ToolResult:
        """A call the tool would not or could not do; the model reads ``reason``."""
        return cls(content=f"error: {reason}", data=data or None, error=reason)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Tool(Protocol):
    """An agent tool: ``spec`` for the model, ``call`` for the loop."""

    spec: ToolSpec

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Do what ``arguments`` (already JSON-decoded, not yet validated) ask; never raise for their content."""
        ...
