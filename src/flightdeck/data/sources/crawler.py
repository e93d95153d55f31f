"""The crawler behind the ``web`` source: breadth-first, polite, and confined to the allowed domains.

A crawl goes level by level: the start URLs (depth 0), then the links found on them and the URLs of the
site's sitemaps (depth 1), and so on up to ``max_depth``. Within a level pages are fetched concurrently,
but the order in which URLs are admitted is fixed (the order of the pages that link to them), so that
``max_pages`` cuts the same pages on every run and an unchanged site gives the same items.

Everything a page says is data: a link is followed only when it is an http(s) URL on an allowed host,
passes ``include``/``exclude`` and robots.txt; redirects are followed by hand, one hop at a time, and
every hop is checked again the same way. Every connection (pages, redirects, robots.txt, sitemaps) goes
through :mod:`~flightdeck.data.sources.netguard`, which refuses loopback, private, link-local and cloud
metadata addresses unless ``allow_private_networks`` allows them. The helpers at the top (URL
normalisation, host matching) need no optional library; :class:`Crawler` needs httpx, lxml and
trafilatura (the ``web`` extra).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import posixpath
import re
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from flightdeck.core import RetryPolicy
from flightdeck.data.sources.base import ItemFailure, ItemWarning
from flightdeck.data.sources.netguard import BlockedAddressError, NetworkPolicy, async_client
from flightdeck.data.sources.urls import host_allowed, normalize_url, origin_of
from flightdeck.errors import FlightdeckError, SourceError

if TYPE_CHECKING:
    from flightdeck.data.sources.web_config import WebConfig

__all__ = ["normalize_url", "host_allowed", "origin_of", "Crawler", "CrawlResult", "Page", "HTML_TYPES", "Extracted",
           "decode_html", "extract_main_content"]

log = logging.getLogger(__name__)

#: media types parsed as pages; any other type is reported as a failure without reading its body
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Links to these are assets, never pages: not fetched at all (and not reported, there are many).
_ASSET_SUFFIXES = frozenset({
    ".css", ".js", ".mjs", ".json", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".ico", ".bmp",
    ".tif", ".tiff", ".avif", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp3", ".mp4", ".m4a", ".wav",
    ".ogg", ".webm", ".avi", ".mov", ".mkv", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar",
    ".exe", ".dmg", ".msi", ".iso", ".apk", ".bin", ".whl",
})
_ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB
_SITEMAP_MAX_BYTES = 50 * 1024 * 1024  # the sitemap protocol's limit for one (uncompressed) file
_MAX_SITEMAP_FILES = 50
_MAX_CRAWL_DELAY = 60.0  # a robots.txt Crawl-delay above this is capped: one page a minute is polite enough
_MAX_RETRY_AFTER = 60.0
_MAX_SKIPPED = 10_000
_ACCEPT_HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
_ACCEPT_ANY = "*/*"
_H1 = re.compile(r"^# +\S", re.M)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_ROBOTS_DOWN = "robots.txt of"


# --- URLs --------------------------------------------------------------------------------------------

def _is_asset(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return posixpath.splitext(path)[1] in _ASSET_SUFFIXES


# --- results -----------------------------------------------------------------------------------------

@dataclass
class Page:
    """One crawled page: the bytes the source delivers for it and how to parse them."""

    url: str
    depth: int
    media_type: str  # "text/markdown" (extracted) or "text/html" (trafilatura found nothing)
    body: bytes
    title: str


@dataclass
class CrawlResult:
    """Pages in URL order, failures, warnings, every URL requested, and URLs deliberately not fetched."""

    pages: list[Page] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    # pages delivered in a degraded way (main-content extraction failed: the whole page was kept)
    warnings: list[ItemWarning] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class _Response:
    url: str
    status: int = 0
    media_type: str = ""
    charset: str | None = None
    body: bytes = b""
    location: str | None = None
    error: str | None = None  # a failure that is about this URL (too large, not HTML, ...)
    unreachable: bool = False  # network error, timeout, or 429/5xx after every retry
    blocked: bool = False  # the network policy refused the address (error says which and why)
    attempts: int = 1
    retry_after: str | None = None


class _Busy(Exception):
    """A 429 or 5xx answer: retried like a network error, after the server's Retry-After if it sent one."""

    def __init__(self, resp: _Response) -> None:
        super().__init__(f"HTTP {resp.status}")
        self.resp = resp

    @staticmethod
    def delay_of(exc: Exception) -> float | None:
        hinted = _retry_after(exc.resp.retry_after) if isinstance(exc, _Busy) else None
        return None if hinted is None else min(hinted, _MAX_RETRY_AFTER)


