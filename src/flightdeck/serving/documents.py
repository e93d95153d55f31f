"""Documents uploaded to the server (``POST /v1/documents``): kept in the workspace's uploads folder, which
the pipeline reads as one more files source, so an upload is ingested, chunked, embedded and indexed by a
normal incremental run — and stays in the dataset at the next ``flightdeck run``.

The run happens on a second :class:`~flightdeck.project.Project` over the same spec (its own embedding model),
so searches go on while it runs; the searcher moves to the new index version on its next search.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from flightdeck.errors import FlightdeckError
from flightdeck.project import Project
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX, UPLOADS_LABEL
from flightdeck.workspace.audit import AuditLog, local_actor
from flightdeck.workspace.schema import chunks, dataset_version_documents, documents

__all__ = ["DocumentNotFound", "UploadRefused", "Uploads", "UPLOAD_SUFFIXES", "MAX_UPLOAD_BYTES"]

# Document formats an upload may have (records files — .csv, .jsonl… — belong in a declared source).
UPLOAD_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx")
MAX_UPLOAD_BYTES = 16 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,150}$")


class DocumentNotFound(FlightdeckError, KeyError):
    """No document with this id in the current dataset."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such document"


class UploadRefused(FlightdeckError, ValueError):
    """An upload that cannot be taken: a bad name or type, too large, or a file its parser could not read."""


def upload_name(name: str) -> str:
    """``name`` checked as the file name of an upload: no folders, no leading dot, a known document type."""
    base = name.strip()
    if not _NAME.match(base) or ".." in base:
        raise UploadRefused(f"name: {name!r} is not a plain file name (letters, digits, '.', '_', '-', spaces; "
                            "no folders)")
    if not base.lower().endswith(UPLOAD_SUFFIXES):
        raise UploadRefused(f"name: {base!r} is not a document type the server ingests; use one of "
                            f"{', '.join(UPLOAD_SUFFIXES)}")
    return base


class Uploads:
    """Adds, reads and deletes uploaded documents; ``writer`` runs the pipeline (one run at a time). With ``audit``,
    each upload and deletion is an entry of the audit log by the caller (``actor``)."""

    def __init__(self, project: Project, writer: Callable[[], Project], *, audit: AuditLog | None = None) -> None:
        self.project = project
        self.audit = audit
        self._writer_factory = writer
        self._writer: Project | None = None
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self.project.workspace.uploads_folder

    def _run(self) -> dict[str, Any]:
        if self._writer is None:
            self._writer = self._writer_factory()
        summary = self._writer.run()
        ingest = next((s for s in summary.steps if s.step == "ingest"), None)
        return dict(ingest.counts) if ingest is not None else {}

    def add(self, name: str, content: bytes, *, actor: str = "") -> dict[str, Any]:
        name = upload_name(name)
        if not content:
            raise UploadRefused(f"{name}: the file is empty")
        if len(content) > MAX_UPLOAD_BYTES:
            raise UploadRefused(f"{name}: over {MAX_UPLOAD_BYTES} bytes")
        document_id = f"{UPLOADS_LABEL}/{name}"
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = self.project.workspace.root / "uploads.part"
            staging.write_bytes(content)
            target = self.folder / name
            replaced = target.exists()
            previous = target.read_bytes() if replaced else None
            os.replace(staging, target)
            try:
                counts = self._run()
            except BaseException:
                self._restore(target, previous)
                raise
            failed = [f for f in counts.get("failures", []) if f.get("uri") == document_id]
            if failed:
                self._restore(target, previous)
                if previous is not None:
                    self._run()
                raise UploadRefused(f"{name}: not ingested: {failed[0].get('reason')}")
            record = self._document(document_id)
            if record is None:
                self._restore(target, previous)
                raise UploadRefused(f"{name}: not ingested (no text could be read from it)")
            out = {**record, "replaced": replaced, "dataset_version": self._state(CURRENT_DATASET),
                   "index_version": self._state(CURRENT_INDEX)}
            self._record(actor, "document.uploaded", document_id, {
                k: out[k] for k in ("content_hash", "chunks", "replaced", "dataset_version", "index_version")})
        return out

    def _record(self, actor: str, action: str, document_id: str, details: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append(actor or local_actor(), action, document_id, details)

    @staticmethod
    def _restore(target: Path, previous: bytes | None) -> None:
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(previous)

    def get(self, document_id: str) -> dict[str, Any]:
        record = self._document(document_id)
        if record is None:
            raise DocumentNotFound(f"no document {document_id!r} in the current dataset")
        return record

    def delete(self, document_id: str, *, actor: str = "") -> dict[str, Any]:
        """Remove an uploaded document: it leaves the dataset and the index (a new version of each)."""
        self.get(document_id)
        label, _, name = document_id.partition("/")
        if label != UPLOADS_LABEL:
            raise UploadRefused(f"{document_id} comes from the source {label!r} of the spec; remove it there "
                                "and run again (only uploaded documents are deleted over the API)")
        with self._lock:
            (self.folder / upload_name(name)).unlink(missing_ok=True)
            self._run()
            out = {"document_id": document_id, "deleted": True, "dataset_version": self._state(CURRENT_DATASET),
                   "index_version": self._state(CURRENT_INDEX)}
            self._record(actor, "document.deleted", document_id,
                         {k: out[k] for k in ("dataset_version", "index_version")})
        return out

    def _state(self, key: str) -> str | None:
        return self.project.workspace.get_state(key)

    def _document(self, document_id: str) -> dict[str, Any] | None:
        """The document as the current dataset holds it, or None."""
        dataset = self._state(CURRENT_DATASET)
        if dataset is None:
            return None
        with self.project.workspace.engine.connect() as conn:
            member = conn.execute(select(dataset_version_documents.c.content_hash).where(
                dataset_version_documents.c.dataset_version == dataset,
                dataset_version_documents.c.document_id == document_id)).first()
            if member is None:
                return None
            row = conn.execute(select(documents).where(documents.c.id == document_id)).mappings().first()
            count = conn.execute(select(func.count()).select_from(chunks)
                                 .where(chunks.c.document_id == document_id)).scalar_one()
        if row is None:
            return None
        return {"document_id": document_id, "title": row["title"], "source_uri": row["source_uri"],
                "media_type": row["media_type"], "content_hash": row["content_hash"], "chunks": int(count),
                "metadata": row["metadata"]}
