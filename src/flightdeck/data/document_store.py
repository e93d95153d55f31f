"""The workspace's documents as phase 1 writes them: documents, chunks, keyword rows and signatures.

Each write is one transaction that leaves the workspace consistent if the process dies right after it:
:func:`replace_document` replaces one document (row, chunks, FTS5 rows) at a time, after writing the
content-addressed record its dataset version will point at. The ingest state that outlives a run (dropped
duplicates, boilerplate lines learnt per source) is read and written here too, under named state keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, select

from flightdeck.data.dedupe import Duplicate, Signature, find_duplicates, text_hash
from flightdeck.data.documents import Chunk, Document
from flightdeck.governance.versions import put_document_record
from flightdeck.retrieval.keyword import Fts5Index
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import chunks, document_signatures, documents

__all__ = ["stored_documents", "signed_documents", "document_count", "replace_document", "remove_document",
           "write_signature", "dataset_duplicates", "dropped_duplicates",
           "save_dropped_duplicates", "known_boilerplate", "save_boilerplate", "chunk_ids"]

# Workspace state: the dropped duplicates (so an unchanged duplicate is not read again every run) and the
# boilerplate lines learnt per source (line hashes, no text).
DUPLICATES_STATE = "ingest/duplicates"
BOILERPLATE_STATE = "ingest/boilerplate/"


def stored_documents(ws: Workspace) -> dict[str, tuple[str, str]]:
    """Every stored document's ``(content hash, pipeline hash)``, by id."""
    with ws.engine.connect() as conn:
        return {r.id: (r.content_hash, r.pipeline_hash) for r in
                conn.execute(select(documents.c.id, documents.c.content_hash, documents.c.pipeline_hash))}


def signed_documents(ws: Workspace) -> dict[str, str]:
    """The content hash each stored signature was computed from, by document id."""
    with ws.engine.connect() as conn:
        return {r.document_id: r.content_hash for r in
                conn.execute(select(document_signatures.c.document_id, document_signatures.c.content_hash))}


def document_count(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(documents)).scalar_one())


def chunk_ids(ws: Workspace) -> list[str]:
    """Every chunk id, sorted."""
    with ws.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(chunks.c.id).order_by(chunks.c.id))]


def replace_document(ws: Workspace, run_id: str, doc_id: str, source_uri: str, content_hash: str,
                     pipeline_hash: str, media_type: str, doc: Document, doc_chunks: Iterable[Chunk]) -> str:
    """Store ``doc`` and its chunks in place of what ``doc_id`` held; returns the digest of its record.

    The document version's record (row + chunks, content-addressed) is written before its rows: a crash leaves
    at worst an unreferenced artifact, never a version pointing at a missing record.
    """
    row = {"id": doc_id, "source_uri": source_uri, "content_hash": content_hash, "pipeline_hash": pipeline_hash,
           "media_type": media_type, "title": doc.title, "metadata": doc.metadata}
    rows = []
    seen: set[str] = set()
    for c in doc_chunks:
        if c.id in seen:  # identical text at the same position cannot happen; guard anyway
            continue
        seen.add(c.id)
        rows.append({"id": c.id, "document_id": doc_id, "ordinal": c.ordinal, "text": c.text,
                     "indexed_text": c.indexed_text, "heading": " > ".join(c.heading_path),
                     "token_count": c.token_count, "text_hash": c.text_hash, "metadata": c.metadata})
    record = put_document_record(ws, row, rows)
    with ws.engine.begin() as conn:
        old = [r[0] for r in conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id))]
        Fts5Index.delete(conn, old)
        conn.execute(delete(chunks).where(chunks.c.document_id == doc_id))
        conn.execute(delete(documents).where(documents.c.id == doc_id))
        conn.execute(insert(documents).values(**row, chunk_count=len(rows), run_id=run_id))
        if rows:
            conn.execute(insert(chunks), rows)
            Fts5Index.add(conn, [(r["id"], r["indexed_text"]) for r in rows])
    return record


def remove_document(ws: Workspace, doc_id: str) -> None:
    """Remove a document with its chunks and their keyword rows."""
    with ws.engine.begin() as conn:
        old = [r[0] for r in conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id))]
        Fts5Index.delete(conn, old)
        conn.execute(delete(chunks).where(chunks.c.document_id == doc_id))
        conn.execute(delete(documents).where(documents.c.id == doc_id))


def write_signature(ws: Workspace, doc_id: str, content_hash: str, signature: Signature,
                    language: str | None) -> None:
    with ws.engine.begin() as conn:
        conn.execute(delete(document_signatures).where(document_signatures.c.document_id == doc_id))
        conn.execute(insert(document_signatures).values(document_id=doc_id, content_hash=content_hash,
                                                        text_hash=signature.text_hash, minhash=signature.minhash,
                                                        language=language))


def dataset_duplicates(ws: Workspace, signatures: dict[str, Signature], stored_ids: set[str], mode: str,
                       threshold: float) -> list[Duplicate]:
    """Duplicates among this run's documents (``signatures``) and the stored ones named in ``stored_ids``,
    compared by their stored signatures; by id, the first wins."""
    if mode == "off":
        return []
    empty = text_hash("")
    pool = dict(signatures)
    with ws.engine.connect() as conn:
        for r in conn.execute(select(document_signatures.c.document_id, document_signatures.c.text_hash,
                                     document_signatures.c.minhash)):
            if r.document_id in stored_ids and r.document_id not in pool:
                pool[r.document_id] = Signature(r.document_id, r.text_hash, r.minhash, r.text_hash == empty)
    return find_duplicates(pool.values(), mode, threshold)  # type: ignore[arg-type]


def dropped_duplicates(ws: Workspace) -> dict[str, dict[str, Any]]:
    """The duplicates earlier runs dropped, by document id (with the hashes they were judged on)."""
    loaded: dict[str, dict[str, Any]] = json.loads(ws.get_state(DUPLICATES_STATE) or "{}")
    return loaded


def save_dropped_duplicates(ws: Workspace, dropped: dict[str, dict[str, Any]]) -> None:
    """Remember the dropped duplicates, and keep the signatures in step with the stored documents."""
    with ws.engine.begin() as conn:
        ws.set_state(conn, DUPLICATES_STATE, json.dumps(dropped, sort_keys=True))
        conn.execute(delete(document_signatures).where(document_signatures.c.document_id.not_in(select(documents.c.id))))


def known_boilerplate(ws: Workspace, source: str) -> set[str]:
    """The boilerplate line keys learnt for source ``source`` (its label)."""
    return set(json.loads(ws.get_state(BOILERPLATE_STATE + source) or "[]"))


def save_boilerplate(ws: Workspace, source: str, keys: set[str]) -> None:
    with ws.engine.begin() as conn:
        ws.set_state(conn, BOILERPLATE_STATE + source, json.dumps(sorted(keys)))
