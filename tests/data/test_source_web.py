"""The ``web`` source against a real HTTP server on 127.0.0.1, with real httpx, lxml and trafilatura.

The site is a dict of paths served by ``http.server`` in a thread; its request log shows exactly what
the crawler asked for, and the source's ``fetched_urls`` shows that nothing else (no other host) was.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flightdeck.data.parsers import parse
from flightdeck.data.sources.base import Source
from flightdeck.data.sources.crawler import host_allowed, normalize_url
from flightdeck.data.sources.web import WebConfig, WebSource
from flightdeck.errors import MissingDependencyError, SourceError
from flightdeck.registry import Category
from needs import needs_provider

pytestmark = pytest.mark.integration
# what crawls needs the web extra (httpx, trafilatura); the settings and URL helpers need nothing
WEB = needs_provider(Category.SOURCE, "web")

Answer = tuple[int, dict[str, str], bytes]
Route = str | Answer | Callable[[BaseHTTPRequestHandler], Answer]  # a callable gets the request


@dataclass
class Site:
    """A tiny website: ``routes`` maps a path (with query) to a page; ``log`` records every request."""

    routes: dict[str, Route] = field(default_factory=dict)
    log: list[tuple[float, str]] = field(default_factory=list)
    base: str = ""

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def paths(self) -> list[str]:
        return [p for _, p in self.log]

    def pages_requested(self) -> list[str]:
        return [p for p in self.paths if p != "/robots.txt" and "sitemap" not in p]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            site.log.append((time.monotonic(), self.path))
            route = site.routes.get(self.path)
            if route is None:
                status, headers, body = 404, {"Content-Type": "text/html"}, b"<h1>Not found</h1>"
            elif callable(route):
                status, headers, body = route(self)
            elif isinstance(route, str):
                status, headers, body = 200, {"Content-Type": "text/html; charset=utf-8"}, route.encode()
            else:
                status, headers, body = route
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the crawler hung up on purpose (too large)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def _serve(host: str = "127.0.0.1", port: int = 0) -> Iterator[Site]:
    s = Site()
    server = ThreadingHTTPServer((host, port), _handler(s))
    server.daemon_threads = True
    s.base = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def site() -> Iterator[Site]:
    with _serve() as s:
        yield s


def _page(title: str, body: str, nav: str = "Home | Products | NAVMARKER menu | Contact") -> str:
    return textwrap.dedent(f"""\
        <!doctype html>
        <html><head><title>{title} | Widget Corp</title>
        <script>var SCRIPTMARKER = "track " + document.cookie; window.analytics = 1;</script>
        <style>body {{ color: STYLEMARKER; }}</style></head>
        <body>
        <header><div class="logo">Widget Corp</div></header>
        <nav><ul><li><a href="/">{nav}</a></li><li><a href="/b">Bravo</a></li></ul></nav>
        <main><article>{body}</article></main>
        <aside>Sidebar: subscribe to our newsletter SIDEBARMARKER</aside>
        <footer>Copyright 2024 Widget Corp. FOOTERMARKER All rights reserved.</footer>
        <script>console.log("SCRIPTMARKER again");</script>
        </body></html>""")


A_MAIN = """<h1>Alpha widgets</h1>
<p>Alpha widgets are assembled from seventeen brass cogs and one spring. Each cog is polished by hand
before assembly, which takes about an hour for a trained fitter.</p>
<h2>Maintenance</h2>
<p>Oil the cogs every third month with light machine oil, and never with cooking oil.</p>"""

B_MAIN = """<h1>Bravo gadgets</h1>
<p>Bravo gadgets hum at exactly four hundred and forty hertz when they are calibrated correctly, which
makes them useful as tuning forks for orchestras on tour.</p>
<p>See also the <a href="/empty">empty page</a> and the <a href="/a">alpha page</a>.</p>"""


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def build_site(site: Site, huge_bytes: int = 200_000) -> None:
    b = site.base
    index_links = ["/a", "/a#maintenance", "/b", "/private/x", "http://example.invalid/", "/deep/1",
                   "/missing", "/huge", "/file.pdf", "/logo.png", "mailto:someone@example.com",
                   "javascript:alert(1)", "ftp://127.0.0.1/file", "/redirect-out", "/moved", "/noindex",
                   "//example.invalid/protocol-relative", "../a"]
    links = "".join(f'<li><a href="{h}">link {i}</a></li>' for i, h in enumerate(index_links))
    site.routes.update({
        "/robots.txt": (200, {"Content-Type": "text/plain"},
                        f"User-agent: *\nDisallow: /private/\n\nSitemap: {b}/sitemap-index.xml\n".encode()),
        "/": _page("Home", f"<h1>Welcome</h1><p>The home of widgets and gadgets, since 1921.</p><ul>{links}</ul>"),
        "/a": _page("Alpha", A_MAIN),
        "/b": _page("Bravo", B_MAIN),
        "/private/x": _page("Private", "<h1>Private</h1><p>PRIVATEMARKER must never be fetched.</p>"),
        "/deep/1": _page("Deep 1", '<h1>Deep one</h1><p>First level down.</p><a href="/deep/2">next</a>'),
        "/deep/2": _page("Deep 2", '<h1>Deep two</h1><p>Second level down.</p><a href="/deep/3">next</a>'),
        "/deep/3": _page("Deep 3", "<h1>Deep three</h1><p>DEEPMARKER beyond max_depth.</p>"),
        "/huge": _page("Huge", "<h1>Huge</h1><p>" + "lorem ipsum " * (huge_bytes // 12) + "</p>"),
        "/file.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4 not really"),
        "/logo.png": (200, {"Content-Type": "image/png"}, b"\x89PNG"),
        "/redirect-out": (302, {"Location": "http://example.invalid/landing"}, b""),
        "/moved": (301, {"Location": "/new-home"}, b""),
        "/new-home": _page("New home", "<h1>New home</h1><p>Moved here permanently, with all the widgets.</p>"),
        "/noindex": ('<html><head><meta name="robots" content="noindex"></head><body><p>Not for the index.'
                     '</p><a href="/via-noindex">onwards</a></body></html>'),
        "/via-noindex": _page("Via", "<h1>Via noindex</h1><p>Found through a page that is not indexed.</p>"),
        "/empty": "<html><head><title>Empty</title></head><body></body></html>",
        "/sitemap.xml": (200, {"Content-Type": "application/xml"}, textwrap.dedent(f"""\
            <?xml version="1.0" encoding="UTF-8"?>
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <url><loc>{b}/from-sitemap</loc></url>
              <url><loc>{b}/a</loc></url>
              <url><loc>http://example.invalid/listed-elsewhere</loc></url>
            </urlset>""").encode()),
        "/sitemap-index.xml": (200, {"Content-Type": "application/xml"}, textwrap.dedent(f"""\
            <?xml version="1.0" encoding="UTF-8"?>
            <sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <sitemap><loc>{b}/sitemap-more.xml.gz</loc></sitemap>
              <sitemap><loc>http://example.invalid/sitemap.xml</loc></sitemap>
            </sitemapindex>""").encode()),
        "/sitemap-more.xml.gz": (200, {"Content-Type": "application/gzip"}, _gz(textwrap.dedent(f"""\
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <url><loc>{b}/from-index</loc></url>
            </urlset>""").encode())),
        "/from-sitemap": _page("Sitemap only", "<h1>Only in the sitemap</h1><p>No page links here; the "
                                               "sitemap lists it, SITEMAPMARKER.</p>"),
        "/from-index": _page("Index only", "<h1>Only in the index</h1><p>Listed by a gzipped child sitemap.</p>"),
    })


def _config(site: Site, **kw: Any) -> WebConfig:
    # The site is on 127.0.0.1, which the crawler refuses unless the spec allows it.
    settings: dict[str, Any] = {"start_urls": [site.url("/")], "delay_seconds": 0, "max_bytes": 50_000,
                                "backoff_seconds": 0.01, "retries": 1, "timeout": 5, "allow_private_networks": True}
    settings.update(kw)
    return WebConfig(**settings)


def _crawl(site: Site, **kw: Any) -> tuple[WebSource, dict[str, Any]]:
    source = WebSource(_config(site, **kw))
    return source, {i.uri: i for i in source.scan()}


# --- the crawl ---------------------------------------------------------------------------------------

@pytest.mark.exercises("data.sources.web_scraping")
@WEB
def test_crawl_follows_links_sitemaps_and_every_limit(site: Site) -> None:
    build_site(site)
    source, items = _crawl(site)
    assert isinstance(source, Source)
    u = site.url
    assert sorted(items) == sorted(u(p) for p in [
        "/", "/a", "/b", "/deep/1", "/deep/2", "/new-home", "/via-noindex", "/empty", "/from-sitemap",
        "/from-index"])
    # Never requested: robots-disallowed, beyond max_depth, assets, and no other host at all.
    requested = site.paths
    for path in ("/private/x", "/deep/3", "/logo.png", "/noindex-never"):
        assert path not in requested
    assert requested.count("/robots.txt") == 1
    assert requested.count("/a") == 1  # "/a", "/a#maintenance", "../a" and the sitemap's /a are one page
    assert all(url.startswith(site.base + "/") for url in source.fetched_urls)
    assert not any("example.invalid" in url for url in source.fetched_urls)
    assert "outside allowed_domains" in source.skipped["http://example.invalid/"]
    assert "outside allowed_domains" in source.skipped["http://example.invalid/protocol-relative"]
    assert "outside allowed_domains" in source.skipped["http://example.invalid/listed-elsewhere"]
    assert source.skipped[u("/private/x")] == "disallowed by robots.txt"
    assert "asset" in source.skipped[u("/logo.png")]
    assert "noindex" in source.skipped[u("/noindex")]
    # Failures name the URL and why; the crawl went on past them.
    failures = {f.uri: f.reason for f in source.failures}
    assert set(failures) == {u("/missing"), u("/huge"), u("/file.pdf"), u("/redirect-out")}
    assert failures[u("/missing")] == "HTTP 404 Not Found"
    assert "over max_bytes=50,000" in failures[u("/huge")]
    assert "not an HTML page (content type application/pdf)" in failures[u("/file.pdf")]
    assert "http://example.invalid/landing" in failures[u("/redirect-out")]
    assert "outside allowed_domains" in failures[u("/redirect-out")]


@WEB
def test_pages_are_main_content_markdown_without_boilerplate(site: Site) -> None:
    build_site(site)
    source, items = _crawl(site)
    a = items[site.url("/a")]
    assert a.media_type == "text/markdown"
    assert a.metadata["title"] == "Alpha widgets" and a.metadata["extracted_by"] == "trafilatura"
    assert source.source_uri(a) == site.url("/a")
    text = source.read(a).decode()
    assert "seventeen brass cogs" in text and "## Maintenance" in text
    for marker in ("SCRIPTMARKER", "NAVMARKER", "STYLEMARKER", "FOOTERMARKER", "SIDEBARMARKER", "analytics"):
        assert marker not in text
    doc = parse(a, source.read(a))
    assert doc.title == "Alpha widgets"
    assert [s.heading_path for s in doc.sections] == [("Alpha widgets",), ("Alpha widgets", "Maintenance")]
    # Nothing extracted: the page's HTML goes to flightdeck's HTML parser instead.
    empty = items[site.url("/empty")]
    assert empty.media_type == "text/html" and empty.metadata["extracted_by"] == "html"
    assert b"<title>Empty</title>" in source.read(empty)
    # ... and the run says so: only that page was delivered whole
    assert [(w.uri, w.message) for w in source.warnings] == [
        (site.url("/empty"), "main-content extraction found no text (trafilatura); the whole page was kept as "
                             "HTML, menus and footers included")]
    assert items[site.url("/new-home")].metadata["depth"] == 1
    assert items[site.url("/from-sitemap")].metadata["depth"] == 1
    with pytest.raises(SourceError, match="not a page of the last crawl"):
        source.read(type(a)(site.url("/nope"), "x", "text/markdown"))


@WEB
def test_content_hash_ignores_boilerplate_and_follows_the_text(site: Site) -> None:
    build_site(site)
    first = {i.uri: i.content_hash for i in WebSource(_config(site)).scan()}
    site.routes["/a"] = _page("Alpha", A_MAIN, nav="Home | Shop | Careers | a brand new menu entry")
    second = {i.uri: i.content_hash for i in WebSource(_config(site)).scan()}
    assert second == first
    site.routes["/a"] = _page("Alpha", A_MAIN.replace("seventeen", "eighteen"))
    third = {i.uri: i.content_hash for i in WebSource(_config(site)).scan()}
    assert third[site.url("/a")] != first[site.url("/a")]
    del first[site.url("/a")], third[site.url("/a")]
    assert third == first


@WEB
def test_max_pages_is_strict_and_the_same_pages_are_kept(site: Site) -> None:
    build_site(site)
    source, items = _crawl(site, max_pages=3)
    assert len(site.pages_requested()) == 3 and len(items) == 3
    assert sorted(items) == sorted(site.url(p) for p in ["/", "/a", "/b"])  # admitted in link order
    assert any("over max_pages=3" in why for why in source.skipped.values())


@WEB
def test_max_depth_zero_fetches_only_the_start_urls(site: Site) -> None:
    build_site(site)
    _, items = _crawl(site, max_depth=0)
    assert list(items) == [site.url("/")]
    assert site.paths == ["/robots.txt", "/"]


@WEB
def test_robots_can_be_ignored_and_include_exclude_narrow_the_crawl(site: Site) -> None:
    build_site(site)
    _, items = _crawl(site, respect_robots=False, max_depth=1, sitemap=False)
    assert site.url("/private/x") in items
    site.log.clear()
    source, items = _crawl(site, include=[r"/(a|b|deep/.*)$"], exclude=[r"/deep/"], sitemap=False)
    assert sorted(items) == sorted(site.url(p) for p in ["/", "/a", "/b"])
    assert "/deep/1" not in site.paths
    assert source.skipped[site.url("/deep/1")] == "matches an `exclude` pattern"
    assert source.skipped[site.url("/missing")] == "matches no `include` pattern"


@WEB
def test_allowed_domains_admit_other_hosts_only_when_listed(site: Site) -> None:
    port = site.base.rsplit(":", 1)[1]
    site.routes["/"] = f'<p>Home</p><a href="http://localhost:{port}/other">same server, other name</a>'
    site.routes["/other"] = _page("Other", "<h1>Other host</h1><p>Reached under the name localhost.</p>")
    _, items = _crawl(site, sitemap=False)
    assert list(items) == [site.url("/")]
    site.log.clear()
    _, items = _crawl(site, sitemap=False, allowed_domains=["127.0.0.1", "localhost"])
    assert f"http://localhost:{port}/other" in items
    assert site.paths.count("/robots.txt") == 2  # once per host


@WEB
def test_robots_unreachable_on_another_host_fails_its_pages(site: Site) -> None:
    port = site.base.rsplit(":", 1)[1]
    site.routes["/"] = f'<p>Home</p><a href="http://localhost:{port}/other">other host</a>'

    def robots(req: BaseHTTPRequestHandler) -> Answer:
        return (503, {}, b"") if req.headers["Host"].startswith("localhost") else (200, {}, b"User-agent: *\n")

    site.routes["/robots.txt"] = robots
    source, items = _crawl(site, sitemap=False, allowed_domains=["127.0.0.1", "localhost"])
    assert list(items) == [site.url("/")] and "/other" not in site.paths
    (failure,) = source.failures
    assert failure.uri == f"http://localhost:{port}/other"
    assert failure.reason.startswith(f"robots.txt of http://localhost:{port} unreachable (HTTP 503")


@WEB
def test_sitemaps_follow_robots_rules_unless_robots_lists_them(site: Site) -> None:
    b = site.base
    site.routes.update({
        "/robots.txt": (200, {}, f"User-agent: *\nDisallow: /maps/\nDisallow: /sitemap.xml\n"
                                 f"Sitemap: {b}/maps/listed.xml\n".encode()),
        "/": "<p>Home</p>",
        "/maps/listed.xml": (200, {}, f"{b}/listed-page\n{b}/maps/hidden-page\n".encode()),  # a text sitemap
        "/listed-page": "<h1>Listed</h1><p>A page from a plain-text sitemap.</p>",
    })
    source, items = _crawl(site)
    assert sorted(items) == [site.url("/"), site.url("/listed-page")]
    assert "/sitemap.xml" not in site.paths and "/maps/hidden-page" not in site.paths
    assert source.skipped[site.url("/maps/hidden-page")] == "disallowed by robots.txt"


@WEB
def test_politeness_delay_spaces_requests_to_a_host(site: Site) -> None:
    build_site(site)
    _crawl(site, delay_seconds=0.2, max_pages=4, sitemap=False, concurrency=4)
    times = [t for t, _ in site.log]
    assert len(times) == 5  # robots.txt and four pages
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.18, gaps


@WEB
def test_robots_crawl_delay_is_honoured(site: Site) -> None:
    site.routes["/robots.txt"] = (200, {}, b"User-agent: flightdeck\nCrawl-delay: 1\n")
    site.routes["/"] = "<p>Home</p>"
    _crawl(site, sitemap=False, max_depth=0)
    (t0, p0), (t1, p1) = site.log
    assert (p0, p1) == ("/robots.txt", "/") and t1 - t0 >= 0.95


@WEB
def test_retries_on_429_and_5xx_then_a_failure_for_that_page(site: Site) -> None:
    answers = iter([(503, {}, b""), (429, {"Retry-After": "0"}, b"")])
    site.routes["/"] = '<p>Home</p><a href="/flaky">flaky</a> <a href="/down">down</a>'
    site.routes["/flaky"] = lambda _req: next(answers, (200, {"Content-Type": "text/html"},
                                                   b"<h1>Flaky</h1><p>Third time lucky.</p>"))
    site.routes["/down"] = (502, {}, b"bad gateway")
    source, items = _crawl(site, retries=2, sitemap=False)
    assert site.url("/flaky") in items
    assert site.paths.count("/flaky") == 3 and site.paths.count("/down") == 3
    failures = {f.uri: f.reason for f in source.failures}
    assert failures == {site.url("/down"): "HTTP 502 Bad Gateway (after 3 attempts)"}


@WEB
def test_timeouts_redirect_chains_and_gzip_bombs_fail_only_their_page(site: Site) -> None:
    def slow(_req: BaseHTTPRequestHandler) -> Answer:
        time.sleep(1.5)
        return 200, {"Content-Type": "text/html"}, b"<p>too late</p>"

    bomb = gzip.compress(b" " * 5_000_000)
    site.routes.update({
        "/": ('<p>Home</p><a href="/slow">s</a> <a href="/r/0">r</a> <a href="/bomb">b</a> <a href="/ok">ok</a>'
              '<a href="/badgzip">g</a>'),
        "/slow": slow,
        "/bomb": (200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, bomb),
        "/badgzip": (200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip at all"),
        "/ok": "<h1>OK</h1><p>Still crawled.</p>",
        **{f"/r/{n}": (302, {"Location": f"/r/{n + 1}"}, b"") for n in range(10)},
    })
    source, items = _crawl(site, timeout=0.5, retries=0, max_redirects=3, sitemap=False)
    assert site.url("/ok") in items
    failures = {f.uri: f.reason for f in source.failures}
    assert failures[site.url("/slow")] == "timed out after 0.5 s"
    assert failures[site.url("/r/0")] == "more than max_redirects=3 redirects"
    assert "/r/4" not in site.paths
    assert "over max_bytes=50,000" in failures[site.url("/bomb")]
    assert failures[site.url("/badgzip")].startswith("DecodingError")


@WEB
def test_declared_charset_and_binary_pages(site: Site) -> None:
    site.routes["/"] = '<p>Home</p><a href="/latin">l</a> <a href="/binary">b</a>'
    site.routes["/latin"] = (200, {"Content-Type": "text/html; charset=iso-8859-1"},
                             "<h1>Caf\xe9 cr\xe8me</h1><p>Le caf\xe9 est servi tr\xe8s chaud.</p>".encode("latin-1"))
    site.routes["/binary"] = (200, {"Content-Type": "text/html"}, b"\x00\x01\x02binary\x00" * 20)
    source, items = _crawl(site, sitemap=False)
    assert "Le café est servi très chaud." in source.read(items[site.url("/latin")]).decode()
    assert {f.uri: f.reason for f in source.failures} == {site.url("/binary"): "binary content, not text"}


# --- a start URL that cannot be crawled: SourceError, nothing ingested ------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@WEB
def test_unreachable_start_url_raises_after_retries() -> None:
    url = f"http://127.0.0.1:{_free_port()}/"
    source = WebSource(WebConfig(start_urls=[url], retries=2, backoff_seconds=0.01, delay_seconds=0,
                                 allow_private_networks=["127.0.0.0/8"]))
    with pytest.raises(SourceError, match="unreachable") as info:
        list(source.scan())
    assert url in str(info.value) and "after 3 attempts" in str(info.value)
    assert source.fetched_urls == [url + "robots.txt"] * 3


@WEB
def test_start_url_answering_5xx_or_404_or_disallowed_raises(site: Site) -> None:
    site.routes["/"] = (503, {"Retry-After": "0"}, b"down for maintenance")
    with pytest.raises(SourceError, match=r"start URL is unreachable: HTTP 503 Service Unavailable \(after 3"):
        list(WebSource(_config(site, retries=2)).scan())
    assert site.paths.count("/") == 3
    with pytest.raises(SourceError, match="HTTP 404 Not Found"):
        list(WebSource(_config(site, start_urls=[site.url("/gone")])).scan())
    site.routes["/robots.txt"] = (200, {}, b"User-agent: *\nDisallow: /\n")
    before = len(site.log)
    with pytest.raises(SourceError, match="disallowed by the site's robots.txt"):
        list(WebSource(_config(site)).scan())
    assert site.paths[before:] == ["/robots.txt"]


# --- where the crawler may connect ----------------------------------------------------------------------

@pytest.mark.parametrize("start", ["http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data/",
                                   "http://10.0.0.1/", "http://[::1]:9/", "http://localhost:9/docs/"])
@pytest.mark.parametrize("respect_robots", [True, False])
@WEB
def test_private_and_metadata_start_urls_are_refused_before_any_connection(
        start: str, respect_robots: bool, connections: list[Any]) -> None:
    source = WebSource(WebConfig(start_urls=[start], retries=3, backoff_seconds=1.0, delay_seconds=0,
                                 respect_robots=respect_robots))
    t0 = time.perf_counter()
    with pytest.raises(SourceError) as info:
        list(source.scan())
    message = str(info.value)
    assert f"{normalize_url(start)}: " in message and "refused to connect to " in message
    assert "`allow_private_networks: true`" in message  # the setting to change
    if "localhost" in start:
        assert "localhost (127.0.0.1)" in message or "localhost (::1)" in message  # the resolved address
    assert connections == []  # refused before any socket connected anywhere
    assert time.perf_counter() - t0 < 1  # not retried: the answer would be the same


@pytest.mark.parametrize("respect_robots", [True, False])
@WEB
def test_a_redirect_to_a_denied_address_is_refused(respect_robots: bool, connections: list[Any]) -> None:
    # Both sites are on loopback and both hosts are allowed domains; only 127.0.0.1 is an allowed network,
    # so the page that redirects to 127.0.0.2 fails, and 127.0.0.2 never sees a request.
    with _serve("127.0.0.1") as site, _serve("127.0.0.2") as denied:
        denied.routes["/"] = "<h1>Internal</h1><p>INTERNALMARKER must never be read.</p>"
        denied.routes["/robots.txt"] = (200, {}, b"User-agent: *\nAllow: /\n")
        site.routes["/"] = (f'<h1>Home</h1><p>The public home page.</p><a href="/inside">inside</a>'
                            f'<a href="{denied.url("/direct")}">a direct link</a>')
        site.routes["/inside"] = (302, {"Location": denied.url("/")}, b"")
        source = WebSource(_config(site, allowed_domains=["127.0.0.1", "127.0.0.2"], sitemap=False,
                                   respect_robots=respect_robots, allow_private_networks=["127.0.0.1/32"]))
        items = {i.uri for i in source.scan()}
        assert items == {site.url("/")}
        reason = {f.uri: f.reason for f in source.failures}[site.url("/inside")]
        assert reason.startswith(f"redirects to {denied.url('/')}: refused to connect to 127.0.0.2")
        assert "allow_private_networks" in reason
        direct = {f.uri: f.reason for f in source.failures}[denied.url("/direct")]
        assert direct.startswith("refused to connect to 127.0.0.2") and "allow_private_networks" in direct
        assert denied.log == []
        assert {address[0] for address in connections} == {"127.0.0.1"}


@WEB
def test_trafilatura_failing_on_a_page_is_a_warning_and_the_page_is_kept(site: Site,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import trafilatura

    site.routes["/"] = _page("Home", '<h1>Home</h1><p>Widgets since 1921.</p><a href="/odd">odd</a>')
    site.routes["/odd"] = _page("Odd", "<h1>Odd page</h1><p>ODDMARKER breaks the extractor.</p>")
    real = trafilatura.extract

    def extract(text: str, *args: Any, **kwargs: Any) -> Any:
        if "ODDMARKER" in text:
            raise RuntimeError("extractor exploded\nwith a traceback")
        return real(text, *args, **kwargs)

    monkeypatch.setattr(trafilatura, "extract", extract)
    source, items = _crawl(site, sitemap=False)
    odd = items[site.url("/odd")]
    assert odd.media_type == "text/html" and b"ODDMARKER" in source.read(odd)  # delivered whole, not lost
    assert [(w.uri, w.message) for w in source.warnings] == [
        (site.url("/odd"), "main-content extraction failed (trafilatura: RuntimeError: extractor exploded); the "
                           "whole page was kept as HTML, menus and footers included")]
    assert items[site.url("/")].media_type == "text/markdown"
    # warnings are per scan
    monkeypatch.setattr(trafilatura, "extract", real)
    list(source.scan())
    assert source.warnings == []


@WEB
def test_scan_works_inside_a_running_event_loop(site: Site) -> None:
    site.routes["/"] = "<h1>Home</h1><p>From inside a loop.</p>"

    async def main() -> list[str]:
        return [i.uri for i in WebSource(_config(site, sitemap=False)).scan()]

    assert asyncio.run(main()) == [site.url("/")]


# --- configuration and helpers --------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "message"), [
    ({"start_urls": ["file:///etc/passwd"]}, "not an absolute http"),
    ({"start_urls": ["ftp://example.com/"]}, "not an absolute http"),
    ({"start_urls": ["http://user:pw@example.com/"]}, "user:password"),
    ({"start_urls": []}, "at least 1"),
    ({"start_urls": ["https://a.example/"], "allowed_domains": ["https://a.example/"]}, "not a host name"),
    ({"start_urls": ["https://a.example/"], "allowed_domains": []}, "empty list"),
    ({"start_urls": ["https://a.example/"], "allowed_domains": ["b.example"]}, "outside allowed_domains"),
    ({"start_urls": ["https://a.example/"], "include": ["(unclosed"]}, "not a valid regular expression"),
    ({"start_urls": ["https://a.example/"], "user_agent": "x\r\nInjected: 1"}, "one non-empty line"),
    ({"start_urls": ["https://a.example/"], "max_depth": -1}, "greater than or equal"),
    ({"start_urls": ["https://a.example/"], "follow_everything": True}, "Extra inputs"),
])
def test_config_rejects_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebConfig(**settings)


def test_config_defaults() -> None:
    cfg = WebConfig(start_urls=["https://Docs.Example.com:443/guide/", "http://other.example/"])
    assert cfg.effective_allowed_domains == ["docs.example.com", "other.example"]
    assert (cfg.max_depth, cfg.max_pages, cfg.delay_seconds, cfg.respect_robots, cfg.sitemap) == (2, 200, 0.5,
                                                                                                   True, True)
    assert cfg.max_bytes == 5_000_000 and cfg.user_agent.startswith("flightdeck/")
    assert WebConfig(start_urls=["https://a.example/"], allowed_domains=["*.A.example"]).allowed_domains == \
        ["*.a.example"]


@pytest.mark.parametrize(("href", "base", "expected"), [
    ("HTTP://Example.COM:80/a/./b/../c#frag", None, "http://example.com/a/c"),
    ("https://example.com:443", None, "https://example.com/"),
    ("https://example.com:8443/x?q=1&r=2", None, "https://example.com:8443/x?q=1&r=2"),
    ("../d/", "http://h.example/a/b/c", "http://h.example/a/d/"),
    ("  /x\n/y ", "http://h.example/", "http://h.example/x/y"),
    ("//other.example/p", "https://h.example/", "https://other.example/p"),
    ("?page=2", "http://h.example/list", "http://h.example/list?page=2"),
    ("http://bücher.example/", None, "http://xn--bcher-kva.example/"),
    ("mailto:a@b.example", None, None),
    ("javascript:alert(1)", "http://h.example/", None),
    ("data:text/html,hi", None, None),
    ("file:///etc/passwd", None, None),
    ("http://user:pw@h.example/", None, None),
    ("http://h.example:99999/", None, None),
    ("#top", None, None),
    ("", "http://h.example/", None),
])
def test_normalize_url(href: str, base: str | None, expected: str | None) -> None:
    assert normalize_url(href, base) == expected


def test_host_allowed() -> None:
    assert host_allowed("http://a.example:8080/x", ["a.example"])
    assert not host_allowed("http://sub.a.example/", ["a.example"])
    assert host_allowed("http://sub.a.example/", ["*.a.example"]) and host_allowed("http://a.example/", ["*.a.example"])
    assert not host_allowed("http://evila.example/", ["*.a.example"])
    assert not host_allowed("http://a.example.evil.example/", ["a.example"])


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trafilatura", None)  # what an environment without the extra looks like
    source = WebSource(WebConfig(start_urls=["http://127.0.0.1:9/"]))
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[web\]'"):
        list(source.scan())


# --- end to end through a Project ------------------------------------------------------------------------

SPEC = """\
project: web-test
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - {{provider: web, start_urls: ["{start}"], delay_seconds: 0, max_bytes: 50000, retries: 1,
       backoff_seconds: 0.01, allow_private_networks: true}}
  chunking: {{provider: recursive, size: 64, overlap: 16}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
  search: {{mode: hybrid, k: 5}}
"""


def _run(root: Path) -> tuple[Any, dict[str, Any]]:
    from flightdeck import Project
    from flightdeck.testing import FakeEmbedder

    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    return project, {s.step: s for s in project.run().steps}


@pytest.mark.exercises("data.sources.web_scraping")
@WEB
def test_project_ingests_a_website_incrementally(site: Site, tmp_path: Path) -> None:
    build_site(site)
    (tmp_path / "flightdeck.yaml").write_text(SPEC.format(start=site.url("/")), encoding="utf-8")
    project, steps = _run(tmp_path)
    ingest = steps["ingest"].counts
    assert ingest["documents"] == 10 and ingest["parsed"] == 10 and ingest["chunks"] >= 9
    assert {f["uri"] for f in ingest["failures"]} == {f"web/{site.url(p)}" for p in
                                                      ["/missing", "/huge", "/file.pdf", "/redirect-out"]}
    hit = project.search("hum four hundred forty hertz tuning forks", mode="keyword").hits[0]
    assert hit.document_id == f"web/{site.url('/b')}" and hit.source_uri == site.url("/b")
    assert "Bravo gadgets" in hit.heading

    # Only the navigation of /a changes: its content hash does not, nothing is parsed again.
    site.routes["/a"] = _page("Alpha", A_MAIN, nav="Home | Shop | Careers | a brand new menu entry")
    _, steps = _run(tmp_path)
    # Same manifest as before, so the ingest step has no work at all: parsing nothing, embedding nothing.
    assert [s.status for s in steps.values()] == ["skipped"] * 3
    assert steps["ingest"].counts.get("parsed", 0) == 0

    # Its main text changes: that one page is parsed again, and search sees the new text.
    site.routes["/a"] = _page("Alpha", A_MAIN.replace("seventeen brass cogs", "nineteen titanium cogs"))
    project, steps = _run(tmp_path)
    assert steps["ingest"].counts["parsed"] == 1 and steps["ingest"].counts["unchanged"] == 9
    assert project.search("nineteen titanium cogs", mode="keyword").hits[0].document_id == f"web/{site.url('/a')}"

    # A page that disappears (404 now) is removed downstream, and so is /empty, linked only from it.
    del site.routes["/b"]
    project, steps = _run(tmp_path)
    assert steps["ingest"].counts["removed"] == 2
    assert {"uri": f"web/{site.url('/b')}", "reason": "HTTP 404 Not Found"} in steps["ingest"].counts["failures"]
    assert all(h.document_id != f"web/{site.url('/b')}" for h in project.search("hertz tuning forks").hits)

    # The site is down: the run fails with the URL named, and the index is left as it was.
    site.routes["/robots.txt"] = (503, {}, b"")
    with pytest.raises(SourceError, match="unreachable"):
        _run(tmp_path)
    assert project.search("nineteen titanium cogs", mode="keyword").hits
