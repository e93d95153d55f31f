"""Browser tools for agents (checklist 6.1 "Browser tools"): ``fetch_page`` and ``browse_page``.

``fetch_page`` GETs a URL with httpx and returns the page's main text; ``browse_page`` (only with
``javascript: true``) renders the page in headless Chromium, driven by Playwright, so that text a script writes is
there too. Both extract the text the way the ``web`` source does (trafilatura's main content as Markdown, the title
first: :func:`flightdeck.data.sources.crawler.extract_main_content`), cut it at ``max_chars`` and cite the page as
the source (``{"id": final_url, "url": ..., "title": ...}``). Only ``text/html``, ``text/plain`` and
``application/json`` are read; anything else is refused with its type.

A URL comes from the model, which may have read it on a page written by an attacker, so the tools reach nothing
the operator did not allow-list (deny by default):

* ``allow_hosts`` lists host names (``docs.python.org``), ``*.example.com`` (example.com and its subdomains),
  IP addresses (``127.0.0.1``, ``[::1]``), each optionally with a port. An entry without a port allows the
  scheme's default port only (80 for http, 443 for https), so ``localhost`` does not open every local service.
* The URL is checked before anything is sent: http and https only, no user name or password in it, a host and
  port the allow-list names, no host written as a number other than a plain IP address (``2130706433`` is
  127.0.0.1). Redirects are followed by hand, one hop at a time, each checked the same way.
* ``block_private_addresses`` (default true): a host name is resolved and the connection refused when any of its
  addresses is loopback, private, link-local (cloud metadata) or otherwise not public, unless the allow-list entry
  that let the URL through is that IP address itself or the name ``localhost`` (then only loopback addresses).
  The check is made on the address the connection really goes to, after DNS (:mod:`~flightdeck.data.sources.netguard`
  connects to the checked address), so a name re-pointed at 127.0.0.1 after the check (DNS rebinding) gets
  nothing. With ``block_private_addresses: false`` an allow-listed name may resolve anywhere: the operator's choice
  for intranet sites.
* ``browse_page``: Chromium has no network of its own. Every request the page makes (scripts, ``fetch``, frames,
  forms, redirects) is caught with ``route`` and either refused (not http(s), host not allow-listed, images,
  fonts and media, which text does not need) or fetched by the same httpx client as ``fetch_page``, with the same
  checks, and handed to the page. WebSockets are refused; service workers and downloads are off; the browser is
  pointed at a proxy that refuses every connection (a port this process holds without listening), so anything
  that escaped the routing (a preconnect, WebRTC) reaches nothing.

Page text is untrusted data: ``content`` is the text alone, which the agent loop fences as tool output; an
instruction written on a page is returned as what it is, text of the page.

Failures the model can do something about (a host not allowed, a timeout, a name that does not resolve, an HTTP
error status, a page over ``max_bytes``, a binary file) are :meth:`ToolResult.refused` results, never exceptions.
The browser tool starts one Chromium per tool instance on its first call and closes it with :meth:`close`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.agents.tools.base import ToolError, ToolResult, ToolSpec
from flightdeck.core import __version__
from flightdeck.data.sources.netguard import BlockedAddressError, NetworkPolicy, async_client
from flightdeck.data.sources.urls import normalize_url
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["BrowserToolConfig", "FetchPageTool", "BrowsePageTool", "HostRule", "parse_allow_hosts", "browser_tools",
           "DEFAULT_USER_AGENT", "PAGE_TYPES"]

#: what the tools call themselves unless ``user_agent`` says otherwise
DEFAULT_USER_AGENT = f"flightdeck/{__version__} (agent browser tool)"
#: the media types a page may have; anything else is refused with its type
PAGE_TYPES = frozenset({"text/html", "text/plain", "application/json"})

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_URL_CHARS = 4_096
_MAX_REDIRECTS = 5
_MAX_BROWSER_REQUESTS = 200  # requests one rendered page may make (scripts, fetches, frames...)
_IDLE_WAIT_S = 3.0  # after "load", how long to wait for the page's scripts to finish fetching
_CLOSE_WAIT_S = 5.0
_SKIPPED_RESOURCES = frozenset({"image", "media", "font"})  # not needed for text: never fetched
_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_NUMBER = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # a last label like this makes a browser read the host as IPv4
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Headers not passed between the page and the server: httpx sets its own, and the body it hands over is decoded.
_REQUEST_HEADERS_DROPPED = frozenset({"host", "content-length", "connection", "keep-alive", "accept-encoding",
                                      "transfer-encoding", "te", "upgrade", "proxy-authorization", "proxy-connection"})
_RESPONSE_HEADERS_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection",
                                       "keep-alive", "content-disposition"})  # (no attachment: never a download)
_CROSS_ORIGIN_DROPPED = frozenset({"cookie", "authorization"})

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ the allow-list


@dataclass(frozen=True)
class HostRule:
    """One ``allow_hosts`` entry: a host (a name, or an IP address when ``literal``), ``wildcard`` for
    ``*.host`` (the host and its subdomains), and a ``port`` (``None``: the scheme's default port only)."""

    host: str
    port: int | None = None
    wildcard: bool = False
    literal: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return ("*." if self.wildcard else "") + host + (f":{self.port}" if self.port is not None else "")

    def matches(self, host: str, port: int, default_port: int) -> bool:
        """Whether a URL's ``host`` (lower case, IPv6 without brackets) and ``port`` are allowed by this entry."""
        if port != (self.port if self.port is not None else default_port):
            return False
        if self.literal:
            return _ip(host) == ipaddress.ip_address(self.host)
        if _ip(host) is not None:
            return False  # a name (or *.name) never matches an address
        return host == self.host or (self.wildcard and host.endswith("." + self.host))

    @property
    def private_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The non-public addresses this entry lets connections reach with ``block_private_addresses``: its own
        address, or loopback for ``localhost``; none for any other name."""
        if self.literal:
            return (ipaddress.ip_network(self.host),)
        if self.host == "localhost" and not self.wildcard:
            return _LOOPBACK
        return ()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _numeric_name(host: str) -> bool:
    """A host that is not an IP address but that browsers and ``inet_aton`` read as one (``2130706433``,
    ``0x7f.1``, ``127.1``)."""
    return _ip(host) is None and bool(_NUMBER.match(host.rsplit(".", 1)[-1]))


def _entry(raw: Any) -> HostRule:
    text = str(raw).strip().lower()
    shown = repr(raw)
    if not text or text in ("*", "*."):
        raise ValueError(f"allow_hosts: {shown} allows nothing or everything; list the hosts the tools may read "
                         "(docs.python.org, *.example.com, 127.0.0.1:8000)")
    if "/" in text or "@" in text or "?" in text or "#" in text:
        raise ValueError(f"allow_hosts: {shown} is not a host; write a host name such as docs.python.org, "
                         "optionally with :port, not a URL")
    port_text: str | None = None
    if text.startswith("["):  # [::1] or [::1]:8080
        end = text.find("]")
        if end < 0 or (text[end + 1:] and not text[end + 1:].startswith(":")):
            raise ValueError(f"allow_hosts: {shown}: write an IPv6 address as [::1] or [::1]:8080")
        host, port_text = text[1:end], (text[end + 2:] if text[end + 1:] else None)
        if not isinstance(_ip(host), ipaddress.IPv6Address):
            raise ValueError(f"allow_hosts: {shown}: {host!r} in brackets is not an IPv6 address")
    elif text.count(":") > 1:  # a bare IPv6 address, no port
        host = text
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
    else:
        host = text
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65_535:
            raise ValueError(f"allow_hosts: {shown}: the port must be a number from 1 to 65535")
        port = int(port_text)
    wildcard = host.startswith("*.")
    host = (host[2:] if wildcard else host).rstrip(".")
    address = _ip(host)
    if address is not None:
        if wildcard:
            raise ValueError(f"allow_hosts: {shown}: '*.' goes before a domain name, not an IP address")
        return HostRule(address.compressed, port, literal=True)
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ValueError(f"allow_hosts: {shown} is not a valid host name") from None
    if not _NAME.match(host):
        raise ValueError(f"allow_hosts: {shown} is not a valid host name (letters, digits, '-' and '.'; "
                         "'*.example.com' for a domain and its subdomains)")
    if _numeric_name(host):
        raise ValueError(f"allow_hosts: {shown} reads as a number; write an IP address as 127.0.0.1")
    return HostRule(host, port, wildcard=wildcard)


def parse_allow_hosts(entries: Any) -> tuple[HostRule, ...]:
    """The rules of an ``allow_hosts`` list; :class:`ValueError` naming the first entry that is not a host."""
    if isinstance(entries, str):
        entries = [entries]
    rules = tuple(_entry(e) for e in entries)
    if not rules:
        raise ValueError("allow_hosts: list at least one host the tools may read; nothing is allowed by default")
    return rules


# ------------------------------------------------------------------------------------------------ the config


class BrowserToolConfig(BaseModel):
    """``agents.tools: [{provider: browser, ...}]``: what ``fetch_page`` and ``browse_page`` may reach and read."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    allow_hosts: tuple[str, ...] = Field(
        min_length=1, description="hosts the tools may read: docs.python.org, *.example.com (the domain and its "
                                  "subdomains), 127.0.0.1; each optionally with :port (without one, the default "
                                  "port of http/https only). Everything else is refused")
    timeout_s: float = Field(15.0, gt=0, le=300, description="seconds one call may take, redirects and rendering "
                                                             "included")
    max_bytes: int = Field(5_000_000, ge=1_000, description="the largest response read (as unpacked); a larger "
                                                            "page is refused")
    max_chars: int = Field(12_000, ge=200, description="characters of page text the model reads; the rest is cut")
    javascript: bool = Field(False, description="also give the agent browse_page, which renders pages in headless "
                                                "Chromium so that text written by scripts is read")
    block_private_addresses: bool = Field(
        True, description="refuse hosts that resolve to loopback, private or link-local addresses, unless the "
                          "allow-list names the address itself or localhost")
    user_agent: str = Field(DEFAULT_USER_AGENT, min_length=1, pattern=r"^[^\x00-\x1f\x7f]+$",
                            description="the User-Agent header sent (one line)")
    chromium_path: str = Field("/usr/bin/chromium", description="the Chromium that browse_page runs")

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return tuple(str(rule) for rule in parse_allow_hosts(value))  # normalised: lower case, punycode
        return value

    @property
    def rules(self) -> tuple[HostRule, ...]:
        return parse_allow_hosts(self.allow_hosts)


