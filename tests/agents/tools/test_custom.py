"""Custom business logic tools: decorated typed functions, functions and tools named in the spec, tools registered
by a package in the ``flightdeck.tools`` entry-point group, and OpenAPI operations called against a real FastAPI
service (uvicorn in a thread), whose own generated ``/openapi.json`` is the document the tools are built from.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from flightdeck.agents.tools.base import Tool, ToolError, ToolResult
from flightdeck.agents.tools.custom import (
    ENTRY_POINT_GROUP,
    CustomToolConfig,
    EndpointUnreachable,
    FunctionTool,
    OpenApiConfig,
    OpenApiTool,
    custom_tool,
    tool,
)
from flightdeck.testing.tool_contract import ToolContract
from needs import need

# ---------------------------------------------------------------------------------------------- business functions


class Country(StrEnum):
    FR = "FR"
    DE = "DE"
    NL = "NL"


class Line(BaseModel):
    sku: str = Field(min_length=1)
    qty: int = Field(ge=1, le=100)


class Quote(BaseModel):
    country: Country
    cents: int
    ship_on: date


RATES = {Country.FR: 450, Country.DE: 500, Country.NL: 400}


@tool
def shipping_quote(weight_kg: Annotated[float, Field(gt=0, le=30, description="parcel weight in kilograms")],
                   country: Country, lines: list[Line], express: bool = False, coupon: str | None = None) -> Quote:
    """Quote the price of shipping one parcel.

    The price is the country's rate per kilogram, doubled for express delivery.

    Args:
        country: where the parcel goes (ISO 3166 code).
        express: next-day delivery; doubles
            the price.
        weight_kg: this description loses to the Field's.

    Returns:
        the quote.
    """
    cents = round(RATES[country] * weight_kg) * (2 if express else 1) + 10 * sum(line.qty for line in lines)
    if coupon == "HALF":
        cents //= 2
    elif coupon is not None:
        raise LookupError(f"coupon {coupon!r} does not exist")
    return Quote(country=country, cents=cents, ship_on=date(2025, 1, 6))


@tool(name="stock_level", description="How many units of a product are in stock.", max_chars=120)
def stock(sku: Annotated[str, "the product's SKU"], warehouses: list[int] | None = None) -> str:
    return f"{sku}: {7 * len(warehouses or [1])} units" + ("; " + "x" * 500 if sku == "verbose" else "")


@pytest.mark.unit
def test_the_schema_comes_from_the_type_hints_and_the_docstring() -> None:
    spec = shipping_quote.spec
    assert spec.name == "shipping_quote"
    assert spec.description == "Quote the price of shipping one parcel."  # the first paragraph only
    params = spec.parameters
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["weight_kg", "country", "lines"]
    props = params["properties"]
    assert props["weight_kg"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 30,
                                  "description": "parcel weight in kilograms"}  # Annotated Field wins over Args:
    assert props["country"]["description"] == "where the parcel goes (ISO 3166 code)."
    assert params["$defs"]["Country"] == {"type": "string", "enum": ["FR", "DE", "NL"]}
    assert props["lines"] == {"type": "array", "items": {"$ref": "#/$defs/Line"}}
    assert params["$defs"]["Line"]["properties"]["qty"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert props["express"] == {"type": "boolean", "default": False,
                                "description": "next-day delivery; doubles the price."}
    assert props["coupon"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert "title" not in params and all("title" not in p for p in props.values())
    # LangChain-style Annotated[str, "..."] descriptions, and tool(name=, description=)
    assert stock.spec.name == "stock_level" and stock.spec.description == "How many units of a product are in stock."
    assert stock.spec.parameters["properties"]["sku"] == {"type": "string", "description": "the product's SKU"}


@pytest.mark.unit
def test_good_arguments_run_the_function_and_the_result_is_json() -> None:
    result = shipping_quote.call({"weight_kg": 2, "country": "DE", "lines": [{"sku": "gear", "qty": 3}],
                                  "express": True})
    assert result.ok
    assert json.loads(result.content) == {"country": "DE", "cents": 2030, "ship_on": "2025-01-06"}
    assert result.data == {"country": "DE", "cents": 2030, "ship_on": "2025-01-06"}
    json.dumps(result.to_dict())
    # the decorated function is still the function
    assert shipping_quote(1.0, Country.NL, []) == Quote(country=Country.NL, cents=400, ship_on=date(2025, 1, 6))
    assert isinstance(shipping_quote, Tool) and shipping_quote.__name__ == "shipping_quote"
    # a string comes back as it is, capped at max_chars
    assert stock.call({"sku": "A-1", "warehouses": [1, 2]}).content == "A-1: 14 units"
    long = stock.call({"sku": "verbose"}).content
    assert long.startswith("verbose: 7 units; xxx") and long.endswith("[cut at 120 of 518 characters]")


@pytest.mark.unit
@pytest.mark.parametrize(("arguments", "reason"), [
    ({"weight_kg": "heavy", "country": "FR", "lines": []}, "argument 'weight_kg': Input should be a valid number"),
    ({"weight_kg": 0, "country": "FR", "lines": []}, "argument 'weight_kg': Input should be greater than 0"),
    ({"weight_kg": 1, "country": "US", "lines": []}, "argument 'country': Input should be 'FR', 'DE' or 'NL'"),
    ({"weight_kg": 1, "country": "FR", "lines": [{"sku": "gear", "qty": 0}]},
     "argument 'lines.0.qty': Input should be greater than or equal to 1"),
    ({"weight_kg": 1, "country": "FR", "lines": [{"qty": 2}]}, "argument 'lines.0.sku' is required"),
    ({"weight_kg": 1, "lines": []}, "argument 'country' is required"),
    ({"weight_kg": 1, "country": "FR", "lines": [], "insurance": True}, "unknown argument 'insurance'"),
    ({"weight_kg": 1, "country": "FR", "lines": "gear x2"}, "argument 'lines': Input should be a valid list"),
])
def test_bad_arguments_are_refused_naming_the_argument(arguments: dict[str, Any], reason: str) -> None:
    result = shipping_quote.call(arguments)
    assert not result.ok
    assert reason in result.error
    assert result.content == f"error: {result.error}"


@pytest.mark.unit
def test_an_exception_of_the_function_is_a_refusal_and_a_logged_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flightdeck.agents.tools.custom"):
        result = shipping_quote.call({"weight_kg": 1, "country": "FR", "lines": [], "coupon": "FREE"})
    assert not result.ok
    assert result.error == "LookupError: coupon 'FREE' does not exist"
    assert result.data == {"exception": "LookupError"}
    [record] = [r for r in caplog.records if r.name == "flightdeck.agents.tools.custom"]
    assert record.levelno == logging.WARNING and "shipping_quote" in record.getMessage()
    assert record.exc_info and record.exc_info[0] is LookupError  # the traceback is kept for the operator
    # a coupon that exists works: the refusal was the function's own
    assert json.loads(shipping_quote.call({"weight_kg": 1, "country": "FR", "lines": [], "coupon": "HALF"})
                      .content)["cents"] == 225


@pytest.mark.unit
def test_exceptions_named_in_raises_are_outages_and_propagate() -> None:
    @tool(raises=(ConnectionError,))
    def reserve(sku: str) -> str:
        """Reserve one unit."""
        if sku == "typo":
            raise KeyError(sku)
        raise ConnectionError("warehouse database is down")

    with pytest.raises(ConnectionError, match="warehouse database is down"):
        reserve.call({"sku": "gear"})
    assert reserve.call({"sku": "typo"}).error == "KeyError: 'typo'"


@pytest.mark.unit
def test_returned_tool_results_async_functions_and_reserved_names() -> None:
    @tool
    def lookup(customer_id: int) -> ToolResult:
        """Look a customer up."""
        if customer_id != 7:
            return ToolResult.refused(f"no customer {customer_id}")
        return ToolResult(content="Ada, gold tier", sources=[{"id": "crm:7"}])

    assert lookup.call({"customer_id": 8}).error == "no customer 8"
    assert lookup.call({"customer_id": "7"}).sources == [{"id": "crm:7"}]  # "7" validated to 7 (lax, as pydantic)

    @tool
    async def average(values: list[float], json: bool = False, schema: str = "plain") -> dict[str, float]:
        """Average some numbers."""
        await asyncio.sleep(0)
        return {"mean": sum(values) / len(values), "json": float(json), "schema": float(len(schema))}

    assert average.spec.parameters["properties"]["json"] == {"type": "boolean", "default": False}
    assert average.call({"values": [1, 2, 6], "json": True}).data == {"mean": 3.0, "json": 1.0, "schema": 5.0}

    async def inside_a_loop() -> ToolResult:  # a loop already runs in this thread, as in an async server
        return average.call({"values": [4]})

    assert asyncio.run(inside_a_loop()).data["mean"] == 4.0


@pytest.mark.unit
def test_functions_that_cannot_be_tools_say_why() -> None:
    def untyped(sku, qty: int) -> int:  # type: ignore[no-untyped-def]
        """Untyped."""
        return qty

    def undocumented(sku: str) -> str:
        return sku

    def variadic(*skus: str) -> int:
        """Variadic."""
        return len(skus)

    def bad_name(sku: str) -> str:
        """Fine."""
        return sku

    with pytest.raises(ToolError, match="parameter 'sku' has no type hint"):
        tool(untyped)
    with pytest.raises(ToolError, match="give it a docstring"):
        tool(undocumented)
    assert tool(description="Echo a SKU.")(undocumented).spec.description == "Echo a SKU."
    with pytest.raises(ToolError, match=r"\*skus"):
        tool(variadic)
    with pytest.raises(ToolError, match="letters, digits"):
        tool(name="bad name!")(bad_name)


class TestFunctionToolContract(ToolContract):
    pytestmark = pytest.mark.unit

    @pytest.fixture
    def tool(self) -> FunctionTool:
        return shipping_quote

    @pytest.fixture
    def good_arguments(self) -> dict[str, Any]:
        return {"weight_kg": 1.5, "country": "FR", "lines": [{"sku": "gear", "qty": 1}]}

    @pytest.fixture
    def bad_arguments(self) -> list[Any]:
        return [{}, {"weight_kg": -1, "country": "FR", "lines": []}, {"weight_kg": 1, "country": "FR", "lines": [],
                                                                      "coupon": "NOPE"},
                {"weight_kg": 1, "country": "FR", "lines": [], "extra": 1}, ["not", "an", "object"]]


# -------------------------------------------------------------------------------- named in the spec, entry points

PLUGIN = '''
from typing import Annotated
from pydantic import Field
from flightdeck.agents.tools.custom import tool
from flightdeck.agents.tools.base import ToolResult, ToolSpec


@tool
def loyalty_points(customer_id: Annotated[int, Field(ge=1)], cents_spent: int) -> dict:
    """Points a customer earns for a purchase."""
    return {{"customer_id": customer_id, "points": cents_spent // 100 * {factor}}}


def refund_window(days_since_delivery: int, opened: bool) -> str:
    """Whether a return is still accepted."""
    return "accepted" if days_since_delivery <= (14 if opened else 30) else "refused: window closed"


class OpeningHours:
    """A hand-written tool object."""

    spec = ToolSpec("opening_hours", "The shop's opening hours on a weekday.",
                    {{"type": "object", "properties": {{"day": {{"type": "string"}}}}, "required": ["day"]}})

    def call(self, arguments):
        day = arguments.get("day")
        if day not in ("mon", "tue", "sun"):
            return ToolResult.refused("day must be mon, tue or sun")
        return ToolResult(content="closed" if day == "sun" else "9-18")


opening_hours = OpeningHours()
not_a_tool = 42
'''


@dataclass
class Plugin:
    module: str
    root: Path


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plugin]:
    """A third-party package, installed the way pip leaves it: a module and its dist-info with entry points."""
    module = f"acme_tools_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(factor=3), encoding="utf-8")
    dist = tmp_path / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{ENTRY_POINT_GROUP}]
        loyalty = {module}:loyalty_points
        refund_window = {module}:refund_window
        opening_hours = {module}:opening_hours
        not_a_tool = {module}:not_a_tool
        vanished = {module}_gone:tool

        [console_scripts]
        acme = {module}:main
        """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Plugin(module, tmp_path)
    sys.modules.pop(module, None)


