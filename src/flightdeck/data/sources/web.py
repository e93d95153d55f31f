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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.sources.base import ItemFailure, ItemWarning
from flightdeck.data.sources.web_config import DEFAULT_USER_AGENT, WebConfig
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["WebConfig", "WebSource", "DEFAULT_USER_AGENT"]


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
