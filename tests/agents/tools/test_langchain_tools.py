"""LangChain tools both ways, with the real langchain-core: LangChain's ``@tool`` functions, ``StructuredTool``\\ s and
``BaseTool`` subclasses as flightdeck tools, flightdeck tools as ``StructuredTool``\\ s that LangChain's own machinery
(``invoke``, tool calls, ``batch``, ``ainvoke``, ``convert_to_openai_tool``) drives, and the round trip.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, ValidationError

pytest.importorskip("langchain_core", reason="needs flightdeck[langchain] (missing: langchain_core)")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.messages import ToolMessage  # noqa: E402
from langchain_core.tools import BaseTool, StructuredTool, ToolException  # noqa: E402
from langchain_core.tools import tool as lc_tool  # noqa: E402
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402
from langchain_core.utils.json_schema import dereference_refs  # noqa: E402

from flightdeck.agents.tools.base import Tool, ToolError, ToolResult  # noqa: E402
from flightdeck.agents.tools.custom import tool as fd_tool  # noqa: E402
from flightdeck.agents.tools.langchain import (  # noqa: E402
    LangchainTool,
    LangchainToolConfig,
    from_langchain,
    langchain_tool,
    to_langchain,
)
from flightdeck.errors import MissingDependencyError  # noqa: E402
from flightdeck.testing.tool_contract import ToolContract  # noqa: E402

pytestmark = pytest.mark.unit

# ------------------------------------------------------------------------------------------- LangChain tools


class Unit(StrEnum):
    KG = "kg"
    LB = "lb"


@lc_tool
def convert_weight(value: Annotated[float, "the weight to convert"], to: Unit) -> float:
    """Convert a weight between kilograms and pounds."""
    return round(value * 2.20462, 3) if to is Unit.LB else round(value / 2.20462, 3)

@lc_tool(parse_docstring=True)
def warehouse_docs(query: str, k: int = 2) -> list[Document]:
    """Search the warehouse handbook.

    Args:
        query: what to look for.
        k: how many passages.
    """
    handbook = [Document(page_content="Gears are stored in aisle 4.", id="hb-4",
                         metadata={"source": "handbook.md", "page": 4}),
                Document(page_content="Sprockets ship in boxes of 50.", metadata={"source": "shipping.md"})]
    return [d for d in handbook if any(w in d.page_content.lower() for w in query.lower().split())][:k]

class RestockIn(BaseModel):
    sku: str = Field(description="the product", min_length=3)
    qty: int = Field(ge=1, le=500, description="units to order")

def _restock(sku: str, qty: int) -> dict[str, Any]:
    if sku.startswith("OLD"):
        raise ToolException(f"{sku} is discontinued; pick its successor")
    return {"sku": sku, "ordered": qty, "eta_days": 3 if qty < 100 else 10}

restock = StructuredTool.from_function(_restock, name="restock", description="Order more units of a product.",
                                       args_schema=RestockIn, handle_tool_error=True)

class CustomsCode(BaseTool):
    """A BaseTool subclass with its own settings and errors."""

    name: str = "customs_code"
    description: str = "The customs tariff code of a product category."
    codes: dict[str, str] = Field(default_factory=lambda: {"gears": "8483.40", "chains": "7315.11"})
    handle_tool_error: bool = True

    def _run(self, category: str) -> str:
        if category not in self.codes:
            raise ToolException(f"no tariff code for {category!r}; known: {', '.join(sorted(self.codes))}")
        if category == "crash":
            raise RuntimeError("unreachable")
        return self.codes[category]

@lc_tool(response_format="content_and_artifact")
def sales_chart(month: str) -> tuple[str, dict[str, Any]]:
    """Sales of a month, with the chart's data."""
    return f"sales of {month}: 42 orders", {"month": month, "orders": [10, 12, 20]}


def test_a_langchain_tool_function_becomes_a_flightdeck_tool() -> None:
    adapted = from_langchain(convert_weight)
    assert isinstance(adapted, Tool)
    assert adapted.spec.name == "convert_weight"
    assert adapted.spec.description == "Convert a weight between kilograms and pounds."
    # exactly what LangChain itself would send OpenAI
    assert adapted.spec.to_openai() == convert_to_openai_tool(convert_weight)
    assert adapted.spec.parameters["properties"]["value"] == {"type": "number",
                                                              "description": "the weight to convert"}
    assert adapted.spec.parameters["required"] == ["value", "to"]
    result = adapted.call({"value": 10, "to": "lb"})
    assert result.ok and result.content == "22.046" and result.data == 22.046
    assert adapted.call({"value": 22.046, "to": "kg"}).data == 10.0


