"""The network guard of the api and web sources: which addresses a connection may go to, checked on the
address the socket really connects to (DNS rebinding included), with real httpx clients and servers on
loopback only. Addresses outside loopback appear here only as values for the policy to judge.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flightdeck.data.sources.netguard import (
    BlockedAddressError,
    NetworkPolicy,
    async_client,
    check_networks,
    sync_client,
)

pytest.importorskip("httpx")


# --- the policy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.9.8.7", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private address (RFC 1918)"), ("172.16.0.1", "RFC 1918"), ("192.168.1.1", "RFC 1918"),
    ("169.254.169.254", "link-local address (where cloud metadata"), ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"), ("fd00:ec2::254", "unique-local"), ("fc00::1", "unique-local"),
    ("100.64.0.1", "carrier-grade NAT"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("192.0.2.1", "documentation"), ("2001:db8::1", "documentation"), ("fec0::1", "site-local"),
    # IPv6 spellings of IPv4 addresses are judged as the IPv4 address they reach
    ("::ffff:127.0.0.1", "loopback address (this machine), written as an IPv6 address"),
    ("::ffff:169.254.169.254", "link-local"), ("2002:7f00:1::", "loopback"), ("2002:a9fe:a9fe::1", "link-local"),
    ("64:ff9b::a00:1", "RFC 1918"), ("::10.0.0.1", "RFC 1918"), ("2001::1", "IETF protocol"),
    ("3fff::1", None), ("4000::1", "reserved IPv6"),
    # public addresses pass
    ("93.184.215.14", None), ("8.8.8.8", None), ("2606:4700:4700::1111", None), ("2002:808:808::1", None),
    ("::ffff:8.8.8.8", None), ("64:ff9b::808:808", None),
])
def test_default_policy_refuses_every_non_public_range(address: str, reason: str | None) -> None:
    found = NetworkPolicy().refusal(address)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_allowed_networks_open_only_themselves() -> None:
    policy = NetworkPolicy.from_setting(["10.1.0.0/16", "127.0.0.1"])
    assert policy.refusal("10.1.200.3") is None and policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None  # the same address, IPv6-mapped
    assert "RFC 1918" in (policy.refusal("10.2.0.1") or "")
    assert "loopback" in (policy.refusal("127.0.0.2") or "")
    assert "link-local" in (policy.refusal("169.254.169.254") or "")
    everything = NetworkPolicy.from_setting(True)
    assert all(everything.refusal(a) is None for a in ("127.0.0.1", "169.254.169.254", "fd00:ec2::254", "10.0.0.1"))
    assert NetworkPolicy.from_setting(False) == NetworkPolicy.from_setting([]) == NetworkPolicy()


def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    answers = {"mixed.test": ["93.184.215.14", "10.0.0.7"], "public.test": ["93.184.215.14", "2606:4700::1"]}

    def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    policy = NetworkPolicy()
    assert policy.addresses("public.test", 443, resolver) == answers["public.test"]
    with pytest.raises(BlockedAddressError) as err:
        policy.addresses("mixed.test", 443, resolver)
    assert err.value.address == "10.0.0.7"
    message = str(err.value)
    assert message.startswith("refused to connect to mixed.test (10.0.0.7), port 443: a private address")
    assert '`allow_private_networks: ["10.0.0.7/32"]`' in message and "`allow_private_networks: true`" in message


def test_the_setting_takes_cidrs_and_says_what_is_wrong() -> None:
    assert check_networks(["10.1.0.0/16", " fd12::/48 ", "192.168.4.7"]) == ["10.1.0.0/16", "fd12::/48",
                                                                              "192.168.4.7/32"]
    assert check_networks("10.0.0.0/8") == ["10.0.0.0/8"] and check_networks(True) is True
    with pytest.raises(ValueError, match=r"'10.1.0.1/16' is not a network .*did you mean 10.1.0.0/16\?"):
        check_networks(["10.1.0.1/16"])
    with pytest.raises(ValueError, match=r"'corp' is not a network"):
        check_networks(["corp"])


# --- real connections ------------------------------------------------------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.hits.append(self.path)
        body = f"served by {self.server.server_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _server(host: str, port: int = 0) -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def _twin_servers() -> Iterator[tuple[int, list[str], list[str]]]:
    """A server on 127.0.0.1 and a decoy on 127.0.0.2, on the same port: only the address tells them apart."""
    for _ in range(20):
        with _server("127.0.0.2") as (port, decoy_hits):
            try:
                real = _server("127.0.0.1", port)
                port, real_hits = real.__enter__()
            except OSError:  # that port is taken on 127.0.0.1: try another
                continue
            try:
                yield port, real_hits, decoy_hits
            finally:
                real.__exit__(None, None, None)
            return
    pytest.skip("no port free on both 127.0.0.1 and 127.0.0.2")


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``rebind.test`` resolves to 127.0.0.1 the first time, to 127.0.0.2 ever after (a rebinding DNS server).

    It answers through ``socket.getaddrinfo`` itself, so that any code that resolves the name a second time,
    the HTTP library included, gets the second answer. Returns the list of answers given.
    """
    real = socket.getaddrinfo
    given: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        address = "127.0.0.1" if not given else "127.0.0.2"
        given.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return given


