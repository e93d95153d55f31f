"""Built-in dataset versions: immutable, content-addressed records of what every ingest produced.

A dataset version is a manifest (JSON artifact, its SHA-256 is the version id) listing every document of
the workspace after an ingest: id, content hash, media type, source URI, pipeline hash and the digest of
the document's *record*. The record is one content-addressed JSON artifact holding the document row and
all its chunks, so any version can be restored exactly (:mod:`flightdeck.pipeline.checkout`) without reading
the sources again, and unchanged documents share one record across versions. ``dataset_version_documents`` indexes the
manifests for diffs and lineage queries.

Write order (crash safety): records and manifest artifacts are written first (an orphan artifact is
harmless); the version's rows and the ``current_dataset`` pointer commit in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select

from flightdeck.errors import WorkspaceError
from flightdeck.retrieval.keyword import Fts5Index
from flightdeck.workspace import CURRENT_DATASET, Workspace
from flightdeck.workspace.ids import resolve_id
from flightdeck.workspace.schema import (
    chunks,
    dataset_version_documents,
    dataset_versions,
    document_signatures,
    documents,
    runs,
    step_runs,
)

__all__ = [
    "MANIFEST_FORMAT",
    "DatasetVersion",
    "VersionDocument",
    "VersionDiff",
    "document_record",
    "put_document_record",
    "record_dataset_version",
    "read_manifest",
    "list_versions",
    "resolve_version",
    "version_documents",
    "diff_versions",
    "restore_version",
    "iso_time",
]

MANIFEST_FORMAT = 2  # 1: {"documents": [[id, content_hash, media_type, source_uri], ...]} (no records)

_DOC_FIELDS = ("id", "source_uri", "content_hash", "pipeline_hash", "media_type", "title", "metadata")
_CHUNK_FIELDS = ("id", "ordinal", "text", "indexed_text", "heading", "token_count", "text_hash", "metadata")
# The provider metadata that versioning providers (dvc, lakefs) add lives next to these keys.
_MANIFEST_KEYS = ("format", "documents", "pipeline")


def iso_time(ts: float | None) -> str | None:
    """Seconds since the epoch as an ISO-8601 UTC string."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


