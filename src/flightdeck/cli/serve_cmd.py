"""``flightdeck serve``: the project's HTTP API (FastAPI under uvicorn), with API keys unless told otherwise."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer

from flightdeck.cli.common import SpecOption, errors_to_exit

__all__ = ["serve", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option("--host", help="the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="the TCP port")] = 8000,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="no API keys: every caller is admin. For local "
                                                             "use only: refused on any address but loopback")] = False,
    log_format: Annotated[str, typer.Option("--log-format", help="json (one object per line, with request "
                                                                 "ids) or text")] = "json",
    grpc_port: Annotated[int | None, typer.Option("--grpc", min=1, max=65535, metavar="PORT",
                                                  help="also serve the gRPC API (flightdeck.v1.Flightdeck) on this "
                                                       "port of the same host; needs flightdeck[grpc]")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="server processes, each with its own "
                                                                    "model: answers in parallel on several cores "
                                                                    "(limits and metrics are per process)")] = 1,
    release: Annotated[str | None, typer.Option(
        "--release", help="answer with this release (production, staging, an alias, v3, rel_…) and switch, "
        "without a restart, whenever a promotion or rollback makes it name another (default: the workspace's "
        "current index with this spec)")] = None,
    spec: SpecOption = None,
) -> None:
    """Serve answers and search over HTTP (and gRPC with --grpc PORT), with a playground at /.

    Routes: /v1/query, /v1/search, /v1/chat/completions, /v1/embeddings, /v1/models (OpenAI-compatible),
    /v1/documents, /v1/batch, /v1/traces/{id}, /metrics (Prometheus), /health, /ready, /docs (OpenAPI).

    Callers send `Authorization: Bearer <key>`: create keys with `flightdeck keys create --role viewer`.

    Limits, timeouts, prices and traces are set under deployment.server in the spec.
    """
    from flightdeck.cli.common import _stderr
    from flightdeck.project import Project
    from flightdeck.registry.lookup import optional_import

    if no_auth and not is_loopback(host):
        raise typer.BadParameter(f"--no-auth on {host} would let anyone on the network in; serve on 127.0.0.1, "
                                 "or create keys with `flightdeck keys create` and drop --no-auth",
                                 param_hint="--no-auth")
    if log_format not in ("json", "text"):
        raise typer.BadParameter("use json or text", param_hint="--log-format")
    with errors_to_exit():
        uvicorn = optional_import("uvicorn", "serve", "flightdeck serve")
        optional_import("fastapi", "serve", "flightdeck serve")
        if grpc_port is not None:
            from flightdeck.serving.grpc.server import serve_grpc  # needs flightdeck[grpc]
        from flightdeck.serving.api import create_app
        from flightdeck.serving.logs import configure_server_logs
        from flightdeck.serving.service import Service

        project = Project.load(spec)
        keys = None if no_auth else project.api_keys
        if keys is None:
            _stderr(f"WARNING: --no-auth: no API keys are checked; anyone who reaches {host}:{port} is admin. "
                    "For local use only.")
        elif not keys.list():
            _stderr("note: no API keys yet, so every request but /health and /ready gets 401; create one with "
                    "`flightdeck keys create --role viewer`")
        if workers > 1:
            _serve_workers(uvicorn, spec, no_auth, log_format, host, port, workers, grpc_port, release)
            return
        configure_server_logs(log_format)
        switch = None
        if release is not None:
            from flightdeck.serving.releases import ReleaseSwitch

            switch = ReleaseSwitch(project, release).start()
            _stderr(f"serving release {switch.release.name} ({switch.release.id}, {switch.release.stage}); "
                    f"following {release!r}")
        service = Service(project, keys, release=switch)
        app = create_app(service)
        warmed = service.warm_up()  # the model loads now, not during the first request
        if warmed is None:
            _stderr("note: no index yet; /ready answers 503 until `flightdeck run` builds one")
        service.batches  # noqa: B018 - batch jobs a stopped server left unfinished resume now
        grpc_server = None if grpc_port is None else serve_grpc(service, host, grpc_port)
    if grpc_server is not None:
        _stderr(f"gRPC: flightdeck.v1.Flightdeck on {host}:{grpc_port}")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)  # our JSON log has each request
    finally:
        service.batches.close()  # stops between two questions; the job resumes at the next start
        if grpc_server is not None:
            grpc_server.stop(grace=5).wait()  # calls in flight get 5 s to finish


def _serve_workers(uvicorn: Any, spec: Path | None, no_auth: bool, log_format: str, host: str, port: int,
                   workers: int, grpc_port: int | None, release: str | None) -> None:
    """uvicorn's process manager over ``workers`` processes, each building its app (serving/app.py); gRPC, when
    asked, is served by this parent process with a service of its own."""
    import os

    from flightdeck.cli.common import _stderr
    from flightdeck.serving.app import ENV_LOG_FORMAT, ENV_NO_AUTH, ENV_RELEASE, ENV_SPEC, build_service

    os.environ[ENV_RELEASE] = release or ""
    os.environ[ENV_SPEC] = str(spec) if spec else ""
    os.environ[ENV_NO_AUTH] = "1" if no_auth else "0"
    os.environ[ENV_LOG_FORMAT] = log_format
    grpc_server = None
    if grpc_port is not None:
        from flightdeck.serving.grpc.server import serve_grpc

        grpc_server = serve_grpc(build_service(str(spec) if spec else None, no_auth, log_format, release), host,
                                 grpc_port)
        _stderr(f"gRPC: flightdeck.v1.Flightdeck on {host}:{grpc_port}")
    _stderr(f"{workers} worker processes; each loads the model before it answers")
    try:
        uvicorn.run("flightdeck.serving.app:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_level="info", access_log=False)
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=5).wait()