ONLY_127_0_0_1 = NetworkPolicy.from_setting(["127.0.0.1/32"])


def test_dns_rebinding_cannot_move_a_checked_connection(rebinding: list[str]) -> None:
    with _twin_servers() as (port, real_hits, decoy_hits):
        with sync_client(ONLY_127_0_0_1) as client:
            response = client.get(f"http://rebind.test:{port}/first")
        assert response.text == "served by 127.0.0.1"
        assert rebinding == ["127.0.0.1"]  # resolved once: the connection went to the checked address
        with sync_client(ONLY_127_0_0_1) as client, pytest.raises(BlockedAddressError) as err:
            client.get(f"http://rebind.test:{port}/second")  # a new connection: the new answer is checked
        assert "rebind.test (127.0.0.2)" in str(err.value)
        assert real_hits == ["/first"] and decoy_hits == []


def test_dns_rebinding_cannot_move_a_checked_connection_async(rebinding: list[str]) -> None:
    async def fetch(path: str) -> str:
        async with async_client(ONLY_127_0_0_1) as client:
            return (await client.get(f"http://rebind.test:{port}{path}")).text

    with _twin_servers() as (port, real_hits, decoy_hits):
        assert asyncio.run(fetch("/first")) == "served by 127.0.0.1"
        assert rebinding == ["127.0.0.1"]
        with pytest.raises(BlockedAddressError, match=r"rebind\.test \(127\.0\.0\.2\)"):
            asyncio.run(fetch("/second"))
        assert real_hits == ["/first"] and decoy_hits == []


def test_environment_proxies_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would resolve and connect on the client's behalf, out of the guard's sight: it is not used.
    with _server("127.0.0.1") as (port, hits), _server("127.0.0.1") as (proxy_port, proxy_hits):
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with sync_client(ONLY_127_0_0_1) as client:
            assert client.get(f"http://127.0.0.1:{port}/direct").status_code == 200
        assert hits == ["/direct"] and proxy_hits == []


def test_unresolvable_names_are_connection_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:  # no DNS query leaves this machine
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with sync_client(NetworkPolicy()) as client, pytest.raises(httpx.ConnectError, match="cannot resolve"):
        client.get("http://no-such-host.test/")  # a ConnectError: the sources retry it like a refused connection


def test_every_loopback_address_is_reachable_when_allowed() -> None:
    with _server("127.0.0.1") as (port, hits):
        with sync_client(NetworkPolicy.from_setting(True)) as client:
            # "localhost" may resolve to ::1 first, where nothing listens: the next checked address is tried
            assert client.get(f"http://localhost:{port}/x").status_code == 200
        assert hits == ["/x"]
