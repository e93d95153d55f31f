"""OpenAI's Assistants API (checklist 3.2, 3.3), which OpenAI sunset on 2026-08-26: the subset a typical application
uses, served locally over the same agent runtime as ``/v1/responses``, so that an application built on it keeps
working against flightdeck.

- ``/v1/assistants``: an assistant's instructions and tools — ``file_search`` (the spec's agent over the index) and
  ``function`` tools (the client runs them);
- ``/v1/threads`` and ``/v1/threads/{id}/messages``: a thread's messages; an assistant's answer carries a
  ``file_citation`` annotation per cited document, whose ``text`` is the ``【n†file】`` marker it holds;
- ``/v1/threads/{id}/runs``: a run answers the thread's last user message with the earlier messages as history. It
  runs within the request that creates it and is returned finished (``completed``, ``failed``, ``incomplete``) or
  ``requires_action``: a call of the client's function, with ``submit_tool_outputs`` to send its output, after which
  the run goes on where it stopped (:mod:`flightdeck.agents.resumable`). ``create_and_poll`` finds it done at its
  first poll. Streamed runs are not served.

What a key creates is kept per key (:class:`~flightdeck.serving.openai_store.ObjectStore`): another key is told
that there is none. Every run is traced (operation ``assistants``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from flightdeck.governance.access import Permission
from flightdeck.serving.openai_store import ObjectNotFound, ObjectStore, new_id, public
from flightdeck.serving.response_items import MAX_ITEM_TEXT, content_text, file_name, parse_tools
from flightdeck.serving.service import Principal, Service

__all__ = ["Assistants", "AssistantRequest", "ThreadRequest", "MessageRequest", "RunRequest", "ToolOutputsRequest",
           "assistants_router", "ROUTES"]

ID = r"^[A-Za-z0-9_-]+$"
Order = Literal["asc", "desc"]

# the routes of assistants_router, for api.py's table of permissions
ROUTES = [("POST", "/v1/assistants"), ("GET", "/v1/assistants"), ("GET", "/v1/assistants/{assistant_id}"),
          ("DELETE", "/v1/assistants/{assistant_id}"), ("POST", "/v1/threads"), ("GET", "/v1/threads/{thread_id}"),
          ("DELETE", "/v1/threads/{thread_id}"), ("POST", "/v1/threads/{thread_id}/messages"),
          ("GET", "/v1/threads/{thread_id}/messages"), ("POST", "/v1/threads/{thread_id}/runs"),
          ("GET", "/v1/threads/{thread_id}/runs"), ("GET", "/v1/threads/{thread_id}/runs/{run_id}"),
          ("POST", "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs"),
          ("POST", "/v1/threads/{thread_id}/runs/{run_id}/cancel")]


class AssistantRequest(BaseModel):
    """``POST /v1/assistants``; temperature, top_p, response_format, tool_resources are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200, description="echoed back; the spec chooses the models")
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    instructions: str | None = Field(None, max_length=MAX_ITEM_TEXT)
    tools: list[Any] | None = Field(None, max_length=64, description="file_search and function tools")
    metadata: dict[str, str] | None = Field(None, max_length=16)