@dataclass
class _Robots:
    parser: RobotFileParser | None = None  # None: everything allowed (no robots.txt, or 4xx)
    error: str | None = None  # unreachable: nothing on this origin may be fetched
    sitemaps: list[str] = field(default_factory=list)
    crawl_delay: float | None = None
    blocked: bool = False  # error is the network policy's refusal, not a fault of the site


class _Refused(str):
    """A reason that is the network policy's refusal (not robots.txt's, not the site's): running again will
    not help, allowing the address will."""


@dataclass
class _Processed:
    title: str
    markdown: str | None
    html_text: str
    links: list[str]
    noindex: bool
    warning: str | None = None  # what went wrong with main-content extraction, if anything


# --- page processing (runs in a worker thread) ---------------------------------------------------------

def decode_html(body: bytes, charset: str | None, url: str) -> str:
    """The text of an HTML page's bytes: the declared charset (header, then ``<meta>``), else BOM/UTF-8/Windows-1252;
    binary content raises :class:`~flightdeck.errors.SourceError`."""
    from flightdeck.data.parsers.decoding import decode_text

    declared = charset
    if not declared and (m := _META_CHARSET.search(body[:4096])):
        declared = m.group(1).decode("ascii", "replace")
    text: str | None = None
    if declared and not body.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = body.decode(codecs.lookup(declared).name, errors="replace")
        except LookupError:
            text = None
        if text is not None and "\x00" in text:
            raise SourceError(f"{url}: binary content, not an HTML page")
    if text is None:
        text = decode_text(body, url)  # BOMs, UTF-8, then Windows-1252; NUL bytes mean binary
    # lxml refuses str input with an encoding declaration, and the text is decoded already.
    return _XML_DECL.sub("", text, count=1)


def _meta_robots(doc: Any, agent: str) -> set[str]:
    tokens: set[str] = set()
    for meta in doc.xpath("//meta[@name][@content]"):
        if meta.get("name", "").strip().lower() in ("robots", agent):
            tokens.update(t.strip().lower() for t in meta.get("content", "").split(","))
    return tokens


@dataclass(frozen=True)
class Extracted:
    """A page's main content as trafilatura reads it: its ``title``, the ``text`` (``None`` when trafilatura found
    nothing or failed) and a ``warning`` saying what went wrong, if anything."""

    title: str
    text: str | None
    warning: str | None = None


def extract_main_content(text: str, url: str, title: str = "", output_format: str = "markdown") -> Extracted:
    """The main content of a decoded HTML page (trafilatura: navigation, scripts and footers dropped), as Markdown
    or, with ``output_format="txt"``, plain text (no Markdown escapes), and its title: trafilatura's, else ``title``
    (the page's ``<title>``, when the caller has it).

    Never raises for what the page holds: a failure of trafilatura is a ``warning`` with ``text`` ``None``.
    Shared by the crawler (Markdown) and the agents' browser tools (plain text).
    """
    import trafilatura

    markdown: str | None = None
    warning: str | None = None
    # Third-party code on untrusted input: any failure falls back to flightdeck's own HTML parser, and the
    # run says so (a warning), since the page's menus and footers are then indexed with its text.
    try:
        markdown = trafilatura.extract(text, url=url, output_format=output_format, include_tables=True,
                                       include_links=False, include_images=False, include_comments=False,
                                       with_metadata=False, deduplicate=False)
    except Exception as exc:  # noqa: BLE001 - see above
        warning = (f"main-content extraction failed (trafilatura: {type(exc).__name__}: {_first_line(exc)}); "
                   "the whole page was kept as HTML, menus and footers included")
    else:
        if not (markdown and markdown.strip()):
            warning = ("main-content extraction found no text (trafilatura); the whole page was kept as HTML, "
                       "menus and footers included")
    try:
        meta = trafilatura.extract_metadata(text, default_url=url)
        if meta is not None and meta.title:
            title = " ".join(meta.title.split())
    except Exception as exc:  # noqa: BLE001 - see above
        note = f"title extraction failed (trafilatura: {type(exc).__name__}: {_first_line(exc)}); the <title> is used"
        warning = note if warning is None else f"{warning}; {note}"
    return Extracted(title, markdown.strip() if markdown and markdown.strip() else None, warning)


