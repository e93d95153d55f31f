"""The HTTP API (FastAPI): a thin shell over :class:`~flightdeck.serving.service.Service`.

Deny by default: :data:`ROUTE_PERMISSIONS` maps every route to the permission it needs (None: public), the app
refuses to start with a route the table does not name, and each protected route checks its permission before
its handler runs. Every error is JSON of one shape, ``{"error": {"type", "message", "request_id"}}`` (which is
also the shape the OpenAI SDK reads); a malformed request never takes the server down.

Routes: ``/v1/query`` and ``/v1/search`` (flightdeck's own), ``/v1/chat/completions``, ``/v1/embeddings`` and
``/v1/models`` (OpenAI-compatible; chat completions with ``tools`` are a turn of the client's own agent),
``/v1/agents`` and ``/v1/agents/{name}/runs`` (the spec's agent), ``/v1/responses`` and ``/v1/conversations``
(OpenAI's Responses API: function tools and file_search), ``/v1/assistants`` and ``/v1/threads`` (OpenAI's
Assistants API, sunset by OpenAI, served locally), ``/v1/traces/{id}``, ``/v1/audit`` and
``/v1/audit/verify`` (admin), ``/metrics`` (Prometheus), ``/health``, ``/ready``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Literal

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flightdeck.core import __version__
from flightdeck.errors import FlightdeckError
from flightdeck.governance.access import Permission
from flightdeck.monitoring.metrics import ServerMetrics
from flightdeck.serving.assistants import ROUTES as ASSISTANT_ROUTES
from flightdeck.serving.assistants import Assistants, assistants_router
from flightdeck.serving.documents import MAX_UPLOAD_BYTES, UploadRefused
from flightdeck.serving.errors import error_kind as _kind
from flightdeck.serving.openai_compat import (
    ChatCompletionRequest,
    EmbeddingsRequest,
    chat_completion,
    chat_completion_chunks,
    chat_question,
    embeddings_response,
    models_response,
    tool_completion,
    tool_completion_chunks,
    tool_messages,
    validate_inputs,
)
from flightdeck.serving.openai_store import ObjectStore
from flightdeck.serving.playground import playground_router
from flightdeck.serving.requests import (
    MAX_BODY_BYTES,
    AgentRunRequest,
    PromoteRequest,
    QueryRequest,
    ReviewRequest,
    RollbackRequest,
    SearchRequest,
)
from flightdeck.serving.responses import (
    ConversationRequest,
    ItemsRequest,
    Responses,
    ResponsesRequest,
    final_response,
    stream_events,
)
from flightdeck.serving.service import Principal, RateLimited, RequestTimeout, Service
from flightdeck.serving.websocket import websocket_router

__all__ = ["create_app", "ROUTE_PERMISSIONS", "MAX_BODY_BYTES", "SearchRequest", "QueryRequest"]

_log = logging.getLogger("flightdeck.server")

# Every route and what it needs; None is public. A route missing here stops the app from starting.
ROUTE_PERMISSIONS: dict[tuple[str, str], Permission | None] = {
    ("GET", "/health"): None,
    ("GET", "/ready"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/"): None,  # the playground: a static page, no data (its API calls carry keys)
    ("GET", "/playground/{name}"): None,
    ("POST", "/v1/search"): Permission.SEARCH,
    ("POST", "/v1/query"): Permission.QUERY,
    ("POST", "/v1/chat/completions"): Permission.QUERY,
    ("POST", "/v1/embeddings"): Permission.QUERY,
    ("GET", "/v1/models"): Permission.QUERY,
    ("GET", "/v1/traces/{trace_id}"): Permission.QUERY,
    ("GET", "/metrics"): Permission.METRICS,
    ("WS", "/v1/ws"): Permission.QUERY,
    ("POST", "/v1/documents"): Permission.DOCUMENTS_WRITE,
    ("GET", "/v1/documents/{document_id:path}"): Permission.DOCUMENTS_READ,
    ("DELETE", "/v1/documents/{document_id:path}"): Permission.DOCUMENTS_WRITE,
    ("POST", "/v1/batch"): Permission.QUERY,
    ("GET", "/v1/batch/{job_id}"): Permission.QUERY,
    ("GET", "/v1/batch/{job_id}/results"): Permission.QUERY,
    ("GET", "/v1/releases"): Permission.RELEASES_READ,
    ("GET", "/v1/releases/{ref}"): Permission.RELEASES_READ,
    ("POST", "/v1/releases/{ref}/approve"): Permission.RELEASES_APPROVE,
    ("POST", "/v1/releases/{ref}/reject"): Permission.RELEASES_APPROVE,
    ("POST", "/v1/releases/{ref}/promote"): Permission.RELEASES_PROMOTE,
    ("POST", "/v1/releases/rollback"): Permission.RELEASES_PROMOTE,
    ("GET", "/v1/agents"): Permission.QUERY,
    ("POST", "/v1/agents/{name}/runs"): Permission.QUERY,
    ("POST", "/v1/responses"): Permission.QUERY,
    ("GET", "/v1/responses/{response_id}"): Permission.QUERY,
    ("POST", "/v1/conversations"): Permission.QUERY,
    ("GET", "/v1/conversations/{conversation_id}"): Permission.QUERY,
    ("GET", "/v1/conversations/{conversation_id}/items"): Permission.QUERY,
    ("POST", "/v1/conversations/{conversation_id}/items"): Permission.QUERY,
    **{route: Permission.QUERY for route in ASSISTANT_ROUTES},
    ("GET", "/v1/lineage/{ref}"): Permission.RELEASES_READ,
    ("GET", "/v1/audit"): Permission.AUDIT_READ,
    ("GET", "/v1/audit/verify"): Permission.AUDIT_READ,
}


class DocumentText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=160, description="its file name, e.g. notes.md (the type "
                                                                "chooses the parser)")
    text: str = Field(min_length=1, description="the document's text")


async def _upload(request: Request) -> tuple[str, bytes]:
    """The file name and bytes of an upload: a multipart form's ``file`` field, or JSON ``{name, text}``."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_UPLOAD_BYTES)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise UploadRefused("file: send the document as the multipart field `file`")
        try:
            return str(form.get("name") or upload.filename or ""), await upload.read()
        finally:
            await form.close()
    if kind == "application/json":
        try:
            body = DocumentText.model_validate_json(await request.body())
        except ValueError as exc:
            raise UploadRefused(f"body: {exc}") from None
        return body.name, body.text.encode("utf-8")
    raise UploadRefused("send multipart/form-data with a `file` field, or JSON {\"name\", \"text\"}")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[dict[str, Any]] = Field(min_length=1, max_length=10000,
                                            description='each {"question": ..., "id": optional}')