@pytest.mark.unit
def test_the_config_takes_exactly_one_kind_and_checks_what_it_names() -> None:
    with pytest.raises(ValidationError, match="exactly one of function"):
        CustomToolConfig()
    with pytest.raises(ValidationError, match="got function, entry_point"):
        CustomToolConfig(function="a.b:c", entry_point="x")
    with pytest.raises(ValidationError, match="write package.module:attr"):
        CustomToolConfig(function="acme.tools.quote")
    with pytest.raises(ValidationError, match="extra"):
        CustomToolConfig.model_validate({"function": "a:b", "module": "x"})
    with pytest.raises(ValidationError, match="letters, digits"):
        CustomToolConfig(function="a:b", name="has space")
    with pytest.raises(ValidationError, match="base_url"):
        OpenApiConfig(spec="x.json", operation="op", base_url="ftp://shop")
    with pytest.raises(ToolError, match="cannot import no_such_package_xyz"):
        custom_tool({"function": "no_such_package_xyz.tools:quote"})
    with pytest.raises(ToolError, match="has no 'nope'"):
        custom_tool({"function": "json:nope"})


@pytest.mark.unit
def test_a_function_named_in_the_spec(plugin: Plugin) -> None:
    decorated = custom_tool({"function": f"{plugin.module}:loyalty_points"})
    assert isinstance(decorated, FunctionTool) and decorated.spec.name == "loyalty_points"
    assert decorated.call({"customer_id": 4, "cents_spent": 1999}).data == {"customer_id": 4, "points": 57}
    assert "greater than or equal to 1" in decorated.call({"customer_id": 0, "cents_spent": 1}).error

    plain = custom_tool({"function": f"{plugin.module}:refund_window", "name": "can_return",
                         "description": "Whether the shop takes a parcel back."})
    assert plain.spec.name == "can_return" and plain.spec.description == "Whether the shop takes a parcel back."
    assert plain.spec.parameters["required"] == ["days_since_delivery", "opened"]
    assert plain.call({"days_since_delivery": 20, "opened": True}).content == "refused: window closed"
    assert plain.call({"days_since_delivery": 20, "opened": False}).content == "accepted"

    obj = custom_tool({"function": f"{plugin.module}:opening_hours", "name": "hours"})
    assert obj.spec.name == "hours" and obj.call({"day": "sun"}).content == "closed"
    with pytest.raises(ToolError, match="int 42 is neither a tool nor a typed function"):
        custom_tool({"function": f"{plugin.module}:not_a_tool"})


