"""What each failure of a request is, for every transport: its HTTP status, error type and message.

The FastAPI app, the Flask blueprint and the WebSocket route all answer ``{"error": {"type", "message",
"request_id"}}`` with the type and message :func:`error_kind` gives.
"""

from __future__ import annotations

from flightdeck.errors import FlightdeckError, IndexMismatchError, SpecError, WorkspaceError
from flightdeck.governance.api_keys import AuthenticationError
from flightdeck.governance.releases import PolicyRefused, ReleaseError, ReleaseIntegrityError
from flightdeck.serving.service import PermissionDenied, RateLimited, RequestTimeout

__all__ = ["error_kind", "error_headers"]


def error_kind(exc: Exception) -> tuple[int, str, str]:
    """The status, error type and message the API gives for ``exc``.

    A :class:`~flightdeck.errors.FlightdeckError` that is also a ``KeyError`` names something that is not there
    (``TraceNotFound``, ``DocumentNotFound``…): 404.
    """
    if isinstance(exc, AuthenticationError):
        return 401, "unauthenticated", str(exc)
    if isinstance(exc, PermissionDenied):
        return 403, "forbidden", str(exc)
    if isinstance(exc, RateLimited):
        return 429, "rate_limited", str(exc)
    if isinstance(exc, RequestTimeout):
        return 504, "timeout", str(exc)
    if isinstance(exc, PolicyRefused):  # a promotion the approval policy does not allow yet
        return 409, "policy_refused", str(exc)
    if isinstance(exc, ReleaseIntegrityError):
        return 409, "integrity", str(exc)
    if isinstance(exc, FlightdeckError) and isinstance(exc, KeyError):  # a trace, a document, a batch job, a release
        return 404, "not_found", str(exc)
    if isinstance(exc, SpecError):
        return 422, "invalid_request", "; ".join(p.message for p in exc.problems)
    if isinstance(exc, ValueError):  # a bad metadata filter (FilterError), a cap passed
        return 422, "invalid_request", str(exc)
    if isinstance(exc, WorkspaceError | IndexMismatchError):
        return 503, "not_ready", str(exc)
    if isinstance(exc, ReleaseError):  # an impossible transition: already in production, archived…
        return 409, "conflict", str(exc)
    if isinstance(exc, FlightdeckError):
        return 500, "failed", str(exc)
    return 500, "internal", "the server failed on this request; its log has the details"


def error_headers(exc: Exception) -> dict[str, str]:
    """The headers an error response carries: ``WWW-Authenticate`` on a 401, ``Retry-After`` on a 429."""
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    return {}
