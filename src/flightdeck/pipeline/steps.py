"""The steps of the RAG path: ingest (scan, parse, clean, chunk), embed, index.

Each write is a transaction that leaves the workspace consistent if the process dies right after it:
ingest replaces one document (row, chunks, keyword rows) at a time; embed commits one batch of vectors
at a time into a cache keyed by (model, text hash); index writes a new immutable index folder and then
switches the ``current_index`` pointer in one transaction. Re-running after a kill finishes the job and
produces the same result as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select

from flightdeck.data.cleaning import clean_text
from flightdeck.data.documents import Document, SourceItem
from flightdeck.data.parsers import parse
from flightdeck.data.sources.base import Source
from flightdeck.errors import FlightdeckError
from flightdeck.pipeline.progress import Reporter
from flightdeck.pipeline.runner import StepResult, stable_hash
from flightdeck.retrieval.keyword import KeywordIndex
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import chunks, dataset_versions, documents, embeddings, index_versions

__all__ = ["SourceBinding", "IngestStep", "EmbedStep", "IndexStep", "EMBED_COMMIT_ROWS"]

# Vectors are committed in groups of this many rows: a kill loses at most one group of work.
EMBED_COMMIT_ROWS = 128


@dataclass
class SourceBinding:
    """A configured source and how its items are named in the workspace."""

    label: str  # prefix of document ids, e.g. "corpus" -> "corpus/tutorial/venv.html"
    base_uri: str  # file URI of the source root, for citations
    source: Source

    def document_id(self, item: SourceItem) -> str:
        return f"{self.label}/{item.uri}"

    def source_uri(self, item: SourceItem) -> str:
        """Where a citation points: the source's own URI for the item when it has one."""
        own = getattr(self.source, "source_uri", None)
        if callable(own):
            return str(own(item))
        if self.base_uri.endswith(".jsonl"):
            return f"{self.base_uri}#{item.uri.split('#', 1)[-1]}" if "#" in item.uri else self.base_uri
        return f"{self.base_uri.rstrip('/')}/{item.uri}"


