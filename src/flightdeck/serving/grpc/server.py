"""The gRPC API (``flightdeck serve --grpc PORT``): a thin shell over :class:`~flightdeck.serving.service.Service`.

The service of ``flightdeck.proto``: ``Query`` (a cited answer), ``Search``, ``Answer`` (the answer streamed:
sources, tokens, then the checked answer) and the public ``Health``. Callers send the metadata
``authorization: Bearer <key>``. Errors are status codes, as :func:`status_of` maps them; a key over its limits
gets ``RESOURCE_EXHAUSTED`` with the trailing metadata ``retry-after`` (seconds), and every reply carries
``x-request-id`` in its trailing metadata.

A call ends when the server's ``deployment.server.request_timeout_s`` or the client's deadline passes, whichever
comes first; when the client cancels or its deadline passes, the service's answer iterator is closed, which stops
the generation. Requests over :data:`MAX_REQUEST_BYTES` are refused by gRPC itself (``RESOURCE_EXHAUSTED``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

from flightdeck.core import __version__
from flightdeck.errors import FlightdeckError, IndexMismatchError, SpecError, WorkspaceError
from flightdeck.governance.api_keys import AuthenticationError
from flightdeck.registry.lookup import optional_import
from flightdeck.serving.service import PermissionDenied, Principal, RateLimited, RequestTimeout, Service

PURPOSE = "flightdeck serve --grpc"
grpc = optional_import("grpc", "grpc", PURPOSE)
optional_import("google.protobuf", "grpc", PURPOSE)

from flightdeck.serving.grpc import flightdeck_pb2 as pb  # noqa: E402
from flightdeck.serving.grpc import flightdeck_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["FlightdeckServicer", "serve_grpc", "status_of", "MAX_REQUEST_BYTES", "MAX_RESPONSE_BYTES"]

_log = logging.getLogger("flightdeck.server")
T = TypeVar("T")

# The largest request gRPC accepts (as the HTTP API's body limit) and the largest reply it sends.
MAX_REQUEST_BYTES = 1 << 20
MAX_RESPONSE_BYTES = 32 << 20
MAX_TEXT = 4000
MAX_K = 100
MAX_TOKENS = 32768
MODES = ("hybrid", "vector", "keyword")
_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ROUTE = "/flightdeck.v1.Flightdeck/"


def status_of(exc: BaseException) -> tuple[Any, str, str]:
    """The gRPC status code, error type and message the API gives for ``exc`` (the type and message are the
    HTTP API's for the same failure)."""
    code = grpc.StatusCode
    if isinstance(exc, AuthenticationError):
        return code.UNAUTHENTICATED, "unauthenticated", str(exc)
    if isinstance(exc, PermissionDenied):
        return code.PERMISSION_DENIED, "forbidden", str(exc)
    if isinstance(exc, RateLimited):
        return code.RESOURCE_EXHAUSTED, "rate_limited", str(exc)
    if isinstance(exc, RequestTimeout):
        return code.DEADLINE_EXCEEDED, "timeout", str(exc)
    if isinstance(exc, FlightdeckError) and isinstance(exc, KeyError):  # a trace, a document that is not there
        return code.NOT_FOUND, "not_found", str(exc)
    if isinstance(exc, SpecError):
        return code.INVALID_ARGUMENT, "invalid_request", "; ".join(p.message for p in exc.problems)
    if isinstance(exc, ValueError):  # a bad field, a bad metadata filter (FilterError), a cap passed
        return code.INVALID_ARGUMENT, "invalid_request", str(exc)
    if isinstance(exc, WorkspaceError | IndexMismatchError):
        return code.UNAVAILABLE, "not_ready", str(exc)
    if isinstance(exc, FlightdeckError):
        return code.INTERNAL, "failed", str(exc)
    return code.INTERNAL, "internal", "the server failed on this request; its log has the details"


class _Events:
    """The service's answer events, read by one thread and stopped from another (the end of the RPC, a timeout).

    A generator cannot be closed while another thread runs it: :meth:`stop` closes it at once when it is idle,
    else :meth:`next` closes it as soon as the item it is waiting for arrives.
    """

    def __init__(self, events: Iterator[dict[str, Any]]) -> None:
        self._events = events
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._closed = False

    def next(self) -> dict[str, Any] | None:
        """The next event, or None when the events ended or were stopped."""
        with self._lock:
            if self._closed:
                return None
            item = next(self._events, None)
            if item is None or self._stopped.is_set():
                self._close()
                return None
            return item

    def stop(self) -> None:
        self._stopped.set()
        if self._lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._events.close()  # the service's finally: the trace is stored, the generation stops


class FlightdeckServicer(pb_grpc.FlightdeckServicer):
    """The ``flightdeck.v1.Flightdeck`` service over ``service``. Unary calls run in a pool of ``max_workers``
    threads, so that a call that runs past its time is answered ``DEADLINE_EXCEEDED`` even while it still runs."""

    def __init__(self, service: Service, max_workers: int = 8) -> None:
        self.service = service
        self._work = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="flightdeck-grpc-work")

    # the calls ------------------------------------------------------------------------------------
    def Query(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        def answer(principal: Principal, request_id: str) -> Any:
            events = _Events(self.service.stream_query(principal, request.question, request_id=request_id,
                                                       **_query_options(request)))
            context.add_callback(events.stop)
            final = self._within(context, lambda: _last_answer(events, context), stop=events.stop)
            return _answer(final)

        return self._unary("Query", request, context, answer)

    def Search(self, request: Any, context: Any) -> Any:  # noqa: N802
        def search(principal: Principal, request_id: str) -> Any:
            options = _search_options(request)
            found = self._within(context, lambda: self.service.search(principal, request.query, **options))
            return _search_response(found)

        return self._unary("Search", request, context, search)

    def Answer(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        t0, request_id, principal = time.perf_counter(), _request_id(context), None
        failure: Exception | None = None
        try:
            _check_query(request)
            principal = self._principal(context)
            events = _Events(self.service.stream_query(principal, request.question, request_id=request_id,
                                                       **_query_options(request)))
        except Exception as exc:
            self._abort("Answer", context, exc, t0, request_id, principal)
        context.add_callback(events.stop)  # the client cancelled, or its deadline passed
        try:
            while True:
                try:
                    event = events.next()
                except Exception as exc:  # the stream has started: the error ends it with its status
                    failure = exc
                    break
                if event is None or not context.is_active():
                    break
                yield _event(event)
        finally:
            events.close()
        if failure is not None:
            self._abort("Answer", context, failure, t0, request_id, principal)
        code = grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED
        self._observe("Answer", code, t0, request_id, principal)

    def Health(self, request: Any, context: Any) -> Any:  # noqa: N802
        state = self.service.ready()
        return pb.HealthResponse(status="ok", version=__version__, ready=bool(state["ready"]),
                                 index_version=state["index_version"] or "")

    # how each call is run -------------------------------------------------------------------------
    def _principal(self, context: Any) -> Principal:
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        authorization = metadata.get("authorization")
        return self.service.authenticate(authorization if isinstance(authorization, str) else None)

    def _unary(self, method: str, request: Any, context: Any, run: Callable[[Principal, str], T]) -> T:
        t0, request_id, principal = time.perf_counter(), _request_id(context), None
        try:
            (_check_query if method == "Query" else _check_search)(request)
            principal = self._principal(context)
            reply = run(principal, request_id)
        except Exception as exc:
            self._abort(method, context, exc, t0, request_id, principal)
        self._observe(method, grpc.StatusCode.OK, t0, request_id, principal)
        return reply

    def _within(self, context: Any, work: Callable[[], T], stop: Callable[[], None] | None = None) -> T:
        """``work()`` in the pool, waited for until the server's timeout or the client's deadline."""
        timeout = self.service.settings.request_timeout_s
        left = context.time_remaining()
        future = self._work.submit(work)
        try:
            return future.result(timeout=min(timeout, left) if left is not None else timeout)
        except futures.TimeoutError:
            if stop is not None:
                stop()
            raise RequestTimeout(f"no answer within {timeout:g} s (deployment.server.request_timeout_s), or "
                                 "before the client's deadline") from None

    def _abort(self, method: str, context: Any, exc: Exception, t0: float, request_id: str,
               principal: Principal | None) -> Any:
        code, kind, message = status_of(exc)
        self.service.metrics.observe_error(kind)
        if kind == "internal":
            _log.error("gRPC %s %s failed", method, request_id, exc_info=exc)
        trailing = [("x-request-id", request_id)]
        if isinstance(exc, RateLimited):
            trailing.append(("retry-after", str(exc.retry_after)))
        context.set_trailing_metadata(tuple(trailing))
        self._observe(method, code, t0, request_id, principal)
        context.abort(code, message)  # raises: the call ends with this status

    def _observe(self, method: str, code: Any, t0: float, request_id: str, principal: Principal | None) -> None:
        seconds = time.perf_counter() - t0
        self.service.metrics.observe_request(_ROUTE + method, "GRPC", code.value[0], seconds)
        _log.info("request", extra={"request_id": request_id, "method": "GRPC", "route": _ROUTE + method,
                                    "status": code.name, "ms": round(seconds * 1000, 3),
                                    "key_id": principal.key_id if principal else None})


def serve_grpc(service: Service, host: str = "127.0.0.1", port: int = 50051, max_workers: int = 8) -> Any:
    """A started ``grpc.Server`` answering ``service`` on ``host:port`` (no TLS: put it behind a proxy that
    terminates TLS when it is reached over a network). Stop it with ``server.stop(grace)``."""
    optional_import("grpc", "grpc", PURPOSE)  # told to the checklist proof each time a server is made
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="flightdeck-grpc"),
                         options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                                  ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
                                  ("grpc.so_reuseport", 0)])
    pb_grpc.add_FlightdeckServicer_to_server(FlightdeckServicer(service, max_workers), server)
    address = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        bound, cause = 0, exc
    else:
        cause = None
    if not bound:
        raise FlightdeckError(f"gRPC: cannot listen on {address} (the port is in use, or the address is not "
                              "one of this machine's)") from cause
    server.start()
    return server