def _process_page(body: bytes, charset: str | None, url: str, want_links: bool, respect_robots: bool,
                  agent: str) -> _Processed:
    import lxml.etree
    import lxml.html

    text = decode_html(body, charset, url)
    links: list[str] = []
    noindex = False
    title = ""
    try:
        doc = lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):  # an empty or unparseable document: no links
        doc = None
    if doc is not None:
        tokens = _meta_robots(doc, agent) if respect_robots else set()
        noindex = bool(tokens & {"noindex", "none"})
        nofollow = bool(tokens & {"nofollow", "none"})
        base = url
        base_el = doc.find(".//base[@href]")
        if base_el is not None:
            base = normalize_url(base_el.get("href", ""), url) or url
        if want_links and not nofollow:
            for el in doc.xpath("//a[@href] | //area[@href]"):
                link = normalize_url(el.get("href", ""), base)
                if link is not None:
                    links.append(link)
        title_el = doc.find(".//title")
        if title_el is not None and title_el.text_content():
            title = " ".join(title_el.text_content().split())
    extracted = extract_main_content(text, url, title)
    if extracted.warning is not None:
        log.debug("%s: %s", url, extracted.warning)
    return _Processed(extracted.title, extracted.text, text, links, noindex, extracted.warning)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else "") or "no message"


def _page_body(processed: _Processed) -> tuple[str, bytes]:
    """The media type and bytes the source delivers for a processed page."""
    if processed.markdown is None:
        # Nothing extracted: hand the whole page to flightdeck's HTML parser, already decoded to UTF-8.
        return "text/html", processed.html_text.encode("utf-8")
    markdown = processed.markdown
    if processed.title and not _H1.search(markdown):
        # Keep the page title as the document title and the root of every heading path.
        markdown = f"# {processed.title}\n\n{markdown}"
    return "text/markdown", (markdown + "\n").encode("utf-8")


def _gunzip(data: bytes, limit: int) -> bytes | None:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    return None if len(out) > limit else out  # over the limit: a bomb, or just too big


def _parse_sitemap(data: bytes) -> tuple[list[str], list[str]]:
    """``(page URLs, child sitemap URLs)`` of one sitemap file (XML ``urlset``/``sitemapindex`` or text)."""
    import lxml.etree

    if data.startswith(b"\x1f\x8b"):
        inflated = _gunzip(data, _SITEMAP_MAX_BYTES)
        if inflated is None:
            return [], []
        data = inflated
    if not data.lstrip().startswith(b"<"):  # the protocol also allows one URL per line
        lines = data.decode("utf-8", "replace").splitlines()
        return [u.strip() for u in lines if u.strip()], []
    # No entities, no network: a sitemap is untrusted XML.
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        root = lxml.etree.fromstring(data, parser)
    except lxml.etree.XMLSyntaxError:
        return [], []
    if root is None:
        return [], []
    locs = [(el.text or "").strip() for el in root.iter("{*}loc")]
    locs = [u for u in locs if u]
    if lxml.etree.QName(root).localname == "sitemapindex":
        return [], locs
    return locs, []


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _agent_token(user_agent: str) -> str:
    # robots.txt groups are matched on the product token: "flightdeck" of "flightdeck/0.1 (...)"
    return user_agent.split("/", 1)[0].split()[0].lower() if user_agent.strip() else "*"


# --- the crawler -------------------------------------------------------------------------------------

