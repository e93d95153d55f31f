"""The HTTP API over a real project: keys and roles on every route, one JSON error shape, bad input refused
without taking the server down."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

fastapi = pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.cli.main import app as cli  # noqa: E402
from flightdeck.cli.serve_cmd import is_loopback  # noqa: E402
from flightdeck.governance.access import ROLE_PERMISSIONS, Permission, Role  # noqa: E402
from flightdeck.serving import api as api_mod  # noqa: E402
from flightdeck.serving.api import ROUTE_PERMISSIONS, create_app  # noqa: E402
from flightdeck.serving.service import PermissionDenied, Principal, Service  # noqa: E402
from flightdeck.testing import FakeEmbedder  # noqa: E402

pytestmark = pytest.mark.unit

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate one with `python -m venv .venv`, then activate it.\n",
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key.\n",
}


def _project(root: Path, run: bool = True, filters: bool = True) -> Project:
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    system = "[hybrid_search, metadata_filtering]" if filters else "[hybrid_search]"
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: api
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: 64, overlap: 8}}
        retrieval: {{system: {system}}}
        """), "utf-8")
    project = Project.load(root).use(embedder=FakeEmbedder())
    if run:
        project.run()
    return project


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Project, dict[str, str]]]:
    project = _project(tmp_path_factory.mktemp("served"))
    keys = {role.value: project.api_keys.create(role).key for role in Role}
    writer = Project.load(project.loaded.base_dir).use(embedder=FakeEmbedder())
    service = Service(project, project.api_keys, writer=lambda: writer)
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client, project, keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(response: Any, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "request_id"}, body
    assert body["error"]["type"] == kind and body["error"]["request_id"] == response.headers["x-request-id"]
    return str(body["error"]["message"])


def test_a_viewer_gets_cited_answers_and_search_hits(served: tuple[TestClient, Project, dict[str, str]]) -> None:
    client, project, keys = served
    found = client.post("/v1/search", json={"query": "sort records by a key", "k": 3}, headers=_auth(keys["viewer"]))
    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert 1 <= len(hits) <= 3 and hits[0]["document_id"] == "docs/sorting.md"
    answered = client.post("/v1/query", json={"question": "How do I sort records by a key?"},
                           headers=_auth(keys["viewer"]))
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["found"] and body["citations"] and body["citations"][0]["document_id"] == "docs/sorting.md"
    assert body["index_version"] == project.workspace.get_state("current_index")
    filtered = client.post("/v1/search", json={"query": "sort", "where": {"document_id": "docs/venv.md"}},
                           headers=_auth(keys["viewer"]))
    assert {h["document_id"] for h in filtered.json()["hits"]} == {"docs/venv.md"}


def test_health_and_ready_are_public(served: tuple[TestClient, Project, dict[str, str]], tmp_path: Path) -> None:
    client, project, _ = served
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").json() == {"ready": True, "index_version": project.workspace.get_state("current_index")}
    assert Service(project, None).warm_up() == project.workspace.get_state("current_index")
    empty = _project(tmp_path / "empty", run=False)
    assert Service(empty, None).warm_up() is None
    with TestClient(create_app(Service(empty, empty.api_keys))) as fresh:
        assert fresh.get("/ready").status_code == 503
        key = empty.api_keys.create("viewer").key
        message = _error(fresh.post("/v1/search", json={"query": "x"}, headers=_auth(key)), 503, "not_ready")
        assert "no index yet; run `flightdeck run` first" in message


