"""The gRPC API (``flightdeck.v1.Flightdeck``) called by a real grpcio client over 127.0.0.1: answers, search and
the streamed answer over a real project; keys, status codes, limits, deadlines and cancellation; and
``flightdeck serve --grpc`` as a user runs it."""

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

grpc = pytest.importorskip("grpc")
pytest.importorskip("google.protobuf")

from live_server import small_project  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.errors import FlightdeckError, WorkspaceError  # noqa: E402
from flightdeck.governance.access import Role  # noqa: E402
from flightdeck.governance.api_keys import AuthenticationError  # noqa: E402
from flightdeck.retrieval.filters import FilterError  # noqa: E402
from flightdeck.serving.grpc import flightdeck_pb2 as pb  # noqa: E402
from flightdeck.serving.grpc import flightdeck_pb2_grpc as pb_grpc  # noqa: E402
from flightdeck.serving.grpc.server import serve_grpc, status_of  # noqa: E402
from flightdeck.serving.service import PermissionDenied, RateLimited, RequestTimeout, Service  # noqa: E402
from llm_fixtures import free_port, stop_process  # noqa: E402
from needs import needs_provider  # noqa: E402

pytestmark = pytest.mark.integration

Code = grpc.StatusCode
DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv. Activate the "
               "virtual environment with source .venv/bin/activate before installing packages.\n",
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key. The sort is "
                  "stable, so records with equal keys keep their order.\n",
}
SORT = "How do I sort records by a key?"


def _project(root: Path, server: str = "", run: bool = True) -> Project:
    return small_project(root, DOCS, extra=server, run=run)


