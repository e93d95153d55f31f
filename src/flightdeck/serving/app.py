"""The app of one ``flightdeck serve --workers N`` process: uvicorn imports it in each worker it starts.

``flightdeck serve`` passes its options through the environment (``FLIGHTDECK_SERVE_SPEC``,
``FLIGHTDECK_SERVE_NO_AUTH``, ``FLIGHTDECK_SERVE_LOG_FORMAT``, ``FLIGHTDECK_SERVE_RELEASE``); each worker loads the
project, warms its model and opens the index before it takes requests (and, with a release, watches it on its own).
Workers share the workspace (keys, traces, documents, batch jobs are on disk) but not memory: rate limits and
metrics are counted per worker.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from flightdeck.project import Project
from flightdeck.serving.api import create_app
from flightdeck.serving.logs import configure_server_logs
from flightdeck.serving.service import Service

__all__ = ["build_service", "app_from_environment", "ENV_SPEC", "ENV_NO_AUTH", "ENV_LOG_FORMAT", "ENV_RELEASE"]

ENV_SPEC = "FLIGHTDECK_SERVE_SPEC"
ENV_NO_AUTH = "FLIGHTDECK_SERVE_NO_AUTH"
ENV_LOG_FORMAT = "FLIGHTDECK_SERVE_LOG_FORMAT"
ENV_RELEASE = "FLIGHTDECK_SERVE_RELEASE"


def build_service(spec: str | None, no_auth: bool, log_format: str, release: str | None = None) -> Service:
    """The service of one server process, warmed up: model loaded, index open, unfinished batch jobs resumed; with
    ``release``, answering with that release and following its promotions (each worker watches on its own)."""
    project = Project.load(spec)
    configure_server_logs(log_format)
    switch = None
    if release:
        from flightdeck.serving.releases import ReleaseSwitch

        switch = ReleaseSwitch(project, release).start()
    service = Service(project, None if no_auth else project.api_keys, release=switch)
    service.warm_up()
    service.batches  # noqa: B018 - batch jobs a stopped server left unfinished resume now
    return service


def app_from_environment() -> FastAPI:
    """uvicorn's factory for each worker of ``flightdeck serve --workers N``."""
    service = build_service(os.environ.get(ENV_SPEC) or None, os.environ.get(ENV_NO_AUTH) == "1",
                            os.environ.get(ENV_LOG_FORMAT, "json"), os.environ.get(ENV_RELEASE) or None)
    app = create_app(service)
    app.router.on_shutdown.append(service.batches.close)
    return app