class Crawler:
    """One crawl of the site(s) that a :class:`~flightdeck.data.sources.web_config.WebConfig` describes.

    :meth:`run` returns a :class:`CrawlResult`; it raises :class:`~flightdeck.errors.SourceError` when a
    start URL cannot be crawled at all (down after retries, an error status, or forbidden by
    robots.txt), since a crawl without it would look like a site whose pages were all deleted.
    """

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.result = CrawlResult()
        self._policy = NetworkPolicy.from_setting(config.allow_private_networks)
        self._domains = config.effective_allowed_domains
        self._include = [re.compile(p) for p in config.include]
        self._exclude = [re.compile(p) for p in config.exclude]
        self._agent = _agent_token(config.user_agent)
        self._seen: set[str] = set()
        self._links: dict[str, list[str]] = {}
        self._start_problems: list[str] = []
        self._robots_tasks: dict[str, asyncio.Future[_Robots]] = {}
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._last_start: dict[str, float] = {}
        self._delays: dict[str, float] = {}
        self._pages: list[Page] = []
        self._client: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None

    # public ------------------------------------------------------------------------------------------
    async def run(self) -> CrawlResult:
        """Crawl breadth-first; see the module docstring."""
        import httpx

        cfg = self.config
        self._sem = asyncio.Semaphore(cfg.concurrency)
        # One worker thread: parsing and extraction run off the event loop, and never two at once,
        # so nothing depends on trafilatura being thread-safe.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flightdeck-web")
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        try:
            async with async_client(self._policy, limits=limits, headers={"User-Agent": cfg.user_agent},
                                    timeout=cfg.timeout, follow_redirects=False) as client:
                self._client = client
                await self._crawl()
        finally:
            self._executor.shutdown(wait=True)
        # Fetches finish in any order; what comes out must not depend on it (runs compare manifests).
        self.result.pages = sorted(self._pages, key=lambda p: p.url)
        self.result.failures.sort(key=lambda f: f.uri)
        self.result.warnings.sort(key=lambda w: w.uri)
        return self.result

    # the levels --------------------------------------------------------------------------------------
    async def _crawl(self) -> None:
        cfg = self.config
        starts: list[str] = []
        for raw in cfg.start_urls:
            url = normalize_url(raw)
            if url is not None and url not in starts:
                starts.append(url)
        for url in starts:
            if cfg.respect_robots:
                robots = await self._robots(origin_of(url))
                if robots.blocked:
                    self._start_problems.append(_Refused(f"{url}: robots.txt not fetched: {robots.error}"))
                elif robots.error is not None:
                    self._start_problems.append(f"{url}: robots.txt unreachable ({robots.error})")
                elif not self._robots_allow(robots, url):
                    self._start_problems.append(f"{url}: disallowed by the site's robots.txt for user agent "
                                                f"{self._agent!r}; choose start URLs the site allows")
        self._raise_for_start()
        self._seen.update(starts)
        level = starts
        budget = cfg.max_pages
        depth = 0
        while level:
            batch, rest = level[:budget], level[budget:]
            budget -= len(batch)
            for url in rest:
                self._skip(url, f"over max_pages={cfg.max_pages}")
            await asyncio.gather(*(self._fetch_page(url, depth, start=depth == 0) for url in batch))
            if depth == 0:
                self._raise_for_start()
            if depth >= cfg.max_depth or budget == 0:
                break
            candidates = [link for url in batch for link in self._links.pop(url, [])]
            if depth == 0 and cfg.sitemap:
                # The sitemap counts as one more page linking from the start: its URLs enter at depth 1.
                candidates += await self._sitemap_urls(starts)
            level = await self._admit(candidates)
            depth += 1
        log.info("web crawl: %d pages, %d failures, %d requests, %d URLs skipped", len(self._pages),
                 len(self.result.failures), len(self.result.fetched), len(self.result.skipped))

    async def _admit(self, candidates: list[str]) -> list[str]:
        """The candidates that may be fetched, deduplicated, in order; the others noted as skipped."""
        admitted: list[str] = []
        for url in candidates:
            if url in self._seen:
                continue
            self._seen.add(url)
            why = self._refusal(url)
            if why is None and self.config.respect_robots:
                why = await self._robots_refusal(url)
            if why is None:
                admitted.append(url)
            elif isinstance(why, _Refused) or why.startswith(_ROBOTS_DOWN):
                # Not a choice but a fault: it goes to the run's failures, like any page that failed.
                self.result.failures.append(ItemFailure(url, why))
            else:
                self._skip(url, why)
        return admitted

    def _refusal(self, url: str) -> str | None:
        """Why ``url`` must not be fetched, robots.txt aside; ``None`` when it may be."""
        if not host_allowed(url, self._domains):
            return f"outside allowed_domains ({', '.join(self._domains)})"
        if _is_asset(url):
            return "an asset (image, script, archive...), not a page"
        if self._include and not any(p.search(url) for p in self._include):
            return "matches no `include` pattern"
        if any(p.search(url) for p in self._exclude):
            return "matches an `exclude` pattern"
        return None

    async def _robots_refusal(self, url: str) -> str | None:
        robots = await self._robots(origin_of(url))
        if robots.blocked:  # the network policy refuses the site: that, not robots.txt, is the reason
            return _Refused(robots.error or "refused by the network policy")
        if robots.error is not None:
            return f"{_ROBOTS_DOWN} {origin_of(url)} unreachable ({robots.error}); nothing there is fetched"
        if not self._robots_allow(robots, url):
            return "disallowed by robots.txt"
        return None

    def _robots_allow(self, robots: _Robots, url: str) -> bool:
        return robots.parser is None or robots.parser.can_fetch(self.config.user_agent, url)

    # one page ----------------------------------------------------------------------------------------
    async def _fetch_page(self, url: str, depth: int, start: bool) -> None:
        cfg = self.config
        current = url
        for hop in range(cfg.max_redirects + 1):
            resp = await self._request(current, limit=cfg.max_bytes, wanted=HTML_TYPES.__contains__,
                                       accept=_ACCEPT_HTML)
            if resp.location is None:
                break
            target = normalize_url(resp.location, current)
            if hop == cfg.max_redirects:
                return self._page_failed(url, start, f"more than max_redirects={cfg.max_redirects} redirects")
            if target is None:
                return self._page_failed(url, start, f"redirects to {resp.location[:200]!r}, not an http(s) URL")
            why = self._refusal(target) if not (start and host_allowed(target, self._domains)) else None
            if why is None and cfg.respect_robots:
                why = await self._robots_refusal(target)
            if isinstance(why, _Refused):
                return self._page_failed(url, start, f"redirects to {target}: {why}", blocked=True)
            if why is not None:
                return self._page_failed(url, start, f"redirects to {target}, which is {why}")
            if target in self._seen:
                if start:
                    self._seen.add(url)
                self._skip(url, f"redirects to {target}, already seen in this crawl")
                return None
            self._seen.add(target)
            current = target
        if resp.unreachable:
            reason = _status_text(resp) if resp.status else (resp.error or "unreachable")
            return self._page_failed(url, start, reason, unreachable=True)
        if resp.blocked and current != url:
            return self._page_failed(url, start, f"redirects to {current}: {resp.error}", blocked=True)
        if resp.error is not None:
            return self._page_failed(url, start, resp.error, blocked=resp.blocked)
        if not 200 <= resp.status < 300:
            return self._page_failed(url, start, _status_text(resp), gone=resp.status in (404, 410))
        if not resp.media_type and not resp.body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            return self._page_failed(url, start, "no content type, and the body is not HTML")
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        try:
            processed = await loop.run_in_executor(
                self._executor, _process_page, resp.body, resp.charset, current, depth < cfg.max_depth,
                cfg.respect_robots, self._agent)
        except FlightdeckError as exc:  # binary content served as HTML
            return self._page_failed(url, start, str(exc).removeprefix(f"{current}: "))
        self._links[url] = processed.links
        if processed.noindex:
            self._skip(current, "a robots meta tag says noindex")
            return None
        media_type, body = _page_body(processed)
        self._pages.append(Page(current, depth, media_type, body, processed.title))
        if processed.warning is not None:
            self.result.warnings.append(ItemWarning(current, processed.warning))
        return None

    def _page_failed(self, url: str, start: bool, reason: str, unreachable: bool = False, gone: bool = False,
                     blocked: bool = False) -> None:
        if start:
            what = "is unreachable" if unreachable else "cannot be crawled"
            problem = f"{url}: start URL {what}: {reason}"
            self._start_problems.append(_Refused(problem) if blocked else problem)
        else:
            self.result.failures.append(ItemFailure(url, reason, gone=gone))

    def _raise_for_start(self) -> None:
        if self._start_problems:
            problems = "; ".join(self._start_problems)
            if all(isinstance(p, _Refused) for p in self._start_problems):
                raise SourceError(f"web source: {problems}. Nothing was ingested from this source")
            raise SourceError(f"web source: {problems}. Nothing was ingested from this source; check the "
                              "site is up and `start_urls` is right, then run again")

    def _skip(self, url: str, reason: str) -> None:
        if len(self.result.skipped) < _MAX_SKIPPED:
            self.result.skipped.setdefault(url, reason)

    # HTTP --------------------------------------------------------------------------------------------
    async def _request(self, url: str, *, limit: int, wanted: Callable[[str], bool] | None,
                       accept: str, truncate: bool = False) -> _Response:
        """GET ``url`` with politeness, the concurrency limit, a deadline and retries on 429/5xx."""
        import httpx

        cfg = self.config
        attempts = cfg.retries + 1
        sem = self._sem
        assert sem is not None
        attempt = 0

        async def once() -> _Response:
            nonlocal attempt
            attempt += 1
            async with sem:
                # Paced inside the slot, so that requests to a host start `delay` apart for real.
                await self._pace(url)
                self.result.fetched.append(url)
                async with asyncio.timeout(cfg.timeout):
                    resp = await self._get(url, limit, wanted, accept, truncate)
            resp.attempts = attempt
            if resp.status == 429 or resp.status >= 500:
                raise _Busy(resp)
            return resp

        def transient(exc: Exception) -> bool:  # network, protocol, timeouts, 429/5xx
            return (isinstance(exc, (httpx.TransportError, TimeoutError, _Busy))
                    and not isinstance(exc, BlockedAddressError))

        # Retry-After only lengthens the backoff: a crawler stays polite however soon a server may answer.
        policy = RetryPolicy(attempts, cfg.backoff_seconds, retry_after_mode="at_least")
        try:
            return await policy.run_async(once, transient=transient, retry_after=_Busy.delay_of)
        except BlockedAddressError as exc:  # refused before connecting: not retried, the answer is the same
            return _Response(url, error=str(exc), blocked=True, attempts=attempt)
        except (httpx.TransportError, TimeoutError) as exc:  # after every retry
            tries = f" (after {attempts} attempts)" if attempts > 1 else ""
            return _Response(url, error=_describe(exc, cfg.timeout) + tries, unreachable=True, attempts=attempt)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a broken response (bad gzip...): not retried
            return _Response(url, error=_describe(exc, cfg.timeout), attempts=attempt)
        except _Busy as busy:  # still 429/5xx after every retry
            busy.resp.unreachable = True
            return busy.resp

    async def _get(self, url: str, limit: int, wanted: Callable[[str], bool] | None, accept: str,
                   truncate: bool) -> _Response:
        assert self._client is not None
        async with self._client.stream("GET", url, headers={"Accept": accept}) as r:
            status = r.status_code
            if r.is_redirect:
                return _Response(url, status, location=r.headers["location"])
            if status == 429 or status >= 500:
                return _Response(url, status, retry_after=r.headers.get("retry-after"))
            if not 200 <= status < 300:
                return _Response(url, status)
            media_type = r.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if wanted is not None and media_type and not wanted(media_type):
                return _Response(url, status, media_type,
                                 error=f"not an HTML page (content type {media_type}); only HTML pages are "
                                       "ingested, narrow the crawl with `exclude`")
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit and not truncate:
                return _Response(url, status, media_type, error=_too_large(int(declared), limit))
            body = bytearray()
            # aiter_bytes decodes gzip/br as it goes: the limit holds for what is unpacked, too.
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    if truncate:
                        del body[limit:]
                        break
                    return _Response(url, status, media_type, error=_too_large(None, limit))
            return _Response(url, status, media_type, r.charset_encoding, bytes(body))

    async def _pace(self, url: str) -> None:
        """Wait for this host's next slot: requests to one host start ``delay`` seconds apart."""
        host = urlsplit(url).netloc
        lock = self._host_locks.setdefault(host, asyncio.Lock())
        loop = asyncio.get_running_loop()
        async with lock:
            # The delay is read now, not when the last request started: robots.txt may have set it since.
            last = self._last_start.get(host)
            if last is not None:
                wait = last + self._delays.get(host, self.config.delay_seconds) - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._last_start[host] = loop.time()

    # robots.txt and sitemaps ---------------------------------------------------------------------------
    async def _robots(self, origin: str) -> _Robots:
        """The robots.txt of ``origin``, fetched once per crawl (concurrent callers share the fetch)."""
        task = self._robots_tasks.get(origin)
        if task is None:
            task = self._robots_tasks[origin] = asyncio.ensure_future(self._load_robots(origin))
        return await task

    async def _load_robots(self, origin: str) -> _Robots:
        url = f"{origin}/robots.txt"
        for _hop in range(self.config.max_redirects + 1):
            resp = await self._request(url, limit=_ROBOTS_MAX_BYTES, wanted=None, accept=_ACCEPT_ANY,
                                       truncate=True)
            if resp.location is None:
                break
            target = normalize_url(resp.location, url)
            if target is None or not host_allowed(target, self._domains):
                return _Robots()  # never leave the allowed domains, not even for robots.txt: unavailable
            url = target
        else:
            return _Robots()
        if resp.blocked:  # nothing on an origin the policy refuses is fetched: say why, as for a dead one
            return _Robots(error=resp.error, blocked=True)
        if resp.unreachable:
            reason = _status_text(resp) if resp.status else (resp.error or "unreachable")
            return _Robots(error=reason)
        if not 200 <= resp.status < 300:
            return _Robots()  # RFC 9309: a 4xx robots.txt means no rules
        parser = RobotFileParser(url)
        parser.parse(resp.body.decode("utf-8", "replace").splitlines())
        delay = parser.crawl_delay(self.config.user_agent) if self.config.respect_robots else None
        robots = _Robots(parser if self.config.respect_robots else None, None, list(parser.site_maps() or []),
                         float(delay) if delay is not None else None)
        if robots.crawl_delay is not None:
            host = urlsplit(origin).netloc
            self._delays[host] = max(self.config.delay_seconds, min(robots.crawl_delay, _MAX_CRAWL_DELAY))
        return robots

    async def _sitemap_urls(self, starts: list[str]) -> list[str]:
        """Page URLs listed by the sitemaps of the start URLs' sites (robots.txt lines, /sitemap.xml)."""
        queue: list[str] = []
        listed: set[str] = set()  # named by robots.txt itself: fetched even where its rules disallow
        for origin in dict.fromkeys(origin_of(u) for u in starts):
            robots = await self._robots(origin)
            listed.update(u for u in (normalize_url(s, origin + "/") for s in robots.sitemaps) if u)
            queue += robots.sitemaps
            queue.append(f"{origin}/sitemap.xml")
        queue = [u for u in (normalize_url(s) for s in queue) if u and host_allowed(u, self._domains)]
        queue = list(dict.fromkeys(queue))
        queued = set(queue)
        pages: list[str] = []
        files = 0
        while queue and files < _MAX_SITEMAP_FILES:
            url = queue.pop(0)
            if self.config.respect_robots and url not in listed and await self._robots_refusal(url):
                continue
            files += 1
            resp = await self._request(url, limit=_SITEMAP_MAX_BYTES, wanted=None, accept=_ACCEPT_ANY)
            children: list[str] = []
            if resp.location is not None:
                children = [resp.location]
            elif resp.error is None and not resp.unreachable and 200 <= resp.status < 300:
                found, children = _parse_sitemap(resp.body)
                pages += [u for u in (normalize_url(f, url) for f in found) if u]
            else:
                log.debug("sitemap %s not read: %s", url, resp.error or _status_text(resp))
            for child in (normalize_url(c, url) for c in children):
                if child and child not in queued and host_allowed(child, self._domains):
                    queued.add(child)
                    queue.append(child)
        return list(dict.fromkeys(pages))


def _status_text(resp: _Response) -> str:
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(resp.status).phrase
    except ValueError:
        phrase = ""
    tries = f" (after {resp.attempts} attempts)" if resp.attempts > 1 else ""
    return f"HTTP {resp.status} {phrase}".rstrip() + tries


def _too_large(size: int | None, limit: int) -> str:
    what = f"{size:,} bytes" if size is not None else "larger"
    return f"page is {what}, over max_bytes={limit:,}; raise max_bytes or `exclude` the URL"


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) or type(exc).__name__.endswith("Timeout"):
        return f"timed out after {timeout:g} s"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
