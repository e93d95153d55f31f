"""OpenAI's Responses API and Conversations (checklist 3.2, 3.3) over the service: ``POST /v1/responses``,
``GET /v1/responses/{id}``, ``POST /v1/conversations``, ``GET /v1/conversations/{id}`` and its ``items`` — so the
official ``openai`` SDK and the OpenAI Agents SDK work against a local, offline flightdeck.

A request is answered one of three ways:

- **no tools**: the project's grounded, cited answer to the last user message (as ``/v1/chat/completions`` without
  tools gives; the earlier user messages shape what is retrieved, ``instructions`` do not change the grounded
  prompt), streamed as the generator writes it; a ``file_citation`` annotation per cited document, after its
  ``[n]`` marker;
- **function tools**: one turn of the client's own agent loop,
  :func:`~flightdeck.agents.tool_calls.tool_call_turn` over the whole conversation — the agent model calls one of
  the client's functions (``function_call`` items) or answers (a ``message``). Nothing is kept between turns but the
  conversation itself, so a client that sends its whole history each time (the Agents SDK) works as well as one
  that chains with ``previous_response_id`` or a ``conversation``.
- **file_search** (with or without functions): the spec's agent runs with its own tools (the index search) and the
  client's functions (:mod:`flightdeck.agents.resumable`). Each search is a ``file_search_call`` item, the answer a
  ``message`` whose ``output_text`` has a ``file_citation`` per cited document. A call of a client's function stops
  the run and comes back as a ``function_call`` item; the run's state is kept under the call id, and the
  ``function_call_output`` that answers it (chained, in a conversation, or in a resent history) resumes it where it
  stopped.

Everything a key creates — responses, conversations and their items, paused runs — is kept per key in the
workspace (:class:`~flightdeck.serving.openai_store.ObjectStore`): another key is told there is no such object.
``store: false`` keeps nothing. As OpenAI does, a response's ``instructions`` are not carried to the next one.
``stream: true`` sends the Responses event types the SDK parses (``response.created`` …
``response.output_text.delta`` … ``response.completed``); the agent's searches are sent as each ends. Every request
is traced (operation ``responses``). Not served: other hosted tools (web search, code interpreter…), images and
files as input, ``include`` and ``max_num_results`` (the spec's search settings apply).
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.governance.access import Permission
from flightdeck.serving.openai_store import ObjectStore, new_id, public
from flightdeck.serving.response_items import (
    MAX_ITEM_TEXT,
    agent_question,
    chat_messages,
    chat_tool_choice,
    citations,
    file_search_item,
    function_call_item,
    message_item,
    normalize_items,
    parse_tools,
)
from flightdeck.serving.service import Principal, Service

__all__ = ["Responses", "ResponsesRequest", "ConversationRequest", "ItemsRequest", "stream_events",
           "final_response", "OBJECT_ID"]

OBJECT_ID = r"^[A-Za-z0-9_-]+$"
MAX_CHAIN = 200  # responses read back along previous_response_id
Events = Iterator[tuple[str, dict[str, Any]]]


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``. OpenAI's other parameters (temperature, reasoning, include, truncation…) are
    accepted and ignored, as compatible servers do, so that existing clients work unchanged."""

    model_config = ConfigDict(extra="allow")
    model: str = Field("", max_length=200, description="echoed back; the spec chooses the models")
    input: str | list[Any] | None = Field(None, description="a user message, or a list of items")
    instructions: str | None = Field(None, max_length=MAX_ITEM_TEXT, description="a system message for this turn")
    tools: list[Any] | None = Field(None, max_length=64, description="function tools and file_search")
    tool_choice: str | dict[str, Any] | None = None
    previous_response_id: str | None = Field(None, max_length=80, pattern=OBJECT_ID)
    conversation: str | dict[str, Any] | None = Field(None, description="a conversation id, or {id}")
    stream: bool = False
    store: bool = True
    max_output_tokens: int | None = Field(None, ge=1, le=32768)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    parallel_tool_calls: bool | None = None


class ConversationRequest(BaseModel):
    """``POST /v1/conversations``."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] | None = Field(None, max_length=20, description="items to start it with")
    metadata: dict[str, str] | None = Field(None, max_length=16)


class ItemsRequest(BaseModel):
    """``POST /v1/conversations/{id}/items``."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(min_length=1, max_length=20)


