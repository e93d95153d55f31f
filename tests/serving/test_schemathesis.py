"""Property-based tests of the HTTP API from its own OpenAPI document (schemathesis): whatever a client sends
within or around the schema, the server answers without a 500, in the one JSON error shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.serving.api import create_app  # noqa: E402
from flightdeck.serving.service import Service  # noqa: E402
from flightdeck.testing import FakeEmbedder  # noqa: E402

pytestmark = pytest.mark.integration

KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    (root / "docs").mkdir()
    (root / "docs" / "venv.md").write_text("# Virtual environments\n\nCreate one with python -m venv .venv.\n")
    (root / "docs" / "sorting.md").write_text("# Sorting\n\nUse sorted(records, key=...) to sort by a key.\n")
    (root / "flightdeck.yaml").write_text("project: fuzz\ndata:\n  sources: [{provider: files, path: ./docs}]\n"
                                          "retrieval: {system: [hybrid_search, metadata_filtering]}\n")
    project = Project.load(root).use(embedder=FakeEmbedder())
    project.run()
    KEY["admin"] = project.api_keys.create("admin").key
    writer = Project.load(root).use(embedder=FakeEmbedder())
    app = create_app(Service(project, project.api_keys, writer=lambda: writer))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _each_operation(api_schema: Any, examples: int, check: Any) -> int:
    """Run ``check`` on ``examples`` generated cases of every operation (schemathesis' pytest plugin does not run
    under pytest 9, so the cases are drawn with hypothesis directly)."""
    from hypothesis import given

    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            check(case)

        run()
    return operations


def _no_server_error(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    kind = response.headers.get("content-type") or [""]
    if response.status_code >= 400 and (kind[0] if isinstance(kind, list) else kind).startswith("application/json"):
        body = response.json()
        assert set(body) == {"error"} and {"type", "message", "request_id"} <= set(body["error"]), body


def test_no_request_makes_the_server_fail(api_schema: Any) -> None:
    statuses: list[int] = []

    def check(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {KEY['admin']}"})
        statuses.append(response.status_code)
        _no_server_error(response)

    assert _each_operation(api_schema, 25, check) >= 15
    assert len(statuses) >= 100 and 200 in statuses and 422 in statuses  # it did run, valid and invalid cases


PUBLIC = {"/health", "/ready", "/", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"}


def test_no_request_without_a_key_gets_past_the_door(api_schema: Any) -> None:
    def check(case: Any) -> None:
        response = case.call()
        _no_server_error(response)
        if case.path not in PUBLIC and not case.path.startswith("/playground/"):
            assert response.status_code in (401, 404, 405, 413, 422), (case.method, case.path, response.status_code)

    _each_operation(api_schema, 6, check)
