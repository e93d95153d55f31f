"""Custom business logic tools (checklist 6.1): the operator's own code or HTTP services as agent tools, three ways.

1. **A decorated Python function.** :func:`tool` turns a typed function into a :class:`FunctionTool`::

       from typing import Annotated
       from pydantic import Field
       from flightdeck.agents.tools.custom import tool

       @tool
       def shipping_quote(weight_kg: Annotated[float, Field(gt=0, description="parcel weight")],
                          country: Country, express: bool = False) -> Quote:
           '''Quote the shipping price of one parcel.'''
           ...

   The parameters' JSON schema comes from the type hints through pydantic (``Annotated[..., Field(...)]``
   constraints and descriptions kept; a Google-style ``Args:`` section of the docstring describes the parameters
   that have no description of their own); the description is the docstring's first paragraph. The model's
   arguments are validated by pydantic before the function runs, and a validation error is a refusal naming the
   argument. The return value is rendered to text for the model (a string as it is, anything else as JSON: pydantic
   models, dataclasses, dicts, lists) and kept as ``data``; a function may also return a :class:`ToolResult` of its
   own (to refuse, or to give sources). The decorated function stays callable as before.

   An exception raised by the function is the function saying no (an unknown customer, a stock it cannot reserve):
   the model reads a refusal with the exception's type and message and may try again. It may also be a bug in the
   operator's code, which a refusal alone would hide, so it is logged with its traceback at WARNING on the
   ``flightdeck.agents.tools.custom`` logger. Exceptions that are outages rather than answers (a database that is
   down) are named in ``tool(raises=(...))`` and propagate, as the tool contract asks (:mod:`.base`).

2. **Named in the spec**, with :class:`CustomToolConfig` and built by :func:`custom_tool`:

   - ``function: "package.module:attr"``: a decorated tool, a plain typed function (wrapped as above) or any
     object that keeps the :class:`~flightdeck.agents.tools.base.Tool` contract;
   - ``openapi: {spec, operation, base_url, headers}``: one operation of an OpenAPI 3 document (a file, or an http(s)
     URL fetched once when the tool is built) as an :class:`OpenApiTool`. Its parameters are the operation's path and
     query parameters plus ``body``, the JSON request body; local ``$ref``\\ s are resolved (schemas under
     ``components/schemas`` become ``$defs``, so recursive ones work). Arguments are checked against that schema
     (jsonschema) before any request; path values are percent-encoded and ``.``/``..`` refused, so the model cannot
     leave the operation's path; redirects are not followed, so the configured ``headers`` (write secrets as
     ``${ENV_VAR}``, read at each call and never shown) go to ``base_url`` only. The response's JSON or text comes
     back capped; 4xx/5xx is a refusal with the status and an excerpt of the body, a timeout a refusal, a service
     that cannot be reached an :class:`EndpointUnreachable` (an outage). Needs httpx (``pip install
     'flightdeck[api]'``) and jsonschema.
   - ``entry_point: name``: a tool that a third-party package registers in the entry-point group
     **``flightdeck.tools``** (:data:`ENTRY_POINT_GROUP`), in its ``pyproject.toml``::

         [project.entry-points."flightdeck.tools"]
         shipping_quote = "acme_tools.shipping:shipping_quote"

     The entry point names a decorated tool, a plain typed function or a ``Tool`` object, as ``function`` does.

What a custom tool returns is untrusted data like any tool's: the model reads it, it never runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import json
import logging
import os
import re
import typing
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.errors import PydanticUserError
from pydantic.fields import FieldInfo

from flightdeck.agents.tools.base import Tool, ToolError, ToolResult, ToolSpec, check_tool_name
from flightdeck.registry.lookup import optional_import
from flightdeck.spec.resolve import ENV_REF

__all__ = ["tool", "FunctionTool", "OpenApiTool", "OpenApiConfig", "CustomToolConfig", "custom_tool",
           "EndpointUnreachable", "ENTRY_POINT_GROUP", "IMPORT_PATH", "as_tool", "load_entry_point", "import_object",
           "render", "cap", "validation_refusal"]

#: The entry-point group where third-party packages register tools (``name = "package.module:attr"``).
ENTRY_POINT_GROUP = "flightdeck.tools"

_LOG = logging.getLogger("flightdeck.agents.tools.custom")
#: ``package.module:attr`` (``attr`` may be dotted), as ``function`` and the LangChain ``tool`` are written
IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
                          r"(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DEFAULT_MAX_CHARS = 8000
_ARGS_HEADER = re.compile(r"^(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(.*)$")


# ---------------------------------------------------------------------------------------------------- rendering

def cap(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars``, saying so when it was cut."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"… [cut at {max_chars} of {len(text)} characters]"


def render(value: Any, max_chars: int = _DEFAULT_MAX_CHARS) -> ToolResult:
    """A function's return value as a result: a string as it is, anything else as compact JSON (pydantic models,
    dataclasses, enums, dates included; what JSON cannot hold as its ``str``); ``data`` holds the JSON-able value."""
    if isinstance(value, ToolResult):
        return value
    data = pydantic_core.to_jsonable_python(value, fallback=str)
    text = value if isinstance(value, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return ToolResult(content=cap(text or "(empty)", max_chars), data=data)


# ------------------------------------------------------------------------------------------------ function tools

def _first_paragraph(doc: str) -> str:
    paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split())


def _docstring_args(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section."""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if _ARGS_HEADER.match(line.strip())), None)
    if start is None:
        return found
    name, indent = None, None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent or (depth == indent and _ARGS_HEADER.match(line.strip())):
            break
        match = _ARG_LINE.match(line.strip()) if depth == indent else None
        if match:
            name = match.group(1).lstrip("*")
            found[name] = match.group(3).strip()
        elif name is not None:
            found[name] = f"{found[name]} {line.strip()}".strip()
        elif depth == indent:
            break  # a section after Args: (Returns:, Raises:)
    return found


