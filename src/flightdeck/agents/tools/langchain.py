"""LangChain tools (checklist 6.1), both ways: a LangChain tool as a flightdeck tool, and a flightdeck tool as a
LangChain one.

- :func:`from_langchain` wraps any ``langchain_core.tools.BaseTool`` (a ``@tool`` function, a ``StructuredTool``,
  a ``BaseTool`` subclass, a community toolkit's tools): its name, description and arguments' JSON schema are what
  LangChain itself would send to OpenAI (``convert_to_openai_tool``); a call is ``tool.invoke(arguments)``. A
  ``ToolException`` and a validation error of the arguments are refusals the model reads, whatever the tool's
  ``handle_tool_error`` says (the flightdeck loop shows refusals to the model itself); any other exception
  propagates, as it does in LangChain. The output is rendered to text: a string as it is, a ``ToolMessage`` as its
  text, ``Document``\\ s as their text (each also a source the answer may cite), anything else as JSON. A tool with
  ``response_format="content_and_artifact"`` keeps its artifact as ``data``.
- :func:`to_langchain` gives a ``StructuredTool`` whose ``args_schema`` is the flightdeck tool's JSON schema (a
  dict, which langchain-core 1.x takes as it is), so ``convert_to_openai_tool`` shows LangChain's models exactly
  the schema flightdeck shows its own. A refusal raises ``ToolException`` (shown to the model by
  ``handle_tool_error``, on by default here); the content is the tool's text and the artifact its ``data`` and
  ``sources``.
- :class:`LangchainToolConfig` names a LangChain tool in the spec (``tool: "package.module:attr"``): a ``BaseTool``
  instance, a ``BaseTool`` subclass (instantiated with ``settings``) or a function returning a tool (called with
  ``settings``); :func:`langchain_tool` builds it.

Needs langchain-core: ``pip install 'flightdeck[langchain]'``; this module imports it only when a tool is adapted,
so the config reads without it.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flightdeck.agents.tools.base import Tool, ToolError, ToolResult, ToolSpec, check_tool_name
from flightdeck.agents.tools.custom import IMPORT_PATH, cap, import_object, validation_refusal
from flightdeck.registry.lookup import optional_import

__all__ = ["from_langchain", "to_langchain", "LangchainTool", "LangchainToolConfig", "langchain_tool"]

_NEEDS = ("langchain", "LangChain tools")  # the extra, and what the error says needs it
_DEFAULT_MAX_CHARS = 8000
_CALL_IDS = itertools.count(1)


def _lc(module: str) -> Any:
    return optional_import(f"langchain_core.{module}", *_NEEDS)


# ------------------------------------------------------------------------------------------------- rendering

def _text_of_message(content: Any) -> str:
    """A message's content as text: a string, or the text of its content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [block if isinstance(block, str) else str(block.get("text", "")) if isinstance(block, dict)
                 else str(block) for block in content]
        return "\n".join(p for p in parts if p)
    return str(content)