@pytest.mark.exercises("governance.access_control.api_authentication")
@pytest.mark.exercises("governance.access_control.rbac")
def test_every_route_times_every_role_and_every_bad_key_gives_zero_unauthorised_successes(
        served: tuple[TestClient, Project, dict[str, str]]) -> None:
    client, project, keys = served
    expired = project.api_keys.create("admin", expires_in=1e-6).key
    revoked = project.api_keys.create("admin")
    project.api_keys.revoke(revoked.record.id)
    chat = {"model": "api", "messages": [{"role": "user", "content": "How do I make a venv?"}]}
    # each route: the request, and what a caller whose role holds the permission gets (a missing resource
    # is a 404 after the permission check passed)
    cases: dict[tuple[str, str], tuple[str, dict[str, Any], set[int]]] = {
        ("POST", "/v1/search"): ("/v1/search", {"json": {"query": "venv"}}, {200}),
        ("POST", "/v1/query"): ("/v1/query", {"json": {"question": "How do I create a venv?"}}, {200}),
        ("POST", "/v1/chat/completions"): ("/v1/chat/completions", {"json": chat}, {200}),
        ("POST", "/v1/embeddings"): ("/v1/embeddings", {"json": {"model": "api", "input": "venv"}}, {200}),
        ("GET", "/v1/models"): ("/v1/models", {}, {200}),
        ("GET", "/metrics"): ("/metrics", {}, {200}),
        ("GET", "/v1/traces/{trace_id}"): ("/v1/traces/{own}", {}, {200}),
        ("POST", "/v1/documents"): ("/v1/documents", {"json": {"name": "note.md", "text": "# Note\n\nA new note."}},
                                    {201}),
        ("GET", "/v1/documents/{document_id:path}"): ("/v1/documents/docs/venv.md", {}, {200}),
        ("DELETE", "/v1/documents/{document_id:path}"): ("/v1/documents/uploaded/none.md", {}, {404}),
        ("POST", "/v1/batch"): ("/v1/batch", {"json": {"questions": [{"question": "venv?"}]}}, {202}),
        ("GET", "/v1/batch/{job_id}"): ("/v1/batch/nojob", {}, {404}),
        ("GET", "/v1/batch/{job_id}/results"): ("/v1/batch/nojob/results", {}, {404}),
        ("GET", "/v1/releases"): ("/v1/releases", {}, {200}),
        ("GET", "/v1/releases/{ref}"): ("/v1/releases/v9", {}, {404}),
        ("POST", "/v1/releases/{ref}/approve"): ("/v1/releases/v9/approve", {"json": {}}, {404}),
        ("POST", "/v1/releases/{ref}/reject"): ("/v1/releases/v9/reject", {"json": {}}, {404}),
        ("POST", "/v1/releases/{ref}/promote"): ("/v1/releases/v9/promote", {"json": {}}, {404}),
        ("POST", "/v1/releases/rollback"): ("/v1/releases/rollback", {"json": {}}, {409}),
        ("GET", "/v1/lineage/{ref}"): ("/v1/lineage/{own}", {}, {200}),
        ("GET", "/v1/audit"): ("/v1/audit", {"params": {"limit": 5}}, {200}),
        ("GET", "/v1/audit/verify"): ("/v1/audit/verify", {}, {200}),
        ("GET", "/v1/agents"): ("/v1/agents", {}, {200}),
        ("POST", "/v1/agents/{name}/runs"): ("/v1/agents/nope/runs", {"json": {"question": "venv?"}}, {404}),
        ("POST", "/v1/responses"): ("/v1/responses", {"json": {"model": "api", "input": "How do I make a venv?"}},
                                    {200}),
        ("GET", "/v1/responses/{response_id}"): ("/v1/responses/resp_nope", {}, {404}),
        ("POST", "/v1/conversations"): ("/v1/conversations", {"json": {}}, {200}),
        ("GET", "/v1/conversations/{conversation_id}"): ("/v1/conversations/conv_nope", {}, {404}),
        ("GET", "/v1/conversations/{conversation_id}/items"): ("/v1/conversations/conv_nope/items", {}, {404}),
        ("POST", "/v1/conversations/{conversation_id}/items"): (
            "/v1/conversations/conv_nope/items", {"json": {"items": [{"role": "user", "content": "x"}]}}, {404}),
        ("POST", "/v1/assistants"): ("/v1/assistants", {"json": {"model": "api"}}, {200}),
        ("GET", "/v1/assistants"): ("/v1/assistants", {}, {200}),
        ("GET", "/v1/assistants/{assistant_id}"): ("/v1/assistants/asst_nope", {}, {404}),
        ("DELETE", "/v1/assistants/{assistant_id}"): ("/v1/assistants/asst_nope", {}, {404}),
        ("POST", "/v1/threads"): ("/v1/threads", {"json": {}}, {200}),
        ("GET", "/v1/threads/{thread_id}"): ("/v1/threads/thread_nope", {}, {404}),
        ("DELETE", "/v1/threads/{thread_id}"): ("/v1/threads/thread_nope", {}, {404}),
        ("POST", "/v1/threads/{thread_id}/messages"): (
            "/v1/threads/thread_nope/messages", {"json": {"role": "user", "content": "x"}}, {404}),
        ("GET", "/v1/threads/{thread_id}/messages"): ("/v1/threads/thread_nope/messages", {}, {404}),
        ("POST", "/v1/threads/{thread_id}/runs"): (
            "/v1/threads/thread_nope/runs", {"json": {"assistant_id": "asst_nope"}}, {404}),
        ("GET", "/v1/threads/{thread_id}/runs"): ("/v1/threads/thread_nope/runs", {}, {404}),
        ("GET", "/v1/threads/{thread_id}/runs/{run_id}"): ("/v1/threads/thread_nope/runs/run_nope", {}, {404}),
        ("POST", "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs"): (
            "/v1/threads/thread_nope/runs/run_nope/submit_tool_outputs",
            {"json": {"tool_outputs": [{"tool_call_id": "call_x", "output": "x"}]}}, {404}),
        ("POST", "/v1/threads/{thread_id}/runs/{run_id}/cancel"): (
            "/v1/threads/thread_nope/runs/run_nope/cancel", {}, {404}),
    }
    protected = {(m, p): perm for (m, p), perm in ROUTE_PERMISSIONS.items()
                 if perm is not None and m != "WS"}  # the WebSocket route: tests/serving/test_websocket.py
    assert set(protected) == set(cases), "a new route: give it a request here"
    bad = {"no key": {}, "not bearer": {"Authorization": keys["admin"]}, "wrong key": _auth(keys["admin"][:-1] + "x"),
           "garbage": _auth("hello"), "expired": _auth(expired), "revoked": _auth(revoked.key)}
    for (method, route), permission in protected.items():
        path, request, succeeded = cases[(method, route)]
        for why, headers in bad.items():
            response = client.request(method, path.replace("{own}", "tr_0"), headers=headers, **request)
            _error(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"] == "Bearer", why
        for role, key in keys.items():
            own = client.post("/v1/query", json={"question": "venv?"}, headers=_auth(key)).json()["trace_id"]
            response = client.request(method, path.replace("{own}", own), headers=_auth(key), **request)
            if permission in ROLE_PERMISSIONS[Role(role)]:
                assert response.status_code in succeeded, (role, method, path, response.text)
            else:
                _error(response, 403, "forbidden")


def test_a_role_without_the_permission_is_forbidden_by_the_service(
        served: tuple[TestClient, Project, dict[str, str]]) -> None:
    _, project, _ = served
    with pytest.raises(PermissionDenied, match="a viewer key may not documents:write"):
        Service(project, None).check(Principal("k", Role.VIEWER), Permission.DOCUMENTS_WRITE)
    Service(project, None).check(Principal("k", Role.EDITOR), Permission.DOCUMENTS_WRITE)


def test_the_app_refuses_to_start_with_a_route_the_permission_table_does_not_name(
        served: tuple[TestClient, Project, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, project, _ = served
    table = {k: v for k, v in ROUTE_PERMISSIONS.items() if k != ("POST", "/v1/query")}
    monkeypatch.setattr(api_mod, "ROUTE_PERMISSIONS", table)
    with pytest.raises(RuntimeError, match=r"routes without a permission .*POST /v1/query"):
        create_app(Service(project, project.api_keys))


@pytest.mark.parametrize(("body", "message"), [
    (json.dumps({"query": 42}).encode(), "query: Input should be a valid string"),
    (json.dumps({"query": "x", "k": 10**9}).encode(), "k: Input should be less than or equal to 100"),
    (json.dumps({"query": "x", "mode": "psychic"}).encode(), "mode: Input should be"),
    (json.dumps({"query": ""}).encode(), "query: String should have at least 1 character"),
    (json.dumps({"query": "x", "extra": 1}).encode(), "extra: Extra inputs are not permitted"),
    (json.dumps({"query": "x", "where": {"year": {"$regex": "a"}}}).encode(), "$regex"),
])
def test_bad_requests_get_a_json_error_and_the_server_keeps_serving(
        served: tuple[TestClient, Project, dict[str, str]], body: bytes, message: str) -> None:
    client, _, keys = served
    response = client.post("/v1/search", content=body,
                           headers={**_auth(keys["viewer"]), "Content-Type": "application/json"})
    assert message in _error(response, 422, "invalid_request")
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00 not utf-8", b""])
def test_a_body_that_is_not_json_is_a_400_in_the_same_shape(
        served: tuple[TestClient, Project, dict[str, str]], body: bytes) -> None:
    client, _, keys = served
    response = client.post("/v1/query", content=body,
                           headers={**_auth(keys["viewer"]), "Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    _error(response, response.status_code, "invalid_request")
    _error(client.get("/v1/nothing"), 404, "not_found")
    _error(client.get("/v1/query", headers=_auth(keys["viewer"])), 405, "method_not_allowed")
    assert client.get("/health").status_code == 200


def test_a_filter_without_metadata_filtering_and_an_oversized_body_are_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, filters=False)
    key = project.api_keys.create("viewer").key
    with TestClient(create_app(Service(project, project.api_keys))) as client:
        message = _error(client.post("/v1/search", json={"query": "x", "where": {"lang": "en"}}, headers=_auth(key)),
                         422, "invalid_request")
        assert "metadata_filtering is not enabled" in message
        huge = b'{"query": "' + b"a" * (2 << 20) + b'"}'
        _error(client.post("/v1/search", content=huge, headers={**_auth(key), "Content-Type": "application/json"}),
               413, "too_large")
        assert client.post("/v1/search", json={"query": "venv"}, headers=_auth(key)).status_code == 200


def test_a_failing_answer_is_a_500_in_the_same_shape_and_not_the_end_of_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    key = project.api_keys.create("viewer").key

    def broken(question: str, **options: Any) -> Iterator[Any]:
        raise RuntimeError("the generator fell over")
        yield

    monkeypatch.setattr(project, "ask_stream", broken)
    with TestClient(create_app(Service(project, project.api_keys)), raise_server_exceptions=False) as client:
        message = _error(client.post("/v1/query", json={"question": "x"}, headers=_auth(key)), 500, "internal")
        assert "fell over" not in message  # internals stay in the log
        assert client.post("/v1/search", json={"query": "venv"}, headers=_auth(key)).status_code == 200


def test_serve_refuses_no_auth_beyond_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("example.com")
    refused = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--no-auth"])
    said = re.sub(r"[│╭╮╰╯─\s]+", " ", refused.output)
    assert refused.exit_code == 2 and "would let anyone on the network in" in said