@pytest.mark.unit
def test_tools_registered_by_a_package_in_the_entry_point_group(plugin: Plugin) -> None:
    loyalty = custom_tool({"entry_point": "loyalty"})
    assert loyalty.spec.name == "loyalty_points"
    assert loyalty.call({"customer_id": 1, "cents_spent": 500}).data["points"] == 15
    assert custom_tool(CustomToolConfig(entry_point="refund_window")).call(
        {"days_since_delivery": 3, "opened": True}).content == "accepted"
    assert custom_tool({"entry_point": "opening_hours"}).call({"day": "mon"}).content == "9-18"
    with pytest.raises(ToolError) as unknown:
        custom_tool({"entry_point": "loyality"})
    assert "no tool 'loyality' in the entry-point group 'flightdeck.tools'" in str(unknown.value)
    assert "loyalty, not_a_tool, opening_hours, refund_window, vanished" in str(unknown.value)
    with pytest.raises(ToolError, match=rf"'vanished' \({plugin.module}_gone:tool, from {plugin.module}\) cannot be "
                                        "loaded: ModuleNotFoundError"):
        custom_tool({"entry_point": "vanished"})
    with pytest.raises(ToolError, match="neither a tool nor a typed function"):
        custom_tool({"entry_point": "not_a_tool"})


