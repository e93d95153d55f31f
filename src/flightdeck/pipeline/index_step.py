"""The index step: every chunk's cached vector and filterable payload into the configured vector store.

Two kinds of store (see :mod:`flightdeck.retrieval.stores.base`):

- versioned (FAISS): the step builds a new folder from all vectors, fsyncs it, renames it into place and
  then switches ``current_index`` in one transaction — a reader never sees a half-built index, and one
  that opened the previous folder keeps reading it;
- live (Qdrant, Chroma, pgvector…): one collection per workspace, embedding model and store settings,
  synced incrementally: only chunks whose text or payload changed are upserted and only chunks that are
  gone are deleted. ``store_sync`` remembers what was written, so a re-run after a kill upserts again
  what may not have landed (upserts are idempotent) and never duplicates.

The step also keeps ``chunk_payloads`` — the filterable metadata of every chunk — so that the keyword
index applies the same metadata filters as the vector store. Its keyword index
(:class:`~flightdeck.retrieval.keyword.KeywordIndex`) builds into the index version's folder (``bm25``), or
has a table that the step syncs the same way as a live store, its ``store_sync`` records under the table's
name (``postgres``: :mod:`flightdeck.retrieval.postgres_fts`), or needs nothing (``fts5``).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select

from flightdeck.errors import FlightdeckError
from flightdeck.pipeline.progress import Reporter
from flightdeck.pipeline.runner import StepResult, stable_hash
from flightdeck.retrieval.filters import normalise_payload
from flightdeck.retrieval.keyword import KeywordIndex, KeywordTable
from flightdeck.retrieval.stores.base import StoreLocation
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX, Workspace
from flightdeck.workspace.index_versions import IndexVersion, collection_name, record_index_version
from flightdeck.workspace.schema import chunk_payloads, chunks, documents, embeddings, store_sync

__all__ = ["IndexStep", "chunk_payload", "collection_name", "store_location"]

# Rows sent to a store per upsert call, and per committed store_sync batch.
UPSERT_BATCH = 512


def chunk_payload(doc: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """The filterable payload of a chunk: its document's metadata, then its own, then fixed fields."""
    merged = {**(doc.get("metadata") or {}), **(chunk.get("metadata") or {}),
              "document_id": doc["id"], "source_uri": doc["source_uri"], "title": doc["title"],
              "media_type": doc["media_type"], "heading": chunk["heading"]}
    return normalise_payload(merged)


@dataclass(frozen=True)
class _FolderArtifacts:
    """What the index version's folder was stored as: its index file's artifact and the hash of all its files
    (empty when the folder already existed and was not rebuilt)."""

    index: str = ""
    folder: str = ""


def store_location(ws: Workspace, versioned: bool, index_id: str, store: str, collection: str,
                   dim: int) -> StoreLocation:
    """Where an index version lives: its own folder (versioned stores) or the store's shared folder."""
    return StoreLocation(ws.store_folder(store, index_id if versioned else None), collection, dim)