def _conversation_id(value: str | Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    found = value.get("id") if isinstance(value, Mapping) else value
    if not isinstance(found, str) or not found:
        raise ValueError("conversation: a conversation id, or {\"id\": ...}")
    return found


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


class Responses:
    """The Responses and Conversations endpoints over ``service`` (which authorises, limits, runs and traces) and
    ``store`` (what each key keeps)."""

    def __init__(self, service: Service, store: ObjectStore) -> None:
        self.service = service
        self.store = store

    # responses ---------------------------------------------------------------------------------------------
    def create(self, principal: Principal, body: ResponsesRequest, *, request_id: str | None = None) -> Events:
        """Check the request and start answering it: ``("created", response)``, ``("item", item)`` for each output
        item as it is done, then ``("done", response)``. A bad request raises here, before anything is sent."""
        owner = principal.key_id
        conversation = _conversation_id(body.conversation)
        if conversation and body.previous_response_id:
            raise ValueError("previous_response_id and conversation: send one of them, not both")
        functions, file_search, echoed = parse_tools(body.tools)
        items = normalize_items(body.input)
        if conversation:
            self.store.get("conversation", conversation, owner)
            history = self.store.items(conversation, owner)[0]
        else:
            history = self._chain(body.previous_response_id, owner) if body.previous_response_id else []
        context = [*history, *items]
        if not any(i.get("role") == "user" or i["type"] == "function_call_output" for i in context):
            raise ValueError("input: no user message to answer")
        paused = self._paused(items, owner)
        if paused is not None or file_search:
            events = self._agent(principal, body, context, functions, paused, request_id)
        elif functions:
            events = self._turn(principal, body, context, functions, request_id)
        else:
            events = self._grounded(principal, body, context, request_id)
        response = {
            "id": new_id("resp"), "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "model": body.model or self.service.project.spec.project, "output": [], "error": None,
            "incomplete_details": None, "instructions": body.instructions, "tools": echoed,
            "tool_choice": body.tool_choice or "auto", "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "conversation": {"id": conversation} if conversation else None, "metadata": body.metadata or {},
            "max_output_tokens": body.max_output_tokens, "store": body.store, "text": {"format": {"type": "text"}},
            "truncation": "disabled", "usage": None}
        return self._finish(owner, response, items, events, conversation, body.store, paused)

    def get(self, principal: Principal, response_id: str) -> dict[str, Any]:
        self.service.authorize(principal, Permission.QUERY)
        return public(self.store.get("response", response_id, principal.key_id))

    def _chain(self, response_id: str, owner: str) -> list[dict[str, Any]]:
        """The conversation up to ``response_id``: each response's input and output along previous_response_id."""
        chain: list[dict[str, Any]] = []
        current: str | None = response_id
        while current and len(chain) < MAX_CHAIN:
            found = self.store.get("response", current, owner)
            chain.append(found)
            current = found.get("previous_response_id")
        return [item for found in reversed(chain) for item in [*found.get("_input", []), *found["output"]]]

    def _paused(self, items: Sequence[Mapping[str, Any]], owner: str) -> tuple[str, dict[str, Any], str] | None:
        """The agent run that one of the ``function_call_output`` items answers: its call id, state and output."""
        for item in items:
            if item["type"] == "function_call_output":
                state = self.store.find("paused", item["call_id"], owner)
                if state is not None:
                    return item["call_id"], state, str(item["output"])
        return None

    def _grounded(self, principal: Principal, body: ResponsesRequest, context: list[dict[str, Any]],
                  request_id: str | None) -> Events:
        """The project's grounded, cited answer to the last user message (the earlier ones shape what is
        retrieved), streamed as the generator writes it: ``("start", item)``, ``("delta", text)``…, then the
        checked answer as the item."""
        question, history, _ = agent_question(context)
        answers = self.service.stream_query(principal, question, history=[h["content"] for h in history
                                                                          if h["role"] == "user"],
                                            max_tokens=body.max_output_tokens, request_id=request_id,
                                            operation="responses")

        def events() -> Events:
            item = message_item("assistant", "", status="in_progress")
            try:
                for event in answers:
                    if event["event"] == "sources":  # retrieval is done: the answer's text comes next
                        yield "start", item
                    elif event["event"] == "token":
                        yield "delta", {"item_id": item["id"], "text": event["text"]}
                    elif event["event"] == "answer":
                        answer = event["answer"]
                        content = {**item["content"][0], "text": answer["answer"],
                                   "annotations": citations(answer.get("citations") or [], answer["answer"])}
                        yield "item", {**item, "status": "completed", "content": [content]}
                        usage = answer.get("usage") or {}
                        yield "end", {"trace_id": answer.get("trace_id"), "usage": _usage(
                            int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))}
            finally:
                answers.close()

        return events()

    def _turn(self, principal: Principal, body: ResponsesRequest, context: list[dict[str, Any]],
              functions: list[dict[str, Any]], request_id: str | None) -> Events:
        """One turn of the client's agent loop over ``context`` (run now: a refusal is an error, not a stream)."""
        trace_id, turn = self.service.chat_with_tools(
            principal, chat_messages(context, body.instructions), functions, tool_choice=chat_tool_choice(
                body.tool_choice), max_tokens=body.max_output_tokens, request_id=request_id, operation="responses")
        end: dict[str, Any] = {"trace_id": trace_id, "usage": _usage(turn.prompt_tokens, turn.completion_tokens)}
        if turn.finish_reason == "length":
            end["incomplete"] = "max_output_tokens"

        def events() -> Events:
            for call in turn.tool_calls:
                yield "item", function_call_item(call["id"], call["function"]["name"], call["function"]["arguments"])
            if not turn.tool_calls:
                yield "item", message_item("assistant", turn.content or "")
            yield "end", end

        return events()

    def _agent(self, principal: Principal, body: ResponsesRequest, context: list[dict[str, Any]],
               functions: list[dict[str, Any]], paused: tuple[str, dict[str, Any], str] | None,
               request_id: str | None) -> Events:
        """The spec's agent with its tools and the client's functions, started or resumed."""
        if paused is not None:
            _, state, output = paused
            turns = self.service.agent_turns(principal, resume=state["state"], output=output,
                                             operation="responses", request_id=request_id)
        else:
            if context and context[-1]["type"] == "function_call_output":
                raise ValueError(f"input: the function_call_output of {context[-1]['call_id']} answers no run of "
                                 "this key that waits for it (a run paused by a response made with store: false "
                                 "cannot go on)")
            if body.tool_choice not in (None, "auto"):
                raise ValueError("tool_choice: with file_search the agent chooses its tools; use auto")
            question, history, system = agent_question(context)
            instructions = "\n\n".join(p for p in (body.instructions or "", system) if p.strip())
            turns = self.service.agent_turns(principal, question=question, history=history, tools=functions,
                                             file_search=True, instructions=instructions, operation="responses",
                                             request_id=request_id)

        def events() -> Events:
            for event in turns:
                if event["event"] == "step" and event["search"]:
                    yield "item", file_search_item(event["step"], event["sources"])
                elif event["event"] == "handback":
                    call = event["handback"]
                    yield "item", function_call_item(call.call_id, call.name,
                                                     json.dumps(call.arguments, ensure_ascii=False))
                    usage = event["usage"]
                    yield "end", {"trace_id": event["trace_id"], "paused": (call.call_id, call.state),
                                  "usage": _usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))}
                elif event["event"] == "run":
                    run, usage = event["run"], event["usage"]
                    end: dict[str, Any] = {"trace_id": event["trace_id"], "usage": _usage(
                        usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))}
                    if run.answer:
                        yield "item", message_item("assistant", run.answer, citations(run.citations, run.answer))
                    if run.status == "failed":
                        end["error"] = run.stop_reason or "the agent failed"
                    elif run.status != "answered":
                        end["incomplete"] = "max_output_tokens"
                    yield "end", end

        return events()

    def _finish(self, owner: str, response: dict[str, Any], items: list[dict[str, Any]], events: Events,
                conversation: str | None, store: bool, paused: tuple[str, dict[str, Any], str] | None) -> Events:
        yield "created", copy.deepcopy(response)
        output: list[dict[str, Any]] = []
        end: dict[str, Any] = {}
        for kind, value in events:
            if kind == "item":
                output.append(value)
                yield "item", value
            elif kind in ("start", "delta"):
                yield kind, value
            else:
                end = value
        status = "failed" if end.get("error") else "incomplete" if end.get("incomplete") else "completed"
        response.update(status=status, output=output, usage=end.get("usage"), completed_at=int(time.time()),
                        flightdeck={"trace_id": end.get("trace_id")})
        if end.get("error"):
            response["error"] = {"code": "server_error", "message": end["error"]}
        if end.get("incomplete"):
            response["incomplete_details"] = {"reason": end["incomplete"]}
        if paused is not None:
            self.store.take("paused", paused[0], owner)
        if store:
            self.store.put("response", response["id"], owner, {**response, "_input": items})
            if end.get("paused"):
                call_id, state = end["paused"]
                self.store.put("paused", call_id, owner, {"state": state, "response_id": response["id"]})
            if conversation:
                self.store.add_items(conversation, owner, [*items, *output])
        yield "done", response

    # conversations -----------------------------------------------------------------------------------------
    def create_conversation(self, principal: Principal, body: ConversationRequest) -> dict[str, Any]:
        self.service.authorize(principal, Permission.QUERY)
        items = normalize_items(body.items or [], "items")
        conversation = {"id": new_id("conv"), "object": "conversation", "created_at": int(time.time()),
                        "metadata": body.metadata or {}}
        self.store.put("conversation", conversation["id"], principal.key_id, conversation)
        self.store.add_items(conversation["id"], principal.key_id, items)
        return conversation

    def conversation(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        self.service.authorize(principal, Permission.QUERY)
        return public(self.store.get("conversation", conversation_id, principal.key_id))

    def add_items(self, principal: Principal, conversation_id: str, body: ItemsRequest) -> dict[str, Any]:
        self.service.authorize(principal, Permission.QUERY)
        self.store.get("conversation", conversation_id, principal.key_id)
        items = normalize_items(body.items, "items")
        self.store.add_items(conversation_id, principal.key_id, items)
        return _page(items, False)

    def items(self, principal: Principal, conversation_id: str, *, limit: int = 20, order: str = "desc",
              after: str | None = None) -> dict[str, Any]:
        self.service.authorize(principal, Permission.QUERY)
        self.store.get("conversation", conversation_id, principal.key_id)
        found, more = self.store.items(conversation_id, principal.key_id, limit=limit, order=order, after=after)
        return _page(found, more)


def _page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


def final_response(events: Events) -> dict[str, Any]:
    """The finished response of :meth:`Responses.create`'s events (a request without ``stream``)."""
    done: dict[str, Any] = {}
    for kind, value in events:
        if kind == "done":
            done = value
    return done


def stream_events(events: Events) -> Iterator[dict[str, Any]]:
    """:meth:`Responses.create`'s events as the Responses API's server-sent events (each with its ``type`` and
    ``sequence_number``): ``response.created``, ``response.in_progress``, per output item ``output_item.added``,
    its own events (a message's ``content_part.added``, ``output_text.delta``, ``output_text.annotation.added``,
    ``output_text.done``, ``content_part.done``; a call's ``function_call_arguments.delta`` and ``.done``; a
    search's ``file_search_call.in_progress``, ``.searching``, ``.completed``) and ``output_item.done``, then
    ``response.completed`` (``response.incomplete``, ``response.failed``). Closing it closes ``events``."""
    sequence = itertools.count()
    index = itertools.count()
    started: dict[str, int] = {}  # a message whose text streams: its output index
    streamed: dict[str, bool] = {}

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, **fields, "sequence_number": next(sequence)}

    try:
        for kind, value in events:
            if kind == "created":
                yield event("response.created", response=value)
                yield event("response.in_progress", response=value)
            elif kind == "start":
                started[value["id"]] = at = next(index)
                yield from _message_start(value, at, event)
            elif kind == "delta":
                if value["text"]:
                    streamed[value["item_id"]] = True
                    yield event("response.output_text.delta", item_id=value["item_id"],
                                output_index=started[value["item_id"]], content_index=0, delta=value["text"],
                                logprobs=[])
            elif kind == "item" and value["id"] in started:
                yield from _item_events(value, started[value["id"]], event, started=True,
                                        streamed=streamed.get(value["id"], False))
            elif kind == "item":
                yield from _item_events(value, next(index), event)
            elif kind == "done":
                final = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
                    value["status"], "response.failed")
                yield event(final, response=value)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _message_start(item: dict[str, Any], at: int, event: Any) -> Iterator[dict[str, Any]]:
    yield event("response.output_item.added", output_index=at, item={**item, "status": "in_progress", "content": []})
    yield event("response.content_part.added", item_id=item["id"], output_index=at, content_index=0,
                part={**item["content"][0], "text": "", "annotations": []})