@dataclass
class Manifest:
    """What the sources hold now: (document id, content hash, media type, source uri), sorted."""

    entries: list[tuple[str, str, str, str]]
    items: dict[str, tuple[SourceBinding, SourceItem]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return stable_hash(self.entries)


class IngestStep:
    """Scan the sources; parse, clean and chunk new or changed documents; drop removed ones."""

    name = "ingest"

    def __init__(self, ws: Workspace, sources: list[SourceBinding], chunker: Any, tokenizer: Any,
                 pipeline_config: dict[str, Any], clean: bool = True) -> None:
        self.ws = ws
        self.sources = sources
        self.chunker = chunker
        self.tokenizer = tokenizer
        self.clean = clean
        self.pipeline_hash = stable_hash(pipeline_config)
        self._manifest: Manifest | None = None

    def manifest(self) -> Manifest:
        if self._manifest is None:
            m = Manifest([])
            for binding in self.sources:
                for item in binding.source.scan():
                    doc_id = binding.document_id(item)
                    m.entries.append((doc_id, item.content_hash, item.media_type, binding.source_uri(item)))
                    m.items[doc_id] = (binding, item)
                for failure in getattr(binding.source, "failures", []):
                    m.failures.append({"uri": f"{binding.label}/{failure.uri}", "reason": failure.reason})
            m.entries.sort()
            self._manifest = m
        return self._manifest

    def plan(self) -> tuple[str, str]:
        m = self.manifest()
        return stable_hash([m.digest, m.failures]), self.pipeline_hash

    def _prepare(self, doc: Document) -> Document:
        if not self.clean:
            return doc
        sections = tuple(replace(s, text=clean_text(s.text)) for s in doc.sections)
        return replace(doc, title=clean_text(doc.title), sections=sections)

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        m = self.manifest()
        for failure in m.failures:
            reporter.event("item_failed", **failure)
        with self.ws.engine.connect() as conn:
            existing = {r.id: (r.content_hash, r.pipeline_hash) for r in
                        conn.execute(select(documents.c.id, documents.c.content_hash, documents.c.pipeline_hash))}
        todo = [e for e in m.entries if existing.get(e[0]) != (e[1], self.pipeline_hash)]
        failed: list[dict[str, str]] = list(m.failures)
        failed_ids: set[str] = set()
        written_chunks = 0
        total = len(todo)
        for n, (doc_id, chash, media_type, source_uri) in enumerate(todo, 1):
            binding, item = m.items[doc_id]
            try:
                doc = self._prepare(parse(item, binding.source.read(item)))
                doc_chunks = self.chunker.chunk(doc, self.tokenizer)
            except (FlightdeckError, ValueError, UnicodeError, OSError) as exc:
                failed.append({"uri": doc_id, "reason": str(exc)})
                failed_ids.add(doc_id)
                reporter.event("item_failed", uri=doc_id, reason=str(exc))
                continue
            self._replace_document(run_id, doc_id, source_uri, chash, media_type, doc, doc_chunks)
            written_chunks += len(doc_chunks)
            reporter.progress(self.name, n, total)
        present = {e[0] for e in m.entries}
        removed = [d for d in existing if d not in present and d not in failed_ids]
        for doc_id in removed:
            self._remove_document(doc_id)
        dataset_id = self._record_dataset_version(run_id, m)
        with self.ws.engine.connect() as conn:
            chunk_ids = [r[0] for r in conn.execute(select(chunks.c.id).order_by(chunks.c.id))]
        counts = {"documents": len(m.entries), "parsed": total - len(failed_ids), "unchanged":
                  len(m.entries) - total, "removed": len(removed), "failed": len(failed),
                  "chunks_written": written_chunks, "chunks": len(chunk_ids), "dataset_version": dataset_id[:12]}
        if failed:
            counts["failures"] = failed
        return StepResult(stable_hash(chunk_ids), counts)

    def _replace_document(self, run_id: str, doc_id: str, source_uri: str, chash: str, media_type: str,
                          doc: Document, doc_chunks: list[Any]) -> None:
        with self.ws.engine.begin() as conn:
            old = [r[0] for r in conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id))]
            KeywordIndex.delete(conn, old)
            conn.execute(delete(chunks).where(chunks.c.document_id == doc_id))
            conn.execute(delete(documents).where(documents.c.id == doc_id))
            conn.execute(insert(documents).values(
                id=doc_id, source_uri=source_uri, content_hash=chash, pipeline_hash=self.pipeline_hash,
                media_type=media_type, title=doc.title, metadata=doc.metadata, chunk_count=len(doc_chunks),
                run_id=run_id))
            rows = []
            seen: set[str] = set()
            for c in doc_chunks:
                if c.id in seen:  # identical text at the same position cannot happen; guard anyway
                    continue
                seen.add(c.id)
                rows.append({"id": c.id, "document_id": doc_id, "ordinal": c.ordinal, "text": c.text,
                             "indexed_text": c.indexed_text, "heading": " > ".join(c.heading_path),
                             "token_count": c.token_count, "text_hash": c.text_hash, "metadata": c.metadata})
            if rows:
                conn.execute(insert(chunks), rows)
                KeywordIndex.add(conn, [(r["id"], r["indexed_text"]) for r in rows])

    def _remove_document(self, doc_id: str) -> None:
        with self.ws.engine.begin() as conn:
            old = [r[0] for r in conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id))]
            KeywordIndex.delete(conn, old)
            conn.execute(delete(chunks).where(chunks.c.document_id == doc_id))
            conn.execute(delete(documents).where(documents.c.id == doc_id))

    def _record_dataset_version(self, run_id: str, m: Manifest) -> str:
        manifest = json.dumps({"documents": m.entries}, sort_keys=True).encode()
        digest = self.ws.artifacts.put_bytes(manifest)
        with self.ws.engine.begin() as conn:
            if conn.execute(select(dataset_versions.c.id).where(dataset_versions.c.id == digest)).first() is None:
                conn.execute(insert(dataset_versions).values(id=digest, created_at=time.time(), run_id=run_id,
                                                             manifest_artifact=digest,
                                                             document_count=len(m.entries)))
            self.ws.set_state(conn, "current_dataset", digest)
        return digest


def _text_hashes(ws: Workspace) -> list[tuple[str, str]]:
    """``(chunk id, text hash)`` of every chunk, sorted by chunk id (the index's row order)."""
    with ws.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(select(chunks.c.id, chunks.c.text_hash).order_by(chunks.c.id))]


