"""Lineage of a chunk: where it came from and everything built from it.

A chunk id names one piece of one document version. Its lineage is the document and source URI, the
source content hash, the dataset versions whose records contain the chunk, the ingest run that wrote it
and the index versions built from those dataset versions. Chunks that are no longer in the workspace
(replaced or removed since) are found in the records of older dataset versions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from flightdeck.errors import WorkspaceError
from flightdeck.governance.versions import ingest_run, iso_time
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX, Workspace
from flightdeck.workspace.index_versions import index_versions_of
from flightdeck.workspace.schema import chunks, dataset_version_documents, dataset_versions, documents

__all__ = ["ChunkLineage", "chunk_lineage"]


@dataclass
class ChunkLineage:
    """The answer of ``flightdeck lineage chunk <id>``."""

    chunk_id: str
    document_id: str
    source_uri: str
    content_hash: str
    heading: str
    current: bool  # the chunk is in the workspace now
    ingest_run: dict[str, Any]  # {id, started_at, finished_at, status} of the run that wrote it
    dataset_versions: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    index_versions: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve_chunk(ws: Workspace, ref: str) -> tuple[str, dict[str, Any] | None]:
    """The full chunk id for ``ref`` (an id or a unique prefix of a current chunk) and its current row."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(chunks.c.id, chunks.c.document_id, chunks.c.heading)
                           .where(chunks.c.id == ref)).mappings().first()
        if row is None and len(ref) >= 6:
            rows = conn.execute(select(chunks.c.id, chunks.c.document_id, chunks.c.heading)
                                .where(chunks.c.id.startswith(ref)).limit(2)).mappings().all()
            if len(rows) > 1:
                raise WorkspaceError(f"chunk id prefix {ref!r} is ambiguous; give the full id")
            row = rows[0] if rows else None
    return (row["id"], dict(row)) if row else (ref, None)


def chunk_lineage(ws: Workspace, chunk_ref: str) -> ChunkLineage:
    """The lineage of chunk ``chunk_ref`` (full id, or a unique prefix of a chunk in the workspace)."""
    chunk_id, current = _resolve_chunk(ws, chunk_ref.strip())
    with ws.engine.connect() as conn:
        doc_row = None
        if current is not None:
            doc_row = conn.execute(select(documents).where(documents.c.id == current["document_id"])).mappings().first()
        query = (select(dataset_version_documents.c.dataset_version, dataset_version_documents.c.document_id,
                        dataset_version_documents.c.chunks_artifact)
                 .where(dataset_version_documents.c.chunks_artifact.is_not(None)))
        if current is not None:
            query = query.where(dataset_version_documents.c.document_id == current["document_id"])
        holders = conn.execute(query).all()
        version_rows = {r["id"]: dict(r) for r in conn.execute(select(dataset_versions)).mappings()}
    # Records are immutable: read each distinct one once and keep those that contain the chunk.
    containing: dict[str, dict[str, Any]] = {}
    for digest in sorted({h[2] for h in holders}):
        try:
            record = json.loads(ws.artifacts.get_bytes(digest))
        except (FileNotFoundError, ValueError):
            continue
        hit = next((c for c in record.get("chunks", []) if c.get("id") == chunk_id), None)
        if hit is not None:
            containing[digest] = {"document": record["document"], "chunk": hit}
    versions = sorted({h[0] for h in holders if h[2] in containing},
                      key=lambda v: (version_rows[v]["created_at"], v) if v in version_rows else (0.0, v))
    if current is None and not containing:
        raise WorkspaceError(f"no chunk {chunk_ref!r} in the workspace or in any dataset version; "
                             "`flightdeck search` shows chunk ids")
    current_dataset = ws.get_state(CURRENT_DATASET)
    if doc_row is not None:
        document_id, source_uri, content_hash = doc_row["id"], doc_row["source_uri"], doc_row["content_hash"]
        heading, writer = str(current["heading"]), doc_row["run_id"]
    else:  # no longer in the workspace: describe it from the newest version that held it
        newest = versions[-1]
        digest = next(h[2] for h in holders if h[0] == newest and h[2] in containing)
        doc = containing[digest]["document"]
        document_id, source_uri, content_hash = doc["id"], doc["source_uri"], doc["content_hash"]
        heading = str(containing[digest]["chunk"].get("heading", ""))
        writer = version_rows[versions[0]]["run_id"]
    builds = index_versions_of(ws, versions)
    current_index = ws.get_state(CURRENT_INDEX)
    return ChunkLineage(
        chunk_id=chunk_id, document_id=document_id, source_uri=source_uri, content_hash=content_hash,
        heading=heading, current=current is not None, ingest_run=ingest_run(ws, writer),
        dataset_versions=[{"id": v, "created_at": iso_time(version_rows[v]["created_at"]),
                           "run_id": version_rows[v]["run_id"], "current": v == current_dataset}
                          for v in versions if v in version_rows],
        index_versions=[{"id": b.id, "created_at": iso_time(b.created_at), "run_id": b.run_id,
                         "dataset_version": b.dataset_version, "embedder": b.embedder, "store": b.store,
                         "current": b.id == current_index} for b in builds])
