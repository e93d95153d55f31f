"""The workspace beside the spec: the metadata DB and the content-addressed artifacts."""

from flightdeck.workspace.artifacts import ArtifactStore
from flightdeck.workspace.db import migrate, open_engine
from flightdeck.workspace.workspace import CURRENT_DATASET, CURRENT_INDEX, UPLOADS_LABEL, Workspace

__all__ = ["ArtifactStore", "Workspace", "CURRENT_DATASET", "CURRENT_INDEX", "UPLOADS_LABEL", "migrate", "open_engine"]