class EmbedStep:
    """Embed every chunk text that has no vector for this model yet; commit vectors batch by batch."""

    name = "embed"

    def __init__(self, ws: Workspace, embedder: Any) -> None:
        self.ws = ws
        self.embedder = embedder

    def plan(self) -> tuple[str, str]:
        hashes = sorted({h for _, h in _text_hashes(self.ws)})
        return stable_hash(hashes), stable_hash({"model": self.embedder.model_id})

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        model_id = self.embedder.model_id
        with self.ws.engine.connect() as conn:
            have = {r[0] for r in conn.execute(select(embeddings.c.text_hash)
                                               .where(embeddings.c.model_id == model_id))}
            texts: dict[str, str] = {}
            for text_hash, indexed_text in conn.execute(select(chunks.c.text_hash, chunks.c.indexed_text)):
                if text_hash not in have:
                    texts.setdefault(text_hash, indexed_text)
        todo = sorted(texts.items())
        # Longest texts first within the run keeps padding low inside each encoder batch.
        todo.sort(key=lambda kv: len(kv[1]), reverse=True)
        total, done = len(todo), 0
        reporter.progress(self.name, 0, total)
        for start in range(0, total, EMBED_COMMIT_ROWS):
            batch = todo[start:start + EMBED_COMMIT_ROWS]
            vectors = self.embedder.embed_documents([t for _, t in batch])
            with self.ws.engine.begin() as conn:
                conn.execute(insert(embeddings).prefix_with("OR IGNORE"), [
                    {"model_id": model_id, "text_hash": h, "dim": int(v.shape[0]),
                     "vector": np.asarray(v, dtype="<f4").tobytes()} for (h, _), v in zip(batch, vectors, strict=True)])
            done += len(batch)
            reporter.progress(self.name, done, total)
        hashes = sorted({h for _, h in _text_hashes(self.ws)})
        return StepResult(stable_hash([model_id, hashes]), {"embedded": total, "cached": len(hashes) - total
                                                           if len(hashes) >= total else 0})


class IndexStep:
    """Build the vector index from cached vectors into a new folder, then switch ``current_index``."""

    name = "index"

    def __init__(self, ws: Workspace, embedder: Any, store_factory: Any, store_name: str,
                 store_config: dict[str, Any]) -> None:
        self.ws = ws
        self.embedder = embedder
        self.store_factory = store_factory
        self.store_name = store_name
        self.store_config = store_config

    def plan(self) -> tuple[str, str]:
        return (stable_hash(_text_hashes(self.ws)),
                stable_hash({"model": self.embedder.model_id, "store": self.store_name, **self.store_config}))

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        model_id = self.embedder.model_id
        pairs = _text_hashes(self.ws)
        with self.ws.engine.connect() as conn:
            vecs = {r[0]: r[1] for r in conn.execute(select(embeddings.c.text_hash, embeddings.c.vector)
                                                     .where(embeddings.c.model_id == model_id))}
        missing = [cid for cid, h in pairs if h not in vecs]
        if missing:
            raise FlightdeckError(f"{len(missing)} chunks have no vector for {model_id} (first: {missing[0]});"
                                  " the embed step did not finish — run again")
        dim = self.embedder.dimension
        matrix = np.frombuffer(b"".join(vecs[h] for _, h in pairs), dtype="<f4").reshape(len(pairs), dim) \
            if pairs else np.zeros((0, dim), dtype=np.float32)
        store = self.store_factory()
        store.build([cid for cid, _ in pairs], matrix)
        indexes = self.ws.root / "indexes"
        tmp = indexes / f".tmp-{run_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        store.save(tmp)
        file_hashes = {p.name: self.ws.artifacts.put_bytes(p.read_bytes()) for p in sorted(tmp.iterdir())}
        index_id = stable_hash({"files": file_hashes, "model": model_id, "store": self.store_name})
        final = indexes / index_id
        if final.exists():
            shutil.rmtree(tmp)
        else:
            for p in tmp.iterdir():
                with p.open("rb+") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        with self.ws.engine.begin() as conn:
            if conn.execute(select(index_versions.c.id).where(index_versions.c.id == index_id)).first() is None:
                conn.execute(insert(index_versions).values(
                    id=index_id, created_at=time.time(), run_id=run_id,
                    dataset_version=self.ws.get_state("current_dataset") or "", embedder=model_id, dim=dim,
                    store=self.store_name, chunk_count=len(pairs),
                    index_artifact=next(iter(file_hashes.values()), ""),
                    ids_artifact=stable_hash(file_hashes)))
            self.ws.set_state(conn, "current_index", index_id)
        self._drop_old_folders(keep=index_id)
        return StepResult(index_id, {"vectors": len(pairs), "index_version": index_id[:12]})

    def _drop_old_folders(self, keep: str) -> None:
        # Older index folders stay reproducible from their artifacts; keep the two newest for readers that
        # opened the previous one moments ago.
        folders = sorted((p for p in (self.ws.root / "indexes").iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for p in folders[2:]:
            if p.name != keep:
                shutil.rmtree(p, ignore_errors=True)
        for p in (self.ws.root / "indexes").glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
