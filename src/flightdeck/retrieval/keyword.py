"""Keyword indexes: the ``keyword_index`` category (``retrieval.search.keyword_index``) and the SQLite FTS5 table.

The workspace's FTS5 table (:class:`Fts5Index`) is written by ingest in the same transaction as the chunks,
whatever keyword index the spec names, so a keyword search always has something to read. A keyword index
(:class:`KeywordIndex`) says what the index step does for it and what the searcher reads:

- ``bm25`` (:class:`Bm25KeywordIndex`): a static BM25 index built into each index version's folder;
- ``fts5`` (:class:`Fts5KeywordIndex`): the FTS5 table alone;
- ``postgres`` (:class:`PostgresFtsKeywordIndex`): PostgreSQL full-text search in a table that the index step
  syncs like a live vector store.

The registry builds them from :class:`KeywordIndexConfig` (:func:`keyword_index_for`), so the index step and the
searcher hold one object and never compare names.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, text

from flightdeck.registry.categories import Category
from flightdeck.registry.lookup import Registry, registry
from flightdeck.retrieval.filters import Filter, to_sql

if TYPE_CHECKING:
    from flightdeck.retrieval.postgres_fts import PostgresKeywordIndex
    from flightdeck.workspace import Workspace

__all__ = ["Fts5Index", "fts_query", "KeywordSearch", "KeywordTable", "KeywordIndex", "KeywordIndexConfig",
           "Bm25KeywordIndex", "Fts5KeywordIndex", "PostgresFtsKeywordIndex", "keyword_index_for"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression: every word of the query, quoted (so user text is never FTS syntax), ORed."""
    terms = dict.fromkeys(t.lower() for t in _TOKEN.findall(query))
    return " OR ".join(f'"{t}"' for t in terms)


class Fts5Index:
    """Reads and writes ``chunks_fts``; writers pass their connection so rows commit with the chunks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def add(conn: Connection, rows: list[tuple[str, str]]) -> None:
        if rows:
            conn.execute(text("INSERT INTO chunks_fts(chunk_id, indexed_text) VALUES (:id, :t)"),
                         [{"id": cid, "t": t} for cid, t in rows])

    @staticmethod
    def delete(conn: Connection, chunk_ids: list[str]) -> None:
        # chunk_id is UNINDEXED, so each statement scans the table: delete in batches, not one by one.
        for start in range(0, len(chunk_ids), 500):
            batch = chunk_ids[start:start + 500]
            params = {f"p{i}": cid for i, cid in enumerate(batch)}
            marks = ", ".join(f":p{i}" for i in range(len(batch)))
            conn.execute(text(f"DELETE FROM chunks_fts WHERE chunk_id IN ({marks})"), params)

    def search(self, query: str, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        """``(chunk_id, bm25 score)``, best first; higher is better. ``where`` filters on the chunk payloads
        that the index step keeps in ``chunk_payloads``, inside the same SQL query (pushed down)."""
        match = fts_query(query)
        if not match:
            return []
        params: dict[str, Any] = {"q": match, "k": k}
        if where is None:
            sql = ("SELECT chunk_id, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH :q "
                   "ORDER BY s LIMIT :k")
        else:
            condition = to_sql(where, "p.payload", params)
            sql = ("SELECT chunks_fts.chunk_id, bm25(chunks_fts) AS s FROM chunks_fts "
                   "JOIN chunk_payloads p ON p.chunk_id = chunks_fts.chunk_id "
                   f"WHERE chunks_fts MATCH :q AND {condition} ORDER BY s LIMIT :k")
        with self.engine.connect() as conn:
            rows = conn.execute(text(sql), params).fetchall()
        # FTS5's bm25() is negative, lower is better: flip it so that every retriever ranks high-first.
        return [(cid, -float(s)) for cid, s in rows]


# --- the keyword_index category ------------------------------------------------------------------------------


class KeywordSearch(Protocol):
    """What a keyword search reads: ``(chunk_id, score)`` best first, higher is better, ``where`` applied."""

    def search(self, query: str, k: int, where: Filter | None = None) -> list[tuple[str, float]]: ...


class KeywordTable(KeywordSearch, Protocol):
    """A keyword index that lives outside the index version (a server's table): the index step syncs it chunk by
    chunk, as it syncs a live vector store, recording what it wrote in ``store_sync`` under ``table``."""

    table: str

    def ids(self) -> set[str]: ...

    def upsert(self, ids: list[str], texts: list[str], payloads: list[dict[str, Any]]) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class KeywordIndex(Protocol):
    """A provider of the ``keyword_index`` category: what the index step builds or syncs, what search reads.

    ``name`` is its spec value (``retrieval.search.keyword_index``), shown in ``SearchResult.keyword_index``.
    """

    name: str

    def describe(self) -> dict[str, Any]:
        """What identifies the index's content beyond its name (hashed into the index step's config, so that a
        change rebuilds or resyncs it); ``{}`` when the name says it all."""
        ...

    def build(self, folder: Path, ids: list[str], texts: Callable[[], list[str]],
              payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Write the index of an index version into ``folder`` (its temporary folder, renamed into place with the
        vectors); ``texts()`` reads every chunk's indexed text in ``ids`` order (only when needed). Returns
        counts for the step's result; ``{}`` when nothing is built there."""
        ...

    def live_table(self) -> KeywordTable | None:
        """The table that the index step syncs incrementally, or None when the index needs no sync."""
        ...

    def open(self, ws: Workspace, version: str) -> KeywordSearch | None:
        """What to search for index version ``version``; None to fall back to the workspace's FTS5 table (an
        index version built before this index existed)."""
        ...


