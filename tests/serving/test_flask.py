"""The Flask blueprint: keys, roles, errors and streams through Flask's test client, and a real ``flask run``
process called over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")
httpx = pytest.importorskip("httpx")

from flightdeck import Project  # noqa: E402
from flightdeck.governance.access import Role  # noqa: E402
from flightdeck.serving.flask import ROUTES, blueprint  # noqa: E402
from flightdeck.serving.requests import MAX_BODY_BYTES  # noqa: E402
from flightdeck.serving.service import Service  # noqa: E402
from flightdeck.testing import FakeEmbedder  # noqa: E402
from llm_fixtures import free_port, stop_process  # noqa: E402

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv. Activate the "
               "virtual environment with source .venv/bin/activate before installing packages.\n",
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key. The sort is "
                  "stable, so records with equal keys keep their order.\n",
}
SORT = "How do I sort records by a key?"
SPEC = """\
project: flasked
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval: {system: [hybrid_search]}
"""


def _project(root: Path, extra: str = "") -> Project:
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "flightdeck.yaml").write_text(SPEC + extra, "utf-8")
    project = Project.load(root).use(embedder=FakeEmbedder())
    project.run()
    return project


def _app(target: Project | Service) -> Any:
    app = flask.Flask("flasked")
    app.register_blueprint(blueprint(target))
    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Project, dict[str, str]]]:
    project = _project(tmp_path_factory.mktemp("flask"))
    keys = {role.value: project.api_keys.create(role).key for role in Role}
    yield _app(project).test_client(), project, keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(response: Any, status: int, kind: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "request_id"}, body
    assert body["error"]["type"] == kind and body["error"]["request_id"] == response.headers["X-Request-ID"]
    return str(body["error"]["message"])


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events of a stream: (event, data)."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


@pytest.mark.unit
def test_a_viewer_gets_a_cited_answer_search_hits_and_its_own_traces_only(
        served: tuple[Any, Project, dict[str, str]]) -> None:
    client, _, keys = served
    found = client.post("/v1/search", json={"query": "sort records by a key", "k": 2}, headers=_auth(keys["viewer"]))
    assert found.status_code == 200, found.get_data(as_text=True)
    hits = found.get_json()["hits"]
    assert 1 <= len(hits) <= 2 and hits[0]["document_id"] == "docs/sorting.md"
    asked = client.post("/v1/query", json={"question": SORT}, headers=_auth(keys["viewer"]))
    answer = asked.get_json()
    assert asked.status_code == 200 and answer["found"] and "sorted(records" in answer["answer"]
    assert answer["citations"][0]["document_id"] == "docs/sorting.md" and len(asked.headers["X-Request-ID"]) == 16
    own = client.get(f"/v1/traces/{answer['trace_id']}", headers=_auth(keys["viewer"]))
    assert own.status_code == 200 and own.get_json()["question"] == SORT
    assert own.get_json()["request_id"] == asked.headers["X-Request-ID"]
    _error(client.get(f"/v1/traces/{answer['trace_id']}", headers=_auth(keys["editor"])), 404, "not_found")
    assert client.get(f"/v1/traces/{answer['trace_id']}", headers=_auth(keys["admin"])).status_code == 200
    assert client.get("/health").get_json()["status"] == "ok"


@pytest.mark.unit
def test_every_protected_route_refuses_every_bad_key_and_admits_every_role(
        served: tuple[Any, Project, dict[str, str]]) -> None:
    client, project, keys = served
    revoked = project.api_keys.create("admin")
    project.api_keys.revoke(revoked.record.id)
    bodies: dict[str, Any] = {"/v1/search": {"query": "venv"}, "/v1/query": {"question": SORT},
                              "/v1/traces/<trace_id>": None, "/health": None}
    assert set(p for _, p in ROUTES) == set(bodies), "a new route: give it a body here"
    bad = {"no key": {}, "not bearer": {"Authorization": keys["admin"]}, "wrong key": _auth(keys["admin"][:-1] + "x"),
           "revoked": _auth(revoked.key)}
    for (method, rule), permission in ROUTES.items():
        if permission is None:
            continue
        for why, headers in bad.items():
            response = client.open(rule.replace("<trace_id>", "tr_0"), method=method, json=bodies[rule],
                                   headers=headers)
            _error(response, 401, "unauthenticated")
            assert response.headers["WWW-Authenticate"] == "Bearer", why
        for key in keys.values():
            own = client.post("/v1/query", json={"question": "venv?"}, headers=_auth(key)).get_json()["trace_id"]
            response = client.open(rule.replace("<trace_id>", own), method=method, json=bodies[rule],
                                   headers=_auth(key))
            assert response.status_code == 200, (rule, response.get_data(as_text=True))


@pytest.mark.unit
@pytest.mark.parametrize(("body", "status", "message"), [
    (json.dumps({"query": 42}).encode(), 422, "body.query: Input should be a valid string"),
    (json.dumps({"query": "x", "k": 10**9}).encode(), 422, "body.k: Input should be less than or equal to 100"),
    (json.dumps({"query": "x", "mode": "psychic"}).encode(), 422, "body.mode: Input should be"),
    (json.dumps({"query": "x", "extra": 1}).encode(), 422, "body.extra: Extra inputs are not permitted"),
    (json.dumps({"query": "x", "where": {"lang": "en"}}).encode(), 422, "metadata_filtering is not enabled"),
    (b"{not json", 400, "not JSON"),
    (b"\xff\xfe\x00 not utf-8", 400, "not JSON"),
    (b"", 400, "not JSON"),
])
def test_bad_bodies_get_the_json_error_of_the_fastapi_app(
        served: tuple[Any, Project, dict[str, str]], body: bytes, status: int, message: str) -> None:
    client, _, keys = served
    response = client.post("/v1/search", data=body,
                           headers={**_auth(keys["viewer"]), "Content-Type": "application/json"})
    kind = "invalid_request"
    assert message in _error(response, status, kind)
    assert client.get("/health").status_code == 200


@pytest.mark.unit
def test_an_oversized_body_a_missing_trace_and_a_cap_passed_are_refused(
        served: tuple[Any, Project, dict[str, str]]) -> None:
    client, _, keys = served
    huge = b'{"question": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
    _error(client.post("/v1/query", data=huge, headers={**_auth(keys["viewer"]), "Content-Type": "application/json"}),
           413, "too_large")
    _error(client.get("/v1/traces/tr_nothing", headers=_auth(keys["viewer"])), 404, "not_found")
    message = _error(client.post("/v1/query", json={"question": SORT, "max_tokens": 5000},
                                 headers=_auth(keys["viewer"])), 422, "invalid_request")
    assert "max_tokens: at most 1024" in message


@pytest.mark.unit
def test_a_streamed_answer_is_server_sent_events_ending_with_the_cited_answer(
        served: tuple[Any, Project, dict[str, str]]) -> None:
    client, _, keys = served
    response = client.post("/v1/query", json={"question": SORT, "stream": True}, headers=_auth(keys["viewer"]))
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = _events(response.get_data(as_text=True))
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and set(kinds[1:-1]) == {"token"}, kinds
    answer = events[-1][1]["answer"]
    assert "".join(d["text"] for e, d in events if e == "token") == answer["answer"]
    assert answer["citations"][0]["document_id"] == "docs/sorting.md"
    assert events[0][1]["trace_id"] == answer["trace_id"]
    _error(client.post("/v1/query", json={"question": SORT, "stream": True}), 401, "unauthenticated")


@pytest.mark.unit
def test_a_key_over_its_rate_limit_gets_429_with_retry_after(tmp_path: Path) -> None:
    project = _project(tmp_path, "deployment:\n  server:\n    limits: {requests_per_minute: 2}\n")
    key = project.api_keys.create("viewer").key
    client = _app(project).test_client()
    for _ in range(2):
        assert client.post("/v1/search", json={"query": "venv"}, headers=_auth(key)).status_code == 200
    refused = client.post("/v1/search", json={"query": "venv"}, headers=_auth(key))
    _error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1


@pytest.mark.unit
def test_an_answer_past_the_timeout_gets_504_and_the_blueprint_takes_a_service(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path, "deployment:\n  server: {request_timeout_s: 0.5}\n")
    real, release = project.ask_stream, threading.Event()

    def hang(question: str, **options: Any) -> Iterator[Any]:
        for item in real(question, **options):
            yield item
            if question == "hang":
                release.wait(5)  # a generator stuck on its model

    monkeypatch.setattr(project, "ask_stream", hang)
    client = _app(Service(project, None)).test_client()  # no keys: the local caller (serve --no-auth)
    t0 = time.monotonic()
    _error(client.post("/v1/query", json={"question": "hang"}), 504, "timeout")
    assert time.monotonic() - t0 < 3
    release.set()
    assert client.post("/v1/query", json={"question": SORT}).get_json()["found"]
    with pytest.raises(TypeError, match="a Project or a Service, not str"):
        blueprint("flightdeck.yaml")  # type: ignore[arg-type]


APP = """\
from flask import Flask