class IndexStep:
    """Put every chunk's vector and payload into the vector store, then switch ``current_index``."""

    name = "index"

    def __init__(self, ws: Workspace, embedder: Any, store_factory: Any, store_name: str,
                 store_config: dict[str, Any], keyword_index: KeywordIndex) -> None:
        self.ws = ws
        self.embedder = embedder
        self.store_factory = store_factory
        self.store_name = store_name
        self.store_config = store_config
        self.keyword_index = keyword_index
        self._rows: list[dict[str, Any]] | None = None

    # what the index is made of ------------------------------------------------------------------
    def _chunk_rows(self) -> list[dict[str, Any]]:
        """Every chunk (sorted by id: the index's row order) with its text hash and payload."""
        with self.ws.engine.connect() as conn:
            docs = {r["id"]: dict(r) for r in conn.execute(
                select(documents.c.id, documents.c.source_uri, documents.c.title, documents.c.media_type,
                       documents.c.metadata)).mappings()}
            rows = []
            for r in conn.execute(select(chunks.c.id, chunks.c.document_id, chunks.c.text_hash, chunks.c.heading,
                                         chunks.c.metadata).order_by(chunks.c.id)).mappings():
                payload = chunk_payload(docs[r["document_id"]], dict(r))
                rows.append({"id": r["id"], "text_hash": r["text_hash"], "payload": payload,
                             "payload_hash": stable_hash(payload)})
        return rows

    def plan(self) -> tuple[str, str]:
        self._rows = self._chunk_rows()
        inputs = stable_hash([(r["id"], r["text_hash"], r["payload_hash"]) for r in self._rows])
        return inputs, self._config_hash()

    def _config_hash(self) -> str:
        # The same dict as before keyword indexes were providers, so that existing indexes are not rebuilt.
        keyword, described = self.keyword_index.name, self.keyword_index.describe()
        return stable_hash({"model": self.embedder.model_id, "store": self.store_name, **self.store_config,
                            "keyword_index": keyword, **({"keyword_store": described} if described else {})})

    # the run ------------------------------------------------------------------------------------
    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        rows = self._rows if self._rows is not None else self._chunk_rows()
        self._rows = None
        self._sync_payloads(rows)
        model_id = self.embedder.model_id
        dim = self.embedder.dimension
        inputs, config = stable_hash([(r["id"], r["text_hash"], r["payload_hash"]) for r in rows]), self._config_hash()
        index_id = stable_hash({"inputs": inputs, "config": config})
        store = self.store_factory()
        collection = collection_name(self.ws, model_id, self.store_name)
        counts: dict[str, Any]
        if getattr(store, "versioned", False):
            counts, artifacts = self._build_folder(store, rows, index_id, run_id, model_id, dim, reporter)
            collection_col = None
        else:
            counts = self._sync_collection(store, rows, collection, index_id, model_id, dim, reporter)
            built, artifacts = self._build_folder(None, rows, index_id, run_id, model_id, dim, reporter)
            counts.update(built)
            collection_col = collection
        table = self.keyword_index.live_table()
        if table is not None:
            counts.update(self._sync_keyword(table, rows, reporter))
        with self.ws.engine.begin() as conn:
            record_index_version(conn, IndexVersion(
                id=index_id, created_at=time.time(), run_id=run_id,
                dataset_version=self.ws.get_state(CURRENT_DATASET) or "", embedder=model_id, dim=dim,
                store=self.store_name, chunk_count=len(rows), index_artifact=artifacts.index,
                ids_artifact=artifacts.folder, collection=collection_col))
            self.ws.set_state(conn, CURRENT_INDEX, index_id)
        self._drop_old_folders(keep=index_id)
        return StepResult(index_id, {**counts, "vectors": len(rows), "index_version": index_id[:12]})

    def _vectors(self, text_hashes: list[str], model_id: str, dim: int) -> np.ndarray:
        """The cached vectors of these text hashes, in order (the embed step made them)."""
        found: dict[str, bytes] = {}
        with self.ws.engine.connect() as conn:
            for start in range(0, len(text_hashes), 900):
                batch = list(dict.fromkeys(text_hashes[start:start + 900]))
                found.update({r[0]: r[1] for r in conn.execute(
                    select(embeddings.c.text_hash, embeddings.c.vector)
                    .where(embeddings.c.model_id == model_id, embeddings.c.text_hash.in_(batch)))})
        missing = [h for h in text_hashes if h not in found]
        if missing:
            raise FlightdeckError(f"{len(missing)} chunks have no vector for {model_id} (first text hash: "
                                  f"{missing[0][:12]}); the embed step did not finish — run again")
        if not text_hashes:
            return np.zeros((0, dim), dtype=np.float32)
        return np.frombuffer(b"".join(found[h] for h in text_hashes), dtype="<f4").reshape(len(text_hashes), dim)

    def _sync_payloads(self, rows: list[dict[str, Any]]) -> None:
        with self.ws.engine.connect() as conn:
            have = {r[0]: r[1] for r in conn.execute(select(chunk_payloads.c.chunk_id, chunk_payloads.c.payload_hash))}
        changed = [r for r in rows if have.get(r["id"]) != r["payload_hash"]]
        for start in range(0, len(changed), 2000):
            batch = changed[start:start + 2000]
            with self.ws.engine.begin() as conn:
                conn.execute(delete(chunk_payloads).where(chunk_payloads.c.chunk_id.in_([r["id"] for r in batch])))
                conn.execute(insert(chunk_payloads), [{"chunk_id": r["id"], "payload": r["payload"],
                                                       "payload_hash": r["payload_hash"]} for r in batch])

    def _build_folder(self, store: Any | None, rows: list[dict[str, Any]], index_id: str, run_id: str,
                      model_id: str, dim: int, reporter: Reporter) -> tuple[dict[str, Any], _FolderArtifacts]:
        """The index version's own folder: the vectors of a versioned store (``store``; None for a live one)
        and the keyword index's files (BM25), built in a temporary folder, fsynced and renamed into place."""
        indexes = self.ws.root / "indexes"
        final = indexes / index_id
        if final.is_dir() and any(final.iterdir()):
            return {"built": 0}, _FolderArtifacts()
        tmp = indexes / f".tmp-{run_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        counts: dict[str, Any] = {}
        if store is not None:
            store.open(StoreLocation(tmp, index_id[:20], dim))
            matrix = self._vectors([r["text_hash"] for r in rows], model_id, dim)
            store.upsert([r["id"] for r in rows], matrix, [r["payload"] for r in rows])
            store.flush()
            counts["kind"] = getattr(store, "kind", "")
            store.close()
        counts.update(self.keyword_index.build(tmp, [r["id"] for r in rows], self._texts,
                                               [r["payload"] for r in rows]))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        file_hashes = {str(p.relative_to(tmp)): self.ws.artifacts.put_bytes(p.read_bytes()) for p in files}
        for p in files:
            with p.open("rb+") as fh:
                os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        index_file = getattr(store, "INDEX_FILE", "") if store is not None else ""
        return {**counts, "built": len(rows)}, _FolderArtifacts(file_hashes.get(index_file, ""),
                                                                stable_hash(file_hashes))

    def _texts(self) -> list[str]:
        """Every chunk's indexed text, in the index's row order (sorted by chunk id)."""
        with self.ws.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(chunks.c.indexed_text).order_by(chunks.c.id))]

    def _sync_collection(self, store: Any, rows: list[dict[str, Any]], collection: str, index_id: str,
                         model_id: str, dim: int, reporter: Reporter) -> dict[str, Any]:
        store.open(store_location(self.ws, False, index_id, self.store_name, collection, dim))
        try:
            upserted, deleted = self._sync_entries(
                store, rows, collection, reporter,
                lambda batch: store.upsert([r["id"] for r in batch],
                                           self._vectors([r["text_hash"] for r in batch], model_id, dim),
                                           [r["payload"] for r in batch]))
            store.flush()
        finally:
            store.close()
        return {"upserted": upserted, "deleted": deleted, "collection": collection}

    def _sync_keyword(self, index: KeywordTable, rows: list[dict[str, Any]], reporter: Reporter) -> dict[str, Any]:
        """Sync the keyword index's table (PostgreSQL): its chunks' indexed text and payloads."""

        def write(batch: list[dict[str, Any]]) -> None:
            ids = [r["id"] for r in batch]
            with self.ws.engine.connect() as conn:
                texts = dict(conn.execute(select(chunks.c.id, chunks.c.indexed_text).where(chunks.c.id.in_(ids))).all())
            index.upsert(ids, [texts[i] for i in ids], [r["payload"] for r in batch])

        try:
            upserted, deleted = self._sync_entries(index, rows, index.table, reporter, write)
        finally:
            index.close()
        return {"keyword_upserted": upserted, "keyword_deleted": deleted, "keyword_table": index.table}

    def _sync_entries(self, target: Any, rows: list[dict[str, Any]], collection: str, reporter: Reporter,
                      write: Any) -> tuple[int, int]:
        """Make ``target`` (a live store, or the keyword table) hold exactly ``rows``: delete the ids it has that
        are gone, and ``write`` the rows it lacks or that changed since ``store_sync`` recorded them; returns
        ``(upserted, deleted)``."""
        wanted = {r["id"]: stable_hash([r["text_hash"], r["payload_hash"]]) for r in rows}
        with self.ws.engine.connect() as conn:
            synced = {r[0]: r[1] for r in conn.execute(
                select(store_sync.c.chunk_id, store_sync.c.entry_hash).where(store_sync.c.collection == collection))}
        present = target.ids()
        stale = sorted(present - wanted.keys())
        todo = [r for r in rows if r["id"] not in present or synced.get(r["id"]) != wanted[r["id"]]]
        for start in range(0, len(stale), UPSERT_BATCH):
            batch = stale[start:start + UPSERT_BATCH]
            target.delete(batch)
            with self.ws.engine.begin() as conn:
                conn.execute(delete(store_sync).where(store_sync.c.collection == collection,
                                                      store_sync.c.chunk_id.in_(batch)))
        for start in range(0, len(todo), UPSERT_BATCH):
            batch = todo[start:start + UPSERT_BATCH]
            ids = [r["id"] for r in batch]
            write(batch)
            with self.ws.engine.begin() as conn:
                conn.execute(delete(store_sync).where(store_sync.c.collection == collection,
                                                      store_sync.c.chunk_id.in_(ids)))
                conn.execute(insert(store_sync), [{"collection": collection, "chunk_id": cid,
                                                   "entry_hash": wanted[cid]} for cid in ids])
            reporter.progress(self.name, min(start + UPSERT_BATCH, len(todo)), len(todo))
        # forget sync records of ids that are neither wanted nor present (e.g. dropped by hand)
        with self.ws.engine.begin() as conn:
            gone = list(set(synced) - wanted.keys())
            for start in range(0, len(gone), 900):
                conn.execute(delete(store_sync).where(store_sync.c.collection == collection,
                                                      store_sync.c.chunk_id.in_(gone[start:start + 900])))
        return len(todo), len(stale)

    def _drop_old_folders(self, keep: str) -> None:
        # Older index folders stay reproducible from their artifacts; keep the two newest for readers that
        # opened the previous one moments ago.
        indexes = self.ws.root / "indexes"
        folders = sorted((p for p in indexes.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for p in folders[2:]:
            if p.name != keep:
                shutil.rmtree(p, ignore_errors=True)
        for p in indexes.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
