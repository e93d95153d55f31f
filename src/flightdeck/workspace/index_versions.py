"""Index versions as records: what the index step writes and what search, lineage and evaluation read.

An index version is one build of the vector (and keyword) index from one dataset version with one embedding
model and store. Its id is the hash of its inputs and settings; ``CURRENT_INDEX`` points at the one searches use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, insert, select

from flightdeck.core import stable_hash
from flightdeck.workspace.schema import index_versions
from flightdeck.workspace.workspace import Workspace

__all__ = ["IndexVersion", "record_index_version", "get_index_version", "index_versions_of", "collection_name"]


@dataclass(frozen=True)
class IndexVersion:
    """One row of ``index_versions``."""

    id: str
    created_at: float
    run_id: str
    dataset_version: str
    embedder: str  # the embedding model's id (Embedder.model_id)
    dim: int
    store: str  # the vector store provider
    chunk_count: int
    index_artifact: str  # the artifact of a versioned store's index file ("" for none)
    ids_artifact: str  # the hash of the version folder's artifacts
    collection: str | None  # the live collection of a non-versioned store; None for a versioned one

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def record_index_version(conn: Connection, version: IndexVersion) -> bool:
    """Insert ``version`` unless a version with its id exists (an index is content-addressed); True if new."""
    if conn.execute(select(index_versions.c.id).where(index_versions.c.id == version.id)).first() is not None:
        return False
    conn.execute(insert(index_versions).values(**asdict(version)))
    return True


def get_index_version(ws: Workspace, version_id: str) -> IndexVersion | None:
    """The recorded index version ``version_id``, or None."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(index_versions).where(index_versions.c.id == version_id)).mappings().first()
    return None if row is None else IndexVersion(**dict(row))


def index_versions_of(ws: Workspace, dataset_versions: Iterable[str]) -> list[IndexVersion]:
    """The index versions built from any of ``dataset_versions``, oldest first."""
    wanted = list(dataset_versions)
    if not wanted:
        return []
    with ws.engine.connect() as conn:
        rows = conn.execute(select(index_versions).where(index_versions.c.dataset_version.in_(wanted))
                            .order_by(index_versions.c.created_at)).mappings().all()
    return [IndexVersion(**dict(r)) for r in rows]


def collection_name(ws: Workspace, model_id: str, store: str) -> str:
    """A collection name safe for every server: unique per workspace, embedding model and store.

    Store settings are left out on purpose: rotating an API key or tuning search parameters must not start a
    new collection and upload every vector again (a store's own ``collection`` setting wins)."""
    digest = stable_hash({"workspace": str(ws.root), "model": model_id, "store": store})
    return f"flightdeck_{digest[:20]}"
