"""The ``api`` source against a real HTTP server started here (ThreadingHTTPServer on 127.0.0.1).

The server serves the same articles through three kinds of pagination (page number, cursor, Link
header), one endpoint that answers 429 twice before it answers, one that fails with 500 forever, one that
needs a bearer token, and one with malformed records.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from flightdeck import Project
from flightdeck.data.parsers import parse
from flightdeck.data.sources.api import ApiConfig, ApiSource, CursorPagination, LinkPagination
from flightdeck.data.sources.base import Source
from flightdeck.errors import MissingDependencyError, SourceError
from flightdeck.registry import Category
from flightdeck.spec.resolve import resolve_env
from flightdeck.testing import FakeEmbedder
from needs import needs, needs_provider

pytestmark = pytest.mark.integration
# what reads the API needs the api extra (httpx, jsonpath-ng); the server here needs nothing
API = needs_provider(Category.SOURCE, "api")

TOKEN = "tok-3f9a1c"  # what the test puts in the environment; must never show in an error


def _article(i: int) -> dict[str, Any]:
    return {"id": i, "attributes": {"title": f"Article {i}", "body": f"Widget fact number {i}: sprocket {i}.",
                                    "lang": "en", "tags": ["widgets", f"t{i}"]}}


class Api:
    """The server's state: the articles, request counts per path, and switches for failures."""

    def __init__(self) -> None:
        self.articles = [_article(i) for i in range(1, 6)]
        self.hits: dict[str, int] = {}
        self.headers: list[dict[str, str]] = []
        self.down = False
        self.lock = threading.Lock()


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None,
                  raw: bytes | None = None, content_type: str = "application/json") -> None:
            body = raw if raw is not None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            parts = urlsplit(self.path)
            path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
            with api.lock:
                api.hits[path] = api.hits.get(path, 0) + 1
                hits = api.hits[path]
                api.headers.append({**dict(self.headers), **getattr(self, "extra", {})})
                articles = list(api.articles)
            if api.down or path == "/down":
                return self._send(500, {"error": "internal"})
            if path == "/page":
                page, size = int(query.get("page", 1)), int(query.get("per_page", 2))
                return self._send(200, {"data": articles[(page - 1) * size: page * size], "page": page})
            if path == "/cursor":
                start = int(query.get("cursor", 0))
                nxt = start + 2 if start + 2 < len(articles) else None
                return self._send(200, {"results": articles[start:start + 2], "next_cursor": nxt})
            if path == "/link":
                page = int(query.get("page", 1))
                headers = {}
                if page * 2 < len(articles):
                    headers["Link"] = f'</link?page={page + 1}>; rel="next", </link?page=1>; rel="first"'
                return self._send(200, articles[(page - 1) * 2: page * 2], headers)
            if path == "/flaky":
                if hits <= 2:
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
                return self._send(200, {"items": articles[:2]})
            if path == "/throttled":
                return self._send(429, {"error": "slow down"}, {"Retry-After": "3600"})
            if path == "/secure":
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": "unauthorized"})
                return self._send(200, {"data": articles})
            if path == "/bad":
                return self._send(200, {"data": [
                    _article(1), {"attributes": {"body": "no id"}}, {"id": 3, "attributes": {"title": "no text"}},
                    "a string", {"id": True, "attributes": {"body": "a boolean id"}},
                    {"id": 1, "attributes": {"body": "a duplicate"}}, _article(7)]})
            if path == "/loop":
                return self._send(200, {"results": articles[:1], "next_cursor": "same"})
            if path == "/hop":  # a redirect to wherever `to` says, with the status `status` says
                return self._send(int(query.get("status", 302)), {}, {"Location": query["to"]})
            if path == "/redirect-loop":
                return self._send(302, {}, {"Location": "/redirect-loop"})
            if path == "/elsewhere":
                return self._send(200, articles[:1], {"Link": '<http://example.invalid/next>; rel="next"'})
            if path == "/html":
                return self._send(200, raw=b"<html>not json</html>", content_type="text/html")
            if path == "/endless":
                return self._send(200, {"data": articles[:1]})
            return self._send(404, {"error": "no such path"})

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.extra = {"method": "POST", "body": body.decode()}  # recorded with the headers by do_GET
            self.do_GET()

    return Handler


