"""The HTTP API (FastAPI): a thin shell over :class:`~flightdeck.serving.service.Service`.

Deny by default: :data:`ROUTE_PERMISSIONS` maps every route to the permission it needs (None: public), the app
refuses to start with a route the table does not name, and each protected route checks its permission before
its handler runs. Every error is JSON of one shape, ``{"error": {"type", "message", "request_id"}}``; a
malformed request never takes the server down.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flightdeck.core import __version__
from flightdeck.errors import FlightdeckError, IndexMismatchError, SpecError, WorkspaceError
from flightdeck.governance.access import Permission
from flightdeck.governance.api_keys import AuthenticationError
from flightdeck.serving.service import PermissionDenied, Principal, Service

__all__ = ["create_app", "ROUTE_PERMISSIONS", "MAX_BODY_BYTES", "SearchRequest", "QueryRequest"]

_log = logging.getLogger(__name__)

# Requests larger than this are refused (413) before they are read.
MAX_BODY_BYTES = 1 << 20
MAX_TEXT = 4000

# Every route and what it needs; None is public. A route missing here stops the app from starting.
ROUTE_PERMISSIONS: dict[tuple[str, str], Permission | None] = {
    ("GET", "/health"): None,
    ("GET", "/ready"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("POST", "/v1/search"): Permission.SEARCH,
    ("POST", "/v1/query"): Permission.QUERY,
}


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_TEXT, description="what to search for")
    k: int | None = Field(None, ge=1, le=100, description="how many chunks (default: the spec's retrieval.search.k)")
    mode: Literal["hybrid", "vector", "keyword"] | None = None
    where: dict[str, Any] | None = Field(None, description='a metadata filter, e.g. {"lang": "en"}')


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_TEXT, description="the question to answer from the documents")


def _error(status: int, kind: str, message: str, request: Request,
           headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "")
    return JSONResponse({"error": {"type": kind, "message": message, "request_id": request_id}},
                        status_code=status, headers={**(headers or {}), "X-Request-ID": request_id})


def create_app(service: Service) -> FastAPI:
    """The API over ``service``."""
    app = FastAPI(title="flightdeck", version=__version__,
                  description="Grounded, cited answers and hybrid search over a flightdeck project.")

    def needs(permission: Permission) -> Callable[[Request], Principal]:
        def principal(request: Request) -> Principal:
            caller = service.authenticate(request.headers.get("authorization"))
            service.authorize(caller, permission)
            return caller

        return principal

    @app.middleware("http")
    async def request_id_and_size(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = uuid.uuid4().hex[:16]
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return _error(413, "too_large", f"the request body is over {MAX_BODY_BYTES} bytes", request)
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    @app.exception_handler(AuthenticationError)
    def unauthenticated(request: Request, exc: AuthenticationError) -> JSONResponse:
        return _error(401, "unauthenticated", str(exc), request, {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(PermissionDenied)
    def forbidden(request: Request, exc: PermissionDenied) -> JSONResponse:
        return _error(403, "forbidden", str(exc), request)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:  # unparsable body, 404, 405
        kinds = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail), request,
                      dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _error(422, "invalid_request", problems, request)

    @app.exception_handler(FlightdeckError)
    def flightdeck_error(request: Request, exc: FlightdeckError) -> JSONResponse:
        if isinstance(exc, SpecError):
            return _error(422, "invalid_request", "; ".join(p.message for p in exc.problems), request)
        if isinstance(exc, ValueError):  # a bad metadata filter (FilterError)
            return _error(422, "invalid_request", str(exc), request)
        if isinstance(exc, WorkspaceError | IndexMismatchError):
            return _error(503, "not_ready", str(exc), request)
        _log.error("request %s failed: %s", getattr(request.state, "request_id", ""), exc)
        return _error(500, "failed", str(exc), request)

    @app.exception_handler(ValueError)
    def bad_value(request: Request, exc: ValueError) -> JSONResponse:  # a bad filter, an unknown mode
        return _error(422, "invalid_request", str(exc), request)

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("request %s failed", getattr(request.state, "request_id", ""))
        return _error(500, "internal", "the server failed on this request; its log has the details", request)

    @app.get("/health", summary="the process is up")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/ready", summary="an index is there to answer from")
    def ready(request: Request) -> JSONResponse:
        state = service.ready()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.post("/v1/search", summary="hybrid search over the current index")
    def search(body: SearchRequest, caller: Principal = Depends(needs(Permission.SEARCH))) -> dict[str, Any]:
        return service.search(caller, body.query, k=body.k, mode=body.mode, where=body.where)

    @app.post("/v1/query", summary="a grounded answer with numbered citations")
    def query(body: QueryRequest, caller: Principal = Depends(needs(Permission.QUERY))) -> dict[str, Any]:
        return service.query(caller, body.question)

    unlisted = sorted(f"{m} {r.path}" for r in app.routes if isinstance(r, APIRoute) for m in r.methods
                      if (m, r.path) not in ROUTE_PERMISSIONS)
    if unlisted:
        raise RuntimeError(f"routes without a permission in ROUTE_PERMISSIONS (deny by default): {unlisted}")
    return app