class MessageRequest(BaseModel):
    """``POST /v1/threads/{id}/messages``; attachments are accepted and ignored (the index is what is searched)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["user", "assistant"]
    content: str | list[Any]
    metadata: dict[str, str] | None = Field(None, max_length=16)


class ThreadRequest(BaseModel):
    """``POST /v1/threads``."""

    model_config = ConfigDict(extra="allow")
    messages: list[MessageRequest] | None = Field(None, max_length=32)
    metadata: dict[str, str] | None = Field(None, max_length=16)


class RunRequest(BaseModel):
    """``POST /v1/threads/{id}/runs``."""

    model_config = ConfigDict(extra="allow")
    assistant_id: str = Field(max_length=80, pattern=ID)
    instructions: str | None = Field(None, max_length=MAX_ITEM_TEXT, description="instead of the assistant's")
    additional_instructions: str | None = Field(None, max_length=MAX_ITEM_TEXT)
    additional_messages: list[MessageRequest] | None = Field(None, max_length=32)
    tools: list[Any] | None = Field(None, max_length=64, description="instead of the assistant's")
    metadata: dict[str, str] | None = Field(None, max_length=16)
    stream: bool = Field(False, description="not served: a run is returned finished or waiting for tool outputs")


class ToolOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool_call_id: str = Field(min_length=1, max_length=80)
    output: str = Field(max_length=MAX_ITEM_TEXT)


class ToolOutputsRequest(BaseModel):
    """``POST /v1/threads/{id}/runs/{run_id}/submit_tool_outputs``."""

    model_config = ConfigDict(extra="forbid")
    tool_outputs: list[ToolOutput] = Field(min_length=1, max_length=16)
    stream: bool = False


def _tools(raw: list[Any] | None) -> tuple[list[dict[str, Any]], bool, list[dict[str, Any]]]:
    """The function tools (chat shape), whether file_search is on, and the tools as an assistant shows them."""
    functions, file_search, _ = parse_tools(raw)
    return functions, file_search, [*([{"type": "file_search"}] if file_search else []), *functions]


def _message(thread_id: str, role: str, text: str, annotations: list[dict[str, Any]] | None = None, *,
             assistant_id: str | None = None, run_id: str | None = None,
             metadata: dict[str, str] | None = None) -> dict[str, Any]:
    now = int(time.time())
    return {"id": new_id("msg"), "object": "thread.message", "created_at": now, "thread_id": thread_id,
            "role": role, "content": [{"type": "text", "text": {"value": text, "annotations": annotations or []}}],
            "assistant_id": assistant_id, "run_id": run_id, "attachments": [], "metadata": metadata or {},
            "status": "completed", "completed_at": now, "incomplete_at": None, "incomplete_details": None}


def _cited(answer: str, cited: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The answer with a ``【n†file】`` marker per cited document, and its ``file_citation`` annotations."""
    text, annotations, seen = answer, [], set()
    for cite in cited:
        document = cite.get("document_id")
        if not document or document in seen:
            continue
        seen.add(document)
        marker = f"【{len(seen)}†{file_name(cite)}】"
        annotations.append({"type": "file_citation", "text": marker, "start_index": len(text),
                            "end_index": len(text) + len(marker), "file_citation": {"file_id": document}})
        text += marker
    return text, annotations


def _page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