def _error(status: int, kind: str, message: str, request: Request,
           headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "")
    return JSONResponse({"error": {"type": kind, "message": message, "request_id": request_id}},
                        status_code=status, headers={**(headers or {}), "X-Request-ID": request_id})


def _sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


async def _drain(request: Request, events: Iterator[Any], render: Callable[[Any], str],
                 on_error: Callable[[Exception], str]) -> AsyncIterator[str]:
    """Send a synchronous event iterator (the service's) as SSE text, reading it in a worker thread. When the
    client goes away (asked between two events: a server may drop the writes to a closed connection without a
    word) or the response is cancelled, the iterator is closed, which stops the generation."""
    done = object()
    try:
        while True:
            if await request.is_disconnected():
                _log.info("client went away mid-stream", extra={"request_id": request.state.request_id})
                return
            try:
                item = await run_in_threadpool(next, events, done)
            except Exception as exc:  # the stream has started: the error goes into it, in the same shape
                _log.warning("stream failed: %s", exc)
                yield on_error(exc)
                return
            if item is done:
                return
            yield render(item)
    finally:
        # the response is being cancelled (the client went away): shielded, or this await would be cancelled too
        # and the answer would go on generating for nobody
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_close_when_idle, events)


def _close_when_idle(events: Iterator[Any], wait_s: float = 30.0) -> None:
    """Close a generator, waiting while a worker thread is still inside its ``next()`` (a cancelled read)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            events.close()
            return
        except ValueError:  # "generator already executing"
            if time.monotonic() > deadline:
                _log.warning("a stream could not be closed: its generator kept running for %s s", wait_s)
                return
            time.sleep(0.02)


def _body_cap(path: str) -> int:
    return MAX_UPLOAD_BYTES + (64 << 10) if path in ("/v1/documents", "/v1/batch") else MAX_BODY_BYTES


class RequestMiddleware:
    """Pure ASGI (a BaseHTTPMiddleware would hide a client's disconnect from a streaming answer): a request id on
    every request and response, the body cap (by Content-Length, or while reading a body sent without one),
    and each request's metrics and JSON log line."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        t0 = time.perf_counter()
        status = [500]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length, cap = headers.get("content-length"), _body_cap(scope.get("path", ""))
        too_large = length is not None and (not length.isdigit() or int(length) > cap)
        if not too_large and length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            body = await _read_capped(receive, cap)
            too_large = body is None
            receive = _replay(body or b"", receive)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                given = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in given):  # the error responses carry theirs
                    given.append((b"x-request-id", request_id.encode()))
                message["headers"] = given
            await send(message)

        try:
            if too_large:
                response = JSONResponse({"error": {"type": "too_large", "message": f"the request body is over "
                                                   f"{cap} bytes", "request_id": request_id}}, status_code=413)
                await response(scope, receive, send_with_id)
                self.metrics.observe_error("too_large")
                return
            self.metrics.in_flight.inc()
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self.metrics.in_flight.dec()
        finally:
            route = scope.get("route")
            path = route.path if isinstance(route, APIRoute) else "unmatched"
            seconds = time.perf_counter() - t0
            method = scope.get("method", "")
            self.metrics.observe_request(path, method, status[0], seconds)
            _log.info("request", extra={"request_id": request_id, "method": method, "route": path,
                                        "status": status[0], "ms": round(seconds * 1000, 3),
                                        "key_id": state.get("key_id")})


