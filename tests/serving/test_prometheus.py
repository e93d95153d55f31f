"""A real Prometheus (Debian's package) scrapes flightdeck serve's /metrics with a viewer key, and its query API
returns flightdeck's series."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")

from live_server import LiveServer as Server  # noqa: E402
from live_server import bearer as _auth  # noqa: E402
from live_server import small_project  # noqa: E402

from flightdeck.serving.service import Service  # noqa: E402
from llm_fixtures import free_port, stop_process  # noqa: E402

pytestmark = pytest.mark.integration

DOCS = {"sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key.\n",
        "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv.\n"}


def _project(root: Path, server: str = "") -> Any:
    return small_project(root, DOCS, filters=False, extra=server)


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian's prometheus is not installed (make system-deps)")
@pytest.mark.exercises("monitoring.logging.prometheus")
@pytest.mark.exercises("monitoring.model_monitoring.latency")
@pytest.mark.exercises("monitoring.model_monitoring.throughput")
@pytest.mark.exercises("monitoring.model_monitoring.error_rates")
def test_prometheus_scrapes_latency_requests_and_errors_with_a_viewer_key(tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    key = project.api_keys.create("viewer", name="prometheus").key
    with Server(Service(project, project.api_keys)) as server:
        for _ in range(3):
            assert httpx.post(f"{server.url}/v1/query", json={"question": "How do I sort records by a key?"},
                              headers=_auth(key)).status_code == 200
        httpx.post(f"{server.url}/v1/search", json={"query": ""}, headers=_auth(key))  # a 422
        (tmp_path / "key").write_text(key)
        config = tmp_path / "prometheus.yml"
        config.write_text(textwrap.dedent(f"""\
            global: {{scrape_interval: 1s}}
            scrape_configs:
              - job_name: flightdeck
                authorization: {{credentials_file: {tmp_path / "key"}}}
                static_configs: [{{targets: ["127.0.0.1:{server.port}"]}}]
            """))
        port = free_port()
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            api = f"http://127.0.0.1:{port}/api/v1/query"
            found: dict[str, list] = {}
            queries = {"up": 'up{job="flightdeck"}',
                       "answers": 'flightdeck_requests_total{route="/v1/query",status="200"}',
                       "errors": 'flightdeck_errors_total{type="invalid_request"}',
                       "stage": 'flightdeck_stage_seconds_count{stage="generate"}'}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(found) < len(queries):
                for name, query in queries.items():
                    try:
                        result = httpx.get(api, params={"query": query}, timeout=5).json()["data"]["result"]
                    except (httpx.HTTPError, KeyError, ValueError):
                        result = []
                    if result:
                        found[name] = result
                time.sleep(0.5)
        finally:
            stop_process(proc)
    assert set(found) == set(queries), f"Prometheus never saw: {set(queries) - set(found)}"
    assert found["up"][0]["value"][1] == "1"  # the scrape with the viewer key succeeded
    assert float(found["answers"][0]["value"][1]) >= 3
    assert float(found["errors"][0]["value"][1]) >= 1
    assert float(found["stage"][0]["value"][1]) >= 3


class _CountingLlm:
    """An LLM generator stand-in whose answers cost tokens (the metrics are what this test is about)."""

    def __new__(cls) -> object:
        from flightdeck.models.generators.base import Completion, LlmGenerator, LlmSettings

        class Generator(LlmGenerator):
            model_id = "openai:api.example.com/tiny"

            def __init__(self) -> None:
                self.config = LlmSettings()

            def count_tokens(self, text: str) -> int:
                return len(text.split())

            def complete(self, messages: list[dict[str, str]], **options: object) -> Completion:
                return Completion("Use sorted with a key [1].", 1000, 200, "stop", 1.0)

        return Generator()


@pytest.mark.exercises("monitoring.model_monitoring.token_usage")
@pytest.mark.exercises("monitoring.model_monitoring.cost")
def test_tokens_and_their_estimated_cost_are_counted_per_generator(tmp_path: Path) -> None:
    project = _project(tmp_path, "deployment:\n  server:\n    prices:\n      'openai:api.example.com/tiny': "
                                 "{input_per_million: 0.5, output_per_million: 2.0}\n")
    project.use(generator=_CountingLlm())
    key = project.api_keys.create("viewer").key
    with Server(Service(project, project.api_keys)) as server:
        for _ in range(2):
            answer = httpx.post(f"{server.url}/v1/query", json={"question": "How do I sort records by a key?"},
                                headers=_auth(key)).json()
            assert answer["usage"] == {"prompt_tokens": 1000, "completion_tokens": 200}
        text = httpx.get(f"{server.url}/metrics", headers=_auth(key)).text
    assert 'flightdeck_tokens_total{direction="in",generator="openai:api.example.com/tiny"} 2000.0' in text
    assert 'flightdeck_tokens_total{direction="out",generator="openai:api.example.com/tiny"} 400.0' in text
    # 2 x (1000 x 0.5 + 200 x 2.0) / 1e6 dollars
    assert 'flightdeck_cost_usd_total{generator="openai:api.example.com/tiny"} 0.0018' in text