class Assistants:
    """The Assistants, Threads, Messages and Runs endpoints over ``service`` and ``store``."""

    def __init__(self, service: Service, store: ObjectStore) -> None:
        self.service = service
        self.store = store

    def _owner(self, principal: Principal) -> str:
        self.service.authorize(principal, Permission.QUERY)
        return principal.key_id

    # assistants ------------------------------------------------------------------------------------------------
    def create_assistant(self, principal: Principal, body: AssistantRequest) -> dict[str, Any]:
        owner = self._owner(principal)
        _, _, tools = _tools(body.tools)
        assistant = {"id": new_id("asst"), "object": "assistant", "created_at": int(time.time()), "name": body.name,
                     "description": body.description, "model": body.model, "instructions": body.instructions,
                     "tools": tools, "metadata": body.metadata or {}, "tool_resources": {}, "temperature": None,
                     "top_p": None, "response_format": "auto"}
        self.store.put("assistant", assistant["id"], owner, assistant)
        return assistant

    def assistant(self, principal: Principal, assistant_id: str) -> dict[str, Any]:
        return public(self.store.get("assistant", assistant_id, self._owner(principal)))

    def assistants(self, principal: Principal, *, limit: int, order: str, after: str | None,
                   before: str | None) -> dict[str, Any]:
        found, more = self.store.listing("assistant", self._owner(principal), limit=limit, order=order, after=after,
                                         before=before)
        return _page([public(a) for a in found], more)

    def delete_assistant(self, principal: Principal, assistant_id: str) -> dict[str, Any]:
        self.store.remove("assistant", assistant_id, self._owner(principal))
        return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}

    # threads and messages --------------------------------------------------------------------------------------
    def create_thread(self, principal: Principal, body: ThreadRequest) -> dict[str, Any]:
        owner = self._owner(principal)
        thread = {"id": new_id("thread"), "object": "thread", "created_at": int(time.time()),
                  "metadata": body.metadata or {}, "tool_resources": {}}
        messages = [self._new_message(thread["id"], m, f"messages[{i}]") for i, m in enumerate(body.messages or [])]
        self.store.put("thread", thread["id"], owner, thread)
        self.store.add_items(thread["id"], owner, messages)
        return thread

    def thread(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        return public(self.store.get("thread", thread_id, self._owner(principal)))

    def delete_thread(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        self.store.remove("thread", thread_id, self._owner(principal))
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    @staticmethod
    def _new_message(thread_id: str, body: MessageRequest, where: str) -> dict[str, Any]:
        return _message(thread_id, body.role, content_text(body.content, f"{where}.content"), metadata=body.metadata)

    def add_message(self, principal: Principal, thread_id: str, body: MessageRequest) -> dict[str, Any]:
        owner = self._owner(principal)
        self.store.get("thread", thread_id, owner)
        message = self._new_message(thread_id, body, "body")
        self.store.add_items(thread_id, owner, [message])
        return message

    def messages(self, principal: Principal, thread_id: str, *, limit: int, order: str, after: str | None,
                 before: str | None, run_id: str | None = None) -> dict[str, Any]:
        owner = self._owner(principal)
        self.store.get("thread", thread_id, owner)
        if run_id is None:
            found, more = self.store.items(thread_id, owner, limit=limit, order=order, after=after, before=before)
        else:
            found = [m for m in self.store.items(thread_id, owner, order=order)[0] if m.get("run_id") == run_id]
            found, more = found[:limit], len(found) > limit
        return _page(found, more)

    # runs --------------------------------------------------------------------------------------------------
    def create_run(self, principal: Principal, thread_id: str, body: RunRequest, *,
                   request_id: str | None = None) -> dict[str, Any]:
        """Run the assistant on the thread's last user message: the run, finished or waiting for tool outputs."""
        owner = self._owner(principal)
        if body.stream:
            raise ValueError("stream: streamed runs are not served; create the run (or create_and_poll) and read it")
        self.store.get("thread", thread_id, owner)
        assistant = self.store.get("assistant", body.assistant_id, owner)
        functions, file_search, tools = _tools(body.tools) if body.tools is not None else _tools(assistant["tools"])
        added = [self._new_message(thread_id, m, f"additional_messages[{i}]")
                 for i, m in enumerate(body.additional_messages or [])]
        self.store.add_items(thread_id, owner, added)
        thread = self.store.items(thread_id, owner)[0]
        last = max((i for i, m in enumerate(thread) if m["role"] == "user"), default=None)
        if last is None:
            raise ValueError(f"thread {thread_id}: no user message to answer; add one first")
        history = [{"role": m["role"], "content": m["content"][0]["text"]["value"]} for m in thread[:last]]
        instructions = "\n\n".join(p for p in (body.instructions if body.instructions is not None
                                               else assistant.get("instructions") or "",
                                               body.additional_instructions or "") if p.strip())
        events = self.service.agent_turns(principal, question=thread[last]["content"][0]["text"]["value"],
                                          history=history, tools=functions, file_search=file_search,
                                          instructions=instructions, operation="assistants", request_id=request_id)
        now = int(time.time())
        run = {"id": new_id("run"), "object": "thread.run", "created_at": now, "thread_id": thread_id,
               "assistant_id": assistant["id"], "status": "in_progress", "required_action": None, "last_error": None,
               "expires_at": None, "started_at": now, "cancelled_at": None, "failed_at": None, "completed_at": None,
               "incomplete_details": None, "model": assistant["model"], "instructions": instructions,
               "tools": tools, "metadata": body.metadata or {}, "usage": None, "temperature": None, "top_p": None,
               "max_prompt_tokens": None, "max_completion_tokens": None, "response_format": "auto",
               "truncation_strategy": {"type": "auto", "last_messages": None}, "tool_choice": "auto",
               "parallel_tool_calls": True, "flightdeck": {"trace_ids": []}}
        self._advance(owner, run, events)
        self.store.put("run", run["id"], owner, run, parent=thread_id)
        return public(run)

    def _run(self, owner: str, thread_id: str, run_id: str) -> dict[str, Any]:
        run = self.store.get("run", run_id, owner)
        if run["thread_id"] != thread_id:
            raise ObjectNotFound(f"no run {run_id!r} in thread {thread_id}")
        return run

    def run(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        return public(self._run(self._owner(principal), thread_id, run_id))

    def runs(self, principal: Principal, thread_id: str, *, limit: int, order: str, after: str | None,
             before: str | None) -> dict[str, Any]:
        owner = self._owner(principal)
        self.store.get("thread", thread_id, owner)
        found, more = self.store.listing("run", owner, parent=thread_id, limit=limit, order=order, after=after,
                                         before=before)
        return _page([public(r) for r in found], more)

    def submit_tool_outputs(self, principal: Principal, thread_id: str, run_id: str, body: ToolOutputsRequest, *,
                            request_id: str | None = None) -> dict[str, Any]:
        """Give a run that requires action its tool's output; the run goes on, and is returned as it stands."""
        owner = self._owner(principal)
        if body.stream:
            raise ValueError("stream: streamed runs are not served; submit the outputs and read the run")
        run = self._run(owner, thread_id, run_id)
        if run["status"] != "requires_action":
            raise ValueError(f"run {run_id} is {run['status']}: it waits for no tool outputs")
        waiting = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
        outputs = {}
        for i, given in enumerate(body.tool_outputs):
            if given.tool_call_id not in waiting:
                raise ValueError(f"tool_outputs[{i}].tool_call_id: the run waits for {', '.join(waiting)}, "
                                 f"not {given.tool_call_id!r}")
            outputs[given.tool_call_id] = given.output
        missing = [c for c in waiting if c not in outputs]
        if missing:
            raise ValueError(f"tool_outputs: no output for {', '.join(missing)}")
        events = self.service.agent_turns(principal, resume=run["_state"], output=outputs[waiting[0]],
                                          operation="assistants", request_id=request_id)
        run.update(status="in_progress", required_action=None, _state=None)
        self._advance(owner, run, events)
        self.store.replace("run", run_id, owner, run)
        return public(run)

    def cancel(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        """Cancel a run that waits for tool outputs (the others are already over)."""
        owner = self._owner(principal)
        run = self._run(owner, thread_id, run_id)
        if run["status"] != "requires_action":
            raise ValueError(f"run {run_id} is {run['status']}: only a run that requires action can be cancelled")
        run.update(status="cancelled", cancelled_at=int(time.time()), required_action=None, _state=None)
        self.store.replace("run", run_id, owner, run)
        return public(run)

    def _advance(self, owner: str, run: dict[str, Any], events: Iterator[dict[str, Any]]) -> None:
        """Drive the agent's events to a hand-back or the end, and set the run (and the thread's answer) from it."""
        for event in events:
            if event["event"] == "step":
                continue
            run["flightdeck"]["trace_ids"].append(event["trace_id"])
            usage = event["usage"]
            before = run["usage"] or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            prompt = before["prompt_tokens"] + usage.get("prompt_tokens", 0)
            completion = before["completion_tokens"] + usage.get("completion_tokens", 0)
            run["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion}
            if event["event"] == "handback":
                call = event["handback"]
                arguments = json.dumps(call.arguments, ensure_ascii=False)
                run.update(status="requires_action", _state=call.state, required_action={
                    "type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [{
                        "id": call.call_id, "type": "function", "function": {"name": call.name,
                                                                             "arguments": arguments}}]}})
                return
            result = event["run"]
            now = int(time.time())
            if result.answer:
                text, annotations = _cited(result.answer, result.citations)
                self.store.add_items(run["thread_id"], owner, [_message(
                    run["thread_id"], "assistant", text, annotations, assistant_id=run["assistant_id"],
                    run_id=run["id"])])
            if result.status == "answered":
                run.update(status="completed", completed_at=now)
            elif result.status == "failed":
                run.update(status="failed", failed_at=now, last_error={
                    "code": "server_error", "message": result.stop_reason or "the agent failed"})
            else:
                run.update(status="incomplete", incomplete_details={"reason": "max_completion_tokens"})
            return


def assistants_router(api: Assistants, needs: Callable[[Permission], Callable[..., Principal]],
                      within_timeout: Callable[..., Any]) -> APIRouter:
    """The routes of :data:`ROUTES` over ``api`` (``needs``: api.py's permission check; ``within_timeout``: its
    request timeout, for the routes that run the agent)."""
    router = APIRouter()
    caller = Depends(needs(Permission.QUERY))

    @router.post("/v1/assistants", summary="Assistants API: create an assistant (file_search, function tools)")
    def create_assistant(body: AssistantRequest, who: Principal = caller) -> Any:
        return api.create_assistant(who, body)

    @router.get("/v1/assistants", summary="Assistants API: this key's assistants")
    def list_assistants(limit: int = Query(20, ge=1, le=100), order: Order = "desc", after: str | None = None,
                        before: str | None = None, who: Principal = caller) -> Any:
        return api.assistants(who, limit=limit, order=order, after=after, before=before)

    @router.get("/v1/assistants/{assistant_id}", summary="Assistants API: an assistant of this key")
    def get_assistant(assistant_id: str, who: Principal = caller) -> Any:
        return api.assistant(who, assistant_id)

    @router.delete("/v1/assistants/{assistant_id}", summary="Assistants API: delete an assistant")
    def delete_assistant(assistant_id: str, who: Principal = caller) -> Any:
        return api.delete_assistant(who, assistant_id)

    @router.post("/v1/threads", summary="Assistants API: create a thread (with messages)")
    def create_thread(body: ThreadRequest, who: Principal = caller) -> Any:
        return api.create_thread(who, body)

    @router.get("/v1/threads/{thread_id}", summary="Assistants API: a thread of this key")
    def get_thread(thread_id: str, who: Principal = caller) -> Any:
        return api.thread(who, thread_id)

    @router.delete("/v1/threads/{thread_id}", summary="Assistants API: delete a thread and its messages")
    def delete_thread(thread_id: str, who: Principal = caller) -> Any:
        return api.delete_thread(who, thread_id)

    @router.post("/v1/threads/{thread_id}/messages", summary="Assistants API: add a message to a thread")
    def add_message(thread_id: str, body: MessageRequest, who: Principal = caller) -> Any:
        return api.add_message(who, thread_id, body)

    @router.get("/v1/threads/{thread_id}/messages", summary="Assistants API: a thread's messages (answers carry "
                "file_citation annotations)")
    def list_messages(thread_id: str, limit: int = Query(20, ge=1, le=100), order: Order = "desc",
                      after: str | None = None, before: str | None = None, run_id: str | None = None,
                      who: Principal = caller) -> Any:
        return api.messages(who, thread_id, limit=limit, order=order, after=after, before=before, run_id=run_id)

    @router.post("/v1/threads/{thread_id}/runs", summary="Assistants API: run an assistant on a thread; returned "
                 "finished or requires_action")
    async def create_run(request: Request, thread_id: str, body: RunRequest, who: Principal = caller) -> Any:
        return await within_timeout(api.create_run, who, thread_id, body, request_id=request.state.request_id)

    @router.get("/v1/threads/{thread_id}/runs", summary="Assistants API: a thread's runs")
    def list_runs(thread_id: str, limit: int = Query(20, ge=1, le=100), order: Order = "desc", after: str | None = None,
                  before: str | None = None, who: Principal = caller) -> Any:
        return api.runs(who, thread_id, limit=limit, order=order, after=after, before=before)

    @router.get("/v1/threads/{thread_id}/runs/{run_id}", summary="Assistants API: a run")
    def get_run(thread_id: str, run_id: str, who: Principal = caller) -> Any:
        return api.run(who, thread_id, run_id)

    @router.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", summary="Assistants API: the outputs "
                 "of the calls a run requires; the run goes on")
    async def submit_tool_outputs(request: Request, thread_id: str, run_id: str, body: ToolOutputsRequest,
                                  who: Principal = caller) -> Any:
        return await within_timeout(api.submit_tool_outputs, who, thread_id, run_id, body,
                                    request_id=request.state.request_id)

    @router.post("/v1/threads/{thread_id}/runs/{run_id}/cancel", summary="Assistants API: cancel a run that "
                 "requires action")
    def cancel_run(thread_id: str, run_id: str, who: Principal = caller) -> Any:
        return api.cancel(who, thread_id, run_id)

    return router
