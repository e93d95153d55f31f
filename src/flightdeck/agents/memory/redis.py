"""Agent memory in Redis (checklist 6.2), through the ``redis`` client (``pip install 'flightdeck[redis]'``).

**Keys.** Each scope has a namespace of its own: ``<prefix><sha256 of the scope>``, so no scope string (``"a*"``,
``"a:b"``) can name, match or collide with another scope's keys. In it:

- ``…:m:<sha256 of the conversation>``: a list, the conversation's messages as JSON, appended with ``RPUSH`` (one
  atomic command: appends from many threads or processes keep every message);
- ``…:conversations``: a sorted set of the conversation ids by their last write;
- ``…:facts``: a hash, fact id → the fact as JSON; ``…:vectors``: a hash, fact id → its float32 vector, when the
  memory has an ``embed`` callable. Recall reads the scope's two hashes and ranks in numpy (cosine similarity, or
  keyword overlap without an embedder): no RediSearch module is needed.

**Expiry.** ``ttl_s`` (seconds, None: never) applies to conversations and is refreshed by every write to the
conversation (a chat idle for ``ttl_s`` is gone); ``fact_ttl_s`` does the same for the scope's facts. Writes go in
one ``MULTI`` transaction with their ``PEXPIRE``, so no key is left without its expiry.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from flightdeck.agents.memory.base import AgentMemoryError, Embed, Fact, MemoryBase, Message, Summarize
from flightdeck.registry.lookup import optional_import

__all__ = ["RedisMemory"]

_GLOB = re.compile(r"([\\*?\[\]^-])")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_ttl(value: float | None, what: str) -> int | None:
    """``value`` seconds as milliseconds for PEXPIRE (None: no expiry)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise AgentMemoryError(f"{what} must be a number of seconds above 0 (or None: never expire), not {value!r}")
    return max(1, round(value * 1000))