class TestEntryPointToolContract(ToolContract):
    pytestmark = pytest.mark.unit

    @pytest.fixture
    def tool(self, plugin: Plugin) -> Tool:
        return custom_tool({"entry_point": "refund_window"})

    @pytest.fixture
    def good_arguments(self) -> dict[str, Any]:
        return {"days_since_delivery": 10, "opened": False}

    @pytest.fixture
    def bad_arguments(self) -> list[Any]:
        return [{}, {"days_since_delivery": "ten", "opened": False}, {"days_since_delivery": 1}]


# ------------------------------------------------------------------------------------------------- OpenAPI tools

TOKEN = "s3cret-report-token"


class Status(StrEnum):
    OPEN = "open"
    SHIPPED = "shipped"


class OrderIn(BaseModel):
    customer: str = Field(min_length=1, description="the customer's name")
    lines: list[Line] = Field(min_length=1)
    note: str | None = None


class Order(BaseModel):
    id: int
    customer: str
    lines: list[Line]
    total_cents: int
    status: Status


PRICES = {"gear": 1200, "sprocket": 250}


def _shop_app() -> tuple[Any, Counter[str], list[Any]]:
    """A small shop API: the business service the tools call. Returns the app, the requests per path, and what
    the order endpoint received."""
    from fastapi import FastAPI, Header, HTTPException, Query, Request
    from fastapi.responses import PlainTextResponse

    app = FastAPI(title="shop", version="1.0")
    hits: Counter[str] = Counter()
    received: list[Any] = []
    orders = {1: Order(id=1, customer="ada", lines=[Line(sku="gear", qty=2)], total_cents=2400,
                       status=Status.SHIPPED)}

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        hits[request.url.path] += 1
        return await call_next(request)

    @app.get("/orders/{order_id}", operation_id="get_order", summary="Read one order.")
    def get_order(order_id: int, include_lines: bool = False) -> dict[str, Any]:
        if order_id not in orders:
            raise HTTPException(404, f"order {order_id} not found")
        data = orders[order_id].model_dump(mode="json")
        return data if include_lines else {k: v for k, v in data.items() if k != "lines"}

    @app.post("/orders", operation_id="create_order", summary="Place an order.",
              description="Prices come from the catalogue.", status_code=201)
    def create_order(order: OrderIn) -> Order:
        received.append(order.model_dump())
        unknown = [line.sku for line in order.lines if line.sku not in PRICES]
        if unknown:
            raise HTTPException(409, f"unknown sku {unknown[0]}")
        made = Order(id=len(orders) + 1, customer=order.customer, lines=order.lines, status=Status.OPEN,
                     total_cents=sum(PRICES[line.sku] * line.qty for line in order.lines))
        orders[made.id] = made
        return made

    @app.get("/products", operation_id="find_products", summary="Products with all of the tags.")
    def find_products(tags: list[str] = Query(default=[]), max_cents: int | None = None) -> list[dict[str, Any]]:
        return [{"sku": sku, "cents": cents, "tags": tags} for sku, cents in PRICES.items()
                if max_cents is None or cents <= max_cents]

    @app.get("/files/{name:path}", operation_id="read_file", summary="A file of the shop's manual.")
    def read_file(name: str) -> dict[str, str]:
        return {"name": name}

    @app.get("/admin", operation_id="admin_panel")
    def admin_panel() -> dict[str, bool]:
        return {"admin": True}

    @app.get("/reports/sales", operation_id="sales_report", summary="This month's sales.")
    def sales_report(x_api_key: str = Header()) -> dict[str, int]:
        if x_api_key != TOKEN:
            raise HTTPException(403, "bad key")
        return {"orders": len(orders), "cents": sum(o.total_cents for o in orders.values())}

    @app.get("/motd", operation_id="message_of_the_day", response_class=PlainTextResponse)
    def motd() -> str:
        return "Free shipping on gears this week."

    @app.get("/slow", operation_id="slow_report", summary="A report that takes long.")
    def slow() -> dict[str, str]:
        time.sleep(1.5)
        return {"done": "yes"}

    @app.get("/broken", operation_id="broken", summary="Always fails.")
    def broken() -> dict[str, str]:
        raise HTTPException(500, "warehouse system offline")

    return app, hits, received


