"""URLs as the web source sees them: one canonical form, and whether a host is one the crawl may visit.

Pure functions of the standard library, shared by the web source's config (which checks ``start_urls`` and
``allowed_domains`` when the spec is validated) and the crawler.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import urljoin, urlsplit, urlunsplit

__all__ = ["normalize_url", "host_allowed", "origin_of"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WS_IN_URL = re.compile(r"[\t\n\r]")


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4 in effect: "/a/./b/../c" -> "/a/c", keeping a trailing slash.
    if "." not in path:
        return path
    trailing = path.endswith(("/", "/.", "/.."))
    out = posixpath.normpath(path)
    if out.startswith("//"):  # normpath keeps a leading "//"; a path never needs it
        out = "/" + out.lstrip("/")
    if trailing and not out.endswith("/"):
        out += "/"
    return out


def normalize_url(href: str, base: str | None = None) -> str | None:
    """The canonical form of ``href`` (resolved against ``base``), or ``None`` when it is not crawlable.

    Only absolute http(s) URLs with a host come out: the scheme and host lowercased (IDN hosts in
    punycode), the default port dropped, dot segments resolved, an empty path made ``/`` and the
    fragment dropped; the query is kept as it is. URLs with credentials (``user:pw@host``) give ``None``:
    a page must not make the crawler send a password anywhere.
    """
    href = _WS_IN_URL.sub("", href).strip()
    if not href:
        return None
    try:
        url = urljoin(base, href) if base else href
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or parts.username is not None or parts.password is not None:
            return None
        host = parts.hostname
        port = parts.port
    except ValueError:  # a bad port or IPv6 literal
        return None
    if not host:
        return None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    host = host.rstrip(".")
    if not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = _remove_dot_segments(parts.path or "/")
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a normalised URL: the unit robots.txt applies to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def host_allowed(url: str, domains: list[str]) -> bool:
    """Whether the host of ``url`` is one of ``domains``.

    An entry is a host name matched exactly (``docs.example.com``), or ``*.example.com`` for
    example.com and all of its subdomains. Ports do not matter.
    """
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return False
    for domain in domains:
        if domain.startswith("*."):
            root = domain[2:]
            if host == root or host.endswith("." + root):
                return True
        elif host == domain:
            return True
    return False
