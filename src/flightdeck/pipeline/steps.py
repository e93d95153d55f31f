"""The steps of the RAG path: ingest (scan, parse, clean, chunk), embed, index (:mod:`.index_step`).

The ingest step orchestrates phase 1, whose logic lives in :mod:`flightdeck.data`: the scan
(:mod:`~flightdeck.data.manifest`), document preparation (:mod:`~flightdeck.data.preparation`), duplicates and
the document writes (:mod:`~flightdeck.data.document_store`), splits (:mod:`~flightdeck.data.splits`) and the
failure limits (:mod:`~flightdeck.data.failures`).

Each write is a transaction that leaves the workspace consistent if the process dies right after it:
ingest replaces one document (row, chunks, keyword rows) at a time; embed commits one batch of vectors
at a time into a cache keyed by (model, text hash); index writes a new immutable index folder and then
switches the ``current_index`` pointer in one transaction. Re-running after a kill finishes the job and
produces the same result as an uninterrupted run.
"""

from __future__ import annotations

import time
from importlib.util import find_spec
from typing import Any

import numpy as np
from sqlalchemy import insert, select

from flightdeck.core import Reporter, StepResult, stable_hash
from flightdeck.data import document_store as store
from flightdeck.data.cleaning import strip_boilerplate
from flightdeck.data.documents import Document
from flightdeck.data.failures import failure_problem
from flightdeck.data.manifest import Manifest, ManifestEntry, SourceBinding, scan_sources
from flightdeck.data.parsers import parse
from flightdeck.data.preparation import (
    TEXT_ONLY,
    document_signature,
    learnt_boilerplate,
    prepare_document,
    with_language,
)
from flightdeck.data.splits import Splitter, record_splits
from flightdeck.data.tokenization import Tokenizer
from flightdeck.data.versioning.base import DatasetSnapshots
from flightdeck.errors import FlightdeckError
from flightdeck.pipeline.runner import StepFailedError
from flightdeck.spec.cleaning import CleaningSettings
from flightdeck.spec.models import FailureSettings
from flightdeck.workspace import CURRENT_INDEX, Workspace
from flightdeck.workspace.index_versions import get_index_version
from flightdeck.workspace.schema import chunks, embeddings

__all__ = ["SourceBinding", "IngestStep", "EmbedStep", "EMBED_COMMIT_ROWS"]

# Vectors are committed in groups of this many rows: a kill loses at most one group of work.
EMBED_COMMIT_ROWS = 128
# What a read, a parse or a chunker may raise for one bad document: that document fails, the run goes on.
_ITEM_ERRORS = (FlightdeckError, ValueError, UnicodeError, OSError)


