"""The tools an agent may call (checklist 6.1): one contract (:mod:`.base`), one module per kind of tool."""

from flightdeck.agents.tools.base import Tool, ToolError, ToolResult, ToolSpec, check_tool_name

__all__ = ["Tool", "ToolError", "ToolResult", "ToolSpec", "check_tool_name"]