class RedisMemory(MemoryBase):
    """Agent memory in the Redis at ``url`` (or the ``client`` given: a ``redis.Redis``, e.g. with TLS), under
    ``prefix``. The client connects on first use."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, client: Any = None,
                 prefix: str = "flightdeck:memory:", ttl_s: float | None = None, fact_ttl_s: float | None = None,
                 embed: Embed | None = None, summarize: Summarize | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(embed=embed, summarize=summarize, clock=clock)
        if not isinstance(prefix, str) or not prefix or re.search(r"[\s\x00-\x1f\x7f]", prefix):
            raise AgentMemoryError(f"prefix {prefix!r}: give a non-empty key prefix without spaces, e.g. 'myapp:mem:'")
        self.url = url
        self.prefix = prefix
        self.ttl_ms = _check_ttl(ttl_s, "ttl_s")
        self.fact_ttl_ms = _check_ttl(fact_ttl_s, "fact_ttl_s")
        self._client = client
        self._where = re.sub(r"//[^@/]*@", "//***@", url) if client is None else "the Redis client given"

    @contextmanager
    def _redis(self) -> Iterator[Any]:
        """The client, with its errors as :class:`AgentMemoryError` naming the server (never its password)."""
        redis = optional_import("redis", "redis", "memory 'redis'")
        if self._client is None:
            self._client = redis.Redis.from_url(self.url)
        try:
            yield self._client
        except redis.exceptions.RedisError as exc:
            raise AgentMemoryError(f"Redis memory at {self._where}: {type(exc).__name__}: {exc}") from exc

    def namespace(self, scope: str) -> str:
        """The key prefix of ``scope``'s keys."""
        return f"{self.prefix}{_sha(scope)}"

    def _list(self, scope: str, conversation: str) -> str:
        return f"{self.namespace(scope)}:m:{_sha(conversation)}"

    # -- conversations
    def _append(self, scope: str, conversation: str, message: Message) -> None:
        key, index = self._list(scope, conversation), f"{self.namespace(scope)}:conversations"
        record = json.dumps({"role": message.role, "content": message.content, "at": message.at}, ensure_ascii=False)
        with self._redis() as r:
            pipe = r.pipeline(transaction=True)
            pipe.rpush(key, record.encode("utf-8"))
            pipe.zadd(index, {conversation.encode("utf-8"): float(message.at or 0.0)})
            if self.ttl_ms:
                pipe.pexpire(key, self.ttl_ms)
                pipe.pexpire(index, self.ttl_ms)
            pipe.execute()

    def _messages(self, scope: str, conversation: str) -> list[Message]:
        with self._redis() as r:
            records = r.lrange(self._list(scope, conversation), 0, -1)
        out = []
        for raw in records:
            record = json.loads(raw)
            out.append(Message(record["role"], record["content"], record.get("at")))
        return out

    def _conversations(self, scope: str) -> list[str]:
        """Newest write first; a conversation whose messages expired is dropped from the index on the way."""
        index = f"{self.namespace(scope)}:conversations"
        with self._redis() as r:
            names = [n.decode("utf-8") for n in r.zrevrange(index, 0, -1)]
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.exists(self._list(scope, name))
            alive = pipe.execute() if names else []
            gone = [n for n, exists in zip(names, alive, strict=True) if not exists]
            if gone:
                r.zrem(index, *[n.encode("utf-8") for n in gone])
        return [n for n, exists in zip(names, alive, strict=True) if exists]

    def _clear(self, scope: str, conversation: str | None) -> None:
        index = f"{self.namespace(scope)}:conversations"
        with self._redis() as r:
            if conversation is not None:
                pipe = r.pipeline(transaction=True)
                pipe.delete(self._list(scope, conversation))
                pipe.zrem(index, conversation.encode("utf-8"))
                pipe.execute()
                return
            # the namespace is hex digits after the prefix: escaped, no scope's keys but this one's match
            pattern = _GLOB.sub(r"\\\1", self.namespace(scope)) + ":m:*"
            keys = [index, *r.scan_iter(match=pattern, count=500)]
            r.delete(*keys)

    # -- facts
    def _remember(self, scope: str, fact: Fact, vector: np.ndarray | None) -> None:
        facts, vectors = f"{self.namespace(scope)}:facts", f"{self.namespace(scope)}:vectors"
        record = json.dumps({"text": fact.text, "metadata": fact.metadata, "at": fact.at}, ensure_ascii=False)
        with self._redis() as r:
            pipe = r.pipeline(transaction=True)
            pipe.hset(facts, fact.id, record.encode("utf-8"))
            if vector is not None:
                pipe.hset(vectors, fact.id, np.asarray(vector, dtype="<f4").tobytes())
            if self.fact_ttl_ms:
                pipe.pexpire(facts, self.fact_ttl_ms)
                pipe.pexpire(vectors, self.fact_ttl_ms)
            pipe.execute()

    def _facts(self, scope: str, with_vectors: bool) -> tuple[list[Fact], np.ndarray | None]:
        with self._redis() as r:
            pipe = r.pipeline(transaction=True)
            pipe.hgetall(f"{self.namespace(scope)}:facts")
            pipe.hgetall(f"{self.namespace(scope)}:vectors")
            records, blobs = pipe.execute()
        facts = []
        for fid, raw in sorted(records.items()):
            record = json.loads(raw)
            facts.append(Fact(fid.decode("ascii"), record["text"], record.get("metadata") or {}, record.get("at")))
        if not with_vectors:
            return facts, None
        missing = [f.id for f in facts if f.id.encode("ascii") not in blobs]
        if missing:
            raise AgentMemoryError(f"{len(missing)} facts of this scope were kept without an embedder (e.g. "
                                   f"{missing[0]}): forget(scope) and remember them again with this embedder")
        rows = [np.frombuffer(blobs[f.id.encode("ascii")], dtype="<f4") for f in facts]
        if len({row.shape[0] for row in rows}) > 1:
            raise AgentMemoryError("the facts of this scope were embedded with several dimensions: forget(scope) "
                                   "and remember them again with one embedder")
        return facts, (np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32))

    def _forget(self, scope: str, fact_id: str | None) -> int:
        facts, vectors = f"{self.namespace(scope)}:facts", f"{self.namespace(scope)}:vectors"
        with self._redis() as r:
            pipe = r.pipeline(transaction=True)
            if fact_id is None:
                pipe.hlen(facts)
                pipe.delete(facts, vectors)
            else:
                pipe.hdel(facts, fact_id)
                pipe.hdel(vectors, fact_id)
            return int(pipe.execute()[0])
