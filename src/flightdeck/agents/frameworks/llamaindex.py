"""A LlamaIndex agent workflow (``llama_index.core.agent.workflow.FunctionAgent``) on flightdeck's model and tools
(checklist 3.3).

**The model.** LlamaIndex's ``FunctionAgent`` needs a function-calling LLM. LlamaIndex's own OpenAI-compatible class
(``llama-index-llms-openai-like``, on ``llama-index-llms-openai``) requires ``openai<3``, which would take the
project's ``openai`` back a major version; so the LLM here is a small ``FunctionCallingLLM`` over the ``openai`` SDK
the project already has: each turn is one ``chat.completions.create`` with the tools in OpenAI's shape, and the
reply's ``tool_calls`` become LlamaIndex ``ToolSelection``\\ s. After ``max_steps`` tool calls it asks with
``tool_choice: none`` (the model may only answer); tokens or time spent end the run before the next turn.

**The tools** are LlamaIndex ``FunctionTool``\\ s built from each flightdeck tool's spec: the ``fn_schema`` is a model
whose JSON schema is the tool's own (so the model is shown exactly what flightdeck's loop shows it), and a call is the
flightdeck tool's ``call`` (which checks the arguments: a refusal is text the model reads). The history is the
workflow's ``chat_history``; the agent's own step limit is the workflow's ``max_iterations``.

Needs llama-index-core and openai: ``pip install 'flightdeck[llamaindex]'``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import functools
import json
import time
from collections.abc import Sequence
from typing import Any

from flightdeck.agents.frameworks.base import FrameworkAgentBase, RunRecorder
from flightdeck.agents.tools.base import Tool
from flightdeck.registry.lookup import optional_import

__all__ = ["LlamaindexAgent", "llamaindex_tool", "openai_compatible_llm"]

_NEEDS = ("llamaindex", "LlamaIndex agents")


def _import(module: str) -> Any:
    return optional_import(module, *_NEEDS)


def llamaindex_tool(tool: Tool) -> Any:
    """The flightdeck ``tool`` as a LlamaIndex ``FunctionTool``: its name, description and JSON schema as they are;
    a call runs ``tool.call`` and gives its text (a refusal's text is the error the model reads)."""
    FunctionTool = _import("llama_index.core.tools").FunctionTool
    BaseModel = _import("pydantic").BaseModel
    ConfigDict = _import("pydantic").ConfigDict
    schema = dict(tool.spec.parameters)

    class Arguments(BaseModel):  # type: ignore[misc, valid-type]
        """The tool's arguments: its JSON schema is the flightdeck tool's own (the tool checks them)."""

        model_config = ConfigDict(extra="allow")

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return copy.deepcopy(schema)

    Arguments.__name__ = Arguments.__qualname__ = f"{tool.spec.name}_arguments"

    def call(**arguments: Any) -> str:
        return tool.call(arguments).content

    return FunctionTool.from_defaults(fn=call, name=tool.spec.name, description=tool.spec.description,
                                      fn_schema=Arguments)


def _openai_message(message: Any) -> dict[str, Any]:
    """A LlamaIndex ``ChatMessage`` as an OpenAI chat message (text content, the assistant's tool calls, a tool
    result's call id)."""
    role = getattr(message.role, "value", str(message.role))
    out: dict[str, Any] = {"role": role, "content": message.content or ""}
    if role == "assistant" and message.additional_kwargs.get("tool_calls"):
        out["tool_calls"] = message.additional_kwargs["tool_calls"]
        out["content"] = message.content or None
    if role == "tool":
        out["tool_call_id"] = message.additional_kwargs.get("tool_call_id", "")
    return out


@functools.cache
def _llm_class() -> type:
    """The ``FunctionCallingLLM`` over the openai SDK (built on first use: llama-index is optional)."""
    llms = _import("llama_index.core.llms")
    callbacks = _import("llama_index.core.llms.callbacks")
    generic = _import("llama_index.core.base.llms.generic_utils")
    FunctionCallingLLM = _import("llama_index.core.llms.function_calling").FunctionCallingLLM
    ToolSelection = _import("llama_index.core.llms.llm").ToolSelection
    PrivateAttr = _import("pydantic").PrivateAttr
    Field = _import("pydantic").Field
    ChatMessage, ChatResponse, LLMMetadata = llms.ChatMessage, llms.ChatResponse, llms.LLMMetadata

    class OpenAICompatibleLLM(FunctionCallingLLM):  # type: ignore[misc, valid-type]
        """A chat model behind an OpenAI-compatible endpoint, with tool calls (``tools``/``tool_calls``)."""

        model: str = Field(description="the name the endpoint knows the model by")
        base_url: str = Field(description="the endpoint, e.g. http://127.0.0.1:8000/v1")
        max_tokens: int = Field(384, description="tokens the model may write per turn")
        timeout: float = Field(120.0, description="seconds per request")
        context_window: int = Field(3900, description="tokens the model reads: LlamaIndex's memory keeps to it")
        _api_key: str = PrivateAttr()
        _recorder: Any = PrivateAttr(default=None)
        _client: Any = PrivateAttr(default=None)
        _aclient: Any = PrivateAttr(default=None)

        def __init__(self, *, api_key: str, recorder: RunRecorder | None = None, **data: Any) -> None:
            super().__init__(**data)
            self._api_key = api_key
            self._recorder = recorder

        @classmethod
        def class_name(cls) -> str:
            return "flightdeck_openai_compatible"

        @property
        def metadata(self) -> Any:
            return LLMMetadata(context_window=self.context_window, num_output=self.max_tokens, is_chat_model=True,
                               is_function_calling_model=True, model_name=self.model)

        def _clients(self) -> tuple[Any, Any]:
            if self._client is None:
                openai = _import("openai")
                options = {"base_url": self.base_url, "api_key": self._api_key, "max_retries": 0,
                           "timeout": self.timeout}
                self._client, self._aclient = openai.OpenAI(**options), openai.AsyncOpenAI(**options)
            return self._client, self._aclient

        def _request(self, messages: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
            if self._recorder is not None:
                self._recorder.check_budget()
            request: dict[str, Any] = {"model": self.model, "messages": [_openai_message(m) for m in messages],
                                       "max_tokens": self.max_tokens}
            if kwargs.get("tools"):
                request["tools"] = kwargs["tools"]
                if kwargs.get("tool_choice") is not None:
                    request["tool_choice"] = kwargs["tool_choice"]
            return request

        def _response(self, completion: Any, ms: float) -> Any:
            message = completion.choices[0].message
            calls = [c.model_dump() for c in (message.tool_calls or []) if getattr(c, "function", None)]
            usage = completion.usage
            prompt, written = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
            if self._recorder is not None:
                self._recorder.model_turn(prompt, written, ms)
            return ChatResponse(
                message=ChatMessage(role="assistant", content=message.content or "",
                                    additional_kwargs={"tool_calls": calls} if calls else {}),
                raw=completion.model_dump(),
                additional_kwargs={"prompt_tokens": prompt, "completion_tokens": written})

        @callbacks.llm_chat_callback()
        def chat(self, messages: Sequence[Any], **kwargs: Any) -> Any:
            client, _ = self._clients()
            t0 = time.perf_counter()
            completion = client.chat.completions.create(**self._request(messages, kwargs))
            return self._response(completion, (time.perf_counter() - t0) * 1000)

        @callbacks.llm_chat_callback()
        async def achat(self, messages: Sequence[Any], **kwargs: Any) -> Any:
            _, aclient = self._clients()
            t0 = time.perf_counter()
            completion = await aclient.chat.completions.create(**self._request(messages, kwargs))
            return self._response(completion, (time.perf_counter() - t0) * 1000)

        # one chunk: the endpoint's turn with tools is written whole (its calls must parse)
        @callbacks.llm_chat_callback()
        def stream_chat(self, messages: Sequence[Any], **kwargs: Any) -> Any:
            response = self.chat(messages, **kwargs)
            response.delta = response.message.content or ""
            return iter([response])

        @callbacks.llm_chat_callback()
        async def astream_chat(self, messages: Sequence[Any], **kwargs: Any) -> Any:
            response = await self.achat(messages, **kwargs)
            response.delta = response.message.content or ""

            async def one() -> Any:
                yield response

            return one()

        @callbacks.llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            return generic.chat_to_completion_decorator(self.chat)(prompt, **kwargs)

        @callbacks.llm_completion_callback()
        async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            return await generic.achat_to_completion_decorator(self.achat)(prompt, **kwargs)

        @callbacks.llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            return generic.stream_chat_to_completion_decorator(self.stream_chat)(prompt, **kwargs)

        @callbacks.llm_completion_callback()
        async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            return await generic.astream_chat_to_completion_decorator(self.astream_chat)(prompt, **kwargs)

        def _prepare_chat_with_tools(self, tools: Sequence[Any], user_msg: Any = None,
                                     chat_history: list[Any] | None = None, verbose: bool = False,
                                     allow_parallel_tool_calls: bool = False, tool_required: bool = False,
                                     tool_choice: Any = None, **kwargs: Any) -> dict[str, Any]:
            messages = list(chat_history or [])
            if user_msg is not None:
                messages.append(ChatMessage(role="user", content=user_msg) if isinstance(user_msg, str) else user_msg)
            specs = [t.metadata.to_openai_tool(skip_length_check=True) for t in tools]
            if self._recorder is not None and self._recorder.answer_only:
                tool_choice = "none"
            elif tool_choice is None and tool_required:
                tool_choice = "required"
            elif isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required"):
                tool_choice = {"type": "function", "function": {"name": tool_choice}}  # LlamaIndex names one tool
            return {"messages": messages, "tools": specs or None, "tool_choice": tool_choice if specs else None,
                    **kwargs}

        def get_tool_calls_from_response(self, response: Any, error_on_no_tool_call: bool = True,
                                         **kwargs: Any) -> list[Any]:
            calls = response.message.additional_kwargs.get("tool_calls") or []
            if not calls and error_on_no_tool_call:
                raise ValueError(f"the model called no tool; it wrote: {(response.message.content or '')[:200]!r}")
            selections = []
            for call in calls:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}  # not JSON: the tool refuses what is missing, and the model reads why
                selections.append(ToolSelection(tool_id=str(call.get("id") or ""), tool_name=str(function.get("name")),
                                                tool_kwargs=arguments if isinstance(arguments, dict) else {}))
            return selections

    return OpenAICompatibleLLM


def openai_compatible_llm(*, base_url: str, api_key: str, model: str, max_tokens: int = 384, timeout: float = 120.0,
                          recorder: RunRecorder | None = None) -> Any:
    """A LlamaIndex function-calling LLM on an OpenAI-compatible endpoint (``recorder``: a run's budget and token
    count)."""
    return _llm_class()(model=model, base_url=base_url, api_key=api_key, max_tokens=max_tokens, timeout=timeout,
                        recorder=recorder)


def _run_coroutine(make: Any) -> Any:
    """Run the coroutine ``make()`` makes to its end: here, or in a worker thread when this thread already runs an
    event loop (a caller inside async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class LlamaindexAgent(FrameworkAgentBase):
    """LlamaIndex's ``FunctionAgent`` with the flightdeck tools on an OpenAI-compatible endpoint (see the module)."""

    framework = "llamaindex"

    def _stops(self) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        errors = _import("workflows.errors")
        openai = _import("openai")
        return (errors.WorkflowTimeoutError,), (errors.WorkflowRuntimeError, openai.APIError)

    def _run(self, question: str, history: list[tuple[str, str]], recorder: RunRecorder) -> str:
        FunctionAgent = _import("llama_index.core.agent.workflow").FunctionAgent
        ChatMessage = _import("llama_index.core.llms").ChatMessage
        llm = openai_compatible_llm(base_url=self.base_url, api_key=self._api_key, model=self.model,
                                    max_tokens=self.budget.max_answer_tokens, timeout=self.timeout,
                                    recorder=recorder)
        agent = FunctionAgent(name="flightdeck_agent", description="Answers from flightdeck's tools.",
                              tools=[llamaindex_tool(t) for t in recorder.tools()], llm=llm,
                              system_prompt=self.system_prompt(), streaming=False,
                              allow_parallel_tool_calls=False, timeout=self.budget.max_seconds)
        chat_history = [ChatMessage(role=role, content=content) for role, content in history]

        async def go() -> Any:
            try:
                # a turn is counted before it is read, so the last one allowed must be below the limit: max_steps
                # tool calls, then one answer (tool_choice none), is max_steps + 1 turns
                return await agent.run(user_msg=question, chat_history=chat_history,
                                       max_iterations=self.budget.max_steps + 2)
            finally:
                if llm._aclient is not None:
                    await llm._aclient.close()
                    llm._client.close()

        output = _run_coroutine(go)
        return str(output.response.content or "")
