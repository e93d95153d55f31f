"""The settings of the ``web`` source (:class:`WebConfig`), checked by ``flightdeck validate`` without httpx.

Kept apart from the source (:mod:`flightdeck.data.sources.web`) so that the crawler can read them without
importing the source that runs it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flightdeck.data.sources.netguard import ALLOW_PRIVATE_NETWORKS_HELP, PrivateNetworks
from flightdeck.data.sources.urls import host_allowed, normalize_url

__all__ = ["WebConfig", "DEFAULT_USER_AGENT"]


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
