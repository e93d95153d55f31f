"""Where the network sources may connect: public addresses, unless a spec opens more (SSRF protection).

A source URL, a link on a crawled page, a redirect or a DNS answer must not make flightdeck talk to the
machine it runs on (``127.0.0.1``, ``::1``), a private network (``10.0.0.0/8``…) or a cloud metadata
service (``169.254.169.254``, ``fd00:ec2::254``): those answer to anyone on the inside, and what they say
would end up in the index. By default the ``api`` and ``web`` sources therefore reach public addresses
only; ``allow_private_networks: true`` lifts the rule (intranet crawling), and a list of networks
(``allow_private_networks: ["10.1.0.0/16"]``) lifts it for those networks only.

The check is made on the address the socket connects to, not on the URL: a custom httpcore network
backend (sync and async) resolves the host once, refuses the connection when any answer is a denied
address, and connects to the checked address itself. So a name that resolves to a private address, a
redirect to one, and a DNS answer that changes between a check and the connection (DNS rebinding) are all
refused, before a single packet is sent there. The check covers every request of a client built with
:func:`sync_client`/:func:`async_client`, redirects (followed by the sources one hop at a time),
robots.txt and sitemaps included.

Proxies: these clients ignore ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` from the environment. Through a
proxy, the proxy resolves the name and connects, so the guard could check neither; a source that must
go through a proxy cannot be guarded here. (``SSL_CERT_FILE``/``SSL_CERT_DIR`` are still honoured.)

This module imports no optional library at import time: httpx, httpcore and anyio are imported by the
functions that build clients, which only the sources call.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator

from flightdeck.errors import SourceError

__all__ = ["NetworkPolicy", "BlockedAddressError", "PrivateNetworks", "ALLOW_PRIVATE_NETWORKS_HELP",
           "check_networks", "resolve", "sync_client", "async_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The setting's name, as errors name it.
SETTING = "allow_private_networks"
ALLOW_PRIVATE_NETWORKS_HELP = (
    "addresses beyond the public internet that this source may connect to: false (the default) allows "
    "public addresses only, true allows every address (intranet crawling), a list of networks "
    '(["10.1.0.0/16", "fd12::/48"]) allows those; loopback, private, link-local and cloud metadata '
    "addresses are refused otherwise")

_NET = ipaddress.ip_network
# Special-purpose ranges (IANA's registries) that are not public internet: why each is refused.
_DENIED: tuple[tuple[IPNetwork, str], ...] = (
    (_NET("0.0.0.0/8"), "an unspecified ('this network') address"),
    (_NET("10.0.0.0/8"), "a private address (RFC 1918)"),
    (_NET("100.64.0.0/10"), "a carrier-grade NAT address (RFC 6598)"),
    (_NET("127.0.0.0/8"), "a loopback address (this machine)"),
    (_NET("169.254.0.0/16"), "a link-local address (where cloud metadata services answer)"),
    (_NET("172.16.0.0/12"), "a private address (RFC 1918)"),
    (_NET("192.0.0.0/24"), "an IETF protocol address"),
    (_NET("192.0.2.0/24"), "a documentation address"),
    (_NET("192.88.99.0/24"), "a 6to4 relay address"),
    (_NET("192.168.0.0/16"), "a private address (RFC 1918)"),
    (_NET("198.18.0.0/15"), "a benchmarking address"),
    (_NET("198.51.100.0/24"), "a documentation address"),
    (_NET("203.0.113.0/24"), "a documentation address"),
    (_NET("224.0.0.0/4"), "a multicast address"),
    (_NET("240.0.0.0/4"), "a reserved address"),
    (_NET("::/128"), "the unspecified address"),
    (_NET("::1/128"), "a loopback address (this machine)"),
    (_NET("64:ff9b:1::/48"), "a local NAT64 address"),
    (_NET("100::/64"), "a discard address"),
    (_NET("2001::/23"), "an IETF protocol address (Teredo and others)"),
    (_NET("2001:db8::/32"), "a documentation address"),
    (_NET("fc00::/7"), "a unique-local (private) address (fd00:ec2::254 is a cloud metadata service)"),
    (_NET("fe80::/10"), "a link-local address"),
    (_NET("fec0::/10"), "a site-local address"),
    (_NET("ff00::/8"), "a multicast address"),
)
_GLOBAL_UNICAST_V6 = _NET("2000::/3")
_NAT64 = _NET("64:ff9b::/96")
_IPV4_COMPATIBLE = _NET("::/96")


class BlockedAddressError(SourceError):
    """A connection the network policy refused; raised before anything is sent to the address."""

    def __init__(self, host: str, port: int, address: str, reason: str) -> None:
        self.host, self.port, self.address, self.reason = host, port, address, reason
        self.url: str | None = None  # the request's URL, where the caller knows it
        shown = f"{host} ({address})" if host.strip("[]") != address else address
        single = f"{address}/{32 if ':' not in address else 128}"
        super().__init__(
            f"refused to connect to {shown}, port {port}: {reason}. Network sources reach public addresses "
            f"only unless the spec allows more: set `{SETTING}: true` in this source's settings (intranet "
            f'sites), or `{SETTING}: ["{single}"]` to allow just this address')


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _parse(address: str) -> IPAddress:
    return ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id (fe80::1%eth0) is not the address


@dataclass(frozen=True)
class NetworkPolicy:
    """Which addresses a source may connect to: public ones, plus ``allowed`` (or all, with ``allow_all``)."""

    allow_all: bool = False
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, value: bool | Sequence[str] | None) -> NetworkPolicy:
        """The policy of an ``allow_private_networks`` setting (``False``, ``True`` or a list of CIDRs)."""
        if value is True:
            return cls(allow_all=True)
        if not value:
            return cls()
        return cls(allowed=tuple(ipaddress.ip_network(n) for n in check_networks(list(value))))

    def refusal(self, address: str) -> str | None:
        """Why connecting to ``address`` (an IP literal) is refused; ``None`` when it is allowed."""
        if self.allow_all:
            return None
        ip = _parse(address)
        forms: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_v4(ip)) is not None:
            forms.append(v4)  # ::ffff:127.0.0.1 reaches 127.0.0.1: judge it as that
        if any(f.version == n.version and f in n for f in forms for n in self.allowed):
            return None
        for form in forms:
            for network, reason in _DENIED:
                if form.version == network.version and form in network:
                    return reason if form is ip else f"{reason}, written as an IPv6 address"
        if len(forms) == 1 and isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST_V6:
            return "a reserved IPv6 address"  # (one with an IPv4 address inside was judged as that above)
        return None

    def addresses(self, host: str, port: int, resolver: Callable[[str, int], list[str]] | None = None) -> list[str]:
        """The addresses of ``host`` to connect to, after checking every one of them.

        Raises :class:`BlockedAddressError` when any answer is refused: a name whose answers mix public
        and private addresses is how DNS rebinding starts, so none of them is used. Raises ``OSError``
        (``socket.gaierror``) when the name does not resolve.
        """
        found = (resolver or resolve)(host, port)
        for address in found:
            reason = self.refusal(address)
            if reason is not None:
                raise BlockedAddressError(host, port, address, reason)
        return found


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (an IP literal is its own answer), in the resolver's order, no repeats.

    ``socket.getaddrinfo`` is looked up on every call, so that tests can answer for made-up names.
    """
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))