# requests in, replies out ---------------------------------------------------------------------------
def _request_id(context: Any) -> str:
    request_id = uuid.uuid4().hex[:16]
    context.set_trailing_metadata((("x-request-id", request_id),))
    return request_id


def _text(name: str, value: str) -> None:
    if not value:
        raise ValueError(f"{name}: must not be empty")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{name}: at most {MAX_TEXT} characters, got {len(value)}")


def _check_query(request: Any) -> None:
    _text("question", request.question)
    if request.HasField("conversation_id") and not _CONVERSATION_ID.match(request.conversation_id):
        raise ValueError("conversation_id: 1 to 64 of the characters A-Z a-z 0-9 _ . : -")
    if request.HasField("max_tokens") and not 1 <= request.max_tokens <= MAX_TOKENS:
        raise ValueError(f"max_tokens: 1 to {MAX_TOKENS}, got {request.max_tokens}")


def _check_search(request: Any) -> None:
    _text("query", request.query)
    if request.HasField("k") and not 1 <= request.k <= MAX_K:
        raise ValueError(f"k: 1 to {MAX_K}, got {request.k}")
    if request.mode and request.mode not in MODES:
        raise ValueError(f"mode: one of {', '.join(MODES)}, got {request.mode!r}")


def _query_options(request: Any) -> dict[str, Any]:
    return {"conversation_id": request.conversation_id if request.HasField("conversation_id") else None,
            "max_tokens": request.max_tokens if request.HasField("max_tokens") else None}