class Served:
    """``serve_grpc`` over ``service`` on a free port of 127.0.0.1, and a client stub for it."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.port = free_port()

    def __enter__(self) -> Served:
        self.server = serve_grpc(self.service, "127.0.0.1", self.port, max_workers=4)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.FlightdeckStub(self.channel)
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        self.server.stop(grace=None).wait(10)


def _key(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def _refused(call: Any, code: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, (caught.value.code(), caught.value.details())
    return caught.value


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, str]]]:
    project = _project(tmp_path_factory.mktemp("grpc"))
    keys = {role.value: project.api_keys.create(role).key for role in Role}
    with Served(Service(project, project.api_keys)) as server:
        yield server, keys


@pytest.mark.exercises("deployment.serving_apis.grpc")
def test_query_and_search_answer_a_viewer_with_citations(served: tuple[Served, dict[str, str]]) -> None:
    server, keys = served
    answer, call = server.stub.Query.with_call(pb.QueryRequest(question=SORT), metadata=_key(keys["viewer"]),
                                               timeout=30)
    assert answer.found and "sorted(records" in answer.answer and "[1]" in answer.answer
    assert answer.citations[0].number == 1 and answer.citations[0].document_id == "docs/sorting.md"
    assert answer.citations[0].quote and answer.index_version and answer.timings_ms["total"] > 0
    assert len(dict(call.trailing_metadata())["x-request-id"]) == 16
    # the same service stored the answer's trace, under the viewer's key
    trace = server.service.trace(server.service.authenticate(f"Bearer {keys['viewer']}"), answer.trace_id)
    assert trace["question"] == SORT and trace["answer"] == answer.answer

    found = server.stub.Search(pb.SearchRequest(query="sort records by a key", k=3), metadata=_key(keys["viewer"]),
                               timeout=30)
    assert 1 <= len(found.hits) <= 3 and found.hits[0].document_id == "docs/sorting.md"
    assert found.index_version == answer.index_version and found.mode == "hybrid"
    assert isinstance(json.loads(found.hits[0].metadata), dict) and found.hits[0].text
    filtered = server.stub.Search(pb.SearchRequest(query="sort records", where='{"document_id": "docs/venv.md"}'),
                                  metadata=_key(keys["viewer"]), timeout=30)
    assert filtered.hits and {h.document_id for h in filtered.hits} == {"docs/venv.md"}


def test_the_streamed_answer_is_sources_then_tokens_then_the_checked_answer(
        served: tuple[Served, dict[str, str]]) -> None:
    server, keys = served
    events = list(server.stub.Answer(pb.QueryRequest(question=SORT), metadata=_key(keys["editor"]), timeout=30))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and set(kinds[1:-1]) == {"token"}, kinds
    sources, answer = events[0].sources, events[-1].answer
    assert sources.hits[0].document_id == "docs/sorting.md" and sources.trace_id == answer.trace_id
    assert "".join(e.token.text for e in events[1:-1]) == answer.answer and answer.found
    assert {c.chunk_id for c in answer.citations} <= {h.chunk_id for h in sources.hits}


def test_keys_are_checked_and_health_is_public(served: tuple[Served, dict[str, str]]) -> None:
    server, keys = served
    search = pb.SearchRequest(query="venv")
    assert "no API key" in _refused(lambda: server.stub.Search(search, timeout=10), Code.UNAUTHENTICATED).details()
    _refused(lambda: server.stub.Search(search, metadata=_key("fd_notakey_0000"), timeout=10), Code.UNAUTHENTICATED)
    _refused(lambda: server.stub.Query(pb.QueryRequest(question="venv"), metadata=[("authorization", keys["viewer"])],
                                       timeout=10), Code.UNAUTHENTICATED)  # no "Bearer "
    _refused(lambda: list(server.stub.Answer(pb.QueryRequest(question="venv"), timeout=10)), Code.UNAUTHENTICATED)
    assert server.stub.Search(search, metadata=_key(keys["viewer"]), timeout=10).hits
    health = server.stub.Health(pb.HealthRequest(), timeout=10)
    assert health.status == "ok" and health.ready and health.index_version


def test_a_role_without_the_permission_gets_permission_denied(
        served: tuple[Served, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    server, keys = served
    monkeypatch.setattr("flightdeck.serving.service.allowed", lambda role, permission: False)
    error = _refused(lambda: server.stub.Search(pb.SearchRequest(query="venv"), metadata=_key(keys["viewer"]),
                                                timeout=10), Code.PERMISSION_DENIED)
    assert "a viewer key may not search" in error.details()


@pytest.mark.parametrize(("request_", "message"), [
    (pb.SearchRequest(query="x", where='{"year": {"$regex": "a"}}'), "$regex"),
    (pb.SearchRequest(query="x", where="{not json"), "where: not JSON"),
    (pb.SearchRequest(query="x", where="[1, 2]"), "where: a JSON object"),
    (pb.SearchRequest(query=""), "query: must not be empty"),
    (pb.SearchRequest(query="x", k=1000), "k: 1 to 100"),
    (pb.SearchRequest(query="x", mode="psychic"), "mode: one of hybrid"),
    (pb.QueryRequest(question="x" * 5000), "question: at most 4000 characters"),
    (pb.QueryRequest(question="x", max_tokens=0), "max_tokens: 1 to 32768"),
    (pb.QueryRequest(question="x", conversation_id="not an id!"), "conversation_id"),
])
def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(
        served: tuple[Served, dict[str, str]], request_: Any, message: str) -> None:
    server, keys = served
    call = server.stub.Search if isinstance(request_, pb.SearchRequest) else server.stub.Query
    error = _refused(lambda: call(request_, metadata=_key(keys["viewer"]), timeout=10), Code.INVALID_ARGUMENT)
    assert message in error.details()
    assert server.stub.Health(pb.HealthRequest(), timeout=10).status == "ok"


def test_a_request_over_the_size_limit_is_refused(served: tuple[Served, dict[str, str]]) -> None:
    server, keys = served
    _refused(lambda: server.stub.Search(pb.SearchRequest(query="a" * (2 << 20)), metadata=_key(keys["viewer"]),
                                        timeout=10), Code.RESOURCE_EXHAUSTED)
    assert server.stub.Search(pb.SearchRequest(query="venv"), metadata=_key(keys["viewer"]), timeout=10).hits


def test_a_key_over_its_rate_limit_gets_resource_exhausted_with_retry_after(tmp_path: Path) -> None:
    project = _project(tmp_path, "deployment:\n  server:\n    limits: {requests_per_minute: 2}\n")
    key = project.api_keys.create("viewer").key
    with Served(Service(project, project.api_keys)) as server:
        for _ in range(2):
            server.stub.Search(pb.SearchRequest(query="venv"), metadata=_key(key), timeout=10)
        error = _refused(lambda: server.stub.Search(pb.SearchRequest(query="venv"), metadata=_key(key), timeout=10),
                         Code.RESOURCE_EXHAUSTED)
        trailing = dict(error.trailing_metadata())
        assert "2 requests a minute" in error.details() and int(trailing["retry-after"]) >= 1
        assert trailing["x-request-id"]


def test_without_an_index_health_says_not_ready_and_search_is_unavailable(tmp_path: Path) -> None:
    project = _project(tmp_path, run=False)
    key = project.api_keys.create("viewer").key
    with Served(Service(project, project.api_keys)) as server:
        health = server.stub.Health(pb.HealthRequest(), timeout=10)
        assert health.status == "ok" and not health.ready and health.index_version == ""
        _refused(lambda: server.stub.Search(pb.SearchRequest(query="venv"), metadata=_key(key), timeout=10),
                 Code.UNAVAILABLE)


@pytest.mark.parametrize(("error", "code", "kind"), [
    (AuthenticationError("no key"), Code.UNAUTHENTICATED, "unauthenticated"),
    (PermissionDenied("no"), Code.PERMISSION_DENIED, "forbidden"),
    (RateLimited("over", 3), Code.RESOURCE_EXHAUSTED, "rate_limited"),
    (RequestTimeout("slow"), Code.DEADLINE_EXCEEDED, "timeout"),
    (FilterError("bad filter"), Code.INVALID_ARGUMENT, "invalid_request"),
    (ValueError("k: too many"), Code.INVALID_ARGUMENT, "invalid_request"),
    (WorkspaceError("no index"), Code.UNAVAILABLE, "not_ready"),
    (FlightdeckError("the store failed"), Code.INTERNAL, "failed"),
])
def test_each_failure_has_its_status_code(error: Exception, code: Any, kind: str) -> None:
    assert status_of(error) == (code, kind, str(error))


def test_an_unexpected_failure_is_internal_with_a_generic_message(
        served: tuple[Served, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    server, keys = served

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail at /srv/keys.db")

    monkeypatch.setattr(server.service.project, "search", broken)
    error = _refused(lambda: server.stub.Search(pb.SearchRequest(query="venv"), metadata=_key(keys["viewer"]),
                                                timeout=10), Code.INTERNAL)
    assert "secret" not in error.details() and "log has the details" in error.details()
    monkeypatch.undo()
    assert server.stub.Search(pb.SearchRequest(query="venv"), metadata=_key(keys["viewer"]), timeout=10).hits


class SlowAnswers:
    """``project.ask_stream`` slowed down: after the sources, "tick " tokens every 50 ms (question "tick") or a
    wait until :attr:`release` is set (question "hang"); :attr:`closed` is set when the stream's finally ran,
    :attr:`stopped` when it ran because the stream was closed before its end."""

    def __init__(self, project: Project) -> None:
        self.real = project.ask_stream
        self.closed = threading.Event()
        self.release = threading.Event()
        self.ticks = 0
        self.stopped = False

    def __call__(self, question: str, **options: Any) -> Iterator[Any]:
        try:
            for item in self.real(question, **options):
                yield item
                if hasattr(item, "hits") and question == "tick":
                    for self.ticks in range(1, 201):  # 10 s, unless closed
                        time.sleep(0.05)
                        yield "tick "
                elif hasattr(item, "hits") and question == "hang":
                    self.release.wait(10)  # a generator stuck on its model
        except GeneratorExit:
            self.stopped = True
            raise
        finally:
            self.closed.set()


def test_a_client_that_cancels_a_stream_stops_the_generation_and_the_server_keeps_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    key = project.api_keys.create("viewer").key
    slow = SlowAnswers(project)
    monkeypatch.setattr(project, "ask_stream", slow)
    with Served(Service(project, project.api_keys)) as server:
        call = server.stub.Answer(pb.QueryRequest(question="tick"), metadata=_key(key), timeout=30)
        events = iter(call)
        assert next(events).WhichOneof("event") == "sources"
        assert next(events).token.text == "tick "
        call.cancel()
        assert slow.closed.wait(5), "the service's answer iterator was not closed"
        assert slow.stopped and slow.ticks < 100 and call.code() == Code.CANCELLED
        t0 = time.monotonic()  # the extractive answer held the service's lock: it is free again
        answer = server.stub.Query(pb.QueryRequest(question=SORT), metadata=_key(key), timeout=10)
        assert answer.found and time.monotonic() - t0 < 5


def test_a_stuck_answer_runs_out_of_time_and_its_generation_is_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path, "deployment:\n  server: {request_timeout_s: 0.5}\n")
    key = project.api_keys.create("viewer").key
    slow = SlowAnswers(project)
    monkeypatch.setattr(project, "ask_stream", slow)
    with Served(Service(project, project.api_keys)) as server:
        t0 = time.monotonic()  # the server's timeout: no client deadline
        error = _refused(lambda: server.stub.Query(pb.QueryRequest(question="hang"), metadata=_key(key)),
                         Code.DEADLINE_EXCEEDED)
        assert "request_timeout_s" in error.details() and time.monotonic() - t0 < 3
        slow.release.set()  # the model answers at last: the stopped call closes its stream, not send it
        assert slow.closed.wait(5) and slow.stopped
        assert server.stub.Query(pb.QueryRequest(question=SORT), metadata=_key(key), timeout=10).found


def test_the_client_deadline_ends_a_call_before_the_server_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)  # request_timeout_s: 60
    key = project.api_keys.create("viewer").key
    slow = SlowAnswers(project)
    monkeypatch.setattr(project, "ask_stream", slow)
    with Served(Service(project, project.api_keys)) as server:
        t0 = time.monotonic()
        _refused(lambda: server.stub.Query(pb.QueryRequest(question="tick"), metadata=_key(key), timeout=0.5),
                 Code.DEADLINE_EXCEEDED)
        assert slow.closed.wait(5) and slow.stopped and slow.ticks < 100 and time.monotonic() - t0 < 5


# --- `flightdeck serve --grpc` as a user runs it ----------------------------------------------------------------
FLIGHTDECK = [sys.executable, "-m", "flightdeck"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLIGHTDECK, *args, "--spec", str(root)], capture_output=True, text=True, env=ENV,
                          timeout=300, check=False)


@pytest.mark.exercises("deployment.serving_apis.grpc")
@needs_provider("embedder", "sentence_transformers")
def test_flightdeck_serve_grpc_answers_beside_http_and_stops_with_it(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "venv.md").write_text("# Virtual environments\n\nTo create a virtual environment, run the "
                                               "venv module: python -m venv .venv, then activate it.\n", "utf-8")
    (tmp_path / "docs" / "files.md").write_text("# Files\n\nUse the with statement so that the file is closed even "
                                                "when an exception is raised.\n", "utf-8")
    (tmp_path / "flightdeck.yaml").write_text("project: serve\ndata:\n  sources: [{provider: files, path: ./docs}]\n",
                                              "utf-8")
    ran = _cli(tmp_path, "run")
    assert ran.returncode == 0, ran.stderr
    key = Project.load(tmp_path).api_keys.create("viewer").key  # what `flightdeck keys create` does

    port, grpc_port = free_port(), free_port()
    process = subprocess.Popen([*FLIGHTDECK, "serve", "--port", str(port), "--grpc", str(grpc_port),
                                "--spec", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=ENV)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    try:
        deadline = time.monotonic() + 60
        while True:  # HTTP up means the gRPC server started before it
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise AssertionError(f"the server did not come up: {process.stdout.read() if process.stdout else ''}")
            time.sleep(0.2)
        stub = pb_grpc.FlightdeckStub(channel)
        assert stub.Health(pb.HealthRequest(), timeout=10).ready
        _refused(lambda: stub.Query(pb.QueryRequest(question="How do I create a virtual environment?"), timeout=30),
                 Code.UNAUTHENTICATED)
        answer = stub.Query(pb.QueryRequest(question="How do I create a virtual environment?"), metadata=_key(key),
                            timeout=60)
        assert answer.found and answer.citations[0].document_id == "docs/venv.md", answer
        # the same service behind both: HTTP reads the trace of the answer gRPC gave
        trace = httpx.get(f"http://127.0.0.1:{port}/v1/traces/{answer.trace_id}",
                          headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert trace.status_code == 200 and trace.json()["answer"] == answer.answer
    finally:
        stop_process(process)
    output = process.stdout.read() if process.stdout else ""
    assert f"gRPC: flightdeck.v1.Flightdeck on 127.0.0.1:{grpc_port}" in output
    _refused(lambda: pb_grpc.FlightdeckStub(channel).Health(pb.HealthRequest(), timeout=2), Code.UNAVAILABLE)
    channel.close()