def test_validation_errors_are_refusals_naming_the_argument() -> None:
    adapted = from_langchain(convert_weight)
    assert adapted.call({"value": "heavy", "to": "lb"}).error == \
        "argument 'value': Input should be a valid number, unable to parse string as a number"
    assert adapted.call({"value": 1, "to": "stone"}).error == "argument 'to': Input should be 'kg' or 'lb'"
    assert adapted.call({"value": 1}).error == "argument 'to' is required"
    restock_tool = from_langchain(restock)
    refused = restock_tool.call({"sku": "AB", "qty": 0})
    assert "argument 'sku': String should have at least 3 characters" in refused.error
    assert "argument 'qty': Input should be greater than or equal to 1" in refused.error
    assert refused.content.startswith("error: ")


def test_a_structured_tool_and_its_tool_exception() -> None:
    adapted = from_langchain(restock)
    assert adapted.spec.parameters["properties"]["qty"] == {"type": "integer", "minimum": 1, "maximum": 500,
                                                            "description": "units to order"}
    assert adapted.call({"sku": "GEAR-1", "qty": 120}).data == {"sku": "GEAR-1", "ordered": 120, "eta_days": 10}
    # handle_tool_error=True would make LangChain return the message as if it were the answer: here it is a refusal
    refused = adapted.call({"sku": "OLD-7", "qty": 1})
    assert not refused.ok and refused.error == "OLD-7 is discontinued; pick its successor"
    assert restock.invoke({"sku": "OLD-7", "qty": 1}) == "OLD-7 is discontinued; pick its successor"  # unchanged


def test_a_basetool_subclass_from_the_spec_with_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"lc_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from langchain_core.tools import BaseTool, tool\n"
        f"from {__name__} import CustomsCode\n"
        "customs = CustomsCode()\n"
        "def make_customs(extra: dict) -> BaseTool:\n"
        "    return CustomsCode(codes={**CustomsCode().codes, **extra})\n"
        "def not_a_tool_factory() -> int:\n"
        "    return 3\n"
        "@tool\n"
        "def ping() -> str:\n"
        "    '''Answer pong.'''\n"
        "    return 'pong'\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        instance = langchain_tool({"tool": f"{module}:customs"})
        assert instance.call({"category": "gears"}).content == "8483.40"
        refused = instance.call({"category": "anvils"})
        assert refused.error == "no tariff code for 'anvils'; known: chains, gears"
        subclass = langchain_tool({"tool": f"{module}:CustomsCode", "settings": {"codes": {"anvils": "8205.40"}},
                                   "name": "tariff", "max_chars": 100})
        assert subclass.spec.name == "tariff" and subclass.call({"category": "anvils"}).content == "8205.40"
        factory = langchain_tool(LangchainToolConfig(tool=f"{module}:make_customs",
                                                     settings={"extra": {"bolts": "7318.15"}}))
        assert factory.call({"category": "bolts"}).content == "7318.15"
        assert factory.call({"category": "gears"}).content == "8483.40"
        assert langchain_tool({"tool": f"{module}:ping"}).call({}).content == "pong"
        with pytest.raises(ToolError, match="is a tool already made; settings apply"):
            langchain_tool({"tool": f"{module}:customs", "settings": {"codes": {}}})
        with pytest.raises(ToolError, match="the settings do not fit CustomsCode"):
            langchain_tool({"tool": f"{module}:CustomsCode", "settings": {"codes": "not a dict"}})
        with pytest.raises(ToolError, match="returned int, not a LangChain BaseTool"):
            langchain_tool({"tool": f"{module}:not_a_tool_factory"})
        with pytest.raises(ValidationError, match="write package.module:attr"):
            LangchainToolConfig(tool="langchain_community.tools.WikipediaQueryRun")
    finally:
        sys.modules.pop(module, None)


def test_other_exceptions_propagate_as_in_langchain() -> None:
    adapted = from_langchain(CustomsCode(codes={"crash": "x"}))
    with pytest.raises(RuntimeError, match="unreachable"):
        adapted.call({"category": "crash"})


