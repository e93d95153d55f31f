"""``.flightdeck/`` beside the spec: opening it, its key/value state, and the writer lock."""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flightdeck.errors import WorkspaceError
from flightdeck.workspace.artifacts import ArtifactStore
from flightdeck.workspace.db import migrate, open_engine
from flightdeck.workspace.schema import state

__all__ = ["Workspace", "CURRENT_DATASET", "CURRENT_INDEX", "UPLOADS_LABEL"]

# The workspace's pointers (rows of the `state` table): the dataset version and the index version that
# searches, lineage and checkouts read; written by the ingest and index steps in the transaction that
# records the version.
CURRENT_DATASET = "current_dataset"
CURRENT_INDEX = "current_index"
# The source label of the documents uploaded to the server: their ids read "uploaded/<file name>".
UPLOADS_LABEL = "uploaded"


class Workspace:
    """The metadata DB (migrated on open) and the artifact store of one project."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = open_engine(self.root / "metadata.db")
        migrate(self.engine)
        self.artifacts = ArtifactStore(self.root / "artifacts")

    def store_folder(self, store: str, index_version: str | None = None) -> Path:
        """Where a vector store keeps its files: the index version's own folder for a versioned store (FAISS:
        a new folder per version), else one folder per store, shared by every version (embedded Qdrant,
        Chroma)."""
        if index_version is not None:
            return self.root / "indexes" / index_version
        return self.root / "stores" / re.sub(r"\W", "_", store)

    @property
    def uploads_folder(self) -> Path:
        """Where the server keeps uploaded documents (``POST /v1/documents``); ingested as one more source."""
        return self.root / "uploads"

    def get_state(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(state.c.value).where(state.c.key == key)).scalar_one_or_none()

    @staticmethod
    def set_state(conn, key: str, value: str) -> None:
        """Set ``key`` inside the caller's transaction, so that it commits with the data it points to."""
        stmt = sqlite_insert(state).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=[state.c.key], set_={"value": value}))

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time: a second ``flightdeck run`` on the same workspace fails at once."""
        lock_path = self.root / "run.lock"
        with lock_path.open("a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WorkspaceError(
                    f"{self.root}: another `flightdeck run` is writing this workspace; wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def close(self) -> None:
        self.engine.dispose()