# ------------------------------------------------------------------------------------------------ fetching


class _Refused(Exception):
    """A URL or response the tools will not read; ``reason`` is what the model is told."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Target:
    url: str  # normalised
    host: str
    port: int
    rule: HostRule

    @property
    def origin(self) -> tuple[str, str, int]:
        return urlsplit(self.url).scheme, self.host, self.port


@dataclass
class _Response:
    url: str  # after redirects
    status: int
    media_type: str
    charset: str | None
    headers: list[tuple[str, str]]
    body: bytes
    redirects: list[str] = field(default_factory=list)


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _looks_like_html(body: bytes) -> bool:
    return body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


class _Clients:
    """The httpx clients of one call, one per network policy (public only; or with one allow-listed private
    address or loopback added), built on first use and closed together."""

    def __init__(self, config: BrowserToolConfig) -> None:
        self._config = config
        self._clients: dict[NetworkPolicy, Any] = {}

    def get(self, policy: NetworkPolicy) -> Any:
        import httpx

        client = self._clients.get(policy)
        if client is None:
            client = self._clients[policy] = async_client(
                policy, headers={"User-Agent": self._config.user_agent}, follow_redirects=False,
                timeout=httpx.Timeout(self._config.timeout_s))
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class _Web:
    """What both tools share: the URL checks and a GET (or a page's request) that follows redirects by hand,
    checking every hop, with the size cap and the network policy."""

    def __init__(self, config: BrowserToolConfig) -> None:
        self.config = config
        self.rules = config.rules

    def allowed(self) -> str:
        shown = [str(r) for r in self.rules]
        return ", ".join(shown[:20]) + (f" and {len(shown) - 20} more" if len(shown) > 20 else "")

    def check(self, url: Any) -> _Target:
        """The URL as it will be requested, or :class:`_Refused` saying why it may not be."""
        if not isinstance(url, str) or not url.strip():
            raise _Refused("url must be an http or https URL, as a string")
        url = url.strip()
        if len(url) > _MAX_URL_CHARS:
            raise _Refused(f"the URL is {len(url):,} characters long, over {_MAX_URL_CHARS:,}")
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            userinfo = parts.username is not None or parts.password is not None or "@" in parts.netloc
        except ValueError:
            raise _Refused(f"{url[:200]!r} is not a valid URL") from None
        if not scheme:
            raise _Refused(f"{url[:200]!r} is not an absolute URL; give one that starts with https://")
        if scheme not in _DEFAULT_PORTS:
            raise _Refused(f"only http and https URLs can be read, not {scheme}: URLs")
        if userinfo:
            raise _Refused("URLs with a user name or password in them are refused")
        normal = normalize_url(url)
        if normal is None:
            raise _Refused(f"{url[:200]!r} is not a valid URL")
        parts = urlsplit(normal)
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS[scheme]
        if _numeric_name(host):
            raise _Refused(f"the host {host!r} reads as a number; write an IP address as 127.0.0.1")
        rule = next((r for r in self.rules if r.matches(host, port, _DEFAULT_PORTS[scheme])), None)
        if rule is None:
            where = f"[{host}]" if ":" in host else host
            where += f":{port}" if port != _DEFAULT_PORTS[scheme] else ""
            raise _Refused(f"{where} is not on this tool's allow-list ({self.allowed()}); only those hosts can be "
                           "read")
        return _Target(normal, host, port, rule)

    def policy(self, target: _Target) -> NetworkPolicy:
        if not self.config.block_private_addresses:
            return NetworkPolicy(allow_all=True)
        return NetworkPolicy(allowed=target.rule.private_networks)

    async def fetch(self, clients: _Clients, url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                    content: bytes | None = None, types: frozenset[str] | None = PAGE_TYPES,
                    ok_only: bool = True) -> _Response:
        """Request ``url``, following redirects one checked hop at a time, and read the body up to ``max_bytes``.

        ``types``: the media types accepted (``None``: any, for what a page loads); ``ok_only``: an error status is
        refused rather than returned. Raises :class:`_Refused`.
        """
        target = self.check(url)
        headers = dict(headers or {})
        redirects: list[str] = []
        for _hop in range(_MAX_REDIRECTS + 1):
            response = await self._once(clients, target, method, headers, content, types, ok_only)
            if isinstance(response, _Response):
                response.redirects = redirects
                return response
            status, location = response
            if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
                method, content = "GET", None  # what browsers do
            location = urljoin(target.url, location)
            try:
                following = self.check(location)
            except _Refused as exc:
                raise _Refused(f"{target.url} redirects to {location[:300]}, which is refused: {exc.reason}") from None
            if following.origin != target.origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in _CROSS_ORIGIN_DROPPED}
            redirects.append(following.url)
            target = following
        raise _Refused(f"{url[:300]}: more than {_MAX_REDIRECTS} redirects")

    async def _once(self, clients: _Clients, target: _Target, method: str, headers: dict[str, str],
                    content: bytes | None, types: frozenset[str] | None, ok_only: bool) -> _Response | tuple[int, str]:
        """One request: the response, or the status and ``Location`` of a redirect."""
        import httpx

        limit = self.config.max_bytes
        client = clients.get(self.policy(target))
        try:
            async with client.stream(method, target.url, headers=headers, content=content) as r:
                status = r.status_code
                if r.is_redirect and r.headers.get("location"):
                    return status, str(r.headers["location"])
                if ok_only and not 200 <= status < 300:
                    raise _Refused(f"{target.url}: the server answered {_status_text(status)}")
                media_type = r.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if types is not None and media_type and media_type not in types:
                    raise _Refused(f"{target.url} is {media_type}, not a page this tool reads (only "
                                   f"{', '.join(sorted(types))})")
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _Refused(f"{target.url} is {int(declared):,} bytes, over max_bytes={limit:,}")
                body = bytearray()
                async for chunk in r.aiter_bytes():  # decoded (gzip, br) as it comes: the cap holds for that too
                    body += chunk
                    if len(body) > limit:
                        raise _Refused(f"{target.url} is larger than max_bytes={limit:,}; nothing of it is returned")
                if types is not None and not media_type:
                    if not _looks_like_html(bytes(body)):
                        raise _Refused(f"{target.url}: the server sent no content type, and the body is not HTML")
                    media_type = "text/html"
                return _Response(target.url, status, media_type, r.charset_encoding, list(r.headers.multi_items()),
                                 bytes(body))
        except BlockedAddressError as exc:
            raise _Refused(f"{target.url}: {target.host} is at {exc.address}, {exc.reason}; this tool reads public "
                           "addresses only, unless the allow-list names the address itself (or localhost)") from None
        except httpx.TimeoutException:
            raise _Refused(f"{target.url}: timed out after {self.config.timeout_s:g} s") from None
        except httpx.ConnectError as exc:
            raise _Refused(f"{target.url}: cannot connect to {target.host}: {exc}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _Refused(f"{target.url}: {type(exc).__name__}: {exc}") from None

    async def fetch_page(self, url: str) -> _Response:
        """``fetch_page``'s GET of a page, within ``timeout_s`` for every hop together."""
        clients = _Clients(self.config)
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await self.fetch(clients, url)
        except TimeoutError:
            raise _Refused(f"{url[:300]}: timed out after {self.config.timeout_s:g} s") from None
        finally:
            await clients.aclose()

    # -------------------------------------------------------------------------------------------- the result

    def result(self, response: _Response, html: str | None = None, **data: Any) -> ToolResult:
        """The tool result of a page: its text (``html``: the rendered DOM, instead of the body), cut at
        ``max_chars``, citing the page."""
        try:
            title, text = _page_text(response, html)
        except SourceError:
            return ToolResult.refused(f"{response.url} is binary content, not text", url=response.url)
        if not text.strip():
            return ToolResult.refused(f"{response.url} has no readable text", url=response.url, title=title)
        limit = self.config.max_chars
        truncated = len(text) > limit
        if truncated:
            text = text[:limit].rstrip() + "…"
        return ToolResult(
            content=text,
            data={"url": response.url, "title": title, "status": response.status, "content_type": response.media_type,
                  "redirects": response.redirects, "chars": len(text), "truncated": truncated, **data},
            sources=[{"id": response.url, "url": response.url, "title": title}],
        )


def _page_text(response: _Response, html: str | None) -> tuple[str, str]:
    """``(title, text)`` of a page: HTML through trafilatura (flightdeck's HTML parser when it finds nothing),
    plain text and JSON as they are."""
    from flightdeck.data.sources.crawler import decode_html, extract_main_content

    if html is None and response.media_type != "text/html":
        return "", _decode_text(response.body, response.charset, response.url)
    text = html if html is not None else decode_html(response.body, response.charset, response.url)
    # Plain text, not Markdown: trafilatura's Markdown escapes '_', '*' and the like, which would change what the
    # page says (a URL with an underscore in it, copied by the model, would no longer work).
    extracted = extract_main_content(text, response.url, output_format="txt")
    if extracted.text is not None:
        title, body = extracted.title, extracted.text
    else:  # trafilatura found nothing (a page of a few words): the whole page's text, furniture dropped
        from flightdeck.data.parsers.html import html_sections

        parsed_title, sections = html_sections(text, "")
        title = extracted.title or parsed_title
        body = "\n\n".join(s.text for s in sections)
    if title and body.lstrip().split("\n", 1)[0].strip() != title:
        body = f"{title}\n\n{body}"
    return title, body


def _decode_text(body: bytes, charset: str | None, url: str) -> str:
    from flightdeck.data.parsers.decoding import decode_text

    if charset:
        try:
            text = body.decode(charset, errors="replace")
        except LookupError:
            text = None
        if text is not None:
            if "\x00" in text:
                raise SourceError(f"{url}: binary content, not text")
            return text
    return decode_text(body, url)


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, even when an event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flightdeck-fetch-page") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]


def _url_argument(arguments: Any) -> str | ToolResult:
    if not isinstance(arguments, Mapping):
        return ToolResult.refused(f"arguments must be a JSON object, not {type(arguments).__name__}")
    unknown = sorted(str(k) for k in arguments if k != "url")
    if unknown:
        return ToolResult.refused(f"unknown argument(s) {', '.join(unknown)}; the only argument is url")
    url = arguments.get("url")
    if not isinstance(url, str) or not url.strip():
        return ToolResult.refused("give `url`: the http or https URL of the page, as a string")
    return url


def _parameters() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["url"],
            "properties": {"url": {"type": "string", "description": "the page's full http(s) URL"}}}