async def _read_capped(receive: Any, cap: int) -> bytes | None:
    """The body of a request that came without a Content-Length (chunked), or None once it passes ``cap``."""
    parts: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        part = message.get("body", b"")
        seen += len(part)
        if seen > cap:
            return None
        parts.append(part)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive`` that hands ``body`` (already read) to the app, then listens to the client again (so
    that a disconnect is still seen)."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _routes(app: FastAPI) -> list[tuple[Any, str]]:
    """Every route of ``app`` with its full path. FastAPI 0.16x keeps an included router as one entry of
    ``app.routes``; ``iter_route_contexts`` walks into it."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: include_router copied the routes into app.routes
        return [(r, getattr(r, "path", "")) for r in app.routes]
    return [(c.original_route, c.path or "") for c in iter_route_contexts(app.routes)]


def create_app(service: Service) -> FastAPI:
    """The API over ``service``."""
    app = FastAPI(title="flightdeck", version=__version__,
                  description="Grounded, cited answers and hybrid search over a flightdeck project. "
                              "Send `Authorization: Bearer <key>` (`flightdeck keys create`).")
    metrics = service.metrics
    timeout = service.settings.request_timeout_s

    def needs(permission: Permission) -> Callable[[Request], Principal]:
        def principal(request: Request) -> Principal:
            caller = service.authenticate(request.headers.get("authorization"))
            service.check(caller, permission)  # the operation counts the call against the key's limits
            request.state.key_id = caller.key_id
            return caller

        return principal

    async def within_timeout(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.wait_for(run_in_threadpool(fn, *args, **kwargs), timeout)
        except TimeoutError:
            raise RequestTimeout(f"no answer within {timeout:g} s (deployment.server.request_timeout_s)") from None

    app.add_middleware(RequestMiddleware, metrics=metrics)

    def respond_error(request: Request, exc: Exception) -> JSONResponse:
        status, kind, message = _kind(exc)
        metrics.observe_error(kind)
        if status == 500:
            _log.error("request %s failed", getattr(request.state, "request_id", ""), exc_info=exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        return _error(status, kind, message, request, headers)

    for handled in (FlightdeckError, ValueError, Exception):
        app.add_exception_handler(handled, respond_error)  # type: ignore[arg-type]

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:  # unparsable body, 404, 405
        kinds = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
        kind = kinds.get(exc.status_code, "http_error")
        metrics.observe_error(kind)
        return _error(exc.status_code, kind, str(exc.detail), request, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        metrics.observe_error("invalid_request")
        return _error(422, "invalid_request", problems, request)

    def stream_error(request: Request) -> Callable[[Exception], str]:
        def render(exc: Exception) -> str:
            _, kind, message = _kind(exc)
            metrics.observe_error(kind)
            return _sse({"error": {"type": kind, "message": message, "request_id": request.state.request_id}},
                        "error")

        return render

    @app.get("/health", summary="the process is up")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/ready", summary="an index is there to answer from")
    def ready(request: Request) -> JSONResponse:
        state = service.ready()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.post("/v1/search", summary="hybrid search over the current index")
    async def search(body: SearchRequest, caller: Principal = Depends(needs(Permission.SEARCH))) -> dict[str, Any]:
        return await within_timeout(service.search, caller, body.query, k=body.k, mode=body.mode, where=body.where)

    @app.post("/v1/query", summary="a grounded answer with numbered citations (stream: server-sent events)")
    async def query(request: Request, body: QueryRequest,
                    caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        options = {"conversation_id": body.conversation_id, "max_tokens": body.max_tokens,
                   "request_id": request.state.request_id}
        if not body.stream:
            return await within_timeout(service.query, caller, body.question, **options)
        events = service.stream_query(caller, body.question, **options)
        return StreamingResponse(_drain(request, events, lambda e: _sse({k: v for k, v in e.items() if k != "event"},
                                                               e["event"]), stream_error(request)),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat completions: cited answers "
              "(the citations in the extra `flightdeck` field); stream: server-sent events")
    async def chat(request: Request, body: ChatCompletionRequest,
                   caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        if body.tools:  # a turn of the client's own agent loop: call one of its tools, or answer
            trace_id, turn = await within_timeout(
                service.chat_with_tools, caller, tool_messages(body), body.tools, tool_choice=body.tool_choice,
                max_tokens=body.max_completion_tokens or body.max_tokens, request_id=request.state.request_id)
            completion = tool_completion(body.model, turn, trace_id)
            if not body.stream:
                return completion
            return StreamingResponse(_drain(request, tool_completion_chunks(body.model, completion),
                                            lambda c: _sse(c), stream_error(request)),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        question, history = chat_question(body)
        options = {"history": history, "max_tokens": body.max_completion_tokens or body.max_tokens,
                   "request_id": request.state.request_id, "operation": "chat"}
        if not body.stream:
            events = await within_timeout(lambda: list(service.stream_query(caller, question, **options)))
            return chat_completion(body.model, events[-1]["answer"])
        chunks = chat_completion_chunks(body.model, service.stream_query(caller, question, **options),
                                        include_usage=bool(body.stream_options and body.stream_options.include_usage))
        return StreamingResponse(_drain(request, chunks, lambda c: _sse(c), stream_error(request)),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/v1/agents", summary="the agents this server runs (agents.tools) and their tools")
    def agents(caller: Principal = Depends(needs(Permission.QUERY))) -> dict[str, Any]:
        return {"object": "list", "data": service.agents(caller)}

    @app.post("/v1/agents/{name}/runs", summary="run an agent: its steps and a cited answer (stream: server-sent "
              "events, one `step` as each ends, then `run`)")
    async def agent_run(request: Request, name: str, body: AgentRunRequest,
                        caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        if not body.stream:
            return await within_timeout(service.run_agent, caller, name, body.question,
                                        conversation_id=body.conversation_id)
        events = service.stream_agent(caller, name, body.question, conversation_id=body.conversation_id)
        return StreamingResponse(_drain(request, events, lambda e: _sse({k: v for k, v in e.items() if k != "event"},
                                                               e["event"]), stream_error(request)),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    objects = ObjectStore(service.base.workspace.engine)  # what keys create through the OpenAI shapes
    responses = Responses(service, objects)

    @app.post("/v1/responses", summary="OpenAI Responses API: function tools (the client runs them) and file_search "
              "(the spec's agent over the index, cited); previous_response_id or conversation; stream: server-sent "
              "events")
    async def create_response(request: Request, body: ResponsesRequest,
                              caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        events = await within_timeout(responses.create, caller, body, request_id=request.state.request_id)
        if not body.stream:
            return await within_timeout(final_response, events)
        return StreamingResponse(_drain(request, stream_events(events), lambda e: _sse(e, e["type"]),
                                        stream_error(request)),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/v1/responses/{response_id}", summary="a response this key created")
    def get_response(response_id: str, caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        return responses.get(caller, response_id)

    @app.post("/v1/conversations", summary="start a conversation (kept per key) that responses continue")
    def create_conversation(body: ConversationRequest, caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        return responses.create_conversation(caller, body)

    @app.get("/v1/conversations/{conversation_id}", summary="a conversation of this key")
    def get_conversation(conversation_id: str, caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        return responses.conversation(caller, conversation_id)

    @app.get("/v1/conversations/{conversation_id}/items", summary="a conversation's items (newest first by default)")
    def conversation_items(conversation_id: str, limit: int = Query(20, ge=1, le=100),
                           order: Literal["asc", "desc"] = "desc", after: str | None = None,
                           caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        return responses.items(caller, conversation_id, limit=limit, order=order, after=after)

    @app.post("/v1/conversations/{conversation_id}/items", summary="add items to a conversation of this key")
    def add_conversation_items(conversation_id: str, body: ItemsRequest,
                               caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        return responses.add_items(caller, conversation_id, body)

    @app.post("/v1/embeddings", summary="OpenAI-compatible embeddings from the index's embedder")
    async def embeddings(body: EmbeddingsRequest, caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        validate_inputs(texts)
        vectors, tokens = await within_timeout(service.embed, caller, texts)
        return embeddings_response(body.model, vectors, tokens, body.encoding_format)

    @app.get("/v1/models", summary="OpenAI-compatible: the models this server answers and embeds with")
    def models(caller: Principal = Depends(needs(Permission.QUERY))) -> dict[str, Any]:
        return models_response(service.project.spec.project, service.models())

    @app.get("/v1/traces/{trace_id}", summary="what happened for one answer (a key reads its own; admin any)")
    def trace(trace_id: str, caller: Principal = Depends(needs(Permission.QUERY))) -> dict[str, Any]:
        return service.trace(caller, trace_id)

    @app.post("/v1/documents", summary="upload a document (multipart `file`, or JSON {name, text}); it is "
              "ingested and searchable when this returns", status_code=201)
    async def add_document(request: Request, caller: Principal = Depends(needs(Permission.DOCUMENTS_WRITE))) -> Any:
        name, content = await _upload(request)
        return await within_timeout(service.add_document, caller, name, content)

    @app.get("/v1/documents/{document_id:path}", summary="a document of the current dataset")
    def get_document(document_id: str, caller: Principal = Depends(needs(Permission.DOCUMENTS_READ))) -> Any:
        return service.document(caller, document_id)

    @app.delete("/v1/documents/{document_id:path}", summary="delete an uploaded document (a new dataset and "
                "index version without it)")
    async def delete_document(document_id: str,
                              caller: Principal = Depends(needs(Permission.DOCUMENTS_WRITE))) -> Any:
        return await within_timeout(service.delete_document, caller, document_id)

    @app.post("/v1/batch", status_code=202, summary="queue a batch of questions: JSONL lines "
              '{"question", "id"?} (Content-Type application/x-ndjson) or JSON {"questions": [...]}')
    async def submit_batch(request: Request, caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await request.body()
        if kind == "application/json":
            try:
                body = BatchRequest.model_validate_json(raw)
            except ValueError as exc:
                raise UploadRefused(f"body: {exc}") from None
            return service.submit_batch(caller, body.questions)
        if kind in ("application/x-ndjson", "application/jsonl", "application/jsonlines", "text/plain"):
            return service.submit_batch(caller, raw)
        raise UploadRefused("send JSONL (Content-Type application/x-ndjson) or JSON {\"questions\": [...]}")

    @app.get("/v1/batch/{job_id}", summary="a batch job's state and counts")
    def batch_status(job_id: str, caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        return service.batch(caller, job_id)

    @app.get("/v1/batch/{job_id}/results", summary="a batch job's results as JSONL (so far, while it runs)")
    def batch_results(job_id: str, caller: Principal = Depends(needs(Permission.QUERY))) -> Any:
        return FileResponse(service.batch_results(caller, job_id), media_type="application/x-ndjson")

    @app.get("/v1/releases", summary="every release, newest first, and the one this server answers with")
    def list_releases(stage: str | None = None, caller: Principal = Depends(needs(Permission.RELEASES_READ))) -> Any:
        return service.releases(caller, stage)

    @app.post("/v1/releases/rollback", summary="put the previous production release back (admin)")
    def rollback_release(body: RollbackRequest, caller: Principal = Depends(needs(Permission.RELEASES_PROMOTE))) -> Any:
        return service.rollback_release(caller, body.to, body.comment)

    @app.get("/v1/releases/{ref}", summary="a release: manifest, history, what promotion still needs, integrity")
    def show_release(ref: str, caller: Principal = Depends(needs(Permission.RELEASES_READ))) -> Any:
        return service.release_detail(caller, ref)

    @app.post("/v1/releases/{ref}/approve", summary="approve a release (approver or admin)")
    def approve_release(ref: str, body: ReviewRequest,
                        caller: Principal = Depends(needs(Permission.RELEASES_APPROVE))) -> Any:
        return service.review_release(caller, ref, "approved", body.comment)

    @app.post("/v1/releases/{ref}/reject", summary="reject a release (approver or admin)")
    def reject_release(ref: str, body: ReviewRequest,
                       caller: Principal = Depends(needs(Permission.RELEASES_APPROVE))) -> Any:
        return service.review_release(caller, ref, "rejected", body.comment)

    @app.post("/v1/releases/{ref}/promote", summary="promote a release when governance.approvals allows it (admin)")
    def promote_release(ref: str, body: PromoteRequest,
                        caller: Principal = Depends(needs(Permission.RELEASES_PROMOTE))) -> Any:
        return service.promote_release(caller, ref, body.stage, body.override_reason, body.comment)

    @app.get("/v1/lineage/{ref}", summary="where an answer (trace id), a release or a chunk came from")
    def lineage(ref: str, caller: Principal = Depends(needs(Permission.RELEASES_READ))) -> Any:
        return service.lineage(caller, ref)

    @app.get("/v1/audit", summary="audit log entries, oldest first: the newest `limit` since `since` (2026-12-01 or "
             "7d), by `actor` and `action` (release.* for a prefix)")
    def audit_log(since: str | None = None, actor: str | None = None, action: str | None = None, limit: int = 100,
                  caller: Principal = Depends(needs(Permission.AUDIT_READ))) -> Any:
        return service.audit_entries(caller, since=since, actor=actor, action=action, limit=limit)

    @app.get("/v1/audit/verify", summary="check the audit log's hash chain, signatures and anchors; names the first "
             "bad entry")
    def audit_verify(caller: Principal = Depends(needs(Permission.AUDIT_READ))) -> Any:
        return service.audit_verify(caller)

    @app.get("/metrics", summary="Prometheus metrics: latency per route and stage, tokens, cost, errors")
    def metrics_route(caller: Principal = Depends(needs(Permission.METRICS))) -> Response:
        data, content_type = metrics.exposition()
        return Response(data, media_type=content_type)

    app.include_router(assistants_router(Assistants(service, objects), needs, within_timeout))

    app.include_router(websocket_router(service))

    app.include_router(playground_router())

    routes = _routes(app)
    unlisted = sorted(f"{m} {path}" for r, path in routes if isinstance(r, APIRoute) for m in r.methods
                      if (m, path) not in ROUTE_PERMISSIONS)
    unlisted += sorted(f"WS {path}" for r, path in routes if isinstance(r, APIWebSocketRoute)
                       if ("WS", path) not in ROUTE_PERMISSIONS)
    if unlisted:
        raise RuntimeError(f"routes without a permission in ROUTE_PERMISSIONS (deny by default): {unlisted}")
    return app
