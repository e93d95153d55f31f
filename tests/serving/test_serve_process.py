"""`flightdeck serve` as a user runs it: a real uvicorn process on 127.0.0.1, called over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from llm_fixtures import flightdeck_server  # noqa: E402
from needs import needs_provider  # noqa: E402

pytestmark = [pytest.mark.integration, needs_provider("embedder", "sentence_transformers")]

FLIGHTDECK = [sys.executable, "-m", "flightdeck"]


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([*FLIGHTDECK, *args, "--spec", str(root)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    (root / "docs").mkdir()
    (root / "docs" / "venv.md").write_text("# Virtual environments\n\nTo create a virtual environment, run the venv "
                                           "module: python -m venv .venv, then activate it.\n", "utf-8")
    (root / "docs" / "files.md").write_text("# Files\n\nUse the with statement so that the file is closed "
                                            "even when an exception is raised.\n", "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: serve
        data:
          sources: [{provider: files, path: ./docs}]
        """), "utf-8")
    ran = _cli(root, "run")
    assert ran.returncode == 0, ran.stderr
    return root


def test_a_served_project_answers_a_keyed_client_with_citations(project_root: Path) -> None:
    created = _cli(project_root, "keys", "create", "--role", "viewer", "--json")
    assert created.returncode == 0, created.stderr
    import json

    key = json.loads(created.stdout)["key"]
    with flightdeck_server(project_root) as url:
        assert httpx.post(f"{url}/v1/query", json={"question": "How do I create a virtual environment?"},
                          timeout=60).status_code == 401
        answer = httpx.post(f"{url}/v1/query", json={"question": "How do I create a virtual environment?"},
                            headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["found"] and body["citations"][0]["document_id"] == "docs/venv.md", body
        assert httpx.get(f"{url}/ready", timeout=5).json()["ready"] is True
        assert httpx.get(f"{url}/openapi.json", timeout=5).json()["paths"].keys() >= {"/v1/query", "/v1/search"}
        _cli(project_root, "keys", "revoke", json.loads(created.stdout)["id"])
        assert httpx.post(f"{url}/v1/search", json={"query": "venv"}, headers={"Authorization": f"Bearer {key}"},
                          timeout=30).status_code == 401  # revoked while the server runs: refused at once


def test_no_auth_serves_the_local_user_on_loopback(project_root: Path) -> None:
    with flightdeck_server(project_root, "--no-auth") as url:
        found = httpx.post(f"{url}/v1/search", json={"query": "close the file", "k": 1}, timeout=60)
        assert found.status_code == 200 and found.json()["hits"][0]["document_id"] == "docs/files.md"


def test_workers_serve_the_same_keys_and_index_from_several_processes(project_root: Path) -> None:
    import json
    import threading

    key = json.loads(_cli(project_root, "keys", "create", "--role", "viewer", "--json").stdout)["key"]
    with flightdeck_server(project_root, "--workers", "2", "--log-format", "text") as url:
        # /health answers before the workers have loaded the model: wait until both answer searches
        statuses: list[int] = []

        def ask(url: str, statuses: list[int]) -> None:
            response = httpx.post(f"{url}/v1/query", json={"question": "How do I create a virtual environment?"},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=120)
            statuses.append(response.status_code)
            assert response.status_code != 200 or response.json()["citations"][0]["document_id"] == "docs/venv.md"

        threads = [threading.Thread(target=ask, args=(url, statuses)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert statuses == [200] * 6
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
        assert "flightdeck_requests_total" in metrics  # the worker that answered counts its own
