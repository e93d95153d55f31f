"""The web playground (``GET /``) in a real browser: Debian's chromium driven by Playwright against uvicorn over a
small project. It asks and watches the streamed answer, opens a citation, searches with a filter, shows the
API's errors, and never turns document text into HTML."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from live_server import LiveServer, small_project  # noqa: E402

from flightdeck.governance.access import Role  # noqa: E402
from flightdeck.serving.playground import CONTENT_SECURITY_POLICY  # noqa: E402
from flightdeck.serving.service import Service  # noqa: E402

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
XSS = "<img src=x onerror=\"window.__pwned=1\">"
DOCS = {
    "sorting.md": "# Sorting\n\nUse sorted(records, key=lambda r: r.name) to sort records by a key. The sort is "
                  "stable, so records with equal keys keep their order.\n",
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv .venv. Activate the "
               "virtual environment before installing packages.\n",
    "widgets.md": f"# Widgets\n\nA widget banner is configured with {XSS} in its template file.\n",
}


Server = LiveServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    project = small_project(tmp_path_factory.mktemp("playground"), DOCS)
    keys = {role.value: project.api_keys.create(role).key for role in Role}
    with Server(Service(project, project.api_keys)) as server:
        yield server, keys


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (make system-deps) for the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


class Tab:
    """A fresh page (its own session storage) that records the console's errors and the page's exceptions."""

    def __init__(self, browser: Any, url: str, width: int = 1280, height: int = 800) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type == "error" and "favicon" not in (m.location or {}).get("url", "") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        self.page.goto(url)

    def use_key(self, key: str) -> None:
        self.page.fill("#api-key", key)

    def ask(self, question: str) -> None:
        self.page.fill("#question", question)
        self.page.click("#ask")


@pytest.fixture
def tab(browser: Any, served: tuple[Server, dict[str, str]]) -> Iterator[Tab]:
    t = Tab(browser, served[0].url + "/")
    yield t
    t.context.close()
    assert t.problems == [], t.problems  # no script error, no CSP refusal (an inline style or handler)


def test_the_page_and_its_files_are_served_with_a_strict_policy(served: tuple[Server, dict[str, str]]) -> None:
    server, _ = served
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    html = page.text
    assert "<script src=\"/playground/playground.js\"" in html and "<style" not in html
    assert " on" + "click=" not in html and "style=" not in html and "http" + "s://" not in html
    for name, kind in (("playground.js", "text/javascript"), ("playground.css", "text/css")):
        asset = httpx.get(f"{server.url}/playground/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    js = httpx.get(f"{server.url}/playground/playground.js").text
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js
    for name in ("api.py", "..%2Fapi.py", "../playground.py", "x.js"):
        refused = httpx.get(f"{server.url}/playground/{name}")
        assert refused.status_code == 404 and refused.json()["error"]["type"] == "not_found", name
    assert httpx.post(server.url + "/").status_code == 405


def test_a_question_streams_and_a_citation_shows_its_quote_and_source(
        tab: Tab, served: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    page = tab.page
    server, keys = served
    tab.use_key(keys["viewer"])
    with page.expect_response("**/v1/query") as streamed:
        tab.ask("How do I sort records by a key?")
    response = streamed.value
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.request.post_data_json
    assert body == {"question": "How do I sort records by a key?", "stream": True}
    assert response.request.headers["authorization"] == f"Bearer {keys['viewer']}"

    marker = page.locator("#answer .marker").first
    marker.wait_for()
    assert "sorted(records, key=lambda r: r.name)" in page.inner_text("#answer")
    assert marker.inner_text() == "[1]"
    assert page.locator("#citations .citation").count() >= 1
    meta = page.inner_text("#answer-meta")
    assert "trace tr_" in meta and "index " in meta and page.is_hidden("#citation-detail")

    marker.click()
    assert page.is_visible("#citation-detail")
    assert "sorted(records, key=lambda r: r.name)" in page.inner_text("#detail-quote")
    assert page.inner_text("#detail-title") == "Sorting"
    assert page.inner_text("#detail-document") == "docs/sorting.md"
    source = page.inner_text("#detail-source")
    assert source.startswith("file://") and source.endswith("/docs/sorting.md")
    assert page.get_attribute("#citations .citation", "aria-pressed") == "true"

    # the trace of this answer, read with the same key
    page.click("#trace-box summary")
    page.locator("#trace", has_text='"question"').wait_for()  # (wait_for_function would eval: the CSP refuses)
    assert '"How do I sort records by a key?"' in page.inner_text("#trace")

    # the key stays in this tab's session storage only, and survives a reload
    assert page.evaluate("sessionStorage.getItem('flightdeck.apiKey')") == keys["viewer"]
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""

    shot = tmp_path / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, "/tmp/playground.png")
    assert shot.stat().st_size > 10_000

    page.reload()
    assert page.input_value("#api-key") == keys["viewer"]


def test_search_with_a_where_filter_and_a_bad_filter(tab: Tab, served: tuple[Server, dict[str, str]],
                                                     tmp_path: Path) -> None:
    page = tab.page
    tab.use_key(served[1]["viewer"])
    page.click("#tab-search")
    assert page.is_hidden("#panel-ask") and page.is_visible("#panel-search")
    page.fill("#query", "records virtual environment")
    page.fill("#k", "5")
    page.select_option("#mode", "hybrid")

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/search" in r.url else None)
    page.fill("#where", '{"document_id": "docs/venv.md",}')
    page.click("#search")
    assert page.is_visible("#where-error")
    assert "not valid JSON" in page.inner_text("#where-error") and requests == []
    assert page.get_attribute("#where", "aria-invalid") == "true"
    page.fill("#where", '["docs/venv.md"]')
    page.click("#search")
    assert "must be a JSON object" in page.inner_text("#where-error") and requests == []

    page.fill("#where", '{"document_id": "docs/venv.md"}')
    assert page.is_hidden("#where-error")
    with page.expect_response("**/v1/search") as answered:
        page.click("#search")
    assert answered.value.request.post_data_json == {
        "query": "records virtual environment", "k": 5, "mode": "hybrid", "where": {"document_id": "docs/venv.md"}}
    page.locator("#hits .hit").first.wait_for()
    headings = page.locator("#hits .hit-heading").all_inner_texts()
    assert headings and all(h.startswith("docs/venv.md") for h in headings)
    assert "Create a virtual environment" in page.inner_text("#hits")
    assert page.inner_text("#search-meta").startswith(f"{len(headings)} hit")

    # the same search unfiltered finds the other document too
    page.fill("#where", "")
    page.click("#search")
    page.locator("#hits .hit-heading", has_text="docs/sorting.md").first.wait_for()
    page.screenshot(path=str(tmp_path / "search.png"), full_page=True)


def test_a_wrong_key_shows_the_401_message_and_its_request_id(tab: Tab, served: tuple[Server, dict[str, str]],
                                                              tmp_path: Path) -> None:
    page = tab.page
    real = served[1]["viewer"]
    wrong = real[:-6] + ("AAAAAA" if not real.endswith("AAAAAA") else "BBBBBB")  # a real key id, a wrong secret
    tab.use_key(wrong)
    with page.expect_response("**/v1/query") as refused:
        tab.ask("How do I sort records by a key?")
    assert refused.value.status == 401
    request_id = refused.value.headers["x-request-id"]
    page.locator("#ask-error").wait_for()
    error = page.inner_text("#ask-error")
    assert error.startswith("401 unauthenticated: ") and request_id in error
    assert wrong.split("_")[-1] not in error  # the secret is not echoed back
    assert page.is_hidden("#result") and page.is_enabled("#ask")
    page.screenshot(path=str(tmp_path / "unauthenticated.png"))
    tab.problems.clear()  # the browser logs the failed request itself: that is the 401 this test asked for

    page.click("#tab-search")
    page.fill("#query", "sort")
    page.click("#search")
    page.locator("#search-error").wait_for()
    assert page.inner_text("#search-error").startswith("401 unauthenticated: ")
    tab.problems.clear()


def test_document_text_with_markup_is_shown_as_text(tab: Tab, served: tuple[Server, dict[str, str]],
                                                    tmp_path: Path) -> None:
    page = tab.page
    tab.use_key(served[1]["viewer"])
    tab.ask("How is a widget banner configured?")
    page.locator("#answer .marker").first.wait_for()
    page.click("#citations .citation")
    assert XSS in page.inner_text("#detail-quote")
    assert XSS in page.inner_text("#answer")

    page.click("#tab-search")
    page.fill("#query", "widget banner template")
    page.click("#search")
    page.locator("#hits .hit").first.wait_for()
    assert XSS in page.inner_text("#hits")

    assert page.locator("img").count() == 0  # the markup never became an element
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(tmp_path / "markup.png"), full_page=True)


def test_the_page_fits_a_narrow_screen(browser: Any, served: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, keys = served
    narrow = Tab(browser, server.url + "/", width=390, height=844)
    try:
        narrow.use_key(keys["viewer"])
        narrow.ask("How do I sort records by a key?")
        narrow.page.locator("#answer .marker").first.click()
        assert narrow.page.is_visible("#detail-quote")
        overflow = narrow.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 390px wide"
        narrow.page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
        shutil.copyfile(tmp_path / "narrow.png", "/tmp/playground-narrow.png")
        assert narrow.problems == []
    finally:
        narrow.context.close()


def test_an_error_event_in_the_stream_is_shown_after_the_text_so_far(tab: Tab,
                                                                     served: tuple[Server, dict[str, str]]) -> None:
    page = tab.page
    tab.use_key(served[1]["viewer"])
    events = [  # as the API sends them when the generation fails mid-answer (CRLF and a comment: still SSE)
        ": keep-alive",
        'event: sources\r\ndata: {"index_version": "abc123", "trace_id": "tr_x1", "hits": []}',
        'event: token\r\ndata: {"text": "Use sorted("}',
        'event: token\r\ndata: {"text": "records) <b>now</b>"}',
        'event: error\r\ndata: {"error": {"type": "timeout", "message": "the answer took too long", '
        '"request_id": "req42"}}',
    ]
    page.route("**/v1/query", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"}, body="\r\n\r\n".join(events) + "\r\n\r\n"))
    tab.ask("How do I sort records?")
    page.locator("#ask-error").wait_for()
    assert page.inner_text("#ask-error") == "timeout: the answer took too long\nrequest id req42"
    assert page.inner_text("#answer") == "Use sorted(records) <b>now</b>"
    assert page.locator("#answer b").count() == 0
    assert "trace tr_x1" in page.inner_text("#answer-meta") and page.is_enabled("#ask")