def test_documents_become_citable_sources_and_artifacts_data() -> None:
    docs = from_langchain(warehouse_docs)
    assert docs.spec.parameters["properties"]["query"]["description"] == "what to look for."
    result = docs.call({"query": "gears sprockets"})
    assert result.content == "Gears are stored in aisle 4.\n\nSprockets ship in boxes of 50."
    assert result.sources == [
        {"id": "hb-4", "text": "Gears are stored in aisle 4.", "metadata": {"source": "handbook.md", "page": 4}},
        {"id": "shipping.md", "text": "Sprockets ship in boxes of 50.", "metadata": {"source": "shipping.md"}}]
    assert result.data[0] == {"page_content": "Gears are stored in aisle 4.", "id": "hb-4",
                              "metadata": {"source": "handbook.md", "page": 4}}
    assert docs.call({"query": "gears", "k": 1}).sources[0]["id"] == "hb-4"

    chart = from_langchain(sales_chart).call({"month": "2025-03"})
    assert chart.content == "sales of 2025-03: 42 orders"
    assert chart.data == {"content": "sales of 2025-03: 42 orders",
                          "artifact": {"month": "2025-03", "orders": [10, 12, 20]}}


def test_a_tool_that_returns_a_tool_message() -> None:
    @lc_tool
    def escalate(ticket: int) -> ToolMessage:
        """Hand a ticket to a person."""
        status = "error" if ticket < 0 else "success"
        return ToolMessage(content=[{"type": "text", "text": f"ticket {ticket} escalated"}], tool_call_id="t",
                           status=status, artifact={"queue": "tier-2"})

    adapted = from_langchain(escalate)
    result = adapted.call({"ticket": 12})
    assert result.content == "ticket 12 escalated"
    assert result.data == {"content": "ticket 12 escalated", "artifact": {"queue": "tier-2"}}
    assert adapted.call({"ticket": -1}).error == "ticket -1 escalated"


def test_names_langchain_allows_and_openai_does_not_need_a_new_name() -> None:
    odd = StructuredTool.from_function(lambda q: q, name="web search", description="Search.")
    with pytest.raises(ToolError, match="LangChain tool 'web search'.*give a name"):
        from_langchain(odd)
    assert from_langchain(odd, name="web_search").call({"q": "x"}).content == "x"
    with pytest.raises(ToolError, match="is not a LangChain BaseTool"):
        LangchainTool(convert_weight.func)


# -------------------------------------------------------------------------------------- flightdeck → LangChain


class Line(BaseModel):
    sku: str = Field(min_length=1)
    qty: int = Field(ge=1)


@fd_tool
def order_total(lines: list[Line], currency: Annotated[str, Field(pattern="^[A-Z]{3}$")] = "EUR") -> ToolResult:
    """Price an order's lines."""
    prices = {"gear": 1200, "sprocket": 250}
    missing = [line.sku for line in lines if line.sku not in prices]
    if missing:
        return ToolResult.refused(f"unknown sku {missing[0]}")
    cents = sum(prices[line.sku] * line.qty for line in lines)
    return ToolResult(content=f"{cents / 100:.2f} {currency}", data={"cents": cents, "currency": currency},
                      sources=[{"id": f"price:{line.sku}"} for line in lines])


@fd_tool
def greet(name: str) -> str:
    """Greet a customer by name."""
    return f"Hello {name}!"


def test_a_flightdeck_tool_in_langchains_hands() -> None:
    lc = to_langchain(order_total)
    assert isinstance(lc, StructuredTool) and lc.name == "order_total"
    # LangChain sends OpenAI the flightdeck schema (with $refs inlined, as it does for every tool)
    sent = convert_to_openai_tool(lc)
    assert sent["function"]["name"] == "order_total" and sent["function"]["description"] == "Price an order's lines."
    ours = dereference_refs(dict(order_total.spec.parameters))
    ours.pop("$defs")
    assert sent["function"]["parameters"] == ours
    assert convert_to_openai_tool(to_langchain(greet)) == greet.spec.to_openai()  # no $refs: the very same

    assert lc.invoke({"lines": [{"sku": "gear", "qty": 2}]}) == "24.00 EUR"
    message = lc.invoke({"type": "tool_call", "id": "call-1", "name": "order_total",
                         "args": {"lines": [{"sku": "sprocket", "qty": 4}], "currency": "USD"}})
    assert isinstance(message, ToolMessage) and message.status == "success" and message.content == "10.00 USD"
    assert message.artifact == {"data": {"cents": 1000, "currency": "USD"}, "sources": [{"id": "price:sprocket"}]}
    assert lc.batch([{"lines": [{"sku": "gear", "qty": 1}]}, {"lines": [{"sku": "sprocket", "qty": 1}]}]) == \
        ["12.00 EUR", "2.50 EUR"]
    assert asyncio.run(lc.ainvoke({"lines": [{"sku": "gear", "qty": 3}]})) == "36.00 EUR"


