"""Answers over a WebSocket (``/v1/ws``): a thin shell over :class:`~flightdeck.serving.service.Service`.

Every message is one JSON object with a ``type``.

Authentication, once per socket (the route needs the ``query`` permission):

- an ``Authorization: Bearer <key>`` header on the handshake, or
- for browsers, which cannot set that header, a first message ``{"type": "auth", "key": "<key>"}`` within
  :data:`AUTH_TIMEOUT_S` seconds.

The server answers ``{"type": "authenticated", "key_id", "role"}``. A refused key (or none in time) gets an
``error`` message, then the socket is closed with code 1008 (policy violation).

Then the client sends::

    {"type": "query", "id": "<its own id>", "question": "...", "conversation_id"?: "...", "max_tokens"?: N}
    {"type": "cancel", "id": "<the id of a running query>"}

and the server sends, each carrying the query's ``id``:

- ``{"type": "sources", "id", "trace_id", "index_version", "hits": [...]}`` once retrieval is done;
- ``{"type": "token", "id", "text"}`` per piece of the answer's text;
- ``{"type": "answer", "id", "answer": {...}}`` the checked answer with its citations and ``trace_id`` (last);
- ``{"type": "cancelled", "id"}`` after a ``cancel``: generation was stopped, no ``answer`` follows;
- ``{"type": "error", "id", "error": {"type", "message", "request_id"}}`` — the error types of the HTTP API.
  A message that is not JSON, not an object, of an unknown type or with bad fields gets an error (with the
  ``id`` when it could be read, else null); the socket stays open.

Several queries may run on one socket at once (at most :data:`MAX_IN_FLIGHT`): they are answered
concurrently, and their events interleave, told apart by ``id`` (an ``id`` still running may not be reused).
Each answer reads the service's blocking iterator in a worker thread, so the event loop is never blocked;
a cancel, or the client going away, closes the iterator, which stops the generation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from flightdeck.governance.access import Permission
from flightdeck.governance.api_keys import AuthenticationError
from flightdeck.serving.errors import error_kind
from flightdeck.serving.requests import CONVERSATION_ID, MAX_BODY_BYTES, MAX_TEXT
from flightdeck.serving.service import Principal, Service

__all__ = ["websocket_router", "AUTH_TIMEOUT_S", "MAX_IN_FLIGHT", "POLICY_VIOLATION"]

_log = logging.getLogger("flightdeck.server")

AUTH_TIMEOUT_S = 10.0
MAX_IN_FLIGHT = 4
POLICY_VIOLATION = 1008  # the close code of a refused socket (RFC 6455)

ClientId = str | int


class WsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["query"]
    id: ClientId
    question: str = Field(min_length=1, max_length=MAX_TEXT)
    conversation_id: str | None = Field(None, min_length=1, max_length=64, pattern=CONVERSATION_ID)
    max_tokens: int | None = Field(None, ge=1, le=32768)


class WsCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["cancel"]
    id: ClientId


@dataclass(eq=False)
class _Running:
    """One query being answered: its task, and whether it was asked to stop."""

    task: asyncio.Task[None] | None = None
    stop: bool = False
    gone: bool = False  # the client went away: close, send nothing
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors())


def websocket_router(service: Service) -> APIRouter:
    """The ``/v1/ws`` route over ``service``."""
    router = APIRouter()
    metrics = service.metrics

    def error(kind: str, message: str, client_id: ClientId | None = None, request_id: str = "") -> dict[str, Any]:
        metrics.observe_error(kind)
        return {"type": "error", "id": client_id,
                "error": {"type": kind, "message": message, "request_id": request_id}}

    @router.websocket("/v1/ws")
    async def answers(websocket: WebSocket) -> None:
        await websocket.accept()
        send_lock = asyncio.Lock()

        async def send(message: dict[str, Any]) -> bool:
            """Send one message; False when the client is gone."""
            try:
                async with send_lock:
                    await websocket.send_text(json.dumps(message, ensure_ascii=False))
                return True
            except (WebSocketDisconnect, RuntimeError, OSError):
                return False

        caller = await _authenticate(websocket, service, send, error)
        if caller is None:
            return
        running: dict[ClientId, _Running] = {}  # by the client's id, until its last message is sent
        alive: set[_Running] = set()  # until its task ends (the event loop keeps only weak references)

        def release(cid: ClientId, run: _Running) -> None:
            """The id is free again (before the last message, so that the client may reuse it at once)."""
            if running.get(cid) is run:
                del running[cid]

        async def answer(query: WsQuery, run: _Running) -> None:
            cid = query.id
            events: Iterator[dict[str, Any]] | None = None
            done = object()
            try:
                events = await run_in_threadpool(
                    service.stream_query, caller, query.question, conversation_id=query.conversation_id,
                    max_tokens=query.max_tokens, request_id=run.request_id, operation="ws")
                while not run.stop and not run.gone:
                    event = await run_in_threadpool(next, events, done)
                    if event is done or run.stop or run.gone:
                        break
                    if event["event"] == "answer":
                        release(cid, run)
                    body = {k: v for k, v in event.items() if k != "event"}
                    if not await send({"type": event["event"], "id": cid, **body}):
                        run.gone = True
            except Exception as exc:  # the answer failed: the error goes to its id, the socket stays
                status, kind, message = error_kind(exc)
                if status == 500:
                    _log.error("websocket query %s failed", run.request_id, exc_info=exc)
                release(cid, run)
                if not run.gone:
                    await send(error(kind, message, cid, run.request_id))
            finally:
                if events is not None:
                    await run_in_threadpool(events.close)  # stops the generation when it did not finish
                release(cid, run)
            if run.stop and not run.gone:
                await send({"type": "cancelled", "id": cid})

        def start(query: WsQuery) -> None:
            run = running[query.id] = _Running()
            alive.add(run)
            run.task = asyncio.get_running_loop().create_task(answer(query, run))
            run.task.add_done_callback(lambda _: alive.discard(run))

        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                reply = _dispatch(message, running, start, error)
                if reply is not None and not await send(reply):
                    break
        finally:
            for run in alive:
                run.gone = True
            tasks = [r.task for r in alive if r.task is not None]
            if tasks:  # each closes its iterator once its current item is read
                await asyncio.gather(*tasks, return_exceptions=True)
            if websocket.client_state is WebSocketState.CONNECTED:
                try:
                    await websocket.close()
                except (RuntimeError, OSError):
                    pass

    return router


async def _authenticate(websocket: WebSocket, service: Service, send: Any, error: Any) -> Principal | None:
    """The caller of ``websocket`` (header or first message), or None after refusing it (error, close 1008)."""
    try:
        header = websocket.headers.get("authorization")
        if header or service.keys is None:
            caller = service.authenticate(header)
        else:
            caller = service.authenticate(f"Bearer {await _auth_message(websocket)}")
        service.check(caller, Permission.QUERY)
    except WebSocketDisconnect:
        return None
    except Exception as exc:
        status, kind, message = error_kind(exc)
        if status == 500:
            _log.error("websocket authentication failed", exc_info=exc)
        await send(error(kind, message))
        try:
            await websocket.close(code=POLICY_VIOLATION, reason=kind)
        except (RuntimeError, OSError):
            pass
        return None
    await send({"type": "authenticated", "key_id": caller.key_id, "role": caller.role.value})
    return caller


async def _auth_message(websocket: WebSocket) -> str:
    """The key of the first message, which must be ``{"type": "auth", "key": "..."}``."""
    try:
        message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
    except TimeoutError:
        raise AuthenticationError(f"no API key within {AUTH_TIMEOUT_S:g} s: send `Authorization: Bearer <key>` "
                                  'on the handshake or a first message {"type": "auth", "key": "<key>"}') from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    try:
        data = json.loads(message.get("text") or message.get("bytes") or b"")
    except ValueError:
        data = None
    key = data.get("key") if isinstance(data, dict) and data.get("type") == "auth" else None
    if not isinstance(key, str) or not key.strip():
        raise AuthenticationError('no API key: the first message must be {"type": "auth", "key": "<key>"} '
                                  "(or send `Authorization: Bearer <key>` on the handshake)")
    return key.strip()


def _dispatch(message: dict[str, Any], running: dict[ClientId, _Running], start: Any,
              error: Any) -> dict[str, Any] | None:
    """Act on one client message; the reply to send at once, if any (the answers send their own)."""
    raw = message.get("text")
    if raw is None:
        raw = (message.get("bytes") or b"").decode("utf-8", "replace")
    if len(raw.encode("utf-8")) > MAX_BODY_BYTES:
        return error("too_large", f"the message is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return error("invalid_request", f"the message is not JSON: {exc}")
    if not isinstance(data, dict):
        return error("invalid_request", "a message is a JSON object with a `type`")
    cid = data.get("id") if isinstance(data.get("id"), str | int) and not isinstance(data.get("id"), bool) else None
    kind = data.get("type")
    try:
        if kind == "query":
            query = WsQuery.model_validate(data)
            if query.id in running:
                return error("invalid_request", f"a query with id {query.id!r} is still running", cid)
            if len(running) >= MAX_IN_FLIGHT:
                return error("rate_limited", f"at most {MAX_IN_FLIGHT} queries at once on one socket", cid)
            start(query)
            return None
        if kind == "cancel":
            cancel = WsCancel.model_validate(data)
            target = running.get(cancel.id)
            if target is None:
                return error("not_found", f"no query with id {cancel.id!r} is running", cid)
            target.stop = True
            return None
        if kind == "auth":
            return error("invalid_request", "this socket is already authenticated", cid)
    except ValidationError as exc:
        return error("invalid_request", _problems(exc), cid)
    return error("invalid_request", f"unknown message type {kind!r}: send query or cancel", cid)