from flightdeck import Project
from flightdeck.serving.flask import blueprint
from flightdeck.testing import FakeEmbedder

app = Flask(__name__)
app.register_blueprint(blueprint(Project.load({root!r}).use(embedder=FakeEmbedder())))
"""


@pytest.mark.integration
@pytest.mark.exercises("deployment.serving_apis.flask")
def test_a_flask_app_run_by_flask_serves_keyed_cited_answers_and_streams(tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    key = project.api_keys.create("viewer").key
    (tmp_path / "app.py").write_text(APP.format(root=str(tmp_path / "project")), "utf-8")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", str(tmp_path / "app.py"), "run",
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise AssertionError(f"flask run did not come up: {process.stdout.read() if process.stdout else ''}")
            time.sleep(0.2)
        refused = httpx.post(f"{url}/v1/query", json={"question": SORT}, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthenticated"
        asked = httpx.post(f"{url}/v1/query", json={"question": SORT}, headers=_auth(key), timeout=30)
        answer = asked.json()
        assert asked.status_code == 200 and answer["found"], asked.text
        assert answer["citations"][0]["document_id"] == "docs/sorting.md" and "[1]" in answer["answer"]
        trace = httpx.get(f"{url}/v1/traces/{answer['trace_id']}", headers=_auth(key), timeout=30).json()
        assert trace["question"] == SORT and trace["request_id"] == asked.headers["x-request-id"]
        with httpx.stream("POST", f"{url}/v1/query", json={"question": SORT, "stream": True}, headers=_auth(key),
                          timeout=30) as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            events = _events(streamed.read().decode())
        assert [e for e, _ in events][0] == "sources" and events[-1][0] == "answer"
        assert events[-1][1]["answer"]["answer"] == answer["answer"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while the body is read
            yield b'{"question": "'
            for _ in range(MAX_BODY_BYTES // (64 << 10) + 2):
                yield b"a" * (64 << 10)
            yield b'"}'

        huge = httpx.post(f"{url}/v1/query", content=chunks(), timeout=30,
                          headers={**_auth(key), "Content-Type": "application/json"})
        assert huge.status_code == 413 and huge.json()["error"]["type"] == "too_large"
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    finally:
        stop_process(process)
