"""The contract test every agent tool runs (DESIGN.md §3.1: one contract test class per category).

Subclass :class:`ToolContract` and give the fixtures ``tool`` (a built tool), ``good_arguments`` (arguments it
answers) and ``bad_arguments`` (a list of argument dicts it must refuse without raising)::

    class TestSqlTool(ToolContract):
        @pytest.fixture
        def tool(self): ...
"""

from __future__ import annotations

import json
from typing import Any

from flightdeck.agents.tools.base import TOOL_NAME, Tool, ToolResult

__all__ = ["ToolContract"]


class ToolContract:
    """What every tool keeps: a valid spec, a result for good arguments, a refusal (never an exception) for bad
    ones, and results that serialize to JSON."""

    def test_the_spec_is_a_valid_openai_function_tool(self, tool: Tool) -> None:
        assert isinstance(tool, Tool)
        spec = tool.spec.to_openai()
        assert TOOL_NAME.match(spec["function"]["name"])
        assert spec["function"]["description"].strip()
        assert spec["function"]["parameters"]["type"] == "object"
        json.dumps(spec)

    def test_good_arguments_give_a_result(self, tool: Tool, good_arguments: dict[str, Any]) -> None:
        result = tool.call(good_arguments)
        assert isinstance(result, ToolResult)
        assert result.ok, result.error
        assert isinstance(result.content, str) and result.content
        json.dumps(result.to_dict(), default=str)

    def test_bad_arguments_are_refused_not_raised(self, tool: Tool, bad_arguments: list[dict[str, Any]]) -> None:
        assert bad_arguments, "give at least one argument set the tool must refuse"
        for arguments in bad_arguments:
            result = tool.call(arguments)
            assert isinstance(result, ToolResult), arguments
            assert not result.ok and result.error, f"{arguments!r} was not refused: {result.content[:200]}"
            assert result.content.startswith("error:"), result.content
