"""BM25 keyword search over the chunks, with SQLite FTS5 (the embedded workspace's keyword index)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Engine, text

from flightdeck.retrieval.filters import Filter, to_sql

__all__ = ["KeywordIndex", "fts_query"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression: every word of the query, quoted (so user text is never FTS syntax), ORed."""
    terms = dict.fromkeys(t.lower() for t in _TOKEN.findall(query))
    return " OR ".join(f'"{t}"' for t in terms)


class KeywordIndex:
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