def _literal(host: str) -> str | None:
    """``host`` as an IP address string when it is an IP literal (``[::1]`` too), else ``None``."""
    bare = host.strip("[]")
    try:
        _parse(bare)
    except ValueError:
        return None
    return bare  # as written: an IPv6 scope id (fe80::1%eth0) is needed to connect


def check_networks(value: Any) -> Any:
    """Validate the ``allow_private_networks`` setting: a bool, or CIDRs (a single string is one CIDR)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, bool) or value is None or not isinstance(value, Iterable):
        return value
    out = []
    for entry in value:
        text = str(entry).strip()
        try:
            network = ipaddress.ip_network(text)
        except ValueError as e:
            hint = ""
            try:
                loose = ipaddress.ip_network(text, strict=False)
                hint = f"; did you mean {loose}?"
            except ValueError:
                pass
            raise ValueError(f"{SETTING}: {entry!r} is not a network ({e}){hint} Write CIDRs such as "
                             '"10.1.0.0/16", "192.168.4.7" or "fd12:3456::/48", or true to allow every address'
                             ) from None
        out.append(str(network))
    return out


#: The type of an ``allow_private_networks`` setting: ``false``, ``true`` or a list of CIDRs.
PrivateNetworks = Annotated[bool | list[str], BeforeValidator(check_networks)]


# --- the httpcore network backends ------------------------------------------------------------------

class _SyncGuardedBackend:
    """An httpcore ``NetworkBackend`` that connects only to addresses the policy allows."""

    def __init__(self, policy: NetworkPolicy) -> None:
        import httpcore

        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> Any:
        import httpcore

        try:
            addresses = self._policy.addresses(host, port)
        except OSError as e:  # the name does not resolve: a connection failure like any other
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        last: Exception | None = None
        for address in addresses:  # the checked address itself, never the name again
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> Any:
        raise SourceError(f"refused to connect to the unix socket {path}: network sources use TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncGuardedBackend:
    """An httpcore ``AsyncNetworkBackend`` that connects only to addresses the policy allows."""

    def __init__(self, policy: NetworkPolicy) -> None:
        import httpcore

        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Iterable[Any] | None = None) -> Any:
        import anyio.to_thread
        import httpcore

        try:
            if _literal(host) is not None:  # nothing to resolve: no thread needed
                addresses = self._policy.addresses(host, port)
            else:
                # getaddrinfo blocks: in a thread, abandoned (not waited for) when the request is cancelled.
                addresses = await anyio.to_thread.run_sync(self._policy.addresses, host, port,
                                                           abandon_on_cancel=True)
        except OSError as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> Any:
        raise SourceError(f"refused to connect to the unix socket {path}: network sources use TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _pool_settings(limits: Any) -> dict[str, Any]:
    import httpx

    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return {"max_connections": limits.max_connections, "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry}


def _ssl_context() -> Any:
    import httpx

    # What httpx itself builds: certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR from the environment.
    return httpx.create_ssl_context(trust_env=True)


def sync_client(policy: NetworkPolicy, *, limits: Any = None, **client_options: Any) -> Any:
    """An ``httpx.Client`` whose every connection goes through ``policy`` (no environment proxies)."""
    import httpcore
    import httpx

    transport = httpx.HTTPTransport()
    # httpx has no setting for the network backend: its transport's pool is replaced by one that has it.
    transport._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=_SyncGuardedBackend(policy),
                                              **_pool_settings(limits))
    return httpx.Client(transport=transport, **client_options)


def async_client(policy: NetworkPolicy, *, limits: Any = None, **client_options: Any) -> Any:
    """An ``httpx.AsyncClient`` whose every connection goes through ``policy`` (no environment proxies)."""
    import httpcore
    import httpx

    transport = httpx.AsyncHTTPTransport()
    transport._pool = httpcore.AsyncConnectionPool(ssl_context=_ssl_context(),
                                                   network_backend=_AsyncGuardedBackend(policy),
                                                   **_pool_settings(limits))
    return httpx.AsyncClient(transport=transport, **client_options)