def _render(output: Any, max_chars: int) -> ToolResult:
    """A LangChain tool's output as a result: text for the model, JSON-able ``data``, documents as sources."""
    Document = _lc("documents").Document
    ToolMessage = _lc("messages").ToolMessage
    artifact = None
    if isinstance(output, ToolMessage):
        if output.status == "error":
            return ToolResult.refused(cap(_text_of_message(output.content), 2000))
        artifact, output = output.artifact, output.content
        if isinstance(output, list) and all(isinstance(b, dict | str) for b in output):
            output = _text_of_message(output)
    documents = [output] if isinstance(output, Document) else output if (
        isinstance(output, list) and output and all(isinstance(d, Document) for d in output)) else None
    sources: list[dict[str, Any]] = []
    if documents is not None:
        sources = _document_sources(documents)
        text = "\n\n".join(doc.page_content for doc in documents)
        data: Any = [{"page_content": d.page_content, "metadata": s["metadata"], "id": d.id}
                     for d, s in zip(documents, sources, strict=True)]
    else:
        data = pydantic_core.to_jsonable_python(output, fallback=str)
        text = output if isinstance(output, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if _is_flightdeck_artifact(artifact):
        # a flightdeck tool seen through to_langchain: its data and sources as they were
        return ToolResult(content=cap(text or "(empty)", max_chars), data=artifact["data"],
                          sources=list(artifact["sources"]))
    if artifact is not None:
        if isinstance(artifact, list) and artifact and all(isinstance(d, Document) for d in artifact):
            sources.extend(_document_sources(artifact))
        data = {"content": data, "artifact": pydantic_core.to_jsonable_python(artifact, fallback=str)}
    return ToolResult(content=cap(text or "(empty)", max_chars), data=data, sources=sources)


def _is_flightdeck_artifact(artifact: Any) -> bool:
    return (isinstance(artifact, dict) and set(artifact) == {"data", "sources"}
            and isinstance(artifact["sources"], list)
            and all(isinstance(s, dict) and "id" in s for s in artifact["sources"]))


def _document_sources(documents: list[Any]) -> list[dict[str, Any]]:
    """Each ``Document`` as a source an answer may cite: its id (or metadata id/source), text and metadata."""
    sources = []
    for number, doc in enumerate(documents, 1):
        metadata = pydantic_core.to_jsonable_python(doc.metadata, fallback=str)
        ident = doc.id or metadata.get("id") or metadata.get("source") or f"document-{number}"
        sources.append({"id": str(ident), "text": doc.page_content, "metadata": metadata})
    return sources


# ---------------------------------------------------------------------------------------------- LangChain → here

class LangchainTool:
    """A LangChain ``BaseTool`` as a flightdeck tool (see :func:`from_langchain`)."""

    def __init__(self, tool: Any, *, name: str | None = None, description: str | None = None,
                 max_chars: int = _DEFAULT_MAX_CHARS) -> None:
        BaseTool = _lc("tools").BaseTool
        if not isinstance(tool, BaseTool):
            raise ToolError(f"{type(tool).__name__} {tool!r:.80} is not a LangChain BaseTool")
        convert_to_openai_tool = _lc("utils.function_calling").convert_to_openai_tool
        try:
            function = convert_to_openai_tool(tool)["function"]
        except (TypeError, ValueError, pydantic_core.PydanticSerializationError) as exc:
            raise ToolError(f"LangChain tool {tool.name!r}: its arguments cannot be described as JSON schema "
                            f"({exc})") from exc
        parameters = dict(function.get("parameters") or {"type": "object", "properties": {}})
        parameters.setdefault("type", "object")
        parameters.setdefault("properties", {})
        tool_name = name or tool.name
        try:
            check_tool_name(tool_name)
        except ToolError as exc:
            raise ToolError(f"LangChain tool {tool.name!r}: {exc}; give a name") from exc
        text = " ".join((description or function.get("description") or tool.description or "").split())
        if not text:
            raise ToolError(f"LangChain tool {tool.name!r} has no description; give one")
        self.tool = tool
        self.max_chars = max_chars
        # Errors come back to us as exceptions, whatever the tool says: a refusal is ours to show.
        self._runner = tool.model_copy(update={"handle_tool_error": False, "handle_validation_error": False})
        self._schema = tool.tool_call_schema
        self.spec = ToolSpec(tool_name, text, parameters)

    def __repr__(self) -> str:
        return f"LangchainTool({self.spec.name!r})"

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        ToolException = _lc("tools").ToolException
        if not isinstance(arguments, Mapping):
            return ToolResult.refused("arguments must be a JSON object")
        arguments = dict(arguments)
        runner = self._runner
        schema = self._schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            # LangChain validates only an args_schema it was given; a tool described by its _run signature gets
            # the arguments as they are. Check them against what the model was shown, whichever it is.
            known = {info.alias or name for name, info in schema.model_fields.items()}
            unknown = [] if schema.model_config.get("extra") == "allow" else sorted(set(arguments) - known)
            if unknown:
                return ToolResult.refused("; ".join(f"unknown argument '{a}'" for a in unknown))
            try:
                validated = schema.model_validate(arguments)
            except ValidationError as exc:
                return ToolResult.refused(validation_refusal(exc))
            if runner.args_schema is None:
                arguments = {name: getattr(validated, name) for name in validated.model_fields_set}
        try:
            if runner.response_format == "content_and_artifact":
                # only a tool call gives the artifact back (as a ToolMessage)
                output = runner.invoke({"type": "tool_call", "name": runner.name, "args": arguments,
                                        "id": f"flightdeck-{next(_CALL_IDS)}"})
            else:
                output = runner.invoke(arguments)
        except ToolException as exc:
            return ToolResult.refused(cap(str(exc) or type(exc).__name__, 2000))
        except ValidationError as exc:
            return ToolResult.refused(validation_refusal(exc))
        return _render(output, self.max_chars)


def from_langchain(tool: Any, *, name: str | None = None, description: str | None = None,
                   max_chars: int = _DEFAULT_MAX_CHARS) -> LangchainTool:
    """The LangChain ``BaseTool`` ``tool`` as a flightdeck tool (``name``/``description`` override LangChain's)."""
    return LangchainTool(tool, name=name, description=description, max_chars=max_chars)


# ---------------------------------------------------------------------------------------------- here → LangChain

def to_langchain(tool: Tool, *, handle_tool_error: bool | str | Callable[..., str] = True) -> Any:
    """The flightdeck ``tool`` as a LangChain ``StructuredTool``.

    Its ``args_schema`` is ``tool.spec.parameters`` (a JSON schema dict); the flightdeck tool checks the arguments,
    and a refusal raises ``ToolException``, which ``handle_tool_error`` (LangChain's setting, on by default) turns
    into the message the model reads. ``response_format`` is ``content_and_artifact``: the content is what the
    flightdeck tool's model reads, the artifact ``{"data": ..., "sources": [...]}``.
    """
    StructuredTool = _lc("tools").StructuredTool
    ToolException = _lc("tools").ToolException
    if not isinstance(tool, Tool):
        raise ToolError(f"{type(tool).__name__} is not a flightdeck tool (it needs .spec and .call)")

    def run(**arguments: Any) -> tuple[str, dict[str, Any]]:
        result = tool.call(arguments)
        if not result.ok:
            raise ToolException(result.error)
        return result.content, {"data": result.data, "sources": result.sources}

    return StructuredTool(name=tool.spec.name, description=tool.spec.description,
                          args_schema=dict(tool.spec.parameters), func=run, response_format="content_and_artifact",
                          handle_tool_error=handle_tool_error)


# ------------------------------------------------------------------------------------------------ in the spec

class LangchainToolConfig(BaseModel):
    """``agents.tools: [{provider: langchain, tool: "package.module:attr", settings: {...}}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str = Field(description='a LangChain tool, "package.module:attr": a BaseTool instance, a BaseTool '
                                  "subclass, or a function returning a tool")
    settings: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the subclass or "
                                                                         "function")
    name: str | None = Field(None, description="the tool's name as the model sees it (default: LangChain's)")
    description: str | None = Field(None, description="what the model is told (default: LangChain's)")
    max_chars: int = Field(_DEFAULT_MAX_CHARS, ge=100, le=1_000_000, description="characters of a result the "
                                                                                 "model reads")

    @field_validator("tool")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not IMPORT_PATH.match(value):
            raise ValueError(f"tool {value!r}: write package.module:attr, e.g. "
                             "langchain_community.tools:WikipediaQueryRun")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        try:
            return None if value is None else check_tool_name(value)
        except ToolError as exc:  # pydantic reports ValueErrors only
            raise ValueError(str(exc)) from None


def langchain_tool(config: LangchainToolConfig | Mapping[str, Any]) -> LangchainTool:
    """The LangChain tool that ``config`` names, as a flightdeck tool."""
    cfg = config if isinstance(config, LangchainToolConfig) else LangchainToolConfig.model_validate(dict(config))
    BaseTool = _lc("tools").BaseTool
    found = import_object(cfg.tool)
    where = f"LangChain tool {cfg.tool}"
    if isinstance(found, BaseTool):
        if cfg.settings:
            raise ToolError(f"{where} is a tool already made; settings apply to a BaseTool subclass or a function")
        made = found
    elif inspect.isclass(found) and issubclass(found, BaseTool):
        try:
            made = found(**cfg.settings)
        except (ValidationError, TypeError) as exc:
            raise ToolError(f"{where}: the settings do not fit {found.__name__}: {exc}") from exc
    elif callable(found) and not inspect.isclass(found):
        try:
            made = found(**cfg.settings)
        except TypeError as exc:
            raise ToolError(f"{where}: the settings do not fit the function: {exc}") from exc
        if not isinstance(made, BaseTool):
            raise ToolError(f"{where}: the function returned {type(made).__name__}, not a LangChain BaseTool")
    else:
        raise ToolError(f"{where}: {type(found).__name__} is neither a BaseTool, a BaseTool subclass nor a function "
                        "returning one")
    return LangchainTool(made, name=cfg.name, description=cfg.description, max_chars=cfg.max_chars)
