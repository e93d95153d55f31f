"""The ``api`` source: the records of a paginated REST JSON API.

Each page's records are found with a JSONPath (``items_path``); each record becomes one item
(``application/x-record``) whose id, text, title and metadata come from JSONPaths too. The item's JSON is
the canonical record the records parser reads (``{"_id", "title", "text", <metadata>}``, keys sorted), so
its content hash changes exactly when a mapped field does, whatever else the API adds to its payload.

Pagination: ``page`` (a page-number parameter), ``cursor`` (a cursor read from each response), ``link``
(the RFC 8288 ``Link: <...>; rel="next"`` header) or ``none``. Requests that meet 429 or 5xx, a timeout or a
refused connection are retried with exponential backoff, honouring ``Retry-After``; when the retries run
out, or the API answers 4xx, the whole scan fails with :class:`~flightdeck.errors.SourceError` (naming the
URL and the last status) before anything is written, so the previous dataset version stays current.
Header values (tokens) come from ``${ENV}`` references and are never shown: not in errors, not in the
config's repr; query parameters that look like secrets are masked in errors.

Redirects are followed here, one hop at a time (at most ``max_redirects``): the spec's ``headers`` go only
to the origin (scheme, host and port) of ``url``, so that a redirect to another site never receives a
token, and once a chain has left that origin they are not sent again in it. Every connection, redirects
included, goes through :mod:`~flightdeck.data.sources.netguard`: public addresses only, unless
``allow_private_networks`` allows more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from flightdeck.core import RetryPolicy
from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers.records import RECORD_FIELDS_KEY, RECORD_MEDIA_TYPE
from flightdeck.data.sources.base import ItemFailure
from flightdeck.data.sources.netguard import (
    ALLOW_PRIVATE_NETWORKS_HELP,
    BlockedAddressError,
    NetworkPolicy,
    PrivateNetworks,
    sync_client,
)
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import
from flightdeck.spec.resolve import ENV_REF

__all__ = ["ApiConfig", "ApiSource", "PagePagination", "CursorPagination", "LinkPagination", "NoPagination"]

# The canonical record's own field names (what parsers/records.py reads through RECORD_FIELDS_KEY).
_ID, _TITLE, _TEXT = "_id", "title", "text"
_RECORD_FIELDS = {"id": _ID, "title": _TITLE, "text": _TEXT}
_SECRET_PARAM = re.compile(r"key|token|secret|pass|auth|sig|credential", re.IGNORECASE)
_SCALARS = (str, int, float, bool, type(None))
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _has_env_ref(value: str | None) -> bool:
    return bool(value) and ENV_REF.search(value or "") is not None


def _check_jsonpath(expr: str) -> str:
    """Raise ``ValueError`` for a JSONPath that does not parse (when jsonpath-ng is installed)."""
    try:
        from jsonpath_ng.exceptions import JSONPathError
        from jsonpath_ng.ext import parse
    except ImportError:  # checked when the source is built, where the missing extra is reported
        return expr
    try:
        parse(expr)
    except (JSONPathError, Exception) as e:  # noqa: BLE001 - ply also raises plain Exceptions
        raise ValueError(f"{expr!r} is not a valid JSONPath ({e}); e.g. $.data[*] or $.attributes.body") from e
    return expr


class PagePagination(BaseModel):
    """``?page=1``, ``?page=2``…: stops at the first page with no records, or with fewer than ``size``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["page"]
    param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _size_with_param(self) -> PagePagination:
        if self.size_param is not None and self.size is None:
            raise ValueError(f"size_param {self.size_param!r} needs a size (records per page), e.g. size: 100")
        return self


class CursorPagination(BaseModel):
    """Each response names the next page's cursor at ``cursor_path``; sent back as ``param``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["cursor"]
    cursor_path: str = "$.next_cursor"
    param: str = "cursor"

    @field_validator("cursor_path")
    @classmethod
    def _cursor_path_parses(cls, v: str) -> str:
        return _check_jsonpath(v)


class LinkPagination(BaseModel):
    """The next page is the ``Link`` header's ``rel="next"`` URL (RFC 8288), as GitHub's API does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["link"]


