"""Flask: a project's search and answers as a blueprint to register on your own Flask app (``pip install
'flightdeck[flask]'``), a thin shell over :class:`~flightdeck.serving.service.Service`::

    from flask import Flask
    from flightdeck import Project
    from flightdeck.serving.flask import blueprint

    app = Flask(__name__)
    app.register_blueprint(blueprint(Project.load("flightdeck.yaml")))

Routes, as in the FastAPI app: ``POST /v1/query`` (``"stream": true``: server-sent events ``sources``, ``token``,
``answer``), ``POST /v1/search``, ``GET /v1/traces/<id>`` and ``GET /health``. The same keys, roles, statuses,
body cap and error shape ``{"error": {"type", "message", "request_id"}}``; deny by default (:data:`ROUTES`).
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flightdeck.core import __version__
from flightdeck.governance.access import Permission
from flightdeck.project import Project
from flightdeck.registry.lookup import optional_import
from flightdeck.serving.errors import error_headers, error_kind
from flightdeck.serving.requests import MAX_BODY_BYTES, QueryRequest, SearchRequest
from flightdeck.serving.service import Principal, RequestTimeout, Service

flask = optional_import("flask", "flask", "the Flask blueprint (flightdeck.serving.flask)")
_http = importlib.import_module("werkzeug.exceptions")  # werkzeug comes with flask

__all__ = ["blueprint", "ROUTES"]

_log = logging.getLogger("flightdeck.server")
_Body = TypeVar("_Body", bound=BaseModel)

# Every route of the blueprint and what it needs; None is public. A view not named here is not built.
ROUTES: dict[tuple[str, str], Permission | None] = {
    ("GET", "/health"): None,
    ("POST", "/v1/search"): Permission.SEARCH,
    ("POST", "/v1/query"): Permission.QUERY,
    ("GET", "/v1/traces/<trace_id>"): Permission.QUERY,
}
_HTTP_KINDS = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


class _TooLarge(Exception):
    pass


def blueprint(target: Project | Service, *, name: str = "flightdeck", url_prefix: str | None = None,
              workers: int = 8) -> Any:
    """A ``flask.Blueprint`` serving ``target``: a :class:`~flightdeck.Project` (its API keys are the project's
    ``api_keys``) or a :class:`Service`. Searches and answers that are not streamed run in a pool of ``workers``
    threads, so that one past ``deployment.server.request_timeout_s`` is answered 504."""
    if isinstance(target, Project):
        service = Service(target, target.api_keys)
    elif isinstance(target, Service):
        service = target
    else:
        raise TypeError(f"blueprint() takes a Project or a Service, not {type(target).__name__}")
    bp = flask.Blueprint(name, __name__, url_prefix=url_prefix)
    metrics = service.metrics
    timeout = service.settings.request_timeout_s
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flightdeck-flask")

    def request_id() -> str:
        return str(getattr(flask.g, "flightdeck_request_id", ""))

    def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Any:
        metrics.observe_error(kind)
        body = {"error": {"type": kind, "message": message, "request_id": request_id()}}
        return flask.Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers or {},
                              mimetype="application/json")

    def route(method: str, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        permission = ROUTES[(method, rule)]  # KeyError: a route the table does not name

        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            def guarded(**kwargs: Any) -> Any:
                if permission is not None:
                    caller = service.authenticate(flask.request.headers.get("Authorization"))
                    service.check(caller, permission)  # the operation counts the call against the key's limits
                    flask.g.flightdeck_key_id = caller.key_id
                    kwargs["caller"] = caller
                return view(**kwargs)

            bp.add_url_rule(rule, view.__name__, guarded, methods=[method])
            return view

        return register

    def within_timeout(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        future = pool.submit(fn, *args, **kwargs)
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise RequestTimeout(f"no answer within {timeout:g} s (deployment.server.request_timeout_s)") from None

    @bp.before_request
    def start() -> Any:
        flask.g.flightdeck_request_id = uuid.uuid4().hex[:16]
        flask.g.flightdeck_t0 = time.perf_counter()
        length = flask.request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return error(413, "too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
        return None

    @bp.after_request
    def finish(response: Any) -> Any:
        response.headers["X-Request-ID"] = request_id()
        rule = flask.request.url_rule
        seconds = time.perf_counter() - getattr(flask.g, "flightdeck_t0", time.perf_counter())
        path = rule.rule if rule is not None else "unmatched"
        metrics.observe_request(path, flask.request.method, response.status_code, seconds)
        _log.info("request", extra={"request_id": request_id(), "method": flask.request.method, "route": path,
                                    "status": response.status_code, "ms": round(seconds * 1000, 3),
                                    "key_id": getattr(flask.g, "flightdeck_key_id", None)})
        return response

    @bp.errorhandler(Exception)
    def failed(exc: Exception) -> Any:
        if isinstance(exc, _TooLarge):
            return error(413, "too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
        if isinstance(exc, _http.HTTPException):
            code = exc.code or 500
            return error(code, _HTTP_KINDS.get(code, "http_error"), exc.description or exc.name)
        status, kind, message = error_kind(exc)
        if status == 500:
            _log.error("request %s failed", request_id(), exc_info=exc)
        return error(status, kind, message, error_headers(exc))

    @route("GET", "/health")
    def health() -> Any:
        return {"status": "ok", "version": __version__}

    @route("POST", "/v1/search")
    def search(caller: Principal) -> Any:
        body = _parse(SearchRequest)
        return within_timeout(service.search, caller, body.query, k=body.k, mode=body.mode, where=body.where)

    @route("POST", "/v1/query")
    def query(caller: Principal) -> Any:
        body = _parse(QueryRequest)
        options = {"conversation_id": body.conversation_id, "max_tokens": body.max_tokens,
                   "request_id": request_id()}
        if not body.stream:
            return within_timeout(service.query, caller, body.question, **options)
        events = service.stream_query(caller, body.question, **options)  # a refusal is a JSON error, not a stream
        return flask.Response(_sse_stream(events, request_id(), metrics), mimetype="text/event-stream",
                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @route("GET", "/v1/traces/<trace_id>")
    def trace(trace_id: str, caller: Principal) -> Any:
        return service.trace(caller, trace_id)

    return bp


def _parse(model: type[_Body]) -> _Body:
    """The request's JSON body as ``model``: 400 when it is not JSON, 422 when a field is wrong (the FastAPI
    app's messages: ``body.question: Field required``)."""
    raw = _read_capped(flask.request.stream, MAX_BODY_BYTES)
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise _http.BadRequest("the request body is not JSON: send a JSON object") from None
        problems = "; ".join(f"{'.'.join(str(p) for p in ('body', *e['loc']))}: {e['msg']}" for e in errors)
        raise ValueError(problems) from None


def _read_capped(stream: Any, cap: int) -> bytes:
    """The body, read in parts (a chunked request has no Content-Length); :class:`_TooLarge` once past ``cap``."""
    parts: list[bytes] = []
    seen = 0
    while True:
        part = stream.read(64 << 10)
        if not part:
            return b"".join(parts)
        seen += len(part)
        if seen > cap:
            raise _TooLarge
        parts.append(part)


def _sse(data: Any, event: str) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _sse_stream(events: Iterator[dict[str, Any]], request_id: str, metrics: Any) -> Iterator[str]:
    """The service's events as server-sent events. The WSGI server closes this generator when the client goes
    away, which closes the service's iterator and stops the generation."""
    try:
        for event in events:
            yield _sse({k: v for k, v in event.items() if k != "event"}, event["event"])
    except Exception as exc:  # the stream has started: the error goes into it, in the same shape
        _, kind, message = error_kind(exc)
        metrics.observe_error(kind)
        _log.warning("stream %s failed: %s", request_id, exc)
        yield _sse({"error": {"type": kind, "message": message, "request_id": request_id}}, "error")
    finally:
        events.close()
