"""The Redis memory (checklist 6.2) against the Redis server on 127.0.0.1:6379: the memory contract with keyword
and with embedding recall, expiry and its refresh on write, and keys that no scope string can reach outside its
own namespace. Every test writes under a prefix of its own and deletes its keys afterwards."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from flightdeck.agents.memory.base import AgentMemoryError
from flightdeck.agents.memory.redis import RedisMemory
from flightdeck.testing import FakeEmbedder
from flightdeck.testing.memory_contract import MemoryContract
from needs import need

pytestmark = pytest.mark.integration

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client() -> Iterator[Any]:
    need("redis", "redis")
    import redis

    r = redis.Redis.from_url(URL)
    try:
        r.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    yield r
    r.close()


def _escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]^-])", r"\\\1", text)


@pytest.fixture
def prefix(client: Any) -> Iterator[str]:
    """A prefix of this test's own, with glob characters in it; every key under it is deleted afterwards."""
    value = f"fdtest:{uuid.uuid4().hex[:12]}:[x]*:"
    yield value
    keys = list(client.scan_iter(match=_escape(value) + "*"))
    if keys:
        client.delete(*keys)


def _keys(client: Any, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=_escape(prefix) + "*"))


class TestRedisMemoryByKeyword(MemoryContract):
    @pytest.fixture
    def make_memory(self, prefix: str):
        return lambda summarize=None: RedisMemory(URL, prefix=prefix, summarize=summarize)


class TestRedisMemoryBySimilarity(MemoryContract):
    @pytest.fixture
    def make_memory(self, prefix: str):
        embedder = FakeEmbedder(dimension=256)
        return lambda summarize=None: RedisMemory(URL, prefix=prefix, ttl_s=300, fact_ttl_s=300,
                                                  embed=embedder.embed_documents, summarize=summarize)


def test_the_server_has_no_search_module(client: Any) -> None:
    """Why recall ranks in numpy: this server runs no RediSearch (MODULE LIST is empty)."""
    modules = [m.get(b"name", m.get("name")) for m in client.execute_command("MODULE", "LIST")]
    assert b"search" not in modules and "search" not in modules


def test_scope_strings_cannot_reach_another_scope_s_keys(client: Any, prefix: str) -> None:
    memory = RedisMemory(URL, prefix=prefix, embed=FakeEmbedder(dimension=32).embed_documents)
    scopes = ["a", "a*", "a:b", "a:b:m:*", "*", "a?", "[a]"]
    for scope in scopes:
        memory.append(scope, "c1", "user", f"message of {scope}")
        memory.append(scope, "c:*", "user", f"second of {scope}")
        memory.remember(scope, f"fact of {scope}")
    outside = prefix.rstrip(":") + "x:keep"  # a key beside the namespaces, sharing the prefix's first characters
    client.set(outside, b"1")
    keys = _keys(client, prefix)
    shape = re.compile(re.escape(prefix) + r"[0-9a-f]{64}:(conversations|facts|vectors|m:[0-9a-f]{64})")
    assert all(shape.fullmatch(k) for k in keys), keys  # no scope or conversation text in any key
    assert len(keys) == len(scopes) * 5
    assert len({memory.namespace(s) for s in scopes}) == len(scopes)

    memory.clear("a*")
    assert memory.forget("*") == 1
    memory.clear("a:b", "c:*")
    for scope in scopes:
        history = [m.content for m in memory.history(scope, "c1")]
        assert history == ([] if scope == "a*" else [f"message of {scope}"]), scope
        facts = [f.text for f in memory.recall(scope, "fact", k=10)]
        assert facts == ([] if scope == "*" else [f"fact of {scope}"]), scope
    assert memory.conversations("a:b") == ["c1"]
    assert sorted(memory.conversations("a")) == ["c1", "c:*"]
    assert client.get(outside) == b"1"
    client.delete(outside)


def test_conversations_expire_after_ttl_and_each_write_refreshes_it(client: Any, prefix: str) -> None:
    memory = RedisMemory(URL, prefix=prefix, ttl_s=0.8)
    memory.append("alice", "c1", "user", "first")
    time.sleep(0.5)
    memory.append("alice", "c1", "assistant", "second")  # refreshes the expiry of the whole conversation
    key = memory._list("alice", "c1")
    assert 500 < client.pttl(key) <= 800
    assert 500 < client.pttl(f"{memory.namespace('alice')}:conversations") <= 800
    time.sleep(0.5)  # 1 s after the first write, 0.5 s after the last
    assert [m.content for m in memory.history("alice", "c1")] == ["first", "second"]
    memory.append("alice", "c2", "user", "other conversation")
    time.sleep(1.0)
    assert memory.history("alice", "c1") == []
    assert memory.conversations("alice") == []
    assert _keys(client, prefix) == []


def test_facts_expire_after_fact_ttl(client: Any, prefix: str) -> None:
    memory = RedisMemory(URL, prefix=prefix, fact_ttl_s=0.5, embed=FakeEmbedder(dimension=16).embed_documents)
    memory.remember("alice", "Owns a red bicycle")
    assert memory.recall("alice", "bicycle")[0].text == "Owns a red bicycle"
    assert 0 < client.pttl(f"{memory.namespace('alice')}:vectors") <= 500
    time.sleep(0.8)
    assert memory.recall("alice", "bicycle") == []
    no_ttl = RedisMemory(URL, prefix=prefix)
    no_ttl.append("alice", "c1", "user", "kept")
    assert client.pttl(no_ttl._list("alice", "c1")) == -1  # no expiry unless asked


def test_settings_and_an_unreachable_server_are_named() -> None:
    need("redis", "redis")
    with pytest.raises(AgentMemoryError, match="ttl_s must be a number of seconds"):
        RedisMemory(ttl_s=0)
    with pytest.raises(AgentMemoryError, match="prefix"):
        RedisMemory(prefix="has space")
    down = RedisMemory("redis://:secret@127.0.0.1:1/0")
    with pytest.raises(AgentMemoryError, match=r"Redis memory at redis://\*\*\*@127.0.0.1:1/0: ConnectionError") as e:
        down.append("a", "c", "user", "x")
    assert "secret" not in str(e.value)
