"""The versioning provider protocol, and the run hook that records a provider's snapshot in a dataset version.

A provider of ``data.versioning`` is built from its config like any provider, then asked (by the pipeline's
assembly) for a :class:`~flightdeck.core.RunHook` bound to the project (:class:`VersioningContext`):

- ``dvc`` and ``lakefs`` return a :class:`SnapshotHook`: right before the ingest step runs, the provider
  snapshots the raw data (``dvc add``/``push``; a lakeFS ref resolved to its commit) into the context's
  :class:`DatasetSnapshots`, which the ingest step was given too and writes into the manifest of the dataset
  version it records (``{"dvc": {...}}``), so the version names the exact raw data it came from. A provider
  that fails raises :class:`~flightdeck.errors.SourceError` and the step fails before anything is written.
- ``openlineage`` returns an OpenLineage emitter that reports every step run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from flightdeck.core import Reporter, RunHook, Step

if TYPE_CHECKING:
    from flightdeck.workspace import Workspace

__all__ = ["VersioningContext", "VersioningProvider", "SnapshotHook", "DatasetSnapshots", "observers_first",
           "INGEST_STEP", "file_uri_path"]

INGEST_STEP = "ingest"


class DatasetSnapshots:
    """What the versioning providers recorded of the raw data before this run's ingest, by provider name.

    One instance is shared by the snapshot hooks (through :class:`VersioningContext`) and the ingest step
    (through its constructor): the hooks record, the step takes it into the dataset version it writes.
    """

    def __init__(self) -> None:
        self._by_provider: dict[str, dict[str, Any]] = {}

    def record(self, provider: str, info: dict[str, Any]) -> None:
        self._by_provider[provider] = info

    def take(self) -> dict[str, dict[str, Any]]:
        """Everything recorded since the last take (a snapshot belongs to one dataset version only)."""
        taken, self._by_provider = self._by_provider, {}
        return taken


def file_uri_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI, or None for any other URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


@dataclass(frozen=True)
class VersioningContext:
    """What a versioning provider knows about the project it serves."""

    project: str  # the spec's project name
    base_dir: Path  # the spec's folder: relative settings are relative to it
    workspace: Workspace
    sources: tuple[Any, ...] = ()  # SourceBinding: .label, .base_uri
    snapshots: DatasetSnapshots = field(default_factory=DatasetSnapshots)  # read by the ingest step

    def resolve(self, path: str | Path) -> Path:
        """``path`` relative to the spec's folder (absolute paths and ``~`` as given)."""
        return (self.base_dir / Path(path).expanduser()).resolve()

    def default_data_path(self) -> Path | None:
        """The folder of the first ``files`` source: the raw data a provider versions by default."""
        for binding in self.sources:
            path = file_uri_path(getattr(binding, "base_uri", ""))
            if path is not None and path.is_dir():
                return path
        return None


@runtime_checkable
class VersioningProvider(Protocol):
    """A provider of ``data.versioning``: its run hook for one project."""

    def hook(self, context: VersioningContext) -> RunHook:
        """The hook that runs this provider alongside the pipeline."""
        ...


class SnapshotHook(RunHook):
    """Calls ``snapshot(reporter)`` right before the ingest step runs and records the result in ``into``.

    The snapshot becomes ``manifest[name]`` of the dataset version that the step records; a skipped ingest
    (sources unchanged) records no new version, so nothing is snapshotted.
    """

    def __init__(self, name: str, snapshot: Callable[[Reporter], dict[str, Any]], into: DatasetSnapshots) -> None:
        self.name = name
        self.snapshot = snapshot
        self.into = into

    def step_started(self, step: Step, run_id: str, reporter: Reporter) -> None:
        if step.name != INGEST_STEP:
            return
        info = self.snapshot(reporter)
        self.into.record(self.name, info)
        reporter.event("dataset_snapshot", provider=self.name, **info)


def observers_first(hooks: list[RunHook]) -> list[RunHook]:
    """Observers before snapshots: a lineage emitter reports a step's START before a snapshot can fail it."""
    return sorted(hooks, key=lambda h: isinstance(h, SnapshotHook))