def _drop_titles(schema: Any) -> Any:
    """A JSON schema without pydantic's generated ``title``\\ s (noise the model pays for); property names called
    ``title`` are kept, being keys of ``properties``, not keywords."""
    if isinstance(schema, list):
        return [_drop_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas") \
                and isinstance(value, dict):
            out[key] = {name: _drop_titles(sub) for name, sub in value.items()}
        elif key in ("default", "const", "enum", "examples", "example"):
            out[key] = value
        else:
            out[key] = _drop_titles(value)
    return out


def _annotated_description(hint: Any) -> str | None:
    """The description that ``Annotated[T, Field(description=...)]`` (or LangChain's ``Annotated[T, "..."]``)
    gives a parameter: it wins over the docstring's."""
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    for meta in reversed(typing.get_args(hint)[1:]):
        if isinstance(meta, FieldInfo) and meta.description:
            return meta.description
        if isinstance(meta, str) and meta.strip():
            return meta.strip()
    return None


def validation_refusal(exc: ValidationError, limit: int = 5) -> str:
    """The reason of a refusal for arguments that pydantic rejected, naming each argument."""
    problems = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            problems.append(f"argument '{where}' is required")
        elif error["type"] == "extra_forbidden":
            problems.append(f"unknown argument '{where}'")
        else:
            problems.append(f"argument '{where}': {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def _run_coroutine(coroutine: Any) -> Any:
    """Run a coroutine to its end from synchronous code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class FunctionTool:
    """A typed Python function as a tool: parameters from its type hints, arguments validated by pydantic."""

    def __init__(self, function: Callable[..., Any], *, name: str | None = None, description: str | None = None,
                 max_chars: int = _DEFAULT_MAX_CHARS, raises: tuple[type[BaseException], ...] = ()) -> None:
        if not callable(function):
            raise ToolError(f"{function!r} is not a function")
        self.function = function
        self.max_chars = max_chars
        self.raises = tuple(raises)
        label = getattr(function, "__qualname__", repr(function))
        self._async = inspect.iscoroutinefunction(function)
        try:
            signature = inspect.signature(function)
            hints = typing.get_type_hints(function, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise ToolError(f"tool function {label}: cannot read its signature and type hints ({exc})") from exc
        doc = inspect.getdoc(function) or ""
        doc_args = _docstring_args(doc)
        fields: dict[str, Any] = {}
        self._params: list[str] = []
        for parameter in signature.parameters.values():
            pname = parameter.name
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ToolError(f"tool function {label}: *{pname}/**{pname} cannot be described to the model; "
                                "name each parameter")
            if parameter.kind is parameter.POSITIONAL_ONLY:
                raise ToolError(f"tool function {label}: parameter {pname!r} is positional-only; a tool is called "
                                "with named arguments")
            if pname not in hints:
                raise ToolError(f"tool function {label}: parameter {pname!r} has no type hint; the model is told "
                                f"each parameter's type from it (e.g. `{pname}: int`)")
            default = ... if parameter.default is parameter.empty else parameter.default
            described = _annotated_description(hints[pname]) or doc_args.get(pname)
            extra = {"description": described} if described else {}
            # Fields get an internal name and the parameter's name as alias: a parameter may be called `json` or
            # `schema` without shadowing BaseModel's attributes.
            fields[f"p_{len(self._params)}"] = (hints[pname], Field(default, alias=pname, **extra))
            self._params.append(pname)
        tool_name = name or getattr(function, "__name__", "")
        try:
            check_tool_name(tool_name)
        except ToolError as exc:
            raise ToolError(f"tool function {label}: {exc}; give tool(name=...)") from exc
        try:
            self._model: type[BaseModel] = create_model(  # type: ignore[call-overload]
                f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields)
            schema = _drop_titles(self._model.model_json_schema())
        except (PydanticUserError, TypeError, ValueError) as exc:
            raise ToolError(f"tool function {label}: its parameters cannot be described as JSON schema ({exc})") \
                from exc
        text = description or _first_paragraph(doc)
        if not text:
            raise ToolError(f"tool function {label}: give it a docstring (its first paragraph tells the model what "
                            "the tool does) or tool(description=...)")
        self.spec = ToolSpec(tool_name, text, schema)
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself, as before it was decorated."""
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionTool({self.spec.name!r})"

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        if not isinstance(arguments, Mapping):
            return ToolResult.refused("arguments must be a JSON object")
        try:
            validated = self._model.model_validate(dict(arguments))
        except ValidationError as exc:
            return ToolResult.refused(validation_refusal(exc), arguments=sorted(str(a) for a in arguments))
        kwargs = {pname: getattr(validated, f"p_{i}") for i, pname in enumerate(self._params)}
        try:
            value = self.function(**kwargs)
            if self._async or inspect.isawaitable(value):
                value = _run_coroutine(value)
        except self.raises:
            raise
        except Exception as exc:  # noqa: BLE001 - the function's own no, or a bug: both logged, the model told
            _LOG.warning("tool %s: %s raised %s", self.spec.name, getattr(self.function, "__qualname__", "?"),
                         type(exc).__name__, exc_info=True)
            return ToolResult.refused(cap(f"{type(exc).__name__}: {exc}", 1000), exception=type(exc).__name__)
        return render(value, self.max_chars)


@typing.overload
def tool(function: Callable[..., Any], /) -> FunctionTool: ...


@typing.overload
def tool(*, name: str | None = None, description: str | None = None, max_chars: int = _DEFAULT_MAX_CHARS,
         raises: tuple[type[BaseException], ...] = ()) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(function: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str | None = None,
         max_chars: int = _DEFAULT_MAX_CHARS,
         raises: tuple[type[BaseException], ...] = ()) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a typed function a tool: ``@tool`` or ``@tool(name=..., description=..., max_chars=..., raises=...)``.

    ``raises`` names the exception types that are outages (they propagate to the agent loop, which records a
    failed step); every other exception becomes a refusal the model reads (and a WARNING log with the traceback).
    """
    def wrap(fn: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(fn, name=name, description=description, max_chars=max_chars, raises=raises)

    return wrap(function) if function is not None else wrap


# --------------------------------------------------------------------------------------------------- OpenAPI tools

class EndpointUnreachable(ToolError):
    """The HTTP service of an OpenAPI tool cannot be reached (refused, DNS, TLS): an outage, which ``call`` raises."""


_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_OPENAPI_ONLY = ("discriminator", "xml", "externalDocs")


class _Schemas:
    """Local ``$ref`` resolution of an OpenAPI document: ``components/schemas`` become ``$defs`` (so recursive
    schemas stay finite), every other local reference is inlined; OpenAPI 3.0's dialect becomes JSON Schema."""

    def __init__(self, document: Mapping[str, Any], where: str) -> None:
        self.document = document
        self.where = where
        self.legacy = str(document.get("openapi", "")).startswith("3.0")
        self.defs: dict[str, Any] = {}

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ToolError(f"{self.where}: $ref {ref!r} points outside the document; only local references "
                            "(#/components/...) are resolved")
        node: Any = self.document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise ToolError(f"{self.where}: $ref {ref!r} names nothing in the document")
            node = node[part]
        return node

    def inline(self, node: Any, seen: tuple[str, ...] = ()) -> Any:
        """``node`` (a parameter, a request body) with its own ``$ref`` followed, not its schema's."""
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise ToolError(f"{self.where}: $ref {ref!r} refers to itself")
            seen = (*seen, ref)
            node = self.lookup(ref)
        return node

    def schema(self, node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, list):
            return [self.schema(item, seen) for item in node]
        if not isinstance(node, Mapping):
            return node
        if "$ref" in node:
            ref = str(node["$ref"])
            rest = {k: self.schema(v, seen) for k, v in node.items() if k != "$ref"}
            prefix = "#/components/schemas/"
            if ref.startswith(prefix) and "/" not in ref[len(prefix):]:
                name = ref[len(prefix):].replace("~1", "/").replace("~0", "~")
                if name not in self.defs:
                    self.defs[name] = {}  # placeholder first: a schema that refers to itself ends here
                    self.defs[name] = self.schema(self.lookup(ref))
                return {"$ref": f"#/$defs/{name.replace('~', '~0').replace('/', '~1')}", **rest}
            if ref in seen:
                raise ToolError(f"{self.where}: $ref {ref!r} refers to itself outside components/schemas")
            return {**self.schema(self.lookup(ref), (*seen, ref)), **rest}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _OPENAPI_ONLY:
                continue
            if key in ("properties", "patternProperties", "$defs") and isinstance(value, Mapping):
                out[key] = {name: self.schema(sub, seen) for name, sub in value.items()}
            elif key in ("default", "enum", "const", "examples"):
                out[key] = value
            elif key == "example":
                out.setdefault("examples", [value])
            else:
                out[key] = self.schema(value, seen)
        if self.legacy:
            out = self._from_openapi_30(out)
        return out

    @staticmethod
    def _from_openapi_30(schema: dict[str, Any]) -> dict[str, Any]:
        """OpenAPI 3.0's ``nullable`` and boolean ``exclusiveMinimum``/``Maximum`` in JSON Schema 2020-12 terms."""
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(schema.get(bound), bool):
                if schema.pop(bound) and limit in schema:
                    schema[bound] = schema.pop(limit)
        if schema.pop("nullable", False):
            kind = schema.get("type")
            if isinstance(kind, str):
                schema["type"] = [kind, "null"]
                if "enum" in schema:
                    schema["enum"] = [*schema["enum"], None]
            elif kind is None:
                schema = {"anyOf": [schema, {"type": "null"}]}
        return schema


def _load_document(location: str, base_dir: Path, timeout_s: float) -> tuple[dict[str, Any], str | None]:
    """The OpenAPI document at ``location`` (a file or an http(s) URL) and the URL it came from, if any."""
    if urlsplit(location).scheme in ("http", "https"):
        httpx = optional_import("httpx", "api", "an OpenAPI tool")
        try:
            response = httpx.get(location, timeout=timeout_s, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise ToolError(f"OpenAPI document {location}: cannot fetch it ({type(exc).__name__}: {exc})") from exc
        if response.status_code != 200:
            raise ToolError(f"OpenAPI document {location}: HTTP {response.status_code}")
        text, source_url = response.text, str(response.url)
    else:
        path = Path(location).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ToolError(f"OpenAPI document {path}: cannot read it ({exc.strerror or exc})") from exc
        source_url = None
    try:
        document = json.loads(text) if text.lstrip().startswith("{") else _yaml(text)
    except ValueError as exc:
        raise ToolError(f"OpenAPI document {location}: neither JSON nor YAML ({exc})") from exc
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        found = document.get("swagger") if isinstance(document, dict) else None
        raise ToolError(f"OpenAPI document {location}: not an OpenAPI 3 document"
                        + (f" (Swagger {found}: convert it to OpenAPI 3)" if found else ""))
    return document, source_url


def _yaml(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _tool_name(operation_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", operation_id)[:64]


class OpenApiConfig(BaseModel):
    """``openapi:`` of a custom tool: one operation of an OpenAPI 3 document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: str = Field(description="path (relative to the spec's folder) or http(s) URL of the OpenAPI 3 document")
    operation: str = Field(min_length=1, description="the operationId of the operation the tool calls")
    base_url: str | None = Field(None, description="the service's URL; default: the document's first server, or "
                                                   "the origin of the document's URL")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="headers sent with every call, never "
                                                                            "shown; write secrets as ${ENV_VAR}: "
                                                                            '{"Authorization": "Bearer ${TOKEN}"}')
    timeout_s: float = Field(10.0, gt=0, le=300, description="seconds a call may take")
    max_response_bytes: int = Field(1_000_000, ge=1024, description="bytes of a response read at most")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
            raise ValueError(f"base_url {value!r}: an http(s) URL, e.g. https://shop.internal/api")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        return value


class OpenApiTool:
    """One operation of an OpenAPI 3 document as a tool, called with httpx."""

    def __init__(self, config: OpenApiConfig, *, name: str | None = None, description: str | None = None,
                 max_chars: int = _DEFAULT_MAX_CHARS, base_dir: Path | str | None = None) -> None:
        self.config = config
        self.max_chars = max_chars
        self._httpx = optional_import("httpx", "api", "an OpenAPI tool")
        self._jsonschema = optional_import("jsonschema", "api", "an OpenAPI tool (argument checks)")
        where = f"OpenAPI {config.spec} operation {config.operation!r}"
        for header, value in config.headers.items():
            unset = [var for var in ENV_REF.findall(value.get_secret_value()) if var not in os.environ]
            if unset:
                raise ToolError(f"{where}: header {header}: environment variable {unset[0]} is not set")
        document, source_url = _load_document(config.spec, Path(base_dir or "."), config.timeout_s)
        found = [(path, method, op, item) for path, item in (document.get("paths") or {}).items()
                 if isinstance(item, Mapping) for method, op in item.items()
                 if method in _METHODS and isinstance(op, Mapping) and op.get("operationId") == config.operation]
        if not found:
            known = sorted(str(op.get("operationId")) for item in (document.get("paths") or {}).values()
                           if isinstance(item, Mapping) for method, op in item.items()
                           if method in _METHODS and isinstance(op, Mapping) and op.get("operationId"))
            raise ToolError(f"{where}: no such operationId. Available: {', '.join(known) or 'none'}")
        self.path, method, operation, path_item = found[0]
        self.method = method.upper()
        self.base_url = self._base_url(document, source_url, where)
        schemas = _Schemas(document, where)

        properties: dict[str, Any] = {}
        required: list[str] = []
        self._path_params: list[str] = []
        self._query_params: list[str] = []
        parameters: dict[tuple[str, str], Mapping[str, Any]] = {}
        for raw in [*(path_item.get("parameters") or []), *(operation.get("parameters") or [])]:
            parameter = schemas.inline(raw)
            parameters[(str(parameter.get("name")), str(parameter.get("in")))] = parameter  # the operation's win
        configured = {h.lower() for h in config.headers}
        for (pname, place), parameter in parameters.items():
            if place in ("header", "cookie"):
                if parameter.get("required") and pname.lower() not in configured:
                    raise ToolError(f"{where}: needs the {place} {pname!r}; set it in headers")
                continue
            schema = parameter.get("schema")
            if schema is None and isinstance(parameter.get("content"), Mapping) and parameter["content"]:
                schema = next(iter(parameter["content"].values())).get("schema")
            prop = dict(schemas.schema(schema or {}))
            if parameter.get("description") and "description" not in prop:
                prop["description"] = " ".join(str(parameter["description"]).split())
            properties[pname] = prop
            if place == "path" or parameter.get("required"):
                required.append(pname)
            (self._path_params if place == "path" else self._query_params).append(pname)
        self._body = False
        body = schemas.inline(operation.get("requestBody")) if operation.get("requestBody") else None
        if body:
            content = body.get("content") or {}
            json_type = next((t for t in content if t == "application/json" or t.endswith("+json")), None)
            if json_type is None:
                if body.get("required"):
                    raise ToolError(f"{where}: its request body is {', '.join(content) or 'of no type'}; only JSON "
                                    "bodies are supported")
            else:
                if "body" in properties:
                    raise ToolError(f"{where}: a parameter is called 'body', the name of the request body")
                properties["body"] = dict(schemas.schema(content[json_type].get("schema") or {}))
                properties["body"].setdefault("description", " ".join(str(body.get("description")
                                                                              or "the JSON request body").split()))
                if body.get("required"):
                    required.append("body")
                self._body = True
        parameters_schema: dict[str, Any] = {"type": "object", "properties": properties,
                                             "additionalProperties": False}
        if required:
            parameters_schema["required"] = required
        if schemas.defs:
            parameters_schema["$defs"] = schemas.defs
        parameters_schema = _drop_titles(parameters_schema)
        validator_class = self._jsonschema.Draft202012Validator
        try:
            validator_class.check_schema(parameters_schema)
        except self._jsonschema.SchemaError as exc:
            raise ToolError(f"{where}: its parameters are not a valid JSON schema ({exc.message})") from exc
        self._validator = validator_class(parameters_schema)
        text = description or " ".join(
            " ".join(str(part).split()) for part in (operation.get("summary"), operation.get("description"))
            if part) or f"{self.method} {self.path}"
        self.spec = ToolSpec(name or _tool_name(config.operation), text, parameters_schema)

    def _base_url(self, document: Mapping[str, Any], source_url: str | None, where: str) -> str:
        if self.config.base_url:
            return self.config.base_url.rstrip("/")
        servers = document.get("servers") or [{"url": "/"}]
        server = servers[0] if isinstance(servers[0], Mapping) else {"url": "/"}
        url = str(server.get("url") or "/")
        for var, spec in (server.get("variables") or {}).items():
            url = url.replace("{" + var + "}", str(spec.get("default", "")))
        if not urlsplit(url).scheme:
            if source_url is None:
                raise ToolError(f"{where}: the document names no absolute server URL; give base_url")
            url = urljoin(source_url, url)
        if urlsplit(url).scheme not in ("http", "https"):
            raise ToolError(f"{where}: server URL {url!r} is not http(s); give base_url")
        return url.rstrip("/")

    @staticmethod
    def _text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        if not isinstance(arguments, Mapping):
            return ToolResult.refused("arguments must be a JSON object")
        arguments = dict(arguments)
        errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            problems = [(f"argument '{'.'.join(str(p) for p in e.path)}': " if e.path else "") + cap(e.message, 200)
                        for e in errors[:5]]
            return ToolResult.refused("; ".join(problems))
        path = self.path
        for pname in self._path_params:
            value = arguments[pname]
            text = ",".join(self._text(v) for v in value) if isinstance(value, list) else self._text(value)
            if text in ("", ".", ".."):
                return ToolResult.refused(f"argument '{pname}': {text!r} is not a valid path segment")
            path = path.replace("{" + pname + "}", quote(text, safe=""))
        query: list[tuple[str, str]] = []
        for pname in self._query_params:
            value = arguments.get(pname)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            query.extend((pname, self._text(v)) for v in values)
        headers = {header: ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value.get_secret_value())
                   for header, value in self.config.headers.items()}
        httpx = self._httpx
        url = self.base_url + path
        try:
            with httpx.stream(self.method, url, params=query, headers=headers, timeout=self.config.timeout_s,
                              follow_redirects=False,
                              **({"json": arguments["body"]} if self._body and "body" in arguments else {})) as reply:
                body, cut = bytearray(), False
                for chunk in reply.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self.config.max_response_bytes:
                        del body[self.config.max_response_bytes:]
                        cut = True
                        break
        except httpx.TimeoutException:
            return ToolResult.refused(f"{self.method} {self.path} took longer than {self.config.timeout_s:g} s")
        except httpx.TransportError as exc:
            raise EndpointUnreachable(f"OpenAPI tool {self.spec.name}: {self.method} {self.base_url}{self.path} "
                                      f"cannot be reached ({type(exc).__name__}: {exc})") from exc
        status = reply.status_code
        text = body.decode(reply.encoding or "utf-8", errors="replace")
        if status >= 300:
            detail = (f"redirect to {reply.headers.get('location', '?')} (not followed)" if status < 400
                      else " ".join(text.split()))
            return ToolResult.refused(f"HTTP {status} {reply.reason_phrase}: {cap(detail, 500)}".rstrip(": "),
                                      status=status)
        data: Any = None
        content_type = reply.headers.get("content-type", "").split(";")[0].strip().lower()
        if not cut and (content_type == "application/json" or content_type.endswith("+json")):
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = None
        content = json.dumps(data, ensure_ascii=False, separators=(",", ":")) if data is not None else text
        if cut:
            content += f"… [response cut at {self.config.max_response_bytes} bytes]"
        return ToolResult(content=cap(content or f"HTTP {status} (no content)", self.max_chars),
                          data={"status": status, "body": data if data is not None else cap(text, self.max_chars)})


# ----------------------------------------------------------------------------------------------- named in the spec

class CustomToolConfig(BaseModel):
    """``agents.tools: [{provider: custom, ...}]``: exactly one of ``function``, ``openapi`` or ``entry_point``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    function: str | None = Field(None, description='a tool or typed function, "package.module:attr"')
    openapi: OpenApiConfig | None = Field(None, description="one operation of an OpenAPI 3 document")
    entry_point: str | None = Field(None, description=f"a tool registered in the entry-point group "
                                                      f"{ENTRY_POINT_GROUP!r}")
    name: str | None = Field(None, description="the tool's name as the model sees it (default: the function's "
                                               "name, the operationId, the entry point's tool's)")
    description: str | None = Field(None, description="what the model is told the tool does (default: the "
                                                       "docstring, the operation's summary)")
    max_chars: int | None = Field(None, ge=100, le=1_000_000, description="characters of a result the model "
                                                                         f"reads (default {_DEFAULT_MAX_CHARS})")

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with a relative OpenAPI document path resolved from ``base_dir`` (the spec's folder)."""
        openapi = settings.get("openapi")
        if isinstance(openapi, dict) and isinstance(openapi.get("spec"), str) \
                and not re.match(r"^[a-z][a-z0-9+.-]*://", openapi["spec"], re.IGNORECASE):
            settings["openapi"] = {**openapi, "spec": str(base_dir / Path(openapi["spec"]).expanduser())}
        return settings

    @field_validator("function")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and not IMPORT_PATH.match(value):
            raise ValueError(f"function {value!r}: write package.module:attr, e.g. acme_tools.shipping:quote")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        try:
            return None if value is None else check_tool_name(value)
        except ToolError as exc:  # pydantic reports ValueErrors only
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _exactly_one(self) -> CustomToolConfig:
        given = [key for key in ("function", "openapi", "entry_point") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("a custom tool needs exactly one of function (package.module:attr), openapi "
                             f"({{spec, operation}}) or entry_point (a name); got {', '.join(given) or 'none'}")
        return self


class _Renamed:
    """A tool shown under another name or description."""

    def __init__(self, inner: Tool, name: str | None, description: str | None) -> None:
        self.inner = inner
        self.spec = ToolSpec(name or inner.spec.name, description or inner.spec.description,
                             inner.spec.parameters)

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        return self.inner.call(arguments)


def as_tool(obj: Any, where: str, *, name: str | None = None, description: str | None = None,
            max_chars: int | None = None) -> Tool:
    """``obj`` as a tool: a :class:`FunctionTool` or other ``Tool`` as it is (renamed if asked), a plain typed
    function wrapped; anything else is a :class:`ToolError` naming ``where`` it came from."""
    if isinstance(obj, FunctionTool):
        if name is None and description is None and max_chars in (None, obj.max_chars):
            return obj
        return FunctionTool(obj.function, name=name or obj.spec.name, description=description or obj.spec.description,
                            max_chars=max_chars or obj.max_chars, raises=obj.raises)
    if not isinstance(obj, type) and isinstance(obj, Tool) and isinstance(getattr(obj, "spec", None), ToolSpec):
        return obj if name is None and description is None else _Renamed(obj, name, description)
    if callable(obj) and not isinstance(obj, type):
        return FunctionTool(obj, name=name, description=description, max_chars=max_chars or _DEFAULT_MAX_CHARS)
    raise ToolError(f"{where}: {type(obj).__name__} {obj!r:.80} is neither a tool nor a typed function")


def import_object(path: str) -> Any:
    """The object that ``package.module:attr`` (``attr`` may be dotted) names, or a :class:`ToolError`."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ToolError(f"tool {path}: cannot import {module_name} ({type(exc).__name__}: {exc})") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ToolError(f"tool {path}: {module_name} has no {attr!r}") from exc
    return obj


def load_entry_point(name: str, group: str = ENTRY_POINT_GROUP) -> Any:
    """The object that the entry point ``name`` of ``group`` names (loaded), or a :class:`ToolError` that lists the
    names registered there."""
    registered = entry_points(group=group)
    matches = {ep.value: ep for ep in registered if ep.name == name}  # one package seen twice on sys.path: one value
    if not matches:
        known = sorted({ep.name for ep in registered})
        raise ToolError(f"no tool {name!r} in the entry-point group {group!r}. Available: {', '.join(known) or 'none'}"
                        " (a package registers one in its pyproject.toml under "
                        f'[project.entry-points."{group}"])')
    if len(matches) > 1:
        raise ToolError(f"tool {name!r} is registered by several packages in {group!r}: {', '.join(sorted(matches))}")
    entry = next(iter(matches.values()))
    try:
        return entry.load()
    except Exception as exc:  # noqa: BLE001 - a third-party module can fail to import in any way
        dist = getattr(getattr(entry, "dist", None), "name", None)
        raise ToolError(f"tool {name!r} ({entry.value}{', from ' + dist if dist else ''}) cannot be loaded: "
                        f"{type(exc).__name__}: {exc}") from exc


def custom_tool(config: CustomToolConfig | Mapping[str, Any], *, base_dir: Path | str | None = None) -> Tool:
    """The tool that ``config`` describes; ``base_dir`` is where a relative OpenAPI path is read from (the spec's
    folder)."""
    cfg = config if isinstance(config, CustomToolConfig) else CustomToolConfig.model_validate(dict(config))
    if cfg.openapi is not None:
        return OpenApiTool(cfg.openapi, name=cfg.name, description=cfg.description,
                           max_chars=cfg.max_chars or _DEFAULT_MAX_CHARS, base_dir=base_dir)
    if cfg.function is not None:
        return as_tool(import_object(cfg.function), f"function {cfg.function}", name=cfg.name,
                       description=cfg.description, max_chars=cfg.max_chars)
    assert cfg.entry_point is not None
    return as_tool(load_entry_point(cfg.entry_point), f"entry point {cfg.entry_point!r}", name=cfg.name,
                   description=cfg.description, max_chars=cfg.max_chars)