class KeywordIndexConfig(BaseModel):
    """What every keyword index is made from: the workspace it serves and ``retrieval.search``'s keyword settings
    (``keyword_url`` unresolved: ``${ENV}`` references are resolved when the index is built, ``where`` naming the
    spec in the error for an unset variable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    workspace: Path
    keyword_url: str | None = None
    keyword_language: str = "english"
    where: str = "spec"


class _VersionedKeywordIndex:
    """What the two keyword indexes kept in the workspace share: no settings of their own in the index hash and
    no live table to sync (``fts5`` is written by ingest; ``bm25`` into each index version's folder)."""

    name = ""

    def __init__(self, config: KeywordIndexConfig | None = None) -> None:
        self.config = config

    def describe(self) -> dict[str, Any]:
        return {}

    def live_table(self) -> None:
        return None


class Fts5KeywordIndex(_VersionedKeywordIndex):
    """``fts5``: the workspace's FTS5 table only (no extra dependency; slow beyond ~10k chunks)."""

    name = "fts5"

    def build(self, folder: Path, ids: list[str], texts: Callable[[], list[str]],
              payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return {}  # ingest keeps the FTS5 table up to date with the chunks

    def open(self, ws: Workspace, version: str) -> Fts5Index:
        return Fts5Index(ws.engine)


class Bm25KeywordIndex(_VersionedKeywordIndex):
    """``bm25``: a static BM25 index (bm25s) built into each index version's folder, memory-mapped by readers."""

    name = "bm25"

    def build(self, folder: Path, ids: list[str], texts: Callable[[], list[str]],
              payloads: list[dict[str, Any]]) -> dict[str, Any]:
        from flightdeck.retrieval.bm25 import KEYWORD_FOLDER, Bm25Index

        t = time.perf_counter()
        index = Bm25Index()
        index.build(ids, texts(), payloads)
        index.save(folder / KEYWORD_FOLDER)
        return {"bm25_seconds": round(time.perf_counter() - t, 3)}

    def open(self, ws: Workspace, version: str) -> KeywordSearch | None:
        from flightdeck.retrieval.bm25 import KEYWORD_FOLDER, Bm25Index

        folder = ws.root / "indexes" / version / KEYWORD_FOLDER
        return Bm25Index.load(folder) if Bm25Index.exists(folder) else None


class PostgresFtsKeywordIndex:
    """``postgres``: PostgreSQL full-text search (:mod:`flightdeck.retrieval.postgres_fts`), one table per
    workspace and text search configuration on the server at ``keyword_url``, synced by the index step."""

    name = "postgres"

    def __init__(self, config: KeywordIndexConfig) -> None:
        from flightdeck.retrieval.postgres_fts import from_settings

        self.config = config
        # Built now, as the settings are read: an unset ${ENV} in keyword_url is reported before any run.
        self.index: PostgresKeywordIndex = from_settings(config.workspace, config, where=config.where)

    def describe(self) -> dict[str, Any]:
        return dict(self.index.describe())

    def build(self, folder: Path, ids: list[str], texts: Callable[[], list[str]],
              payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return {}  # the table is synced (live_table()), not built per index version

    def live_table(self) -> PostgresKeywordIndex:
        return self.index

    def open(self, ws: Workspace, version: str) -> PostgresKeywordIndex:
        return self.index


def keyword_index_for(search_settings: Any, workspace: Workspace, where: str = "spec",
                      providers: Registry | None = None) -> KeywordIndex:
    """The keyword index that ``retrieval.search`` (``search_settings``) names, for ``workspace``, built through the
    registry (``providers``, default the process-wide one); ``where`` names the spec in error messages."""
    settings = {"workspace": workspace.root, "keyword_url": search_settings.keyword_url,
                "keyword_language": search_settings.keyword_language, "where": where}
    index: KeywordIndex = (providers or registry()).create(Category.KEYWORD_INDEX, search_settings.keyword_index,
                                                           settings)
    return index
