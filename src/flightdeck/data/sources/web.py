"""The ``web`` source: crawl a website and deliver the main content of each page as Markdown.

A crawl (see :mod:`flightdeck.data.sources.crawler`) starts at ``start_urls`` and goes breadth-first up
to ``max_depth`` links away, never more than ``max_pages`` pages, never off ``allowed_domains``,
honouring robots.txt and a politeness delay per host. Each page's main content is extracted with
trafilatura as Markdown (headings kept, navigation, scripts and footers dropped); the item's content
hash is the hash of that Markdown, so a page whose menus or ads change but whose text does not is not
processed again. A page trafilatura finds nothing in (or fails on) is delivered as its HTML, for
flightdeck's parser, and listed in the source's ``warnings``.

The crawler connects to public addresses only: loopback, private, link-local and cloud metadata
addresses are refused (on the address each connection really goes to, after DNS and redirects) unless
``allow_private_networks`` says otherwise; see :mod:`flightdeck.data.sources.netguard`.

This module imports no optional library: the config is checked by ``flightdeck validate`` without httpx.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.sources.base import ItemFailure, ItemWarning
from flightdeck.data.sources.crawler import host_allowed, normalize_url
from flightdeck.data.sources.netguard import ALLOW_PRIVATE_NETWORKS_HELP, PrivateNetworks
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["WebConfig", "WebSource", "DEFAULT_USER_AGENT"]


def _default_user_agent() -> str:
    from flightdeck.core import __version__

    return f"flightdeck/{__version__} (document ingestion crawler; honours robots.txt)"


#: what the crawler calls itself unless ``user_agent`` says otherwise; set one with a contact address
#: for crawls of sites you do not run
DEFAULT_USER_AGENT = _default_user_agent()
_HOST = re.compile(r"^(\*\.)?(\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*)$")


class WebConfig(BaseModel):
    """Options of the ``web`` source.

    ``allowed_domains`` entries are host names (``docs.example.com``) or ``*.example.com`` for a domain
    and its subdomains; left out, they are the hosts of ``start_urls``. ``include``/``exclude`` are
    regular expressions searched in the normalised URL of every page but the start URLs. Depth 0 is the
    start URLs; URLs from sitemaps count as depth 1. ``delay_seconds`` spaces requests to one host (a
    larger robots.txt ``Crawl-delay`` wins, up to 60 s); ``retries`` apply to timeouts, network errors,
    429 and 5xx, waiting ``backoff_seconds`` doubled each time (or the server's ``Retry-After``).
    ``timeout`` is for one whole request; ``max_bytes`` for one page as unpacked.
    ``allow_private_networks``: ``true`` (or a list of CIDRs such as ``["10.1.0.0/16"]``) to crawl
    intranet sites; by default loopback, private, link-local and metadata addresses are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_urls: list[str] = Field(min_length=1)
    allowed_domains: list[str] | None = None
    max_depth: int = Field(2, ge=0)
    max_pages: int = Field(200, ge=1)
    delay_seconds: float = Field(0.5, ge=0)
    concurrency: int = Field(4, ge=1, le=64)
    respect_robots: bool = True
    sitemap: bool = True
    include: list[str] = []
    exclude: list[str] = []
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = Field(20.0, gt=0)
    max_bytes: int = Field(5_000_000, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    retries: int = Field(3, ge=0, le=10)
    backoff_seconds: float = Field(1.0, ge=0)
    allow_private_networks: PrivateNetworks = Field(False, description=ALLOW_PRIVATE_NETWORKS_HELP)

    @field_validator("start_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if normalize_url(url) is None or not url.strip().lower().startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an absolute http:// or https:// URL (without user:password@); "
                                 "start_urls take web page addresses like https://docs.example.com/")
        return urls

    @field_validator("allowed_domains")
    @classmethod
    def _host_names(cls, domains: list[str] | None) -> list[str] | None:
        if domains is None:
            return None
        if not domains:
            raise ValueError("an empty list allows no host; leave allowed_domains out to allow the hosts of "
                             "start_urls")
        out = []
        for domain in domains:
            d = domain.strip().lower().rstrip(".")
            if not _HOST.match(d):
                raise ValueError(f"{domain!r} is not a host name; write hosts only, like docs.example.com, or "
                                 "*.example.com for a domain and its subdomains (no scheme, port or path)")
            out.append(d.strip("[]") if d.startswith("[") else d)
        return out

    @field_validator("include", "exclude")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {e}") from None
        return patterns

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\r\n\x00"):
            raise ValueError("user_agent must be one non-empty line, e.g. 'mybot/1.0 (+mailto:me@example.com)'")
        return value.strip()

    @model_validator(mode="after")
    def _starts_allowed(self) -> WebConfig:
        if self.allowed_domains is not None:
            outside = [u for u in self.start_urls if not host_allowed(normalize_url(u) or u, self.allowed_domains)]
            if outside:
                raise ValueError(f"start URL(s) {', '.join(outside)} are outside allowed_domains "
                                 f"({', '.join(self.allowed_domains)}); add their hosts to allowed_domains")
        return self

    @property
    def effective_allowed_domains(self) -> list[str]:
        """``allowed_domains``, or the hosts of the start URLs when it is not set."""
        if self.allowed_domains is not None:
            return list(self.allowed_domains)
        from urllib.parse import urlsplit

        hosts = (urlsplit(normalize_url(u) or "").hostname for u in self.start_urls)
        return list(dict.fromkeys(h for h in hosts if h))


def _import_crawler() -> Any:
    for module in ("httpx", "lxml.html", "trafilatura"):  # what the crawler imports when it fetches and extracts
        optional_import(module, "web", "source 'web'")
    from flightdeck.data.sources import crawler

    return crawler


def _run(coro_factory: Any) -> Any:
    """Run a coroutine to completion from synchronous code, even when an event loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    # Inside a running loop (a notebook, an async server): asyncio.run would refuse; use a thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flightdeck-web-scan") as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


class WebSource:
    """Crawls the site on :meth:`scan` and delivers each page's extracted Markdown (see :class:`WebConfig`).

    Item URIs are the normalised page URLs (after redirects), which are also the citation URIs. Pages
    that fail (an error status, a timeout, too large, not HTML, a redirect off the allowed domains) are
    recorded in ``failures`` and the crawl goes on; a start URL that cannot be crawled raises
    :class:`~flightdeck.errors.SourceError`. After a scan, ``fetched_urls`` lists every URL requested
    (robots.txt and sitemaps included, once per attempt) and ``skipped`` the URLs deliberately not
    fetched, with why; ``warnings`` the pages delivered whole because main-content extraction failed.
    """

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.failures: list[ItemFailure] = []
        self.warnings: list[ItemWarning] = []
        self.fetched_urls: list[str] = []
        self.skipped: dict[str, str] = {}
        self._bodies: dict[str, bytes] = {}

    def scan(self) -> Iterator[SourceItem]:
        """Crawl now and yield one item per page, in URL order."""
        self.failures = []
        self.warnings = []
        self._bodies = {}
        crawler_module = _import_crawler()
        crawler = crawler_module.Crawler(self.config)
        try:
            result = _run(crawler.run)
        finally:
            self.fetched_urls = list(crawler.result.fetched)
            self.skipped = dict(crawler.result.skipped)
        self.failures = list(result.failures)
        self.warnings = list(result.warnings)
        for page in result.pages:
            self._bodies[page.url] = page.body
            metadata = {"title": page.title, "url": page.url, "depth": page.depth,
                        "extracted_by": "trafilatura" if page.media_type == "text/markdown" else "html"}
            yield SourceItem(page.url, content_hash(page.body), page.media_type, metadata)

    def read(self, item: SourceItem) -> bytes:
        """The extracted Markdown (or HTML) of a page from the last scan."""
        try:
            return self._bodies[item.uri]
        except KeyError:
            raise SourceError(f"{item.uri}: not a page of the last crawl; run scan() before read()") from None

    def source_uri(self, item: SourceItem) -> str:
        """Citations point at the page itself."""
        return item.uri