@dataclass
class Shop:
    url: str
    hits: Counter[str]
    received: list[Any]

    @property
    def openapi(self) -> str:
        return f"{self.url}/openapi.json"


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    """The shop API served by uvicorn on a free port of 127.0.0.1, in a thread of this process."""
    need("serve", "fastapi", "uvicorn")
    need("api", "httpx", "jsonschema")
    import uvicorn

    app, hits, received = _shop_app()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Shop(f"http://127.0.0.1:{port}", hits, received)
    server.should_exit = True
    thread.join(10)


def _openapi(shop: Shop, operation: str, **options: Any) -> OpenApiTool:
    made = custom_tool({"openapi": {"spec": shop.openapi, "operation": operation, **options}})
    assert isinstance(made, OpenApiTool)
    return made


@pytest.mark.integration
def test_the_tool_takes_its_schema_from_the_services_own_openapi_document(shop: Shop) -> None:
    get_order = _openapi(shop, "get_order")
    assert get_order.spec.name == "get_order" and get_order.spec.description == "Read one order."
    assert get_order.base_url == shop.url  # the document names no server: the origin of its URL
    assert get_order.spec.parameters["required"] == ["order_id"]
    assert get_order.spec.parameters["properties"]["order_id"]["type"] == "integer"
    assert get_order.spec.parameters["properties"]["include_lines"] == {"type": "boolean", "default": False}
    create = _openapi(shop, "create_order")
    assert create.spec.description == "Place an order. Prices come from the catalogue."
    body = create.spec.parameters["properties"]["body"]
    assert body["$ref"] == "#/$defs/OrderIn" and create.spec.parameters["required"] == ["body"]
    defs = create.spec.parameters["$defs"]
    assert defs["OrderIn"]["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line"}  # $refs kept as $defs
    assert defs["Line"]["properties"]["qty"]["maximum"] == 100
    json.dumps(create.spec.to_openai())
    with pytest.raises(ToolError) as unknown:
        _openapi(shop, "get_orders")
    assert "no such operationId. Available: admin_panel, broken, create_order, find_products, get_order" \
        in str(unknown.value)