def _search_options(request: Any) -> dict[str, Any]:
    where = None
    if request.where.strip():
        try:
            where = json.loads(request.where)
        except json.JSONDecodeError as exc:
            raise ValueError(f"where: not JSON ({exc})") from None
        if not isinstance(where, dict):
            raise ValueError('where: a JSON object, e.g. {"lang": "en"}')
    return {"k": request.k if request.HasField("k") else None, "mode": request.mode or None, "where": where}


def _last_answer(events: _Events, context: Any) -> dict[str, Any] | None:
    final = None
    try:
        while (event := events.next()) is not None:
            if event["event"] == "answer":
                final = event["answer"]
            if not context.is_active():
                break
    finally:
        events.close()
    return final


def _fields(message: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that ``message`` has a field for, None left out."""
    names = message.DESCRIPTOR.fields_by_name
    return {k: v for k, v in values.items() if k in names and v is not None}


def _numbers(values: dict[str, Any] | None, kind: type) -> dict[str, Any]:
    return {str(k): kind(v) for k, v in (values or {}).items() if isinstance(v, int | float)}


def _answer(answer: dict[str, Any] | None) -> Any:
    if answer is None:  # the call was cancelled or timed out before the answer: nobody reads this
        return pb.Answer()
    return pb.Answer(
        question=answer.get("question", ""), answer=answer.get("answer", ""), found=bool(answer.get("found")),
        citations=[pb.Citation(**_fields(pb.Citation, c)) for c in answer.get("citations", [])],
        index_version=answer.get("index_version") or "", trace_id=answer.get("trace_id") or "",
        timings_ms=_numbers(answer.get("timings_ms"), float), usage=_numbers(answer.get("usage"), int),
        prompt={str(k): str(v) for k, v in (answer.get("prompt") or {}).items()},
        flags=[f if isinstance(f, str) else json.dumps(f, default=str) for f in answer.get("flags") or []])


def _search_response(found: dict[str, Any]) -> Any:
    hits = [pb.SearchHit(**_fields(pb.SearchHit, {**h, "metadata": json.dumps(h.get("metadata") or {}, default=str),
                                                  "ranks": _numbers(h.get("ranks"), int)}))
            for h in found.get("hits", [])]
    return pb.SearchResponse(query=found.get("query", ""), mode=found.get("mode", ""),
                             index_version=found.get("index_version") or "",
                             keyword_index=found.get("keyword_index") or "",
                             timings_ms=_numbers(found.get("timings_ms"), float), hits=hits,
                             queries=json.dumps(found["queries"], default=str) if found.get("queries") else "")


def _event(event: dict[str, Any]) -> Any:
    kind = event["event"]
    if kind == "sources":
        return pb.AnswerEvent(sources=pb.Sources(
            index_version=event.get("index_version") or "", trace_id=event.get("trace_id") or "",
            hits=[pb.Source(**_fields(pb.Source, h)) for h in event.get("hits", [])]))
    if kind == "token":
        return pb.AnswerEvent(token=pb.Token(text=event.get("text", "")))
    if kind == "answer":
        return pb.AnswerEvent(answer=_answer(event["answer"]))
    raise ValueError(f"an answer event of an unknown kind: {kind!r}")