# records -------------------------------------------------------------------------------------------
def document_record(document: Mapping[str, Any], chunk_rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The canonical JSON of one document version: its row and its chunks in reading order.

    The same document and chunks always give the same bytes, whether they come from the chunker or back
    from the database, so a record's digest identifies the document version.
    """
    doc = {k: document[k] for k in _DOC_FIELDS}
    rows = sorted(chunk_rows, key=lambda c: (c["ordinal"], c["id"]))
    body = {"format": 1, "document": doc, "chunks": [{k: c[k] for k in _CHUNK_FIELDS} for c in rows]}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def put_document_record(ws: Workspace, document: Mapping[str, Any], chunk_rows: Sequence[Mapping[str, Any]]) -> str:
    """Store the record of one document version (before its rows are written); returns its digest.

    Unlike ``ArtifactStore.put_bytes`` this does not fsync each file (one per document would dominate the
    ingest of a large corpus): the file appears under its name atomically (rename), and
    :func:`record_dataset_version` makes all of them durable with one ``os.sync()`` before a dataset
    version refers to them. A record torn by an OS crash before that has the wrong size and is rewritten.
    """
    data = document_record(document, chunk_rows)
    digest = hashlib.sha256(data).hexdigest()
    target = ws.artifacts.path(digest)
    try:
        if target.stat().st_size == len(data):
            return digest
    except FileNotFoundError:
        pass
    tmp = ws.artifacts.temp_path()
    tmp.write_bytes(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return digest


def _load_record(ws: Workspace, digest: str) -> dict[str, Any]:
    try:
        data = ws.artifacts.get_bytes(digest)
    except FileNotFoundError:
        raise WorkspaceError(f"{ws.root}: artifact {digest} (a document record) is missing from "
                             f"{ws.artifacts.root}; this dataset version cannot be restored") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise WorkspaceError(f"{ws.root}: artifact {digest} (a document record) is corrupt; this dataset "
                             "version cannot be restored")
    return json.loads(data)


def read_manifest(ws: Workspace, version: str) -> dict[str, Any]:
    """The manifest of dataset version ``version`` (full id)."""
    with ws.engine.connect() as conn:
        artifact = conn.execute(select(dataset_versions.c.manifest_artifact)
                                .where(dataset_versions.c.id == version)).scalar_one_or_none()
    if artifact is None:
        raise WorkspaceError(f"{ws.root}: no dataset version {version}")
    return json.loads(ws.artifacts.get_bytes(artifact))


def _db_record_digest(ws: Workspace, conn: Any, doc: Mapping[str, Any]) -> str:
    rows = [dict(r) for r in conn.execute(select(*[chunks.c[k] for k in _CHUNK_FIELDS])
                                          .where(chunks.c.document_id == doc["id"])).mappings()]
    return put_document_record(ws, doc, rows)


def record_dataset_version(ws: Workspace, run_id: str, written: Mapping[str, str] | None = None,
                           providers: Mapping[str, Any] | None = None) -> str:
    """Record the workspace's documents as a dataset version; returns its id and makes it current.

    ``written`` maps the documents this run wrote to their record digests; the records of the other
    documents are reused from the current version when the document's content hash, source URI and
    pipeline hash match, and otherwise rebuilt from the database (e.g. after a killed run). ``providers``
    is what versioning providers recorded (``{"dvc": {...}}``); it becomes part of the manifest.
    """
    written = dict(written or {})
    with ws.engine.connect() as conn:
        docs = [dict(r) for r in conn.execute(select(*[documents.c[k] for k in _DOC_FIELDS])
                                              .order_by(documents.c.id)).mappings()]
        previous: dict[str, tuple[str, str, str, str]] = {}
        current = ws.get_state(CURRENT_DATASET)
        if current:
            try:
                manifest = read_manifest(ws, current)
            except (WorkspaceError, FileNotFoundError, ValueError):
                manifest = {}
            if manifest.get("format") == MANIFEST_FORMAT:
                previous = {e[0]: (e[1], e[3], e[4], e[5]) for e in manifest["documents"]}
        entries = []
        rebuilt = 0
        for doc in docs:
            digest = written.get(doc["id"])
            if digest is None:
                prev = previous.get(doc["id"])
                if prev and prev[:3] == (doc["content_hash"], doc["source_uri"], doc["pipeline_hash"]) \
                        and ws.artifacts.exists(prev[3]):
                    digest = prev[3]
                else:
                    digest = _db_record_digest(ws, conn, doc)
                    rebuilt += 1
            entries.append([doc["id"], doc["content_hash"], doc["media_type"], doc["source_uri"],
                            doc["pipeline_hash"], digest])
    if written or rebuilt:  # records written without fsync become durable before a version names them
        os.sync()
    manifest_obj = {**dict(providers or {}), "format": MANIFEST_FORMAT, "documents": entries}
    version = ws.artifacts.put_bytes(json.dumps(manifest_obj, sort_keys=True, ensure_ascii=False,
                                                separators=(",", ":"), default=str).encode())
    with ws.engine.begin() as conn:
        if conn.execute(select(dataset_versions.c.id).where(dataset_versions.c.id == version)).first() is None:
            conn.execute(insert(dataset_versions).values(id=version, created_at=time.time(), run_id=run_id,
                                                         manifest_artifact=version, document_count=len(entries)))
            # A version row without its documents cannot exist: both commit here or neither does.
            conn.execute(delete(dataset_version_documents)
                         .where(dataset_version_documents.c.dataset_version == version))
            if entries:
                conn.execute(insert(dataset_version_documents), [
                    {"dataset_version": version, "document_id": e[0], "content_hash": e[1], "source_uri": e[3],
                     "chunks_artifact": e[5]} for e in entries])
        ws.set_state(conn, CURRENT_DATASET, version)
    return version


# queries -------------------------------------------------------------------------------------------
@dataclass
class DatasetVersion:
    """One dataset version as listed by ``flightdeck data versions``."""

    id: str
    created_at: float
    run_id: str
    documents: int
    current: bool
    providers: dict[str, Any] = field(default_factory=dict)  # what dvc/lakefs recorded

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "short_id": self.short_id, "created_at": iso_time(self.created_at),
                "created_at_ts": self.created_at, "run_id": self.run_id, "documents": self.documents,
                "current": self.current, "providers": self.providers}


def list_versions(ws: Workspace) -> list[DatasetVersion]:
    """Every dataset version, oldest first, with the current one marked."""
    current = ws.get_state(CURRENT_DATASET)
    with ws.engine.connect() as conn:
        rows = conn.execute(select(dataset_versions).order_by(dataset_versions.c.created_at,
                                                               dataset_versions.c.id)).mappings().all()
    out = []
    for r in rows:
        try:
            manifest = json.loads(ws.artifacts.get_bytes(r["manifest_artifact"]))
        except (FileNotFoundError, ValueError):
            manifest = {}
        providers = {k: v for k, v in manifest.items() if k not in _MANIFEST_KEYS}
        out.append(DatasetVersion(r["id"], r["created_at"], r["run_id"], r["document_count"], r["id"] == current,
                                  providers))
    return out


def resolve_version(ws: Workspace, ref: str) -> str:
    """The full id of the version named by ``ref``: a full id, a unique prefix, or ``current``."""
    return resolve_id(ws, dataset_versions.c.id, ref, current_state=CURRENT_DATASET, what="dataset version",
                      lister="flightdeck data versions", none_yet="run `flightdeck run` first")


@dataclass(frozen=True)
class VersionDocument:
    """One document of a dataset version."""

    document_id: str
    content_hash: str
    source_uri: str
    chunks_artifact: str | None


def version_documents(ws: Workspace, version: str) -> dict[str, VersionDocument]:
    """The documents of ``version`` (full id) by document id."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(dataset_version_documents)
                            .where(dataset_version_documents.c.dataset_version == version)).mappings().all()
    if rows:
        return {r["document_id"]: VersionDocument(r["document_id"], r["content_hash"], r["source_uri"],
                                                  r["chunks_artifact"]) for r in rows}
    manifest = read_manifest(ws, version)  # an empty version, or one recorded before records existed
    if manifest.get("format") == MANIFEST_FORMAT:
        return {e[0]: VersionDocument(e[0], e[1], e[3], e[5]) for e in manifest["documents"]}
    return {e[0]: VersionDocument(e[0], e[1], e[3], None) for e in manifest.get("documents", [])}