@pytest.mark.integration
def test_calls_reach_the_service_and_its_answers_come_back(shop: Shop) -> None:
    get_order = _openapi(shop, "get_order")
    result = get_order.call({"order_id": 1, "include_lines": True})
    assert result.ok, result.error
    assert result.data == {"status": 200, "body": {"id": 1, "customer": "ada", "lines": [{"sku": "gear", "qty": 2}],
                                                   "total_cents": 2400, "status": "shipped"}}
    assert json.loads(result.content)["total_cents"] == 2400
    assert "lines" not in get_order.call({"order_id": 1}).data["body"]

    created = _openapi(shop, "create_order").call({"body": {"customer": "bob", "lines": [
        {"sku": "sprocket", "qty": 4}, {"sku": "gear", "qty": 1}]}})
    assert created.ok, created.error
    assert created.data["status"] == 201
    assert created.data["body"]["total_cents"] == 2200 and created.data["body"]["status"] == "open"
    assert shop.received[-1] == {"customer": "bob", "lines": [{"sku": "sprocket", "qty": 4},
                                                              {"sku": "gear", "qty": 1}], "note": None}
    fetched = get_order.call({"order_id": created.data["body"]["id"]})
    assert fetched.data["body"]["customer"] == "bob"  # the order was really made

    products = _openapi(shop, "find_products").call({"tags": ["metal", "small"], "max_cents": 500})
    assert products.data["body"] == [{"sku": "sprocket", "cents": 250, "tags": ["metal", "small"]}]
    motd = _openapi(shop, "message_of_the_day").call({})
    assert motd.content == "Free shipping on gears this week." and motd.data["body"] == motd.content


@pytest.mark.integration
def test_errors_of_the_service_are_refusals_with_the_status(shop: Shop) -> None:
    missing = _openapi(shop, "get_order").call({"order_id": 99})
    assert not missing.ok
    assert missing.error == 'HTTP 404 Not Found: {"detail":"order 99 not found"}'
    assert missing.data == {"status": 404}
    conflict = _openapi(shop, "create_order").call({"body": {"customer": "eve", "lines": [{"sku": "anvil",
                                                                                             "qty": 1}]}})
    assert conflict.error == 'HTTP 409 Conflict: {"detail":"unknown sku anvil"}'
    assert _openapi(shop, "broken").call({}).error.startswith("HTTP 500 Internal Server Error: ")
    assert "warehouse system offline" in _openapi(shop, "broken").call({}).error
    slow = _openapi(shop, "slow_report", timeout_s=0.3).call({})
    assert slow.error == "GET /slow took longer than 0.3 s"


