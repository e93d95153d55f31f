"""What the serving tests share: a small project over a few documents (FakeEmbedder: no model), and uvicorn
serving the app in a thread on a free port of 127.0.0.1."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from flightdeck import Project
from flightdeck.serving.api import create_app
from flightdeck.serving.service import Service
from flightdeck.testing import FakeEmbedder, ScriptedAgentModel
from llm_fixtures import free_port

__all__ = ["small_project", "LiveServer", "bearer", "agent_server", "openai_client"]


def bearer(key: str) -> dict[str, str]:
    """The Authorization header of ``key``."""
    return {"Authorization": f"Bearer {key}"}


def small_project(root: Path, docs: dict[str, str], *, name: str = "handbook", filters: bool = True,
                  extra: str = "", run: bool = True) -> Project:
    """A project over ``docs`` (file name → text) under ``root/docs``, small chunks, FakeEmbedder; ``extra`` is
    appended to its spec (e.g. a ``deployment:`` section); ``run`` builds its index."""
    (root / "docs").mkdir(parents=True)
    for file, text in docs.items():
        (root / "docs" / file).write_text(text, "utf-8")
    system = "[hybrid_search, metadata_filtering]" if filters else "[hybrid_search]"
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: {name}
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: 64, overlap: 8}}
        retrieval: {{system: {system}}}
        """) + extra, "utf-8")
    project = Project.load(root).use(embedder=FakeEmbedder())
    if run:
        project.run()
    return project


class LiveServer:
    """uvicorn serving ``create_app(service)`` in a thread on a free port of 127.0.0.1."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/v1/ws"
        config = uvicorn.Config(create_app(service), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def agent_server(root: Path, docs: dict[str, str], agents: str) -> Iterator[tuple[LiveServer, dict[str, str],
                                                                                   ScriptedAgentModel]]:
    """A project over ``docs`` with the spec's ``agents`` section, its agent model scripted (add replies as the test
    goes), served by uvicorn with one key per role; yields the server, the keys by role and the model."""
    from flightdeck.governance.access import Role

    project = small_project(root, docs, filters=False, extra=agents)
    model = ScriptedAgentModel([])
    project.use(agent_model=model)
    keys = {role.value: project.api_keys.create(role).key for role in Role}
    with LiveServer(Service(project, project.api_keys)) as server:
        yield server, keys, model


def openai_client(server: LiveServer, key: str) -> Any:
    """The official openai SDK pointed at ``server`` with ``key``."""
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30)
