"""A LangChain 1.x agent (``langchain.agents.create_agent``) on flightdeck's model and tools (checklist 3.3).

The model is ``langchain_openai.ChatOpenAI`` pointed at an OpenAI-compatible endpoint (flightdeck's
``/v1/chat/completions`` answers a turn with tools as OpenAI ``tool_calls``, held to a schema of the tools); the tools
are the flightdeck tools as LangChain ``StructuredTool``\\ s (:func:`~flightdeck.agents.tools.langchain.to_langchain`:
the same JSON schema, a refusal shown to the model, the sources kept as the tool message's artifact); the history is
the messages before the question. The budget is a middleware of the agent: after ``max_steps`` tool calls the model
is asked with ``tool_choice: none`` (it may only answer), and tokens or time spent end the run before the next model
turn; LangChain's own ``ToolCallLimitMiddleware`` stops a model that calls tools past the steps anyway, and the
graph's recursion limit bounds the rest. A callback handler counts each model turn's tokens (LangChain's
``usage_metadata``).

Needs langchain and langchain-openai: ``pip install 'flightdeck[langchain]'``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flightdeck.agents.frameworks.base import FrameworkAgentBase, RunRecorder
from flightdeck.agents.tools.langchain import to_langchain
from flightdeck.registry.lookup import optional_import

__all__ = ["LangchainAgent"]

_NEEDS = ("langchain", "LangChain agents")


def _import(module: str) -> Any:
    return optional_import(module, *_NEEDS)


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text of its content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) if isinstance(b, dict) else ""
                       for b in content)
    return str(content or "")


def _budget_middleware(recorder: RunRecorder) -> Any:
    """The run's budget as an agent middleware: tokens and time checked before each model turn, and the turn after
    the last step asked with ``tool_choice: none``."""
    AgentMiddleware = _import("langchain.agents.middleware").AgentMiddleware

    class FlightdeckBudget(AgentMiddleware):  # type: ignore[misc, valid-type]
        def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            recorder.check_budget()
            if recorder.answer_only and request.tools:
                request = request.override(tool_choice="none")
            return handler(request)

        async def awrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
            recorder.check_budget()
            if recorder.answer_only and request.tools:
                request = request.override(tool_choice="none")
            return await handler(request)

    return FlightdeckBudget()


def _turn_counter(recorder: RunRecorder) -> Any:
    """A callback handler that tells ``recorder`` each model turn's tokens and time."""
    BaseCallbackHandler = _import("langchain_core.callbacks").BaseCallbackHandler

    class TurnCounter(BaseCallbackHandler):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.started: dict[Any, float] = {}

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, **kwargs: Any) -> None:
            self.started[run_id] = time.perf_counter()

        def on_llm_end(self, response: Any, *, run_id: Any, **kwargs: Any) -> None:
            t0 = self.started.pop(run_id, None)
            usage: dict[str, Any] = {}
            for generations in response.generations:
                for generation in generations:
                    usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or usage
            ms = (time.perf_counter() - t0) * 1000 if t0 is not None else 0.0
            recorder.model_turn(usage.get("input_tokens", 0), usage.get("output_tokens", 0), ms)

    return TurnCounter()


class LangchainAgent(FrameworkAgentBase):
    """LangChain's ``create_agent`` with ``ChatOpenAI`` on the endpoint and the flightdeck tools (see the module)."""

    framework = "langchain"

    def _stops(self) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        limit = _import("langchain.agents.middleware.tool_call_limit").ToolCallLimitExceededError
        recursion = _import("langgraph.errors").GraphRecursionError
        openai = _import("openai")
        return (limit, recursion), (openai.APIError,)

    def _run(self, question: str, history: list[tuple[str, str]], recorder: RunRecorder) -> str:
        create_agent = _import("langchain.agents").create_agent
        ToolCallLimitMiddleware = _import("langchain.agents.middleware").ToolCallLimitMiddleware
        ChatOpenAI = _import("langchain_openai").ChatOpenAI
        messages_module = _import("langchain_core.messages")
        chat = ChatOpenAI(base_url=self.base_url, api_key=self._api_key, model=self.model, max_retries=0,
                          timeout=self.timeout, max_tokens=self.budget.max_answer_tokens)
        agent = create_agent(
            chat, [to_langchain(t) for t in recorder.tools()], system_prompt=self.system_prompt(),
            middleware=[_budget_middleware(recorder),
                        ToolCallLimitMiddleware(run_limit=self.budget.max_steps, exit_behavior="error")],
            name="flightdeck_agent")
        roles = {"user": messages_module.HumanMessage, "assistant": messages_module.AIMessage}
        messages = [roles[role](content) for role, content in history]
        messages.append(messages_module.HumanMessage(question))
        # a turn is the model node, its middleware and the tools node: a few graph steps each
        limit = 4 * (self.budget.max_steps + 2) + 5
        state = agent.invoke({"messages": messages},
                             config={"recursion_limit": limit, "callbacks": [_turn_counter(recorder)]})
        final = state["messages"][-1]
        if not isinstance(final, messages_module.AIMessage) or final.tool_calls:
            return ""
        return _text(final.content)