@pytest.mark.integration
def test_bad_arguments_are_refused_before_any_request(shop: Shop) -> None:
    get_order, create = _openapi(shop, "get_order"), _openapi(shop, "create_order")
    before = dict(shop.hits)
    assert get_order.call({}).error == "'order_id' is a required property"
    assert get_order.call({"order_id": "one"}).error == "argument 'order_id': 'one' is not of type 'integer'"
    assert "'verbose' was unexpected" in get_order.call({"order_id": 1, "verbose": True}).error
    refused = create.call({"body": {"customer": "", "lines": [{"sku": "gear", "qty": 101}]}})
    assert "argument 'body.customer': '' should be non-empty" in refused.error
    assert "argument 'body.lines.0.qty': 101 is greater than the maximum of 100" in refused.error
    assert create.call({"body": {"customer": "x", "lines": []}}).error == \
        "argument 'body.lines': [] should be non-empty"
    assert dict(shop.hits) == before  # nothing reached the service


@pytest.mark.integration
def test_the_model_cannot_leave_the_operations_path(shop: Shop) -> None:
    read_file = _openapi(shop, "read_file")
    admin_hits = shop.hits["/admin"]
    result = read_file.call({"name": "../admin"})
    assert result.ok and result.data["body"] == {"name": "../admin"}  # one path value, percent-encoded
    assert read_file.call({"name": "a/b?c=d#e"}).data["body"] == {"name": "a/b?c=d#e"}
    for segment in ("..", ".", ""):
        assert read_file.call({"name": segment}).error == f"argument 'name': {segment!r} is not a valid path segment"
    assert shop.hits["/admin"] == admin_hits


@pytest.mark.integration
def test_headers_come_from_the_environment_at_each_call(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ToolError, match="needs the header 'x-api-key'; set it in headers"):
        _openapi(shop, "sales_report")
    monkeypatch.delenv("SHOP_REPORT_KEY", raising=False)
    with pytest.raises(ToolError, match="environment variable SHOP_REPORT_KEY is not set"):
        _openapi(shop, "sales_report", headers={"X-API-Key": "${SHOP_REPORT_KEY}"})
    monkeypatch.setenv("SHOP_REPORT_KEY", TOKEN)
    report = _openapi(shop, "sales_report", headers={"X-API-Key": "${SHOP_REPORT_KEY}"})
    assert "x-api-key" not in report.spec.parameters["properties"]  # the model neither sees nor sets it
    assert TOKEN not in repr(report.config) and TOKEN not in json.dumps(report.spec.to_openai())
    assert report.call({}).data["body"]["orders"] >= 1
    monkeypatch.setenv("SHOP_REPORT_KEY", "rotated-wrong")
    assert report.call({}).error == 'HTTP 403 Forbidden: {"detail":"bad key"}'
    literal = _openapi(shop, "sales_report", headers={"x-api-key": TOKEN})  # works, but is never shown either
    assert literal.call({}).ok and TOKEN not in repr(literal.config) and TOKEN not in str(literal.config.headers)


@pytest.mark.integration
def test_a_document_from_a_file_with_a_base_url_and_an_unreachable_service(shop: Shop, tmp_path: Path,
                                                                           unused_port: int) -> None:
    import httpx
    from ruamel.yaml import YAML

    document = httpx.get(shop.openapi).json()
    yaml = YAML(typ="safe", pure=True)
    with (tmp_path / "shop.yaml").open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    with pytest.raises(ToolError, match="names no absolute server URL; give base_url"):
        custom_tool({"openapi": {"spec": "shop.yaml", "operation": "get_order"}}, base_dir=tmp_path)
    from_file = custom_tool({"openapi": {"spec": "shop.yaml", "operation": "get_order", "base_url": shop.url},
                             "name": "order", "max_chars": 100}, base_dir=tmp_path)
    assert from_file.spec.name == "order"
    assert from_file.call({"order_id": 1}).data["body"]["customer"] == "ada"

    down = custom_tool({"openapi": {"spec": str(tmp_path / "shop.yaml"), "operation": "get_order",
                                    "base_url": f"http://127.0.0.1:{unused_port}"}})
    with pytest.raises(EndpointUnreachable, match="GET http://127.0.0.1:.*/orders/{order_id} cannot be reached"):
        down.call({"order_id": 1})
    with pytest.raises(ToolError, match="cannot read it"):
        custom_tool({"openapi": {"spec": "absent.json", "operation": "x"}}, base_dir=tmp_path)
    (tmp_path / "swagger.json").write_text('{"swagger": "2.0", "paths": {}}', encoding="utf-8")
    with pytest.raises(ToolError, match=r"not an OpenAPI 3 document \(Swagger 2.0"):
        custom_tool({"openapi": {"spec": "swagger.json", "operation": "x"}}, base_dir=tmp_path)