@dataclass
class VersionDiff:
    """What changed between two dataset versions (documents by id; changed = content hash differs)."""

    from_version: str
    to_version: str
    added: list[dict[str, str]]
    changed: list[dict[str, str]]
    removed: list[dict[str, str]]
    unchanged: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_versions(ws: Workspace, a: str, b: str) -> VersionDiff:
    """Documents added, changed (content hash differs) and removed going from version ``a`` to ``b``."""
    old, new = version_documents(ws, a), version_documents(ws, b)
    added = [{"document_id": d, "source_uri": new[d].source_uri, "content_hash": new[d].content_hash}
             for d in sorted(new.keys() - old.keys())]
    removed = [{"document_id": d, "source_uri": old[d].source_uri, "content_hash": old[d].content_hash}
               for d in sorted(old.keys() - new.keys())]
    changed = [{"document_id": d, "source_uri": new[d].source_uri, "old_content_hash": old[d].content_hash,
                "new_content_hash": new[d].content_hash}
               for d in sorted(old.keys() & new.keys()) if old[d].content_hash != new[d].content_hash]
    unchanged = len(old.keys() & new.keys()) - len(changed)
    return VersionDiff(a, b, added, changed, removed, unchanged)


# checkout ------------------------------------------------------------------------------------------
def _writer_runs(ws: Workspace, conn: Any, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """For (document id, record digest) pairs: the run of the earliest version that holds that record."""
    out: dict[tuple[str, str], str] = {}
    if not pairs:
        return out
    doc_ids = sorted({d for d, _ in pairs})
    for start in range(0, len(doc_ids), 500):
        rows = conn.execute(
            select(dataset_version_documents.c.document_id, dataset_version_documents.c.chunks_artifact,
                   dataset_versions.c.run_id, dataset_versions.c.created_at)
            .join(dataset_versions, dataset_versions.c.id == dataset_version_documents.c.dataset_version)
            .where(dataset_version_documents.c.document_id.in_(doc_ids[start:start + 500]))
            .order_by(dataset_versions.c.created_at.desc()))
        for doc_id, digest, run_id, _ in rows:
            if (doc_id, digest) in pairs:
                out[(doc_id, digest)] = run_id  # ordered newest first: the last write is the earliest
    return out


def restore_version(ws: Workspace, version: str, run_id: str) -> dict[str, int]:
    """Make the workspace's documents, chunks and keyword rows exactly those of ``version``.

    Everything commits in one transaction, together with the ``current_dataset`` pointer and a step-run
    row that invalidates the ingest step's cache, so that the next ``flightdeck run`` compares the sources
    with the restored documents and brings the workspace back to the sources' current state.
    """
    target = version_documents(ws, version)
    missing = sorted(d for d, v in target.items() if not v.chunks_artifact)
    if missing:
        raise WorkspaceError(f"dataset version {version[:12]} was recorded without document records "
                             f"(first: {missing[0]}); it cannot be checked out")
    with ws.engine.connect() as conn:
        current_docs = {r["id"]: dict(r) for r in
                        conn.execute(select(*[documents.c[k] for k in _DOC_FIELDS])).mappings()}
        current_chunks: dict[str, list[dict[str, Any]]] = {}
        for r in conn.execute(select(chunks.c.document_id, *[chunks.c[k] for k in _CHUNK_FIELDS])).mappings():
            current_chunks.setdefault(r["document_id"], []).append(dict(r))
        writers = _writer_runs(ws, conn, {(d, v.chunks_artifact) for d, v in target.items()})
    same = {d for d, v in target.items() if d in current_docs and v.chunks_artifact == hashlib.sha256(
        document_record(current_docs[d], current_chunks.get(d, []))).hexdigest()}
    replace = sorted(set(target) - same)
    remove = sorted(set(current_docs) - set(target))
    current_docs.clear()  # only the chunk ids are needed from here on
    records = {d: _load_record(ws, target[d].chunks_artifact) for d in replace}  # all read before writing
    with ws.engine.begin() as conn:
        for doc_id in [*remove, *replace]:
            Fts5Index.delete(conn, [c["id"] for c in current_chunks.get(doc_id, [])])
            conn.execute(delete(chunks).where(chunks.c.document_id == doc_id))
            conn.execute(delete(documents).where(documents.c.id == doc_id))
            # A duplicate-detection signature describes the text it was computed from: drop it with the
            # document version it described; the next ingest computes the restored document's again.
            conn.execute(delete(document_signatures).where(document_signatures.c.document_id == doc_id))
        for doc_id in replace:
            rec = records[doc_id]
            doc, rows = rec["document"], rec["chunks"]
            conn.execute(insert(documents).values(
                **doc, chunk_count=len(rows), run_id=writers.get((doc_id, target[doc_id].chunks_artifact), run_id)))
            if rows:
                conn.execute(insert(chunks), [{**r, "document_id": doc_id} for r in rows])
                Fts5Index.add(conn, [(r["id"], r["indexed_text"]) for r in rows])
        ws.set_state(conn, CURRENT_DATASET, version)
        now = time.time()
        conn.execute(insert(step_runs).values(
            run_id=run_id, step="ingest", status="invalidated", started_at=now, finished_at=now,
            input_hash="", config_hash="", counts={"checkout": version},
            error=f"dataset version {version[:12]} checked out: the next run ingests the sources again"))
    return {"documents": len(target), "restored": len(replace), "removed": len(remove), "kept": len(same)}


def ingest_run(ws: Workspace, run_id: str) -> dict[str, Any]:
    """``{id, started_at, finished_at, status}`` of run ``run_id`` (times as ISO strings)."""
    with ws.engine.connect() as conn:
        r = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
    if r is None:
        return {"id": run_id, "started_at": None, "finished_at": None, "status": None}
    return {"id": run_id, "started_at": iso_time(r["started_at"]), "finished_at": iso_time(r["finished_at"]),
            "status": r["status"]}