@contextmanager
def _serve(host: str = "127.0.0.1", port: int = 0) -> Iterator[tuple[str, Api]]:
    state = Api()
    server = ThreadingHTTPServer((host, port), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def api() -> Iterator[tuple[str, Api]]:
    with _serve() as served:
        yield served


@pytest.fixture
def other() -> Iterator[tuple[str, Api]]:
    """A second server, on another port: another origin, which must never see the source's headers."""
    with _serve() as served:
        yield served


MAPPING = {"id_path": "$.id", "text_paths": ["$.attributes.body"], "title_path": "$.attributes.title",
           "metadata_paths": {"lang": "$.attributes.lang", "tags": "$.attributes.tags[*]"}}


def _source(url: str, **settings: Any) -> ApiSource:
    # The test server is on 127.0.0.1, which the source refuses unless the spec allows it.
    return ApiSource(ApiConfig(url=url, **{**MAPPING, "backoff": 0.0, "retries": 2, "timeout": 5,
                                           "allow_private_networks": True, **settings}))


def _ids(source: ApiSource) -> list[str]:
    return [i.uri.rsplit("#", 1)[1] for i in source.scan()]


# ------------------------------------------------------------------------------------------------------
# pagination


@API
def test_page_pagination_reads_every_page(api: tuple[str, Api]) -> None:
    base, state = api
    source = _source(f"{base}/page", items_path="$.data",
                     pagination={"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 2})
    assert isinstance(source, Source)
    assert _ids(source) == ["1", "2", "3", "4", "5"]
    assert state.hits["/page"] == 3  # the short third page ends it; no request for an empty fourth
    without_size = _source(f"{base}/page", items_path="$.data[*]", params={"per_page": 2}, pagination="page")
    assert _ids(without_size) == ["1", "2", "3", "4", "5"]
    assert state.hits["/page"] == 3 + 4  # without a size, an empty page ends it


@API
def test_cursor_pagination(api: tuple[str, Api]) -> None:
    base, state = api
    source = _source(f"{base}/cursor", items_path="$.results",
                     pagination={"type": "cursor", "cursor_path": "$.next_cursor", "param": "cursor"})
    assert isinstance(source.config.pagination, CursorPagination)
    assert _ids(source) == ["1", "2", "3", "4", "5"]
    assert state.hits["/cursor"] == 3


@API
def test_link_header_pagination(api: tuple[str, Api]) -> None:
    base, state = api
    source = _source(f"{base}/link", pagination={"type": "link"})
    assert isinstance(source.config.pagination, LinkPagination)
    assert _ids(source) == ["1", "2", "3", "4", "5"]
    assert state.hits["/link"] == 3


@API
def test_pagination_that_never_ends_or_loops_fails_the_scan(api: tuple[str, Api]) -> None:
    base, _ = api
    with pytest.raises(SourceError, match="more than max_pages=3 pages"):
        list(_source(f"{base}/endless", items_path="$.data", pagination="page", max_pages=3).scan())
    with pytest.raises(SourceError, match="returned cursor 'same' twice"):
        list(_source(f"{base}/loop", items_path="$.results", pagination={"type": "cursor"}).scan())
    with pytest.raises(SourceError, match="points at another site"):
        list(_source(f"{base}/elsewhere", pagination="link").scan())


# ------------------------------------------------------------------------------------------------------
# records


@API
def test_records_map_to_canonical_record_json(api: tuple[str, Api]) -> None:
    base, _ = api
    source = _source(f"{base}/page", items_path="$.data", pagination={"type": "page", "size": 2})
    items = list(source.scan())
    first = items[0]
    assert first.uri == f"127.0.0.1:{base.rsplit(':', 1)[1]}/page#1"
    assert source.source_uri(first) == f"{base}/page#1"
    assert first.media_type == "application/x-record"
    data = source.read(first)
    assert json.loads(data) == {"_id": 1, "title": "Article 1", "text": "Widget fact number 1: sprocket 1.",
                                "lang": "en", "tags": ["widgets", "t1"]}
    doc = parse(first, data)  # exactly what the records parser reads
    assert doc.title == "Article 1" and doc.text == "Widget fact number 1: sprocket 1."
    assert doc.metadata["lang"] == "en" and "tags" not in doc.metadata  # only scalars are metadata
    # the hash is the canonical record's: the same record always hashes the same
    assert [i.content_hash for i in source.scan()] == [i.content_hash for i in items]


@API
def test_bad_records_are_reported_by_page_and_index(api: tuple[str, Api]) -> None:
    base, _ = api
    source = _source(f"{base}/bad", items_path="$.data")
    assert _ids(source) == ["1", "7"]
    failures = [(f.uri, f.reason) for f in source.failures]
    assert [uri for uri, _ in failures] == [f"{base}/bad item {i}" for i in (1, 2, 3, 4, 5)]
    reasons = [r for _, r in failures]
    assert "no id at $.id" in reasons[0]
    assert "record 3 has no text at $.attributes.body" in reasons[1]
    assert "must be a JSON object, got str" in reasons[2]
    assert "no id at $.id" in reasons[3]
    assert "duplicate id 1" in reasons[4]


@API
def test_a_response_without_records_or_json_is_a_clear_error(api: tuple[str, Api]) -> None:
    base, _ = api
    with pytest.raises(SourceError, match=r"items_path '\$.items' finds nothing.*\['data', 'page'\]"):
        list(_source(f"{base}/page", items_path="$.items").scan())
    with pytest.raises(SourceError, match="not JSON .*text/html"):
        list(_source(f"{base}/html").scan())
    with pytest.raises(SourceError, match="HTTP 404.*check `url`"):
        list(_source(f"{base}/nowhere").scan())


# ------------------------------------------------------------------------------------------------------
# retries, faults and auth


@pytest.mark.exercises("data.sources.apis")
@API
def test_429_is_retried_honouring_retry_after(api: tuple[str, Api]) -> None:
    base, state = api
    source = _source(f"{base}/flaky", items_path="$.items", retries=3, backoff=5.0)  # Retry-After: 0 wins
    t0 = time.perf_counter()
    assert _ids(source) == ["1", "2"]
    assert state.hits["/flaky"] == 3 and time.perf_counter() - t0 < 3


@API
def test_retry_after_is_capped_and_retries_run_out(api: tuple[str, Api]) -> None:
    base, state = api
    source = _source(f"{base}/throttled", retries=2, max_backoff=0.01)  # the server asks for an hour
    t0 = time.perf_counter()
    with pytest.raises(SourceError, match=r"/throttled: gave up after 3 attempt\(s\), last: HTTP 429"):
        list(source.scan())
    assert state.hits["/throttled"] == 3 and time.perf_counter() - t0 < 3


@API
def test_a_server_error_forever_fails_after_the_retries(api: tuple[str, Api]) -> None:
    base, state = api
    with pytest.raises(SourceError) as err:
        list(_source(f"{base}/down", retries=3, backoff=0.01, params={"api_key": "hush", "q": "x"}).scan())
    message = str(err.value)
    assert f"{base}/down?api_key=***&q=x" in message and "last: HTTP 500" in message and "4 attempt(s)" in message
    assert "hush" not in message
    assert state.hits["/down"] == 4


@API
def test_an_unreachable_api_fails_after_the_retries() -> None:

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match=r"gave up after 2 attempt\(s\), last: ConnectError"):
        list(_source(f"http://127.0.0.1:{port}/v1", retries=1).scan())


@API
def test_bearer_token_from_the_environment(api: tuple[str, Api], monkeypatch: pytest.MonkeyPatch) -> None:
    base, state = api
    monkeypatch.setenv("API_TOKEN", TOKEN)
    settings = {"url": f"{base}/secure", "items_path": "$.data", **MAPPING, "allow_private_networks": True,
                "headers": {"Authorization": "Bearer ${API_TOKEN}"}}
    config = ApiConfig(**resolve_env(settings))  # what Project does with a spec's ${ENV} references
    assert TOKEN not in repr(config) and TOKEN not in str(config.model_dump())
    assert _ids(ApiSource(config)) == ["1", "2", "3", "4", "5"]
    assert state.headers[-1]["Authorization"] == f"Bearer {TOKEN}"

    unauthenticated = _source(f"{base}/secure", items_path="$.data")
    with pytest.raises(SourceError) as err:
        list(unauthenticated.scan())
    assert "HTTP 401" in str(err.value) and "Authorization" in str(err.value)
    wrong = _source(f"{base}/secure", items_path="$.data", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(SourceError, match="HTTP 401") as err:
        list(wrong.scan())
    assert "wrong" not in str(err.value) and TOKEN not in str(err.value)
    assert state.hits["/secure"] == 3  # a 401 is not retried


# ------------------------------------------------------------------------------------------------------
# where the source may connect, and where its headers go

KEY = "k-7c1e55"  # an API key header value: must reach the source's own origin only


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1/items", "http://169.254.169.254/latest/meta-data/",
                                 "http://10.0.0.1/v1/items", "http://[::1]:9/v1/items", "http://localhost:9/v1/items"])
@API
def test_private_and_metadata_targets_are_refused_before_any_connection(url: str, connections: list[Any]) -> None:
    source = ApiSource(ApiConfig(url=url, retries=3, backoff=1.0, headers={"X-Api-Key": KEY}))
    t0 = time.perf_counter()
    with pytest.raises(SourceError) as err:
        list(source.scan())
    message = str(err.value)
    assert message.startswith(url) and "refused to connect to" in message
    assert "`allow_private_networks: true`" in message  # the setting to change
    if "localhost" in url:
        assert "localhost (127.0.0.1)" in message or "localhost (::1)" in message  # the resolved address
    assert KEY not in message
    assert connections == []  # refused before any socket connected anywhere
    assert time.perf_counter() - t0 < 1  # not retried: the answer would be the same


@API
def test_a_redirect_to_a_denied_address_is_refused(connections: list[Any]) -> None:
    # Both servers are on loopback; only 127.0.0.1 is allowed, so the hop to 127.0.0.2 must not happen.
    with _serve("127.0.0.1") as (base, state), _serve("127.0.0.2") as (denied, denied_state):
        source = _source(f"{base}/hop?to={quote(denied + '/page', safe='')}", items_path="$.data",
                         allow_private_networks=["127.0.0.1/32"])
        with pytest.raises(SourceError) as err:
            list(source.scan())
        assert str(err.value).startswith(f"{denied}/page: refused to connect to 127.0.0.2")
        assert state.hits == {"/hop": 1} and denied_state.hits == {}
        assert all(address[0] == "127.0.0.1" for address in connections)
        # the allowed address itself works
        assert _ids(_source(f"{base}/page", items_path="$.data", allow_private_networks=["127.0.0.1/32"])) == \
            ["1", "2"]


@API
def test_headers_follow_a_redirect_only_within_the_origin(api: tuple[str, Api], other: tuple[str, Api]) -> None:
    base, state = api
    elsewhere, other_state = other
    secret = {"X-Api-Key": KEY, "Authorization": f"Bearer {TOKEN}"}
    # same origin: the headers stay
    assert _ids(_source(f"{base}/hop?to=/page", items_path="$.data", headers=secret)) == ["1", "2"]
    assert _lower(state.headers[-1])["x-api-key"] == KEY
    assert _lower(state.headers[-1])["authorization"] == f"Bearer {TOKEN}"
    # another port is another origin: the records come, the headers do not go there
    source = _source(f"{base}/hop?to={quote(elsewhere + '/page', safe='')}", items_path="$.data", headers=secret)
    assert _ids(source) == ["1", "2"]
    assert _lower(state.headers[-1])["x-api-key"] == KEY  # the first hop, to the source's own origin
    received = _lower(other_state.headers[-1])
    assert "x-api-key" not in received and "authorization" not in received
    assert KEY not in str(other_state.headers) and TOKEN not in str(other_state.headers)
    # a chain that left the origin does not get them back when it returns
    back = quote(f"{elsewhere}/hop?to={quote(base + '/page', safe='')}", safe="")
    state.headers.clear()
    assert _ids(_source(f"{base}/hop?to={back}", items_path="$.data", headers=secret)) == ["1", "2"]
    assert [("x-api-key" in _lower(h)) for h in state.headers] == [True, False]


@API
def test_redirects_are_bounded_and_keep_or_drop_the_body_like_browsers(api: tuple[str, Api]) -> None:
    base, state = api
    with pytest.raises(SourceError, match=r"/redirect-loop: more than max_redirects=3 redirects"):
        list(_source(f"{base}/redirect-loop", max_redirects=3).scan())
    assert state.hits["/redirect-loop"] == 4
    post = {"method": "POST", "body": {"q": "widgets"}, "items_path": "$.data"}
    assert _ids(_source(f"{base}/hop?status=307&to=/page", **post)) == ["1", "2"]
    assert state.headers[-1]["method"] == "POST" and json.loads(state.headers[-1]["body"]) == {"q": "widgets"}
    state.headers.clear()
    assert _ids(_source(f"{base}/hop?status=303&to=/page", **post)) == ["1", "2"]
    assert [h.get("method", "GET") for h in state.headers] == ["POST", "GET"]


def test_allow_private_networks_takes_true_or_networks() -> None:
    assert ApiConfig(url="https://x.test").allow_private_networks is False
    assert ApiConfig(url="https://x.test", allow_private_networks=["10.1.0.0/16", "fd12::/48", "192.168.4.7"]) \
        .allow_private_networks == ["10.1.0.0/16", "fd12::/48", "192.168.4.7/32"]
    with pytest.raises(ValueError, match=r"'10.1.0.1/16' is not a network .*did you mean 10.1.0.0/16"):
        ApiConfig(url="https://x.test", allow_private_networks=["10.1.0.1/16"])
    with pytest.raises(ValueError, match="'intranet' is not a network"):
        ApiConfig(url="https://x.test", allow_private_networks=["intranet"])


# ------------------------------------------------------------------------------------------------------
# end to end through a Project

SPEC = """\
project: api-test
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - provider: api
      name: articles
      url: {url}
      headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
      items_path: $.data
      id_path: $.id
      text_paths: [$.attributes.body]
      title_path: $.attributes.title
      metadata_paths: {{lang: $.attributes.lang}}
      pagination: {{type: page, param: page, size_param: per_page, size: 2}}
      retries: 1
      backoff: 0
      allow_private_networks: true
  chunking: {{provider: recursive, size: 64, overlap: 16}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
  search: {{mode: hybrid, k: 5}}
"""


def _project(root: Path) -> tuple[Project, FakeEmbedder]:
    project = Project.load(root)
    fake = FakeEmbedder()
    project.use(embedder=fake)  # the pipeline and the source are under test, not the model
    return project, fake


@pytest.mark.exercises("data.sources.apis")
@API
def test_incremental_runs_over_a_paginated_api(api: tuple[str, Api], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    base, state = api
    monkeypatch.setenv("API_TOKEN", TOKEN)
    (tmp_path / "flightdeck.yaml").write_text(SPEC.format(url=f"{base}/page"), encoding="utf-8")
    host = base.split("://", 1)[1]

    project, fake = _project(tmp_path)
    ingest = {s.step: s for s in project.run().steps}["ingest"]
    assert ingest.counts["documents"] == 5 and ingest.counts["parsed"] == 5
    with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as db:
        rows = dict(db.execute("select id, source_uri from documents").fetchall())
    assert rows[f"articles/{host}/page#3"] == f"{base}/page#3"
    hit = project.search("sprocket 4", mode="keyword").hits[0]
    assert hit.document_id == f"articles/{host}/page#4" and hit.source_uri == f"{base}/page#4"
    assert len(fake.embedded_texts) == 5

    again, fake2 = _project(tmp_path)  # nothing changed: no parsing, no embedding
    assert [s.status for s in again.run().steps] == ["skipped"] * 3 and fake2.embedded_texts == []

    state.articles[2]["attributes"]["body"] = "Article three now talks about gears."
    state.articles[0]["extra"] = "a field the mapping does not use"  # not a change of the record
    again, fake3 = _project(tmp_path)
    ingest = {s.step: s for s in again.run().steps}["ingest"]
    assert ingest.counts["parsed"] == 1 and ingest.counts["unchanged"] == 4
    assert fake3.embedded_texts == ["Article 3\nArticle three now talks about gears."]

    del state.articles[4]
    again, _ = _project(tmp_path)
    ingest = {s.step: s for s in again.run().steps}["ingest"]
    assert ingest.counts["removed"] == 1 and ingest.counts["documents"] == 4
    version = again.workspace.get_state("current_dataset")

    # the API goes down: the run fails with the URL and status, and the last version stays current
    state.down = True
    state.articles[0]["attributes"]["body"] = "changed while down"
    again, _ = _project(tmp_path)
    with pytest.raises(SourceError, match=r"/page\?page=1&per_page=2: gave up after 2 attempt\(s\), last: HTTP 500"):
        again.run()
    assert again.workspace.get_state("current_dataset") == version
    with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as db:
        assert db.execute("select count(*) from documents").fetchone()[0] == 4


# ------------------------------------------------------------------------------------------------------
# config


@needs("api", "jsonpath_ng")  # the JSONPath expressions are checked with jsonpath-ng
def test_config_checks() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        ApiConfig(url="ftp://example.com/data")
    with pytest.raises(ValueError, match="http:// or https://"):
        ApiConfig(url="file:///etc/passwd")
    assert ApiConfig(url="${ARTICLES_API}").url == "${ARTICLES_API}"  # resolved, then checked, at run time
    with pytest.raises(ValueError, match="not a valid JSONPath"):
        ApiConfig(url="https://x.test", items_path="$.[[")
    with pytest.raises(ValueError, match="taken by the record"):
        ApiConfig(url="https://x.test", metadata_paths={"title": "$.name"})
    with pytest.raises(ValueError, match="size_param 'per_page' needs a size"):
        ApiConfig(url="https://x.test", pagination={"type": "page", "size_param": "per_page"})
    with pytest.raises(ValueError, match="only sent with method: POST"):
        ApiConfig(url="https://x.test", body={"q": 1})
    with pytest.raises(ValueError):
        ApiConfig(url="https://x.test", pagination={"type": "offset"})
    assert ApiConfig(url="https://x.test", pagination="link").pagination == LinkPagination(type="link")


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # what an environment without the extra looks like
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[api\]'"):
        ApiSource(ApiConfig(url="https://x.test"))
