"""The OpenAI-compatible routes, called by the real ``openai`` SDK over HTTP (uvicorn on 127.0.0.1), plus the
server's streams, traces, conversations, limits, timeouts, metrics and logs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from live_server import LiveServer, bearer, small_project  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.governance.access import Role  # noqa: E402
from flightdeck.serving.logs import JsonFormatter  # noqa: E402
from flightdeck.serving.service import Service  # noqa: E402
from flightdeck.testing import FakeEmbedder  # noqa: E402

pytestmark = pytest.mark.integration

DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv. Activate the "
               "virtual environment with source .venv/bin/activate before installing packages.\n",
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key. The sort is "
                  "stable, so records with equal keys keep their order.\n",
}


def _project(root: Path, server: str = "") -> Project:
    return small_project(root, DOCS, filters=False, extra=server)


class Server(LiveServer):
    def client(self, key: str) -> Any:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    project = _project(tmp_path_factory.mktemp("oai"))
    keys = {role.value: project.api_keys.create(role).key for role in Role}
    with Server(Service(project, project.api_keys)) as server:
        yield server, keys


_auth = bearer


@pytest.mark.exercises("deployment.serving_apis.fastapi")
def test_the_openai_sdk_gets_a_cited_answer_and_its_trace(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    completion = server.client(keys["viewer"]).chat.completions.create(
        model="handbook", messages=[{"role": "system", "content": "Answer in French."},
                                    {"role": "user", "content": "How do I sort records by a key?"}])
    text = completion.choices[0].message.content
    assert "sorted(records" in text and "[1]" in text and completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra["flightdeck"]
    assert extra["found"] and extra["citations"][0]["document_id"] == "docs/sorting.md"
    assert completion.id == "chatcmpl-" + extra["trace_id"].removeprefix("tr_")
    trace = httpx.get(f"{server.url}/v1/traces/{extra['trace_id']}", headers=_auth(keys["viewer"])).json()
    assert trace["question"] == "How do I sort records by a key?" and trace["operation"] == "chat"
    assert trace["answer"] == text and trace["index_version"] == extra["index_version"]
    assert trace["details"]["retrieved"][0]["chunk_id"] == extra["citations"][0]["chunk_id"]
    assert trace["key_id"] == keys["viewer"].split("_")[1]


def test_the_openai_sdk_streams_and_the_last_chunk_carries_the_citations(
        served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    stream = server.client(keys["viewer"]).chat.completions.create(
        model="handbook", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "How do I sort records by a key?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finals) == 1 and finals[0].model_extra["flightdeck"]["answer"] == text
    assert "sorted(" in text and finals[0].model_extra["flightdeck"]["citations"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # include_usage: a last chunk of usage


def test_a_follow_up_in_a_chat_is_retrieved_with_the_earlier_question(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    completion = server.client(keys["viewer"]).chat.completions.create(model="handbook", messages=[
        {"role": "user", "content": "How do I create a virtual environment?"},
        {"role": "assistant", "content": "Run python -m venv .venv [1]"},
        {"role": "user", "content": "and then what do I run?"}])
    trace_id = completion.model_extra["flightdeck"]["trace_id"]
    trace = httpx.get(f"{server.url}/v1/traces/{trace_id}", headers=_auth(keys["viewer"])).json()
    assert trace["question"] == "and then what do I run?"
    assert trace["search_query"] == "How do I create a virtual environment? and then what do I run?"


def test_a_conversation_id_condenses_follow_ups_of_the_same_key_only(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    ask = {"conversation_id": "conv-1"}
    first = httpx.post(f"{server.url}/v1/query", json={"question": "How do I sort records?", **ask},
                       headers=_auth(keys["editor"])).json()
    second = httpx.post(f"{server.url}/v1/query", json={"question": "is it stable?", **ask},
                        headers=_auth(keys["editor"])).json()
    trace = httpx.get(f"{server.url}/v1/traces/{second['trace_id']}", headers=_auth(keys["editor"])).json()
    assert trace["search_query"] == "How do I sort records? is it stable?" and trace["conversation_id"] == "conv-1"
    other = httpx.post(f"{server.url}/v1/query", json={"question": "is it stable?", **ask},
                       headers=_auth(keys["viewer"])).json()  # another key's conversation of the same id
    assert httpx.get(f"{server.url}/v1/traces/{other['trace_id']}",
                     headers=_auth(keys["viewer"])).json()["search_query"] is None
    # a key reads only its own traces; an admin reads any
    refused = httpx.get(f"{server.url}/v1/traces/{first['trace_id']}", headers=_auth(keys["viewer"]))
    assert refused.status_code == 404 and refused.json()["error"]["type"] == "not_found"
    assert httpx.get(f"{server.url}/v1/traces/{first['trace_id']}", headers=_auth(keys["admin"])).status_code == 200


def test_embeddings_match_the_index_embedder_in_both_encodings_and_models_are_listed(
        served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    client = server.client(keys["viewer"])
    texts = ["virtual environment", "sorting records"]
    default = client.embeddings.create(model="handbook", input=texts)  # the SDK asks for base64 and decodes it
    floats = client.embeddings.create(model="handbook", input=texts, encoding_format="float")
    expected = [FakeEmbedder().embed_query(t) for t in texts]
    for response in (default, floats):
        assert [d.index for d in response.data] == [0, 1]
        assert response.usage.prompt_tokens == sum(server.service.project.tokenizer.count_batch(texts)) >= 4
        for got, want in zip(response.data, expected, strict=True):
            np.testing.assert_allclose(np.asarray(got.embedding), want, rtol=1e-6)
    assert [m.id for m in client.models.list().data] == ["handbook", FakeEmbedder().model_id]
    with pytest.raises(openai.UnprocessableEntityError, match="input"):
        client.embeddings.create(model="handbook", input=[""], encoding_format="float")


def test_the_sdk_sees_bad_keys_and_bad_requests_as_its_own_errors(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        server.client("fdk_000000000000_" + "a" * 43).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError, match="last message must be the user's"):
        server.client(keys["viewer"]).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    with pytest.raises(openai.UnprocessableEntityError, match="max_tokens: at most 1024"):
        server.client(keys["viewer"]).chat.completions.create(
            model="x", max_tokens=5000, messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.mark.exercises("deployment.serving_apis.fastapi")
def test_query_streams_server_sent_events_sources_tokens_then_the_answer(
        served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("POST", f"{server.url}/v1/query", headers=_auth(keys["viewer"]),
                      json={"question": "How do I sort records by a key?", "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and "token" in kinds
    answer = events[-1][1]["answer"]
    assert "".join(d["text"] for e, d in events if e == "token") == answer["answer"] and answer["found"]
    sources = events[0][1]
    assert sources["trace_id"] == answer["trace_id"] and sources["hits"][0]["document_id"] == "docs/sorting.md"


def test_a_key_over_its_rate_limit_gets_429_with_retry_after_and_other_keys_do_not(tmp_path: Path) -> None:
    project = _project(tmp_path, "deployment:\n  server:\n    limits: {requests_per_minute: 2}\n"
                                 "    role_limits: {admin: {requests_per_minute: 100}}\n")
    viewer, other, admin = (project.api_keys.create(r).key for r in ("viewer", "viewer", "admin"))
    with Server(Service(project, project.api_keys)) as server:
        def search(key: str) -> httpx.Response:
            return httpx.post(f"{server.url}/v1/search", json={"query": "venv"}, headers=_auth(key))

        assert [search(viewer).status_code for _ in range(2)] == [200, 200]
        refused = search(viewer)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        assert search(other).status_code == 200
        assert all(search(admin).status_code == 200 for _ in range(5))


def test_a_generator_that_hangs_gets_504_and_the_server_keeps_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path, "deployment:\n  server: {request_timeout_s: 0.5}\n")
    key = project.api_keys.create("viewer").key
    real = project.ask_stream
    hang = threading.Event()

    def slow(question: str, **options: Any) -> Iterator[Any]:
        for item in real(question, **options):
            if question == "hang" and not isinstance(item, str) and hasattr(item, "hits"):
                yield item
                hang.wait(5)  # a generator stuck on its model
                continue
            yield item

    monkeypatch.setattr(project, "ask_stream", slow)
    with Server(Service(project, project.api_keys)) as server:
        t0 = time.monotonic()
        response = httpx.post(f"{server.url}/v1/query", json={"question": "hang"}, headers=_auth(key), timeout=30)
        assert response.status_code == 504 and response.json()["error"]["type"] == "timeout"
        assert time.monotonic() - t0 < 3
        hang.set()
        ok = httpx.post(f"{server.url}/v1/query", json={"question": "How do I sort records by a key?"},
                        headers=_auth(key))
        assert ok.status_code == 200 and ok.json()["found"]


def test_metrics_count_requests_stages_and_errors_for_prometheus(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    httpx.post(f"{server.url}/v1/query", json={"question": "How do I sort records?"}, headers=_auth(keys["viewer"]))
    httpx.post(f"{server.url}/v1/query", json={"question": 42}, headers=_auth(keys["viewer"]))
    httpx.post(f"{server.url}/v1/query", json={"question": "x"})
    text = httpx.get(f"{server.url}/metrics", headers=_auth(keys["viewer"])).text
    assert 'flightdeck_requests_total{method="POST",route="/v1/query",status="200"}' in text
    assert 'flightdeck_requests_total{method="POST",route="/v1/query",status="422"}' in text
    assert 'flightdeck_errors_total{type="unauthenticated"}' in text
    assert 'flightdeck_errors_total{type="invalid_request"}' in text
    for stage in ("embed", "retrieve", "generate"):
        assert f'flightdeck_stage_seconds_count{{stage="{stage}"}}' in text
    assert 'flightdeck_answers_total{outcome="found"}' in text
    assert 'flightdeck_request_seconds_bucket{le="0.1",method="POST",route="/v1/query"}' in text
    assert httpx.get(f"{server.url}/metrics").status_code == 401


def test_json_logs_carry_the_request_id_and_never_the_key(
        served: tuple[Server, dict[str, str]], caplog: pytest.LogCaptureFixture) -> None:
    server, keys = served
    with caplog.at_level(logging.INFO, logger="flightdeck.server"):
        response = httpx.post(f"{server.url}/v1/search", json={"query": "venv"}, headers=_auth(keys["viewer"]))
    records = [r for r in caplog.records if r.name == "flightdeck.server" and getattr(r, "route", "") == "/v1/search"]
    assert records
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["request_id"] == response.headers["x-request-id"] and line["status"] == 200
    assert line["key_id"] == keys["viewer"].split("_")[1] and keys["viewer"] not in json.dumps(line)
    assert line["level"] == "info" and line["ms"] > 0


def test_an_uploaded_document_is_searchable_at_once_and_deleted_without_a_restart(tmp_path: Path) -> None:
    project = _project(tmp_path)
    editor, viewer = project.api_keys.create("editor").key, project.api_keys.create("viewer").key
    writer = Project.load(tmp_path).use(embedder=FakeEmbedder())
    with Server(Service(project, project.api_keys, writer=lambda: writer)) as server:
        before = httpx.get(f"{server.url}/ready").json()["index_version"]
        text = "# Quokkas\n\nThe quokka is a small marsupial that lives on Rottnest Island near Perth.\n"
        refused = httpx.post(f"{server.url}/v1/documents", json={"name": "quokka.md", "text": text},
                             headers=_auth(viewer))
        assert refused.status_code == 403
        added = httpx.post(f"{server.url}/v1/documents", files={"file": ("quokka.md", text.encode(), "text/markdown")},
                           headers=_auth(editor), timeout=60)
        assert added.status_code == 201, added.text
        body = added.json()
        assert body["document_id"] == "uploaded/quokka.md" and body["chunks"] >= 1 and body["index_version"] != before
        hits = httpx.post(f"{server.url}/v1/search", json={"query": "quokka Rottnest", "k": 3},
                          headers=_auth(viewer)).json()
        assert hits["index_version"] == body["index_version"] and hits["hits"][0]["document_id"] == "uploaded/quokka.md"
        got = httpx.get(f"{server.url}/v1/documents/uploaded/quokka.md", headers=_auth(editor)).json()
        assert got["content_hash"] == body["content_hash"] and got["title"] == "Quokkas"
        # a JSON upload, a bad name, a type the server does not ingest, a broken PDF: clear 422s, nothing lost
        assert httpx.post(f"{server.url}/v1/documents", json={"name": "notes.txt", "text": "Plain notes about "
                          "wombats and their burrows."}, headers=_auth(editor), timeout=60).status_code == 201
        for name, content, message in [("../../etc/passwd.md", b"x", "not a plain file name"),
                                       ("data.csv", b"a,b\n1,2\n", "not a document type"),
                                       ("broken.pdf", b"%PDF-1.4 not really", "not ingested")]:
            response = httpx.post(f"{server.url}/v1/documents", files={"file": (name, content)},
                                  headers=_auth(editor), timeout=60)
            assert response.status_code == 422 and message in response.json()["error"]["message"], response.text
        assert not (project.workspace.uploads_folder / "broken.pdf").exists()
        assert sorted(p.name for p in project.workspace.uploads_folder.iterdir()) == ["notes.txt", "quokka.md"]
        # a spec source's document cannot be deleted over the API; an uploaded one can
        assert httpx.delete(f"{server.url}/v1/documents/docs/venv.md", headers=_auth(editor)).status_code == 422
        deleted = httpx.delete(f"{server.url}/v1/documents/uploaded/quokka.md", headers=_auth(editor), timeout=60)
        assert deleted.status_code == 200 and deleted.json()["deleted"]
        assert httpx.get(f"{server.url}/v1/documents/uploaded/quokka.md", headers=_auth(editor)).status_code == 404
        hits = httpx.post(f"{server.url}/v1/search", json={"query": "quokka Rottnest"}, headers=_auth(viewer)).json()
        assert "uploaded/quokka.md" not in {h["document_id"] for h in hits["hits"]}
    # the next `flightdeck run` keeps the remaining upload in the dataset
    Project.load(tmp_path).use(embedder=FakeEmbedder()).run()
    assert Service(project, None).uploads.get("uploaded/notes.txt")["chunks"] >= 1


def test_a_body_without_content_length_is_capped_while_it_is_read(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served

    def chunks() -> Iterator[bytes]:
        yield b'{"query": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = httpx.post(f"{server.url}/v1/search", content=chunks(),
                          headers={**_auth(keys["viewer"]), "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["type"] == "too_large"
    assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.mark.exercises("deployment.serving_apis.batch_inference")
@pytest.mark.exercises("scoping.latency.batch")
def test_a_batch_job_over_http_answers_every_line_and_only_its_owner_reads_it(
        served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    lines = b'{"id": "a", "question": "How do I sort records by a key?"}\n{"question": ""}\nnot json\n'
    submitted = httpx.post(f"{server.url}/v1/batch", content=lines,
                           headers={**_auth(keys["viewer"]), "Content-Type": "application/x-ndjson"})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["id"]
    deadline = time.monotonic() + 30
    while (status := httpx.get(f"{server.url}/v1/batch/{job}", headers=_auth(keys["viewer"])).json())["state"] \
            not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["state"] == "done" and status["answered"] == 1 and status["failed"] == 2
    results = httpx.get(f"{server.url}/v1/batch/{job}/results", headers=_auth(keys["viewer"]))
    records = [json.loads(line) for line in results.text.splitlines()]
    assert [r["id"] for r in records] == ["a", "line-2", "line-3"]
    assert records[0]["found"] and records[0]["citations"] and "error" in records[1] and "error" in records[2]
    assert httpx.get(f"{server.url}/v1/batch/{job}", headers=_auth(keys["editor"])).status_code == 404
    assert httpx.get(f"{server.url}/v1/batch/{job}", headers=_auth(keys["admin"])).status_code == 200
    assert httpx.get(f"{server.url}/v1/batch/../../etc", headers=_auth(keys["admin"])).status_code == 404
    as_json = httpx.post(f"{server.url}/v1/batch", json={"questions": [{"question": "venv?"}]},
                         headers=_auth(keys["viewer"]))
    assert as_json.status_code == 202


def test_an_index_rebuilt_while_the_server_answers_fails_no_request_and_is_served_without_a_restart(
        tmp_path: Path) -> None:
    project = _project(tmp_path)
    key = project.api_keys.create("viewer").key
    failures: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()
    with Server(Service(project, project.api_keys)) as server:
        before = httpx.get(f"{server.url}/ready").json()["index_version"]

        def load() -> None:
            with httpx.Client(headers=_auth(key), timeout=30) as client:
                while not stop.is_set():
                    for route, body in (("/v1/search", {"query": "sorted records key"}),
                                        ("/v1/query", {"question": "How do I sort records by a key?"})):
                        response = client.post(f"{server.url}{route}", json=body)
                        if response.status_code != 200:
                            failures.append(f"{route} {response.status_code} {response.text[:200]}")
                        else:
                            versions.add(response.json()["index_version"])

        clients = [threading.Thread(target=load) for _ in range(3)]
        for thread in clients:
            thread.start()
        time.sleep(0.5)
        (tmp_path / "docs" / "dicts.md").write_text("# Dictionaries\n\nA dict maps keys to values. Use d.get(key) "
                                                   "to read a key that may be missing.\n", "utf-8")
        # `flightdeck run` in another process would do the same: a second Project writes the new index version
        summary = Project.load(tmp_path).use(embedder=FakeEmbedder()).run()
        after = project.workspace.get_state("current_index")
        deadline = time.monotonic() + 10
        while after not in versions and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for thread in clients:
            thread.join(30)
    assert summary.status == "succeeded" and after != before
    assert failures == []
    assert {before, after} <= versions  # answered from the old index, then from the new one, no restart


def test_a_client_that_goes_away_mid_stream_stops_the_answer_and_the_server_keeps_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    key = project.api_keys.create("viewer").key
    real = project.ask_stream
    stopped = threading.Event()

    def slow(question: str, **options: Any) -> Iterator[Any]:
        try:
            for item in real(question, **options):
                yield item
                if hasattr(item, "hits"):  # after retrieval: a model writing one token a second
                    for n in range(30):
                        time.sleep(0.2)
                        yield f"token{n} "
        finally:
            stopped.set()

    monkeypatch.setattr(project, "ask_stream", slow)
    service = Service(project, project.api_keys)
    with Server(service) as server:
        with httpx.stream("POST", f"{server.url}/v1/query", headers=_auth(key), timeout=30,
                          json={"question": "How do I sort records by a key?", "stream": True}) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data: ") and "token0" in line)
        # the connection is closed here, mid-answer
        assert stopped.wait(10), "the generation went on after the client left"
        trace = service.traces.recent(limit=1)[0]
        assert trace.details["error"] == "the client went away" and trace.answer is None
        ok = httpx.post(f"{server.url}/v1/search", json={"query": "venv"}, headers=_auth(key))
        assert ok.status_code == 200