class NoPagination(BaseModel):
    """One request returns every record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["none"]


Pagination = Annotated[PagePagination | CursorPagination | LinkPagination | NoPagination,
                       Field(discriminator="type")]


class ApiConfig(BaseModel):
    """Options of the ``api`` source.

    ``url`` (http or https) is the first page; ``method`` GET (or POST with the JSON ``body``);
    ``headers`` are sent with every request (write secrets as ``${ENV}`` references:
    ``Authorization: "Bearer ${API_TOKEN}"``); ``params`` are query parameters of the first request.

    Mapping (JSONPath, as jsonpath-ng reads it): ``items_path`` finds the records in a page (a path to a
    list, or to every element of one); within a record, ``id_path`` its unique id (a string or integer),
    ``text_paths`` its text (every string found, joined by blank lines), ``title_path`` its title and
    ``metadata_paths`` named metadata fields (kept when the value is a scalar).

    ``pagination``: ``{type: page, param: page, start: 1, size_param: per_page, size: 100}``,
    ``{type: cursor, cursor_path: $.next_cursor, param: cursor}``, ``{type: link}`` or ``{type: none}``
    (a bare ``link`` works too). More than ``max_pages`` pages fail the scan rather than silently drop the
    rest. ``retries`` on 429/5xx/timeouts, waiting ``backoff`` seconds doubled each time, or what
    ``Retry-After`` says, never more than ``max_backoff``; ``timeout`` bounds each request, in seconds.
    Redirects are followed up to ``max_redirects`` hops; ``headers`` are sent only to the origin of ``url``.
    ``allow_private_networks``: ``true`` (or a list of CIDRs) lets the source reach loopback, private and
    link-local addresses, which it refuses by default (an API on the intranet needs it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, SecretStr] = {}
    params: dict[str, str | int | float | bool] = {}
    body: dict[str, Any] | None = None
    items_path: str = "$"
    id_path: str = "$.id"
    text_paths: list[str] = ["$.text"]
    title_path: str | None = None
    metadata_paths: dict[str, str] = {}
    pagination: Pagination = NoPagination(type="none")
    max_pages: int = Field(1000, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(1.0, ge=0)
    max_backoff: float = Field(60.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    allow_private_networks: PrivateNetworks = Field(False, description=ALLOW_PRIVATE_NETWORKS_HELP)

    @field_validator("url")
    @classmethod
    def _http_only(cls, v: str) -> str:
        if _has_env_ref(v):
            return v  # checked again once the spec's ${ENV} references are resolved
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an http:// or https:// URL, got {v!r}")
        return v

    @field_validator("pagination", mode="before")
    @classmethod
    def _bare_pagination(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v

    @field_validator("items_path", "id_path", "title_path")
    @classmethod
    def _one_path(cls, v: str | None) -> str | None:
        return None if v is None else _check_jsonpath(v)

    @field_validator("text_paths")
    @classmethod
    def _text_paths(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("text_paths is empty; list where each record's text is, e.g. [$.body]")
        return [_check_jsonpath(p) for p in v]

    @field_validator("metadata_paths")
    @classmethod
    def _metadata_paths(cls, v: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(v) & {_ID, _TITLE, _TEXT})
        if clash:
            raise ValueError(f"metadata field names {clash} are taken by the record itself; rename them")
        return {name: _check_jsonpath(p) for name, p in v.items()}

    @field_validator("body")
    @classmethod
    def _body_is_json(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            json.dumps(v)  # a spec value is JSON already; this rejects Python-only values
        return v

    @model_validator(mode="after")
    def _body_needs_post(self) -> ApiConfig:
        if self.body is not None and self.method != "POST":
            raise ValueError("a body is only sent with method: POST")
        return self


class ApiSource:
    """Lists the records of a REST JSON API (see the module docstring and :class:`ApiConfig`).

    Item URIs are ``<host/path>#<id>`` (``api.example.com/v1/articles#42``); a record without an id or
    text is recorded in ``failures``, named by its page URL and index, and the rest still comes.
    """

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.failures: list[ItemFailure] = []
        self._records: dict[str, bytes] = {}
        optional_import("httpx", "api", "source 'api'")
        parse = optional_import("jsonpath_ng.ext", "api", "source 'api'").parse
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"{config.url!r}: the api source reads http:// or https:// URLs only")
        self._origin = _origin(config.url)
        self._policy = NetworkPolicy.from_setting(config.allow_private_networks)
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._base = f"{host}{parts.path.rstrip('/')}"  # the item URI's stem: no query, no credentials
        self._scheme = parts.scheme
        self._items = parse(config.items_path)
        self._id = parse(config.id_path)
        self._texts = [parse(p) for p in config.text_paths]
        self._title = parse(config.title_path) if config.title_path else None
        self._metadata = {name: parse(p) for name, p in config.metadata_paths.items()}
        self._cursor = parse(config.pagination.cursor_path) \
            if isinstance(config.pagination, CursorPagination) else None

    # the source protocol ---------------------------------------------------------------------------------
    def scan(self) -> Iterator[SourceItem]:
        """Fetch every page, then yield one record item per record, in the API's order.

        Every page is fetched before the first item is yielded: an API that fails halfway fails the scan
        as a whole, never with half of its records (which would read as the other half being deleted).
        """
        self.failures = []
        self._records = {}
        items: list[SourceItem] = []
        first_seen: dict[str, str] = {}
        for page_url, records in self._pages():
            for index, record in enumerate(records):
                where = f"{page_url} item {index}"
                item = self._record_item(record, where, first_seen)
                if item is not None:
                    items.append(item)
        yield from items

    def read(self, item: SourceItem) -> bytes:
        """The canonical JSON of a record listed by the last scan."""
        try:
            return self._records[item.uri]
        except KeyError:
            raise SourceError(f"{item.uri}: not a record of the last scan of {self._show(self.config.url)}; "
                              "run scan() before read()") from None

    def source_uri(self, item: SourceItem) -> str:
        """The API URL of the record's collection plus ``#<id>``."""
        return f"{self._scheme}://{item.uri}"

    # pages -----------------------------------------------------------------------------------------------
    def _pages(self) -> Iterator[tuple[str, list[Any]]]:
        cfg, pag = self.config, self.config.pagination
        headers = {"Accept": "application/json", "User-Agent": "flightdeck-api-source"}
        url: str = cfg.url
        params: dict[str, Any] | None = dict(cfg.params)
        if isinstance(pag, PagePagination):
            params[pag.param] = pag.start
            if pag.size_param and pag.size:
                params[pag.size_param] = pag.size
        seen: set[str] = set()
        # The spec's headers are not the client's: _send adds them to requests for the source's origin only.
        with sync_client(self._policy, headers=headers, timeout=cfg.timeout, follow_redirects=False) as client:
            for _page in range(cfg.max_pages):
                response = self._request(client, url, params)
                page_url = self._show(str(response.url))
                payload = self._json(response, page_url)
                records = self._page_records(payload, page_url)
                yield page_url, records
                if isinstance(pag, NoPagination):
                    return
                if isinstance(pag, PagePagination):
                    if not records or (pag.size is not None and len(records) < pag.size):
                        return
                    assert params is not None
                    params[pag.param] = int(params[pag.param]) + 1
                elif isinstance(pag, CursorPagination):
                    assert self._cursor is not None
                    found = [m.value for m in self._cursor.find(payload)]
                    cursor = found[0] if found else None
                    if cursor is None or cursor == "" or cursor == [] or cursor == {}:
                        return  # no next cursor: that was the last page
                    if not isinstance(cursor, (str, int)) or isinstance(cursor, bool):
                        raise SourceError(f"{page_url}: the cursor at {pag.cursor_path} is a "
                                          f"{type(cursor).__name__}, not a string or number")
                    if str(cursor) in seen:
                        raise SourceError(f"{page_url}: the API returned cursor {cursor!r} twice; its "
                                          "pagination loops, so the scan stops rather than read forever")
                    seen.add(str(cursor))
                    assert params is not None
                    params[pag.param] = cursor
                else:  # link
                    nxt = response.links.get("next", {}).get("url")
                    if not nxt:
                        return
                    nxt = urljoin(str(response.url), nxt)
                    if _origin(nxt) != self._origin:
                        raise SourceError(f"{page_url}: the next-page link points at another site "
                                          f"({self._show(nxt)}); the source's headers are not sent there")
                    if nxt in seen:
                        raise SourceError(f"{page_url}: the next-page link repeats {self._show(nxt)}; its "
                                          "pagination loops, so the scan stops rather than read forever")
                    seen.add(nxt)
                    url, params = nxt, None  # the link carries its own query
        raise SourceError(f"{self._show(cfg.url)}: more than max_pages={cfg.max_pages} pages; raise max_pages "
                          "(or narrow `params`): stopping early would drop the records of the later pages")

    def _request(self, client: Any, url: str, params: dict[str, Any] | None) -> Any:
        import httpx

        cfg = self.config

        def once() -> Any:
            try:
                response = self._send(client, url, params)
            except BlockedAddressError as e:  # the policy's answer does not change on a retry
                raise SourceError(f"{self._show(e.url or url)}: {e}") from None
            except httpx.TransportError as e:  # refused, reset, timed out
                raise _Retryable(f"{type(e).__name__}: {e}") from e
            status = response.status_code
            if status < 400:
                return response
            if status != 429 and status < 500:
                raise SourceError(f"{self._show(str(response.url))}: HTTP {status} {response.reason_phrase}; "
                                  + _client_error_hint(status))
            raise _Retryable(f"HTTP {status} {response.reason_phrase}",
                             _retry_after(response.headers.get("Retry-After"), None))

        attempts = cfg.retries + 1
        policy = RetryPolicy(attempts, cfg.backoff, max_delay=cfg.max_backoff)
        try:
            return policy.run(once, transient=(_Retryable,), retry_after=_Retryable.delay_of)
        except _Retryable as last:
            shown = self._show(_with_params(url, params))
            raise SourceError(f"{shown}: gave up after {attempts} attempt(s), last: {last}; the API is down or "
                              "limiting requests: try again later or raise `retries`/`max_backoff`") from None

    def _send(self, client: Any, url: str, params: dict[str, Any] | None) -> Any:
        """One request, its redirects followed here: the spec's headers go to the source's origin only.

        httpx's own redirect handling would keep custom headers such as ``X-Api-Key`` on a redirect to
        another host (it strips only ``Authorization``); here they are sent while every hop so far has
        stayed on the origin of ``url``, and never again in the chain once it has left.
        """
        cfg = self.config
        secrets = {k: v.get_secret_value() for k, v in cfg.headers.items()}
        method, body, trusted = cfg.method, cfg.body, True
        request_url = _with_params(url, params)
        for _hop in range(cfg.max_redirects + 1):
            trusted = trusted and _origin(request_url) == self._origin
            try:
                response = client.request(method, request_url, json=body, headers=secrets if trusted else None)
            except BlockedAddressError as e:
                e.url = request_url  # which hop was refused: the configured URL or a redirect's target
                raise
            if response.status_code not in _REDIRECTS or "location" not in response.headers:
                return response
            target = urljoin(str(response.url), response.headers["location"])
            if urlsplit(target).scheme not in ("http", "https"):
                raise SourceError(f"{self._show(str(response.url))}: redirects to {self._show(target)}, which is not "
                                  "an http(s) URL; check `url`")
            response.close()
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None  # what browsers and httpx do: the body is not sent on
            request_url = target
        raise SourceError(f"{self._show(url)}: more than max_redirects={cfg.max_redirects} redirects (last to "
                          f"{self._show(request_url)}); point `url` at the final address or raise max_redirects")

    def _json(self, response: Any, page_url: str) -> Any:
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError) as e:
            kind = response.headers.get("Content-Type", "no Content-Type")
            raise SourceError(f"{page_url}: the response is not JSON ({kind}: {e}); check `url`") from e

    def _page_records(self, payload: Any, page_url: str) -> list[Any]:
        matches = self._items.find(payload)
        if not matches:
            # `$.data[*]` (or a filter) over an empty or fully filtered list finds nothing, and that is an
            # empty page; only a path whose container is missing altogether is a mapping error.
            from jsonpath_ng.jsonpath import Fields

            container = getattr(self._items, "left", None)
            if (container is not None and not isinstance(getattr(self._items, "right", None), Fields)
                    and any(isinstance(m.value, (list, dict)) for m in container.find(payload))):
                return []
            keys = sorted(payload)[:20] if isinstance(payload, dict) else type(payload).__name__
            raise SourceError(f"{page_url}: items_path {self.config.items_path!r} finds nothing in the response "
                              f"(its top level: {keys}); fix items_path")
        if len(matches) == 1 and isinstance(matches[0].value, list):
            return list(matches[0].value)
        return [m.value for m in matches]

    # records ---------------------------------------------------------------------------------------------
    def _record_item(self, record: Any, where: str, first_seen: dict[str, str]) -> SourceItem | None:
        cfg = self.config
        if not isinstance(record, dict):
            return self._fail(where, f"a record must be a JSON object, got {type(record).__name__}; "
                                     "check items_path")
        ids = [m.value for m in self._id.find(record)]
        rid = ids[0] if ids else None
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid).strip() == "":
            return self._fail(where, f"no id at {cfg.id_path} (a non-empty string or integer); fix id_path")
        texts = [str(m.value) for expr in self._texts for m in expr.find(record)
                 if isinstance(m.value, (str, int, float)) and not isinstance(m.value, bool)
                 and str(m.value).strip()]
        if not texts:
            return self._fail(where, f"record {rid!r} has no text at {', '.join(cfg.text_paths)}; "
                                     "fix text_paths")
        canonical: dict[str, Any] = {_ID: rid, _TEXT: "\n\n".join(texts)}
        if self._title is not None:
            titles = [m.value for m in self._title.find(record)]
            if titles and isinstance(titles[0], _SCALARS) and titles[0] is not None:
                canonical[_TITLE] = str(titles[0])
        for name, expr in self._metadata.items():
            values = [m.value for m in expr.find(record)]
            if values:
                canonical[name] = values[0] if len(values) == 1 else values
        uri = f"{self._base}#{rid}"
        if uri in first_seen:
            return self._fail(where, f"duplicate id {rid!r}, first seen at {first_seen[uri]}; ids must be unique")
        first_seen[uri] = where
        data = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._records[uri] = data
        return SourceItem(uri, content_hash(data), RECORD_MEDIA_TYPE, {RECORD_FIELDS_KEY: dict(_RECORD_FIELDS)})

    def _fail(self, uri: str, reason: str) -> None:
        self.failures.append(ItemFailure(uri, reason))

    def _show(self, url: str) -> str:
        """``url`` fit for errors: no user:password, secret-looking query values masked."""
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:  # an IPv6 literal keeps its brackets
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v)
                           for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _with_params(url: str, params: dict[str, Any] | None) -> str:
    """``url`` with ``params`` added to its query (as ``httpx.Client.request(params=...)`` does)."""
    import httpx

    return str(httpx.URL(url).copy_merge_params(params)) if params else url


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the default port made explicit: what headers are bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").rstrip("."), parts.port or {"http": 80, "https": 443}.get(scheme)


class _Retryable(Exception):
    """A request worth another attempt (refused, reset, timed out; HTTP 429 or 5xx), said as the last error."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after  # seconds, from the answer's Retry-After

    @staticmethod
    def delay_of(exc: Exception) -> float | None:
        return exc.retry_after if isinstance(exc, _Retryable) else None


def _retry_after(value: str | None, default: float | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); ``default`` without one."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _client_error_hint(status: int) -> str:
    if status in (401, 403):
        return ("the API refused the credentials: check `headers` (e.g. Authorization: \"Bearer ${API_TOKEN}\") "
                "and that the environment variable holds a valid token")
    if status == 404:
        return "no such endpoint: check `url`"
    if status in (400, 422):
        return "the API rejected the request: check `params`, `body` and the pagination parameters"
    return "a client error, not retried: check the request settings"
