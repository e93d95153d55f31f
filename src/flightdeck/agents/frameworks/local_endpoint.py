"""An OpenAI-compatible endpoint for the length of a block: an ASGI app (flightdeck's server, built by the caller: the
agents layer does not import serving/) served by uvicorn in a thread on 127.0.0.1, on a port the system gives, so a
framework agent in this process can talk to flightdeck's model over HTTP as any client would.

Only the loopback address is bound, never a public one; the app checks the key as it always does.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flightdeck.agents.runtime import AgentError
from flightdeck.registry.lookup import optional_import

__all__ = ["local_endpoint"]


@contextmanager
def local_endpoint(app_factory: Callable[[], Any], api_key: str, *, start_timeout: float = 20.0,
                   stop_timeout: float = 120.0, path: str = "/v1") -> Iterator[tuple[str, str]]:
    """Serve ``app_factory()`` on 127.0.0.1 while the block runs; yields ``(base_url, api_key)`` (``base_url`` ends
    with ``path``). The socket is bound before uvicorn starts, so no other process can take the port in between.
    When the block ends the server stops: requests still running (a model still writing for a client that gave up)
    finish first, for up to ``stop_timeout`` seconds, so that what they use can be closed after; then the port
    closes."""
    if not api_key:
        raise AgentError("local endpoint: api_key is empty; give a key the app accepts")
    uvicorn = optional_import("uvicorn", "serve", "a local endpoint for framework agents")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        config = uvicorn.Config(app_factory(), host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        failed: list[BaseException] = []

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # noqa: BLE001 - told to the caller, who waits for the start
                failed.append(exc)

        thread = threading.Thread(target=serve, name=f"flightdeck-endpoint-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if failed or not thread.is_alive():
                raise AgentError(f"local endpoint: uvicorn did not start on 127.0.0.1:{port}"
                                 + (f": {failed[0]}" if failed else "")) from (failed[0] if failed else None)
            if time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                raise AgentError(f"local endpoint: uvicorn did not start on 127.0.0.1:{port} in {start_timeout:g} s")
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}{path}", api_key
        finally:
            server.should_exit = True
            thread.join(stop_timeout)
    finally:
        sock.close()
