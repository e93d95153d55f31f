"""The steps of the RAG path: ingest (scan, parse, clean, chunk), embed, index.

Each write is a transaction that leaves the workspace consistent if the process dies right after it:
ingest replaces one document (row, chunks, keyword rows) at a time; embed commits one batch of vectors
at a time into a cache keyed by (model, text hash); index writes a new immutable index folder and then
switches the ``current_index`` pointer in one transaction. Re-running after a kill finishes the job and
produces the same result as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select

from flightdeck.data.cleaning import CleaningSettings, boilerplate_keys, clean_text, strip_boilerplate
from flightdeck.data.documents import Document, SourceItem
from flightdeck.data.parsers import parse
from flightdeck.data.sources.base import Source
from flightdeck.errors import FlightdeckError
from flightdeck.pipeline.progress import Reporter
from flightdeck.pipeline.runner import StepFailedError, StepResult, stable_hash
from flightdeck.retrieval.keyword import Fts5Index
from flightdeck.workspace import CURRENT_INDEX, Workspace
from flightdeck.workspace.schema import (
    chunks,
    dataset_splits,
    document_signatures,
    documents,
    embeddings,
    index_versions,
)

__all__ = ["SourceBinding", "IngestStep", "EmbedStep", "EMBED_COMMIT_ROWS"]

# Vectors are committed in groups of this many rows: a kill loses at most one group of work.
EMBED_COMMIT_ROWS = 128
# Cleaning when the caller gives no data.cleaning settings: normalisation only.
_TEXT_ONLY = CleaningSettings(language=False, dedupe="off", strip_boilerplate=False)
# Workspace state: the dropped duplicates (so an unchanged duplicate is not read again every run) and the
# boilerplate lines learnt per source (line hashes, no text).
_DUPLICATES_STATE = "ingest/duplicates"
_BOILERPLATE_STATE = "ingest/boilerplate/"
# What a source learnt from the bodies it read to list its items (its ``scan_cache``), per source.
_SCAN_CACHE_STATE = "ingest/scan_cache/"


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
    """What the sources hold now: (document id, content hash, media type, source uri), sorted.

    ``settings`` maps a document id to the hash of what its source hands the parser besides the bytes: the
    item's metadata, which holds the source's parser settings (OCR mode, page and zip limits, record field
    names). It is part of the document's pipeline hash, so changing a source's settings re-processes that
    source's documents, and only those its settings reach.
    """

    entries: list[tuple[str, str, str, str]]
    items: dict[str, tuple[SourceBinding, SourceItem]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    # items the sources delivered in a degraded way ({"uri", "message"}): reported, not part of the digest
    warnings: list[dict[str, str]] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)  # failed this scan but not gone: keep what is stored
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return stable_hash([self.entries, sorted(self.settings.items())])


class IngestStep:
    """Scan the sources; parse, clean and chunk new or changed documents; drop removed ones."""

    name = "ingest"

    def __init__(self, ws: Workspace, sources: list[SourceBinding], chunker: Any, tokenizer: Any,
                 pipeline_config: dict[str, Any], clean: bool = True, cleaning: CleaningSettings | None = None,
                 splitter: Any = None, failure_limits: Any = None) -> None:
        self.ws = ws
        self.sources = sources
        self.chunker = chunker
        self.tokenizer = tokenizer
        self.clean = clean
        # ``cleaning`` is data.cleaning; without it, cleaning is clean_text alone (no language, dedupe, PII).
        self.cleaning = (cleaning or _TEXT_ONLY) if clean else None
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
        self._manifest: Manifest | None = None
        self._scan_seconds = 0.0

    def manifest(self) -> Manifest:
        if self._manifest is None:
            t0 = time.perf_counter()
            m = Manifest([])
            for binding in self.sources:
                cache_key = _SCAN_CACHE_STATE + binding.label
                cached = self.ws.get_state(cache_key) if hasattr(binding.source, "scan_cache") else None
                if cached is not None:
                    binding.source.scan_cache = json.loads(cached)
                for item in binding.source.scan():
                    doc_id = binding.document_id(item)
                    m.entries.append((doc_id, item.content_hash, item.media_type, binding.source_uri(item)))
                    m.items[doc_id] = (binding, item)
                    if item.metadata:
                        m.settings[doc_id] = stable_hash(item.metadata)
                for failure in getattr(binding.source, "failures", []):
                    m.failures.append({"uri": f"{binding.label}/{failure.uri}", "reason": failure.reason})
                    if not getattr(failure, "gone", False):
                        m.unreadable.add(f"{binding.label}/{failure.uri}")
                for warning in getattr(binding.source, "warnings", None) or []:
                    m.warnings.append({"uri": f"{binding.label}/{warning.uri}", "message": warning.message})
                if hasattr(binding.source, "scan_cache"):
                    # Saved now, not with the documents: it only says what the source's bytes held, true
                    # whatever this run does next, and a skipped step must not lose it.
                    fresh = json.dumps(binding.source.scan_cache, sort_keys=True)
                    if fresh != (cached or "{}"):
                        with self.ws.engine.begin() as conn:
                            self.ws.set_state(conn, cache_key, fresh)
            m.entries.sort()
            self._manifest = m
            self._scan_seconds = time.perf_counter() - t0
        return self._manifest

    def plan(self) -> tuple[str, str]:
        m = self.manifest()
        return stable_hash([m.digest, m.failures]), self.config_hash

    def _prepare(self, doc: Document) -> Document:
        """Per-document cleaning: Unicode/whitespace normalisation, then PII redaction when asked.

        Redaction happens here, before chunking, so that no store (chunks, keyword index, embeddings,
        document records) ever holds the original values; metadata strings are redacted too.
        """
        if self.cleaning is None:
            return doc
        sections = tuple(replace(s, text=clean_text(s.text)) for s in doc.sections)
        doc = replace(doc, title=clean_text(doc.title), sections=sections)
        if self.cleaning.pii == "redact":
            from flightdeck.data.pii import redact_pii, redact_value

            types = self.cleaning.pii_types
            doc = replace(doc, title=redact_pii(doc.title, types), metadata=redact_value(doc.metadata, types),
                          sections=tuple(replace(s, text=redact_pii(s.text, types),
                                                 heading_path=tuple(redact_pii(h, types) for h in s.heading_path))
                                         for s in doc.sections))
        return doc

    def _document_pipeline_hash(self, m: Manifest, doc_id: str) -> str:
        """The pipeline hash of one document: the step's, plus its source's settings (``Manifest.settings``).

        A document its source hands no settings keeps the step's hash as it is.
        """
        settings = m.settings.get(doc_id)
        return self.pipeline_hash if settings is None else stable_hash([self.pipeline_hash, settings])

    def _todo(self, m: Manifest, existing: dict[str, tuple[str, str]], signed: dict[str, str],
              dropped: dict[str, dict[str, Any]]) -> tuple[list[tuple[str, str, str, str]], list[str]]:
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

    def _clean_batch(self, prepared: list[tuple[tuple[str, str, str, str], Document]], m: Manifest,
                     reporter: Reporter) -> list[tuple[tuple[str, str, str, str], Document]]:
        """Cross-document cleaning: boilerplate lines per source, then each document's language."""
        c = self.cleaning
        if c is None:
            return prepared
        if c.strip_boilerplate:
            per_source: dict[str, list[int]] = {}
            for i, (entry, _) in enumerate(prepared):
                per_source.setdefault(m.items[entry[0]][0].label, []).append(i)
            sizes: dict[str, int] = {}
            for binding, _ in m.items.values():
                sizes[binding.label] = sizes.get(binding.label, 0) + 1
            for label, idx in per_source.items():
                found = boilerplate_keys((prepared[i][1] for i in idx), sizes[label],
                                         c.boilerplate_min_documents, c.boilerplate_share)
                # Lines learnt from a full read of the source replace what was known; an incremental run
                # (a few documents) can only add, and documents re-read later still lose the known lines.
                state_key = _BOILERPLATE_STATE + label
                known = set(json.loads(self.ws.get_state(state_key) or "[]"))
                keys = found if len(idx) == sizes[label] else known | found
                if keys != known:
                    with self.ws.engine.begin() as conn:
                        self.ws.set_state(conn, state_key, json.dumps(sorted(keys)))
                if keys:
                    reporter.event("boilerplate", source=label, lines=len(keys))
                for i in idx:
                    prepared[i] = (prepared[i][0], strip_boilerplate(prepared[i][1], keys))
        if c.language:
            from flightdeck.data.language import detect_language

            # A language the source states (a record field) is kept; detection fills in the rest.
            prepared = [(e, d if d.metadata.get("language") else
                         replace(d, metadata={**d.metadata, "language": detect_language(d.text)}))
                        for e, d in prepared]
        return prepared

    def _signature(self, doc_id: str, doc: Document) -> Any:
        from flightdeck.data.dedupe import Signature, minhash_bytes, text_hash

        text = doc.text
        near = self.cleaning is not None and self.cleaning.dedupe == "near"
        return Signature(doc_id, text_hash(text), minhash_bytes(text) if near else None, empty=not text.strip())

    def _duplicates(self, signatures: dict[str, Any], stored_ids: set[str]) -> list[Any]:
        """Duplicates among this run's documents and the stored ones (compared by stored signature)."""
        from flightdeck.data.dedupe import Signature, find_duplicates, text_hash

        mode = self.cleaning.dedupe if self.cleaning is not None else "off"
        if mode == "off":
            return []
        empty = text_hash("")
        pool = dict(signatures)
        with self.ws.engine.connect() as conn:
            for r in conn.execute(select(document_signatures.c.document_id, document_signatures.c.text_hash,
                                         document_signatures.c.minhash)):
                if r.document_id in stored_ids and r.document_id not in pool:
                    pool[r.document_id] = Signature(r.document_id, r.text_hash, r.minhash, r.text_hash == empty)
        return find_duplicates(pool.values(), mode, self.cleaning.near_threshold if self.cleaning else 0.9)

    def _write_signature(self, doc_id: str, chash: str, sig: Any, language: str | None) -> None:
        with self.ws.engine.begin() as conn:
            conn.execute(delete(document_signatures).where(document_signatures.c.document_id == doc_id))
            conn.execute(insert(document_signatures).values(document_id=doc_id, content_hash=chash,
                                                            text_hash=sig.text_hash, minhash=sig.minhash,
                                                            language=language))

    def _record_splits(self, dataset_id: str, reporter: Reporter) -> dict[str, Any] | None:
        """Assign the documents of the dataset version to splits and record them (data.splits).

        Written in its own transaction, after the version: the rows of the version are replaced as a whole,
        so re-running gives the same rows, and a changed split setting replaces the old assignment.
        """
        with self.ws.engine.begin() as conn:
            conn.execute(delete(dataset_splits).where(dataset_splits.c.dataset_version == dataset_id))
            if self.splitter is None:
                return None
            docs = {r.id: (r.metadata or {}) for r in conn.execute(select(documents.c.id, documents.c.metadata))}
            result = self.splitter.assign(docs)
            if result.assignments:
                conn.execute(insert(dataset_splits).prefix_with("OR IGNORE"), [
                    {"dataset_version": dataset_id, "document_id": d, "split": s, "strategy": result.strategy}
                    for d, s in sorted(result.assignments.items())])
        for doc_id, reason in sorted(result.unassigned.items()):
            reporter.event("split_skipped", uri=doc_id, reason=reason)
        out: dict[str, Any] = {"strategy": result.strategy, **result.counts()}
        if result.unassigned:
            out["unassigned"] = [{"uri": d, "reason": r} for d, r in sorted(result.unassigned.items())]
        return out

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        m = self.manifest()
        # Wall seconds per stage, reported in the counts (benchmarks/ingest_stages.py reads them). The scan
        # usually happened in plan(), before run(); "finish" is removals, the dataset version and splits.
        seconds = dict.fromkeys(("scan", "read_parse", "clean", "chunk", "write", "finish"), 0.0)
        seconds["scan"] = self._scan_seconds
        clock = time.perf_counter
        if self.cleaning is not None:
            from flightdeck.data.cleaning import missing_cleaning_modules
            from flightdeck.errors import MissingDependencyError

            missing = missing_cleaning_modules(self.cleaning)
            if missing:  # before anything is read: a run must not fail half-way for a missing library
                raise MissingDependencyError("; ".join(f"data.cleaning.{setting}: {purpose} needs {module}"
                                                       for setting, module, purpose in missing)
                                             + ": pip install 'flightdeck[cleaning]'")
        for failure in m.failures:
            reporter.event("item_failed", **failure)
        with self.ws.engine.connect() as conn:
            existing = {r.id: (r.content_hash, r.pipeline_hash) for r in
                        conn.execute(select(documents.c.id, documents.c.content_hash, documents.c.pipeline_hash))}
            signed = {r.document_id: r.content_hash for r in
                      conn.execute(select(document_signatures.c.document_id, document_signatures.c.content_hash))}
        dropped: dict[str, dict[str, Any]] = json.loads(self.ws.get_state(_DUPLICATES_STATE) or "{}")
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
        prepared: list[tuple[tuple[str, str, str, str], Document]] = []
        for n, entry in enumerate(todo, 1):
            binding, item = m.items[entry[0]]
            t0 = clock()
            try:
                doc = parse(item, binding.source.read(item))
                for message in doc.warnings:  # what the parser could not do: said, never silently lost
                    warn(entry[0], message)
                t1 = clock()
                seconds["read_parse"] += t1 - t0
                prepared.append((entry, self._prepare(doc)))
                seconds["clean"] += clock() - t1
            except (FlightdeckError, ValueError, UnicodeError, OSError) as exc:
                seconds["read_parse"] += clock() - t0
                fail(entry[0], exc)
            reporter.progress("parse", n, total)
        t0 = clock()
        prepared = self._clean_batch(prepared, m, reporter)
        # 2. Duplicates: this run's documents against each other and against the stored ones; by id, the
        #    first wins. A stored document can lose its place to a new one with a smaller id.
        signatures = {e[0]: self._signature(e[0], d) for e, d in prepared}
        present = {e[0] for e in m.entries}
        stored_ids = {d for d in existing if d in present and d not in signatures and signed.get(d) == existing[d][0]}
        duplicates = self._duplicates(signatures, stored_ids)
        dup_ids = {d.uri for d in duplicates}
        for dup in duplicates:
            reporter.event("duplicate_dropped", **dup.to_dict())
        seconds["clean"] += clock() - t0
        # 3. Chunk and write the rest, one document per transaction.
        written_chunks = 0
        kept = [(e, d) for e, d in prepared if e[0] not in dup_ids]
        for n, ((doc_id, chash, media_type, source_uri), doc) in enumerate(kept, 1):
            t0 = clock()
            try:
                doc_chunks = self.chunker.chunk(doc, self.tokenizer)
            except (FlightdeckError, ValueError, UnicodeError, OSError) as exc:
                seconds["chunk"] += clock() - t0
                fail(doc_id, exc)
                continue
            t1 = clock()
            seconds["chunk"] += t1 - t0
            self._replace_document(run_id, doc_id, source_uri, chash, self._document_pipeline_hash(m, doc_id),
                                   media_type, doc, doc_chunks)
            language = doc.metadata.get("language") if self.cleaning and self.cleaning.language else None
            self._write_signature(doc_id, chash, signatures[doc_id], None if language is None else str(language))
            seconds["write"] += clock() - t1
            written_chunks += len(doc_chunks)
            reporter.progress(self.name, n, len(kept))
        t0 = clock()
        # An item the scan could not read this time (a page that answered 500) keeps its stored version:
        # a transient failure must not look like a deletion.
        removed = [d for d in existing if d not in present and d not in failed_ids and d not in m.unreadable]
        for doc_id in removed + sorted(dup_ids & set(existing)):
            self._remove_document(doc_id)
        # 4. Remember the dropped duplicates; keep document_signatures in step with documents.
        hashes = {e[0]: e[1] for e in m.entries}
        now_dropped = {d: dropped[d] for d in still_dropped}
        now_dropped.update({d.uri: {**d.to_dict(), "content_hash": hashes[d.uri],
                                    "pipeline_hash": self._document_pipeline_hash(m, d.uri)} for d in duplicates})
        with self.ws.engine.begin() as conn:
            self.ws.set_state(conn, _DUPLICATES_STATE, json.dumps(now_dropped, sort_keys=True))
            conn.execute(delete(document_signatures).where(
                document_signatures.c.document_id.not_in(select(documents.c.id))))
        dataset_id = self._record_dataset_version(run_id, m)
        split_counts = self._record_splits(dataset_id, reporter)
        with self.ws.engine.connect() as conn:
            chunk_ids = [r[0] for r in conn.execute(select(chunks.c.id).order_by(chunks.c.id))]
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
        self._judge_failures(m, failed, counts)
        return StepResult(stable_hash(chunk_ids), counts)

    def _judge_failures(self, m: Manifest, failed: list[dict[str, str]], counts: dict[str, Any]) -> None:
        """Fail the step (after everything that succeeded was committed) when the dataset holds no document,
        or when the failures pass ``data.failures``; the message names the count, the limit and the first
        reasons.

        "Nothing ingested" is judged on what the workspace holds after the run, not on this run's work: an
        incremental run that had nothing new to read is fine. The documents that were ingested stay (and
        are in the dataset version just recorded); only the steps after ingest (embed, index) do not run, so
        the index is not replaced by one built from a broken corpus.
        """
        with self.ws.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(documents)).scalar_one()
        seen = len(m.entries) + len(m.failures)  # items the sources listed, those they could not deliver too
        first = "; ".join(f"{f['uri']}: {f['reason']}" for f in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        reasons = f" First reasons: {first}{more}." if failed else ""
        problem = None
        if stored == 0:
            if failed:
                problem = (f"nothing was ingested: all {len(failed)} item(s) the sources listed failed.{reasons} "
                           "Fix the causes (a missing extra is named in its reason) and run again")
            else:
                problem = ("nothing was ingested: the sources listed no documents; check `path` and `include` "
                           "of data.sources")
        elif failed and self.failure_limits is not None:
            limits = self.failure_limits
            share = len(failed) / max(seen, 1)
            if limits.max_count is not None and len(failed) > limits.max_count:
                problem = (f"{len(failed)} of {seen} item(s) could not be ingested, over data.failures.max_count="
                           f"{limits.max_count}.{reasons}")
            elif limits.max_share is not None and share > limits.max_share:
                problem = (f"{len(failed)} of {seen} item(s) could not be ingested ({share:.1%}), over "
                           f"data.failures.max_share={limits.max_share:g}.{reasons}")
            if problem:
                problem += (f" The {stored} document(s) ingested are kept; embed and index did not run. Fix the "
                            "causes or raise data.failures in the spec, then run again")
        if problem:
            raise StepFailedError(problem, counts)

    def _replace_document(self, run_id: str, doc_id: str, source_uri: str, chash: str, pipeline_hash: str,
                          media_type: str, doc: Document, doc_chunks: list[Any]) -> None:
        from flightdeck.governance.versions import put_document_record

        row = {"id": doc_id, "source_uri": source_uri, "content_hash": chash, "pipeline_hash": pipeline_hash,
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
        # The document version's record (row + chunks, content-addressed) is written before its rows: a
        # crash leaves at worst an unreferenced artifact, never a version pointing at a missing record.
        vars(self).setdefault("_records", {})[doc_id] = put_document_record(self.ws, row, rows)
        with self.ws.engine.begin() as conn:
            old = [r[0] for r in conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id))]
            Fts5Index.delete(conn, old)
            conn.execute(delete(chunks).where(chunks.c.document_id == doc_id))
            conn.execute(delete(documents).where(documents.c.id == doc_id))
            conn.execute(insert(documents).values(**row, chunk_count=len(rows), run_id=run_id))
            if rows:
                conn.execute(insert(chunks), rows)
                Fts5Index.add(conn, [(r["id"], r["indexed_text"]) for r in rows])

    def _remove_document(self, doc_id: str) -> None:
        with self.ws.engine.begin() as conn:
            old = [r[0] for r in conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id))]
            Fts5Index.delete(conn, old)
            conn.execute(delete(chunks).where(chunks.c.document_id == doc_id))
            conn.execute(delete(documents).where(documents.c.id == doc_id))

    def _record_dataset_version(self, run_id: str, m: Manifest) -> str:
        # The version lists the documents the workspace now holds (what was ingested; a failed item keeps
        # its previous version), each with its record; versioning providers (DVC) add what they recorded
        # before the step ran, as ``version_metadata`` (see flightdeck.data.versioning.base).
        from flightdeck.governance.versions import record_dataset_version

        return record_dataset_version(self.ws, run_id, vars(self).get("_records", {}),
                                      vars(self).get("version_metadata", {}))


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
        with self.ws.engine.connect() as conn:
            return conn.execute(select(index_versions.c.embedder).where(index_versions.c.id == version)).scalar()
