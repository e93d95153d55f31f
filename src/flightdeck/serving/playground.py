"""The web playground of ``flightdeck serve``: one static page (HTML, CSS, JS from the package, no build step and
nothing fetched from elsewhere) that asks, streams the answer, shows citations and searches through the API.

The page holds no data, so its routes are public; the API calls it makes carry the key the user types. Every
response has a strict Content-Security-Policy: scripts and styles only from these files, requests only to this
server, no inline code.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import Response

__all__ = ["playground_router", "PLAYGROUND_FILES", "CONTENT_SECURITY_POLICY"]

# The files served, and their content types; any other name is a 404.
PLAYGROUND_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    path = resources.files("flightdeck.serving").joinpath("playground", name)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(f"the playground file {name} is missing from the package ({path}); "
                           "reinstall flightdeck") from None


def playground_router() -> APIRouter:
    """``GET /`` (the page) and ``GET /playground/{name}`` (its three files), read once, when it is built."""
    files = {name: _read(name) for name in PLAYGROUND_FILES}
    router = APIRouter()

    def serve(name: str) -> Response:
        return Response(files[name], media_type=PLAYGROUND_FILES[name], headers=_HEADERS)

    @router.get("/", include_in_schema=False)
    def page() -> Response:
        return serve("index.html")

    @router.get("/playground/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, f"no playground file {name!r}; there are {sorted(files)}")
        return serve(name)

    return router