class TestOpenApiToolContract(ToolContract):
    pytestmark = pytest.mark.integration

    @pytest.fixture
    def tool(self, shop: Shop) -> Tool:
        return _openapi(shop, "get_order")

    @pytest.fixture
    def good_arguments(self) -> dict[str, Any]:
        return {"order_id": 1}

    @pytest.fixture
    def bad_arguments(self) -> list[Any]:
        return [{}, {"order_id": "x"}, {"order_id": 1, "extra": 2}, {"order_id": 404}]


OPENAPI_30 = {
    "openapi": "3.0.3",
    "info": {"title": "crm", "version": "1"},
    "servers": [{"url": "https://{region}.crm.example/api", "variables": {"region": {"default": "eu"}}}],
    "paths": {
        "/customers/{id}/notes": {
            "parameters": [{"$ref": "#/components/parameters/CustomerId"}],
            "post": {
                "operationId": "crm.addNote",
                "parameters": [{"name": "notify", "in": "query", "schema": {"type": "boolean", "nullable": True}},
                               {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"$ref": "#/components/requestBodies/Note"},
            },
        },
    },
    "components": {
        "parameters": {"CustomerId": {"name": "id", "in": "path", "required": True, "description": "the customer",
                                      "schema": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}}},
        "requestBodies": {"Note": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Note"}}}}},
        "schemas": {"Note": {"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string", "example": "called back"},
            "kind": {"type": "string", "enum": ["call", "mail"], "nullable": True},
            "replies": {"type": "array", "items": {"$ref": "#/components/schemas/Note"}}}}},
    },
}


@pytest.mark.unit
def test_an_openapi_30_document_with_shared_parameters_bodies_and_a_recursive_schema(tmp_path: Path) -> None:
    need("api", "httpx", "jsonschema")
    (tmp_path / "crm.json").write_text(json.dumps(OPENAPI_30), encoding="utf-8")
    add_note = custom_tool({"openapi": {"spec": "crm.json", "operation": "crm.addNote"}}, base_dir=tmp_path)
    assert add_note.spec.name == "crm_addNote" and add_note.spec.description == "POST /customers/{id}/notes"
    assert add_note.base_url == "https://eu.crm.example/api"
    params = add_note.spec.parameters
    assert params["properties"]["id"] == {"type": "integer", "exclusiveMinimum": 0, "description": "the customer"}
    assert params["properties"]["notify"] == {"type": ["boolean", "null"]}
    assert "X-Trace" not in params["properties"]  # an optional header the operator did not set stays unset
    assert params["required"] == ["id", "body"]
    assert params["$defs"]["Note"]["properties"]["kind"] == {"type": ["string", "null"], "enum": ["call", "mail", None]}
    assert params["$defs"]["Note"]["properties"]["text"] == {"type": "string", "examples": ["called back"]}
    assert params["$defs"]["Note"]["properties"]["replies"]["items"] == {"$ref": "#/$defs/Note"}
    # the recursive schema validates nested values before any request (the server does not exist)
    deep = {"text": "a", "replies": [{"text": "b", "replies": [{"kind": "fax"}]}]}
    error = add_note.call({"id": 3, "body": deep}).error
    assert "argument 'body.replies.0.replies.0.kind': 'fax' is not one of ['call', 'mail', None]" in error
    assert "argument 'body.replies.0.replies.0': 'text' is a required property" in error
    assert add_note.call({"id": 0, "body": {"text": "x"}}).error == \
        "argument 'id': 0 is less than or equal to the minimum of 0"