def _item_events(item: dict[str, Any], at: int, event: Any, *, started: bool = False,
                 streamed: bool = False) -> Iterator[dict[str, Any]]:
    """The events of a finished output item (a message whose start and text were sent already: the rest)."""
    where = {"item_id": item["id"], "output_index": at}
    if item["type"] == "message":
        part = item["content"][0]
        if not started:
            yield from _message_start(item, at, event)
        if not streamed:
            yield event("response.output_text.delta", **where, content_index=0, delta=part["text"], logprobs=[])
        for n, annotation in enumerate(part.get("annotations", [])):
            yield event("response.output_text.annotation.added", **where, content_index=0, annotation_index=n,
                        annotation=annotation)
        yield event("response.output_text.done", **where, content_index=0, text=part["text"], logprobs=[])
        yield event("response.content_part.done", **where, content_index=0, part=part)
    elif item["type"] == "function_call":
        yield event("response.output_item.added", output_index=at,
                    item={**item, "status": "in_progress", "arguments": ""})
        yield event("response.function_call_arguments.delta", **where, delta=item["arguments"])
        yield event("response.function_call_arguments.done", **where, name=item["name"],
                    arguments=item["arguments"])
    else:  # a file search: it has already run
        yield event("response.output_item.added", output_index=at,
                    item={**item, "status": "in_progress", "results": None})
        for stage in ("in_progress", "searching", "completed"):
            yield event(f"response.file_search_call.{stage}", **where)
    yield event("response.output_item.done", output_index=at, item=item)
