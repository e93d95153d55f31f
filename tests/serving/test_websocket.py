"""``/v1/ws``: answers over a WebSocket, called by the real ``websockets`` client against uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from live_server import LiveServer, small_project  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import ClientConnection, connect  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.governance.access import Role  # noqa: E402
from flightdeck.serving import api as api_mod  # noqa: E402
from flightdeck.serving import websocket as ws_mod  # noqa: E402
from flightdeck.serving.api import ROUTE_PERMISSIONS, create_app  # noqa: E402
from flightdeck.serving.service import Service  # noqa: E402

pytestmark = pytest.mark.integration

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv. Activate the "
               "virtual environment with source .venv/bin/activate before installing packages.\n",
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key. The sort is "
                  "stable, so records with equal keys keep their order.\n",
}
SORT = "How do I sort records by a key?"
VENV = "How do I activate the virtual environment?"


def _project(root: Path) -> Project:
    return small_project(root, DOCS, name="sockets", filters=False)


class Server(LiveServer):
    def connect(self, key: str | None = None) -> ClientConnection:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        return connect(self.ws, additional_headers=headers, open_timeout=10, close_timeout=5)


class SlowAnswers:
    """``project.ask_stream`` for questions starting with "slow": the answer's text comes word by word, ``pause``
    s apart, as from a slow LLM; ``closed`` tells that its ``finally`` ran (the service closed it), ``items``
    how many items it gave."""

    def __init__(self, project: Project, pause: float = 0.3) -> None:
        self.real = project.ask_stream
        self.pause = pause
        self.closed = threading.Event()
        self.items = 0

    def __call__(self, question: str, **options: Any) -> Iterator[Any]:
        if not question.startswith("slow"):
            yield from self.real(question, **options)
            return
        try:
            for item in self.real(question.removeprefix("slow "), **options):
                for piece in re.findall(r"\S+\s*", item) if isinstance(item, str) else [item]:
                    if self.items:
                        time.sleep(self.pause)
                    self.items += 1
                    yield piece
        finally:
            self.closed.set()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], SlowAnswers]]:
    project = _project(tmp_path_factory.mktemp("ws"))
    keys = {role.value: project.api_keys.create(role).key for role in Role}
    slow = SlowAnswers(project)
    project.ask_stream = slow  # type: ignore[method-assign]
    with Server(Service(project, project.api_keys)) as server:
        yield server, keys, slow


def _recv(socket: ClientConnection) -> dict[str, Any]:
    message = json.loads(socket.recv(timeout=30))
    assert isinstance(message, dict) and "type" in message, message
    return message


def _until(socket: ClientConnection, done: Any) -> list[dict[str, Any]]:
    """Messages until ``done(message)`` holds (that one included)."""
    seen: list[dict[str, Any]] = []
    while not seen or not done(seen[-1]):
        seen.append(_recv(socket))
    return seen


def _refused(socket: ClientConnection) -> dict[str, Any]:
    """The error the server sent before closing the socket with 1008."""
    error = _recv(socket)
    assert error["type"] == "error", error
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    return error["error"]


@pytest.mark.exercises("deployment.serving_apis.websockets")
def test_a_cited_answer_streams_as_sources_tokens_and_answer_and_its_trace_is_stored(
        served: tuple[Server, dict[str, str], SlowAnswers]) -> None:
    server, keys, _ = served
    with server.connect(keys["viewer"]) as socket:
        hello = _recv(socket)
        assert hello["type"] == "authenticated" and hello["role"] == "viewer"
        assert hello["key_id"] == keys["viewer"].split("_")[1]
        socket.send(json.dumps({"type": "query", "id": "q1", "question": SORT}))
        events = _until(socket, lambda m: m["type"] in ("answer", "error"))
    assert [e["id"] for e in events] == ["q1"] * len(events)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and set(kinds[1:-1]) == {"token"}, kinds
    sources, answer = events[0], events[-1]["answer"]
    assert sources["hits"][0]["document_id"] == "docs/sorting.md"
    assert "sorted(records" in answer["answer"] and "[1]" in answer["answer"] and answer["found"]
    assert "".join(e["text"] for e in events[1:-1]) == answer["answer"]
    assert answer["citations"][0]["document_id"] == "docs/sorting.md"
    assert answer["trace_id"] == sources["trace_id"]
    trace = httpx.get(f"{server.url}/v1/traces/{answer['trace_id']}",
                      headers={"Authorization": f"Bearer {keys['viewer']}"}).json()
    assert trace["question"] == SORT and trace["operation"] == "ws" and trace["answer"] == answer["answer"]


@pytest.mark.exercises("deployment.serving_apis.websockets")
def test_two_questions_on_one_socket_are_answered_concurrently_each_under_its_id(
        served: tuple[Server, dict[str, str], SlowAnswers]) -> None:
    server, keys, _ = served
    with server.connect(keys["editor"]) as socket:
        _recv(socket)
        socket.send(json.dumps({"type": "query", "id": "sort", "question": SORT}))
        socket.send(json.dumps({"type": "query", "id": 7, "question": VENV, "max_tokens": 200}))
        answers: dict[Any, dict[str, Any]] = {}
        order: dict[Any, list[str]] = {"sort": [], 7: []}
        while len(answers) < 2:
            message = _recv(socket)
            assert message["type"] != "error", message
            order[message["id"]].append(message["type"])
            if message["type"] == "answer":
                answers[message["id"]] = message["answer"]
        for kinds in order.values():
            assert kinds[0] == "sources" and kinds[-1] == "answer" and kinds.count("answer") == 1
        assert answers["sort"]["citations"][0]["document_id"] == "docs/sorting.md"
        assert answers[7]["citations"][0]["document_id"] == "docs/venv.md"
        assert "source .venv/bin/activate" in answers[7]["answer"]
        # the same socket answers again once both are done, and an id may be reused after its answer
        socket.send(json.dumps({"type": "query", "id": "sort", "question": VENV}))
        again = _until(socket, lambda m: m["type"] in ("answer", "error"))
        assert again[-1]["type"] == "answer" and again[-1]["answer"]["found"]


def test_cancel_stops_a_running_answer_and_the_socket_keeps_serving(
        served: tuple[Server, dict[str, str], SlowAnswers]) -> None:
    server, keys, slow = served
    slow.closed.clear()
    slow.items = 0
    with server.connect(keys["viewer"]) as socket:
        _recv(socket)
        socket.send(json.dumps({"type": "query", "id": "long", "question": f"slow {SORT}"}))
        sources = _recv(socket)
        assert sources["type"] == "sources" and sources["id"] == "long"
        t0 = time.monotonic()
        socket.send(json.dumps({"type": "cancel", "id": "long"}))
        after = _until(socket, lambda m: m["type"] in ("cancelled", "answer", "error"))
        assert after[-1] == {"type": "cancelled", "id": "long"}, after
        assert time.monotonic() - t0 < 3 and slow.closed.is_set()  # the iterator's finally ran
        assert slow.items <= 3  # it stopped: the full answer is a dozen words
        trace = httpx.get(f"{server.url}/v1/traces/{sources['trace_id']}",
                          headers={"Authorization": f"Bearer {keys['viewer']}"}).json()
        assert trace["answer"] is None and trace["details"]["error"] == "the client went away"
        socket.send(json.dumps({"type": "cancel", "id": "long"}))  # no longer running
        gone = _recv(socket)
        assert gone["type"] == "error" and gone["id"] == "long" and gone["error"]["type"] == "not_found"
        socket.send(json.dumps({"type": "query", "id": "next", "question": VENV}))
        assert _until(socket, lambda m: m["type"] in ("answer", "error"))[-1]["type"] == "answer"


def test_a_client_that_goes_away_mid_answer_closes_the_iterator(
        served: tuple[Server, dict[str, str], SlowAnswers]) -> None:
    server, keys, slow = served
    slow.closed.clear()
    slow.items = 0
    with server.connect(keys["viewer"]) as socket:
        _recv(socket)
        socket.send(json.dumps({"type": "query", "id": "bye", "question": f"slow {VENV}"}))
        assert _recv(socket)["type"] == "sources"
        socket.close()
    assert slow.closed.wait(5) and slow.items <= 3
    with server.connect(keys["viewer"]) as again:  # the server is still up
        assert _recv(again)["type"] == "authenticated"


def test_no_key_a_bad_key_or_none_in_time_is_refused_with_1008(
        served: tuple[Server, dict[str, str], SlowAnswers], monkeypatch: pytest.MonkeyPatch) -> None:
    server, keys, _ = served
    with server.connect() as socket:
        socket.send(json.dumps({"type": "query", "id": "q", "question": SORT}))  # a query before any key
        error = _refused(socket)
        assert error["type"] == "unauthenticated" and '{"type": "auth"' in error["message"]
    with server.connect(keys["viewer"][:-1] + "x") as socket:
        assert _refused(socket)["type"] == "unauthenticated"
    with server.connect() as socket:
        socket.send(json.dumps({"type": "auth", "key": "fdk_nothing"}))
        assert _refused(socket)["type"] == "unauthenticated"
    monkeypatch.setattr(ws_mod, "AUTH_TIMEOUT_S", 0.3)
    with server.connect() as socket:
        t0 = time.monotonic()
        error = _refused(socket)
        assert error["type"] == "unauthenticated" and "no API key within 0.3 s" in error["message"]
        assert time.monotonic() - t0 < 5


def test_a_browser_authenticates_with_its_first_message(served: tuple[Server, dict[str, str], SlowAnswers]) -> None:
    server, keys, _ = served
    with server.connect() as socket:
        socket.send(json.dumps({"type": "auth", "key": keys["approver"]}))
        hello = _recv(socket)
        assert hello["type"] == "authenticated" and hello["role"] == "approver"
        socket.send(json.dumps({"type": "query", "id": "b", "question": SORT}))
        assert _until(socket, lambda m: m["type"] in ("answer", "error"))[-1]["type"] == "answer"


def test_malformed_messages_get_an_error_and_the_socket_stays_usable(
        served: tuple[Server, dict[str, str], SlowAnswers]) -> None:
    server, keys, _ = served
    with server.connect(keys["viewer"]) as socket:
        _recv(socket)
        for bad, kind, says in [
            ("{not json", "invalid_request", "not JSON"),
            ("[1, 2]", "invalid_request", "a JSON object"),
            (json.dumps({"type": "dance", "id": "d"}), "invalid_request", "unknown message type 'dance'"),
            (json.dumps({"type": "query", "id": "m"}), "invalid_request", "question: Field required"),
            (json.dumps({"type": "query", "id": "m", "question": "x" * 5000}), "invalid_request", "at most 4000"),
            (json.dumps({"type": "query", "id": "m", "question": "x", "extra": 1}), "invalid_request", "extra"),
            (json.dumps({"type": "query", "id": "m", "question": SORT, "max_tokens": 10**9}), "invalid_request",
             "max_tokens"),
            (json.dumps({"type": "auth", "key": keys["admin"]}), "invalid_request", "already authenticated"),
        ]:
            socket.send(bad)
            error = _recv(socket)
            assert error["type"] == "error" and error["error"]["type"] == kind, (bad, error)
            assert says in error["error"]["message"], (bad, error)
            assert error["id"] == (json.loads(bad).get("id") if bad.startswith("{\"") else None)
        socket.send(json.dumps({"type": "query", "id": "ok", "question": SORT}))
        assert _until(socket, lambda m: m["type"] in ("answer", "error"))[-1]["type"] == "answer"


def test_the_app_refuses_to_start_with_a_websocket_route_the_permission_table_does_not_name(
        served: tuple[Server, dict[str, str], SlowAnswers], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ROUTE_PERMISSIONS[("WS", "/v1/ws")] is not None
    project = _project(tmp_path)
    table = {k: v for k, v in ROUTE_PERMISSIONS.items() if k != ("WS", "/v1/ws")}
    monkeypatch.setattr(api_mod, "ROUTE_PERMISSIONS", table)
    with pytest.raises(RuntimeError, match=r"routes without a permission .*WS /v1/ws"):
        create_app(Service(project, project.api_keys))