# ------------------------------------------------------------------------------------------------ fetch_page


class FetchPageTool:
    """``fetch_page``: GET an allow-listed page and read its main text (no JavaScript runs)."""

    def __init__(self, config: BrowserToolConfig | Mapping[str, Any], name: str = "fetch_page") -> None:
        self.config = config if isinstance(config, BrowserToolConfig) else BrowserToolConfig.model_validate(config)
        for module in ("httpx", "lxml.html", "trafilatura"):
            optional_import(module, "web", "the fetch_page tool")
        self._web = _Web(self.config)
        self.spec = ToolSpec(
            name=name,
            description=("Fetch a web page and read its main text (title and body, without menus or scripts), "
                         f"at most {self.config.max_chars:,} characters. HTML, plain text and JSON only. Only these "
                         f"hosts can be read: {self._web.allowed()}. Scripts do not run."),
            parameters=_parameters(),
        )

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Fetch the page and return its text, or a refusal saying why not (see the module docstring)."""
        url = _url_argument(arguments)
        if isinstance(url, ToolResult):
            return url
        try:
            self._web.check(url)  # nothing is started for a URL that is refused anyway
            response = _run_sync(lambda: self._web.fetch_page(url))
        except _Refused as exc:
            return ToolResult.refused(exc.reason, url=url[:_MAX_URL_CHARS])
        return self._web.result(response, javascript=False)

    def close(self) -> None:
        """Nothing to release (each call opens and closes its own connections); here for symmetry."""


# ------------------------------------------------------------------------------------------------ browse_page


def _blackhole() -> socket.socket:
    """A TCP port on 127.0.0.1 that this process holds without listening: every connection to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Browser:
    """One headless Chromium, driven by Playwright's async API on an event loop in a thread of its own (so that
    calls may come from any thread, or from inside another event loop), started on first use."""

    def __init__(self, config: BrowserToolConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._proxy: socket.socket | None = None
        self._start_lock: asyncio.Lock | None = None
        self.broken = False  # a context that would not close: the next call starts a new Chromium

    def run(self, work: Callable[[Any], Awaitable[T]], timeout: float) -> T:
        """Run ``work(browser)`` on the browser's loop and wait at most ``timeout`` seconds for it."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="flightdeck-browser", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(self._with_browser(work), loop)
        try:
            return future.result(timeout)
        except FutureTimeoutError:
            future.cancel()
            self.broken = True
            raise _Refused(f"the browser did not answer within {timeout:g} s") from None

    async def _with_browser(self, work: Callable[[Any], Awaitable[T]]) -> T:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._browser is not None and (self.broken or not self._browser.is_connected()):
                await self._stop()
            if self._browser is None:
                await self._start()
        return await work(self._browser)

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        self.broken = False
        self._proxy = _blackhole()
        port = self._proxy.getsockname()[1]
        self._playwright = await async_playwright().start()
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.config.chromium_path, headless=True, timeout=30_000,
                # Playwright sends loopback through the proxy too (it adds <-loopback> to the bypass list).
                proxy={"server": f"http://127.0.0.1:{port}"},
                args=["--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
                      "--webrtc-ip-handling-policy=disable_non_proxied_udp"])
        except Exception as exc:
            await self._stop()
            raise ToolError(f"browse_page: Chromium ({self.config.chromium_path}) did not start: "
                            f"{str(exc).splitlines()[0][:300]}") from exc

    async def _stop(self) -> None:
        browser, playwright, proxy = self._browser, self._playwright, self._proxy
        self._browser = self._playwright = self._proxy = None
        try:
            if browser is not None:
                await asyncio.wait_for(browser.close(), _CLOSE_WAIT_S)
        except Exception:  # noqa: BLE001 - a hung or crashed Chromium: stopping Playwright's driver ends it
            pass
        finally:
            if playwright is not None:
                await playwright.stop()
            if proxy is not None:
                proxy.close()

    def close(self) -> None:
        """Close Chromium and the loop's thread (a later call starts them again)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(_CLOSE_WAIT_S * 3)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(_CLOSE_WAIT_S)
            if not loop.is_running():
                loop.close()
            self._start_lock = None


@dataclass
class _Visit:
    """What one rendering saw: requests handed to the page and those refused."""

    first: _Response
    first_served: bool = False
    requests: int = 0
    blocked: list[str] = field(default_factory=list)

    def block(self, url: str) -> None:
        if len(self.blocked) < 50:
            self.blocked.append(url[:300])


class BrowsePageTool:
    """``browse_page``: render an allow-listed page in headless Chromium and read the text of its DOM."""

    def __init__(self, config: BrowserToolConfig | Mapping[str, Any], name: str = "browse_page") -> None:
        self.config = config if isinstance(config, BrowserToolConfig) else BrowserToolConfig.model_validate(config)
        if not self.config.javascript:
            raise ToolError("browse_page runs JavaScript: set `javascript: true` in the browser tool's settings")
        for module in ("httpx", "lxml.html", "trafilatura"):
            optional_import(module, "web", "the browse_page tool")
        optional_import("playwright.async_api", "browser", "the browse_page tool (headless Chromium)")
        if not os.access(self.config.chromium_path, os.X_OK):
            raise ToolError(f"browse_page: no Chromium at {self.config.chromium_path}; install it (Debian: apt-get "
                            "install chromium) or set `chromium_path`")
        self._web = _Web(self.config)
        self._browser = _Browser(self.config)
        self.spec = ToolSpec(
            name=name,
            description=("Open a web page in a browser, let its scripts run, and read its main text (title and "
                         f"body), at most {self.config.max_chars:,} characters. Use it for pages that need "
                         f"JavaScript to show their content. Only these hosts can be read: {self._web.allowed()}."),
            parameters=_parameters(),
        )

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Render the page and return its text, or a refusal saying why not (see the module docstring)."""
        url = _url_argument(arguments)
        if isinstance(url, ToolResult):
            return url
        try:
            self._web.check(url)
            # The browse keeps its own deadline; the wait here is a backstop for a browser that stopped answering.
            outcome = self._browser.run(lambda browser: self._browse(browser, url),
                                        self.config.timeout_s + 2 * _CLOSE_WAIT_S + 30)
        except _Refused as exc:
            return ToolResult.refused(exc.reason, url=url[:_MAX_URL_CHARS])
        if isinstance(outcome, _Response):  # plain text or JSON: nothing to render
            return self._web.result(outcome, javascript=False)
        visit, final_url, html = outcome
        page = dataclasses.replace(visit.first, url=final_url)  # where the page's scripts may have navigated to
        return self._web.result(page, html, javascript=True, requests=visit.requests, blocked=visit.blocked)

    def close(self) -> None:
        """Close the browser (a later call starts a new one)."""
        self._browser.close()

    def __enter__(self) -> BrowsePageTool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- one page

    async def _browse(self, browser: Any, url: str) -> _Response | tuple[_Visit, str, str]:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeoutError

        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.timeout_s
        clients = _Clients(cfg)
        context = None
        try:
            async with asyncio.timeout(cfg.timeout_s):
                # The page itself is fetched first, like fetch_page: its redirects checked, its type known.
                first = await self._web.fetch(clients, url)
                if first.media_type != "text/html":
                    return first
                visit = _Visit(first)
                context = await browser.new_context(user_agent=cfg.user_agent, service_workers="block",
                                                    accept_downloads=False)
                await context.route_web_socket(re.compile(".*"), _refuse_socket)
                await context.route("**/*", lambda route: self._route(route, clients, visit))
                page = await context.new_page()

                def left_ms() -> float:
                    return max(1.0, (deadline - loop.time()) * 1000)

                await page.goto(first.url, wait_until="load", timeout=left_ms())
                try:  # scripts that fetch their content after "load"
                    await page.wait_for_load_state("networkidle", timeout=min(_IDLE_WAIT_S * 1000, left_ms()))
                except PlaywrightError:
                    pass
                html = await page.content()
                final_url = page.url
        except (TimeoutError, PlaywrightTimeoutError):
            raise _Refused(f"{url[:300]}: timed out after {cfg.timeout_s:g} s") from None
        except PlaywrightError as exc:
            raise _Refused(f"{url[:300]}: the browser could not load the page: "
                           f"{str(exc).splitlines()[0][:300]}") from None
        finally:
            if context is not None:
                try:
                    await asyncio.wait_for(context.close(), _CLOSE_WAIT_S)
                except Exception:  # noqa: BLE001 - a context that will not close: start a new Chromium next time
                    self._browser.broken = True
            await clients.aclose()
        if len(html.encode("utf-8", "replace")) > cfg.max_bytes:
            raise _Refused(f"{final_url}: the rendered page is larger than max_bytes={cfg.max_bytes:,}")
        try:
            final_url = self._web.check(final_url).url
        except _Refused:
            final_url = first.url  # the page navigated itself to about:blank or the like: cite what was asked
        return visit, final_url, html

    async def _route(self, route: Any, clients: _Clients, visit: _Visit) -> None:
        """Hand one request of the page what the checked fetch gives, or refuse it."""
        request = route.request
        try:
            main = request.is_navigation_request() and request.frame.parent_frame is None
            if main and not visit.first_served:  # the navigation to the page itself: already fetched
                visit.first_served = True
                await _fulfill(route, visit.first)
                return
            if request.resource_type in _SKIPPED_RESOURCES or visit.requests >= _MAX_BROWSER_REQUESTS:
                visit.block(request.url)
                await route.abort("blockedbyclient")
                return
            try:
                self._web.check(request.url)
            except _Refused:
                visit.block(request.url)
                await route.abort("blockedbyclient")
                return
            visit.requests += 1
            headers = {k: v for k, v in (await request.all_headers()).items()
                       if k.lower() not in _REQUEST_HEADERS_DROPPED and not k.startswith(":")}
            try:
                response = await self._web.fetch(
                    clients, request.url, method=request.method, headers=headers, content=request.post_data_buffer,
                    types=PAGE_TYPES if request.is_navigation_request() else None, ok_only=False)
            except _Refused:
                visit.block(request.url)
                await route.abort("blockedbyclient")
                return
            await _fulfill(route, response)
        except Exception:  # noqa: BLE001 - the page or context closed meanwhile: nothing left to answer
            try:
                await route.abort("failed")
            except Exception:  # noqa: BLE001
                pass


async def _fulfill(route: Any, response: _Response) -> None:
    headers: dict[str, str] = {}
    for name, value in response.headers:
        key = name.lower()
        if key in _RESPONSE_HEADERS_DROPPED:
            continue
        joiner = "\n" if key == "set-cookie" else ", "  # Playwright splits Set-Cookie on newlines
        headers[key] = f"{headers[key]}{joiner}{value}" if key in headers else value
    await route.fulfill(status=response.status, headers=headers, body=response.body)


async def _refuse_socket(socket_route: Any) -> None:
    await socket_route.close(code=1008, reason="WebSockets are not allowed by the browser tool")


def browser_tools(config: BrowserToolConfig | Mapping[str, Any]) -> list[FetchPageTool | BrowsePageTool]:
    """``fetch_page``, and ``browse_page`` when ``javascript`` is on."""
    cfg = config if isinstance(config, BrowserToolConfig) else BrowserToolConfig.model_validate(dict(config))
    tools: list[FetchPageTool | BrowsePageTool] = [FetchPageTool(cfg)]
    if cfg.javascript:
        tools.append(BrowsePageTool(cfg))
    return tools
