"""The workspace beside the spec: the metadata DB and the content-addressed artifacts."""

from flightdeck.workspace.artifacts import ArtifactStore
from flightdeck.workspace.db import migrate, open_engine
from flightdeck.workspace.workspace import Workspace

__all__ = ["ArtifactStore", "Workspace", "migrate", "open_engine"]