def test_refusals_raise_tool_exception_for_langchain_to_handle() -> None:
    handled = to_langchain(order_total)
    assert handled.invoke({"lines": [{"sku": "anvil", "qty": 1}]}) == "unknown sku anvil"
    failed = handled.invoke({"type": "tool_call", "id": "c2", "name": "order_total",
                             "args": {"lines": [{"sku": "gear", "qty": 0}]}})
    assert failed.status == "error"
    assert failed.content == "argument 'lines.0.qty': Input should be greater than or equal to 1"
    raising = to_langchain(order_total, handle_tool_error=False)
    with pytest.raises(ToolException, match="argument 'currency': String should match pattern"):
        raising.invoke({"lines": [{"sku": "gear", "qty": 1}], "currency": "euro"})
    with pytest.raises(ToolException, match="unknown argument 'discount'"):
        raising.invoke({"lines": [{"sku": "gear", "qty": 1}], "discount": 10})
    with pytest.raises(ToolError, match="is not a flightdeck tool"):
        to_langchain(convert_weight)  # type: ignore[arg-type]


def test_the_round_trip_keeps_the_spec_the_results_and_the_refusals() -> None:
    back = from_langchain(to_langchain(order_total))
    assert back.spec.name == order_total.spec.name and back.spec.description == order_total.spec.description
    ours = dereference_refs(dict(order_total.spec.parameters))
    ours.pop("$defs")
    assert back.spec.parameters == ours
    direct = order_total.call({"lines": [{"sku": "gear", "qty": 1}, {"sku": "sprocket", "qty": 2}]})
    through = back.call({"lines": [{"sku": "gear", "qty": 1}, {"sku": "sprocket", "qty": 2}]})
    assert (through.content, through.data, through.sources) == (direct.content, direct.data, direct.sources)
    for bad in ({"lines": [{"sku": "anvil", "qty": 1}]}, {"lines": [], "currency": "eur"}, {}):
        assert back.call(bad).error == order_total.call(bad).error, bad
        assert not back.call(bad).ok


def test_a_missing_langchain_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core.tools", None)  # what an install without langchain-core sees
    with pytest.raises(MissingDependencyError, match=r"LangChain tools needs: pip install 'flightdeck\[langchain\]'"):
        to_langchain(greet)
    LangchainToolConfig(tool="acme.tools:search")  # the config reads without it


class TestLangchainFunctionToolContract(ToolContract):
    @pytest.fixture
    def tool(self) -> Tool:
        return from_langchain(convert_weight)

    @pytest.fixture
    def good_arguments(self) -> dict[str, Any]:
        return {"value": 3, "to": "kg"}

    @pytest.fixture
    def bad_arguments(self) -> list[Any]:
        return [{}, {"value": "x", "to": "kg"}, {"value": 1, "to": "oz"}]


class TestLangchainSubclassToolContract(ToolContract):
    @pytest.fixture
    def tool(self) -> Tool:
        return from_langchain(CustomsCode())

    @pytest.fixture
    def good_arguments(self) -> dict[str, Any]:
        return {"category": "chains"}

    @pytest.fixture
    def bad_arguments(self) -> list[Any]:
        return [{}, {"category": "anvils"}, {"category": ["gears"]}, {"category": "gears", "country": "FR"}]


class TestRoundTripToolContract(ToolContract):
    @pytest.fixture
    def tool(self) -> Iterator[Tool]:
        yield from_langchain(to_langchain(order_total))

    @pytest.fixture
    def good_arguments(self) -> dict[str, Any]:
        return {"lines": [{"sku": "gear", "qty": 1}]}

    @pytest.fixture
    def bad_arguments(self) -> list[Any]:
        return [{}, {"lines": [{"sku": "anvil", "qty": 1}]}, {"lines": "gear"}, {"lines": [], "x": 1}]