class IngestStep:
    """Scan the sources; parse, clean and chunk new or changed documents; drop removed ones."""

    name = "ingest"

    def __init__(self, ws: Workspace, sources: list[SourceBinding], chunker: Any, tokenizer: Tokenizer,
                 pipeline_config: dict[str, Any], clean: bool = True, cleaning: CleaningSettings | None = None,
                 splitter: Splitter | None = None, failure_limits: FailureSettings | None = None,
                 snapshots: DatasetSnapshots | None = None) -> None:
        self.ws = ws
        self.sources = sources
        self.chunker = chunker
        self.tokenizer = tokenizer
        self.clean = clean
        # ``cleaning`` is data.cleaning; without it, cleaning is clean_text alone (no language, dedupe, PII).
        self.cleaning = (cleaning or TEXT_ONLY) if clean else None
        if self.cleaning is not None:  # changed cleaning settings must re-process every document
            pipeline_config = {**pipeline_config, "cleaning": self.cleaning.model_dump(mode="json")}
            if self.cleaning.dedupe == "near" and find_spec("datasketch") is not None:
                from flightdeck.data.dedupe import signature_scheme

                pipeline_config["minhash"] = signature_scheme()
        self.pipeline_hash = stable_hash(pipeline_config)
        # Splits are recorded per dataset version (data.splits); changing them re-runs the step, not the documents.
        self.splitter = splitter
        split_key = None if splitter is None else [splitter.name, splitter.config.model_dump(mode="json")]
        self.config_hash = self.pipeline_hash if split_key is None else stable_hash([self.pipeline_hash, split_key])
        # data.failures (max_count, max_share): a changed limit re-runs the step (to judge it again), never
        # re-reads a document.
        self.failure_limits = failure_limits
        limits = None if failure_limits is None else failure_limits.model_dump(mode="json")
        if limits is not None and any(v is not None for v in limits.values()):
            self.config_hash = stable_hash([self.config_hash, limits])
        # What versioning providers (dvc, lakefs) recorded of the raw data before this step ran; written into
        # the dataset version's manifest (see flightdeck.data.versioning.base).
        self.snapshots = snapshots or DatasetSnapshots()
        self._manifest: Manifest | None = None
        self._scan_seconds = 0.0

    def manifest(self) -> Manifest:
        if self._manifest is None:
            t0 = time.perf_counter()
            self._manifest = scan_sources(self.sources, self.ws)
            self._scan_seconds = time.perf_counter() - t0
        return self._manifest

    def plan(self) -> tuple[str, str]:
        m = self.manifest()
        return stable_hash([m.digest, m.failures]), self.config_hash

    def _document_pipeline_hash(self, m: Manifest, doc_id: str) -> str:
        """The pipeline hash of one document: the step's, plus its source's settings (``Manifest.settings``).

        A document its source hands no settings keeps the step's hash as it is.
        """
        settings = m.settings.get(doc_id)
        return self.pipeline_hash if settings is None else stable_hash([self.pipeline_hash, settings])

    def _todo(self, m: Manifest, existing: dict[str, tuple[str, str]], signed: dict[str, str],
              dropped: dict[str, dict[str, Any]]) -> tuple[list[ManifestEntry], list[str]]:
        """The entries to read, and the dropped duplicates that stay dropped without being read again."""
        hashes = {e[0]: e[1] for e in m.entries}

        def current(doc_id: str) -> bool:
            chash = hashes.get(doc_id)
            return (existing.get(doc_id) == (chash, self._document_pipeline_hash(m, doc_id))
                    and signed.get(doc_id) == chash)

        changed = {e[0] for e in m.entries if not current(e[0])}
        todo, still_dropped = [], []
        for e in m.entries:
            if e[0] not in changed:
                continue
            d = dropped.get(e[0])
            # A duplicate is read again only when it, its original or the pipeline changed.
            if d and (d["content_hash"], d["pipeline_hash"]) == (e[1], self._document_pipeline_hash(m, e[0])) \
                    and d["duplicate_of"] not in changed and current(d["duplicate_of"]):
                still_dropped.append(e[0])
                continue
            todo.append(e)
        return todo, still_dropped

    def _clean_batch(self, prepared: list[tuple[ManifestEntry, Document]], m: Manifest,
                     reporter: Reporter) -> list[tuple[ManifestEntry, Document]]:
        """Cross-document cleaning: boilerplate lines per source, then each document's language."""
        c = self.cleaning
        if c is None:
            return prepared
        if c.strip_boilerplate:
            per_source: dict[str, list[int]] = {}
            for i, (entry, _) in enumerate(prepared):
                per_source.setdefault(m.items[entry[0]][0].label, []).append(i)
            sizes = m.source_sizes()
            for label, idx in per_source.items():
                known = store.known_boilerplate(self.ws, label)
                keys = learnt_boilerplate([prepared[i][1] for i in idx], sizes[label], known, c)
                if keys != known:
                    store.save_boilerplate(self.ws, label, keys)
                if keys:
                    reporter.event("boilerplate", source=label, lines=len(keys))
                for i in idx:
                    prepared[i] = (prepared[i][0], strip_boilerplate(prepared[i][1], keys))
        if c.language:
            prepared = [(e, with_language(d)) for e, d in prepared]
        return prepared

    def _check_cleaning_modules(self) -> None:
        """Before anything is read: a run must not fail half-way for a missing library."""
        if self.cleaning is None:
            return
        from flightdeck.registry.lookup import missing_dependency
        from flightdeck.spec.cleaning import missing_cleaning_modules

        missing = missing_cleaning_modules(self.cleaning)
        if missing:
            purposes = "; ".join(f"data.cleaning.{setting}: {purpose}" for setting, _, purpose in missing)
            raise missing_dependency(purposes, "cleaning", ", ".join(module for _, module, _ in missing))

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        m = self.manifest()
        # Wall seconds per stage, reported in the counts (benchmarks/ingest_stages.py reads them). The scan
        # usually happened in plan(), before run(); "finish" is removals, the dataset version and splits.
        seconds = dict.fromkeys(("scan", "read_parse", "clean", "chunk", "write", "finish"), 0.0)
        seconds["scan"] = self._scan_seconds
        clock = time.perf_counter
        self._check_cleaning_modules()
        for failure in m.failures:
            reporter.event("item_failed", **failure)
        existing = store.stored_documents(self.ws)
        signed = store.signed_documents(self.ws)
        dropped = store.dropped_duplicates(self.ws)
        todo, still_dropped = self._todo(m, existing, signed, dropped)
        failed: list[dict[str, str]] = list(m.failures)
        failed_ids: set[str] = set()
        warned: list[dict[str, str]] = []

        def fail(doc_id: str, exc: Exception) -> None:
            failed.append({"uri": doc_id, "reason": str(exc)})
            failed_ids.add(doc_id)
            reporter.event("item_failed", uri=doc_id, reason=str(exc))

        def warn(uri: str, message: str) -> None:
            warned.append({"uri": uri, "message": message})
            reporter.event("item_warning", uri=uri, message=message)

        for w in m.warnings:
            warn(w["uri"], w["message"])

        # 1. Read, parse and clean each new or changed document. They stay in memory until written, because
        #    boilerplate lines and duplicates are decided across documents.
        total = len(todo)
        prepared: list[tuple[ManifestEntry, Document]] = []
        for n, entry in enumerate(todo, 1):
            binding, item = m.items[entry[0]]
            t0 = clock()
            try:
                doc = parse(item, binding.source.read(item))
                for message in doc.warnings:  # what the parser could not do: said, never silently lost
                    warn(entry[0], message)
                t1 = clock()
                seconds["read_parse"] += t1 - t0
                prepared.append((entry, doc if self.cleaning is None else prepare_document(doc, self.cleaning)))
                seconds["clean"] += clock() - t1
            except _ITEM_ERRORS as exc:
                seconds["read_parse"] += clock() - t0
                fail(entry[0], exc)
            reporter.progress("parse", n, total)
        t0 = clock()
        prepared = self._clean_batch(prepared, m, reporter)
        # 2. Duplicates: this run's documents against each other and against the stored ones; by id, the
        #    first wins. A stored document can lose its place to a new one with a smaller id.
        near = self.cleaning is not None and self.cleaning.dedupe == "near"
        signatures = {e[0]: document_signature(e[0], d, near) for e, d in prepared}
        present = {e[0] for e in m.entries}
        stored_ids = {d for d in existing if d in present and d not in signatures and signed.get(d) == existing[d][0]}
        mode = self.cleaning.dedupe if self.cleaning is not None else "off"
        threshold = self.cleaning.near_threshold if self.cleaning is not None else 0.9
        duplicates = store.dataset_duplicates(self.ws, signatures, stored_ids, mode, threshold)
        dup_ids = {d.uri for d in duplicates}
        for dup in duplicates:
            reporter.event("duplicate_dropped", **dup.to_dict())
        seconds["clean"] += clock() - t0
        # 3. Chunk and write the rest, one document per transaction.
        written_chunks = 0
        records: dict[str, str] = {}  # document id -> digest of its record, for the dataset version
        kept = [(e, d) for e, d in prepared if e[0] not in dup_ids]
        for n, ((doc_id, chash, media_type, source_uri), doc) in enumerate(kept, 1):
            t0 = clock()
            try:
                doc_chunks = self.chunker.chunk(doc, self.tokenizer)
            except _ITEM_ERRORS as exc:
                seconds["chunk"] += clock() - t0
                fail(doc_id, exc)
                continue
            t1 = clock()
            seconds["chunk"] += t1 - t0
            records[doc_id] = store.replace_document(self.ws, run_id, doc_id, source_uri, chash,
                                                     self._document_pipeline_hash(m, doc_id), media_type, doc,
                                                     doc_chunks)
            language = doc.metadata.get("language") if self.cleaning and self.cleaning.language else None
            store.write_signature(self.ws, doc_id, chash, signatures[doc_id],
                                  None if language is None else str(language))
            seconds["write"] += clock() - t1
            written_chunks += len(doc_chunks)
            reporter.progress(self.name, n, len(kept))
        t0 = clock()
        # An item the scan could not read this time (a page that answered 500) keeps its stored version:
        # a transient failure must not look like a deletion.
        removed = [d for d in existing if d not in present and d not in failed_ids and d not in m.unreadable]
        for doc_id in removed + sorted(dup_ids & set(existing)):
            store.remove_document(self.ws, doc_id)
        # 4. Remember the dropped duplicates; keep document_signatures in step with documents.
        hashes = {e[0]: e[1] for e in m.entries}
        now_dropped = {d: dropped[d] for d in still_dropped}
        now_dropped.update({d.uri: {**d.to_dict(), "content_hash": hashes[d.uri],
                                    "pipeline_hash": self._document_pipeline_hash(m, d.uri)} for d in duplicates})
        store.save_dropped_duplicates(self.ws, now_dropped)
        # 5. The dataset version lists the documents the workspace now holds (what was ingested; a failed item
        #    keeps its previous version), each with its record, and what versioning providers recorded.
        from flightdeck.governance.versions import record_dataset_version

        dataset_id = record_dataset_version(self.ws, run_id, records, self.snapshots.take())
        split_counts = record_splits(self.ws, dataset_id, self.splitter, reporter)
        chunk_ids = store.chunk_ids(self.ws)
        seconds["finish"] = clock() - t0
        counts: dict[str, Any] = {
            "documents": len(m.entries), "parsed": total - len(failed_ids),
            "unchanged": len(m.entries) - total, "removed": len(removed), "failed": len(failed),
            "duplicates_dropped": len(now_dropped), "chunks_written": written_chunks, "chunks": len(chunk_ids),
            "dataset_version": dataset_id[:12]}
        if split_counts is not None:
            counts["splits"] = split_counts
        if now_dropped:
            counts["duplicates"] = [{k: v[k] for k in ("uri", "duplicate_of", "kind", "similarity")}
                                    for _, v in sorted(now_dropped.items())]
        if failed:
            counts["failures"] = failed
        if warned:
            counts["warnings"] = warned
        counts["seconds"] = {k: round(v, 4) for k, v in seconds.items()}
        # Fail the step (after everything that succeeded was committed) when the dataset holds no document or
        # the failures pass data.failures. The documents ingested stay (in the version just recorded); only
        # embed and index do not run, so the index is not replaced by one built from a broken corpus.
        seen = len(m.entries) + len(m.failures)  # items the sources listed, those they could not deliver too
        problem = failure_problem(store.document_count(self.ws), seen, failed, self.failure_limits)
        if problem:
            raise StepFailedError(problem, counts)
        return StepResult(stable_hash(chunk_ids), counts)


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
        # Wall seconds per stage, reported in the counts: the model load is kept apart from the encoding.
        seconds = dict.fromkeys(("read", "model_load", "encode", "write"), 0.0)
        clock = time.perf_counter
        t0 = clock()
        with self.ws.engine.connect() as conn:
            have = {r[0] for r in conn.execute(select(embeddings.c.text_hash)
                                               .where(embeddings.c.model_id == model_id))}
            texts: dict[str, str] = {}
            for text_hash, indexed_text in conn.execute(select(chunks.c.text_hash, chunks.c.indexed_text)):
                if text_hash not in have:
                    texts.setdefault(text_hash, indexed_text)
        previous = self._previous_model()
        if previous and previous != model_id:
            # say so: every chunk is embedded again (vectors of one model never mix with another's)
            reporter.event("model_changed", step=self.name, previous=previous, current=model_id,
                           texts=len(texts))
        todo = sorted(texts.items())
        # Longest texts first within the run keeps padding low inside each encoder batch.
        todo.sort(key=lambda kv: len(kv[1]), reverse=True)
        total, done = len(todo), 0
        seconds["read"] = clock() - t0
        warm_up = getattr(self.embedder, "warm_up", None)
        if total and callable(warm_up):  # nothing to embed: the model is not loaded at all
            t0 = clock()
            warm_up()
            seconds["model_load"] = clock() - t0
        reporter.progress(self.name, 0, total)
        for start in range(0, total, EMBED_COMMIT_ROWS):
            batch = todo[start:start + EMBED_COMMIT_ROWS]
            t0 = clock()
            vectors = self.embedder.embed_documents([t for _, t in batch])
            t1 = clock()
            with self.ws.engine.begin() as conn:
                conn.execute(insert(embeddings).prefix_with("OR IGNORE"), [
                    {"model_id": model_id, "text_hash": h, "dim": int(v.shape[0]),
                     "vector": np.asarray(v, dtype="<f4").tobytes()} for (h, _), v in zip(batch, vectors, strict=True)])
            seconds["encode"] += t1 - t0
            seconds["write"] += clock() - t1
            done += len(batch)
            reporter.progress(self.name, done, total)
        t0 = clock()
        hashes = sorted({h for _, h in _text_hashes(self.ws)})
        seconds["read"] += clock() - t0
        counts: dict[str, Any] = {"embedded": total, "cached": len(hashes) - total if len(hashes) >= total else 0}
        if previous and previous != model_id:
            counts["model_changed"] = f"{previous} -> {model_id}"
        counts["seconds"] = {k: round(v, 4) for k, v in seconds.items()}
        return StepResult(stable_hash([model_id, hashes]), counts)

    def _previous_model(self) -> str | None:
        """The embedding model of the current index, if there is one."""
        version = self.ws.get_state(CURRENT_INDEX)
        if version is None:
            return None
        recorded = get_index_version(self.ws, version)
        return None if recorded is None else recorded.embedder
