"""The versioning provider protocol, and the run hook that records a provider's snapshot in a dataset version.

A provider of ``data.versioning`` is built from its config like any provider, then asked for a
:class:`~flightdeck.pipeline.runner.RunHook` bound to the project (:class:`VersioningContext`):

- ``dvc`` and ``lakefs`` return a :class:`SnapshotHook`: right before the ingest step runs, the provider
  snapshots the raw data (``dvc add``/``push``; a lakeFS ref resolved to its commit) and what it returns is
  written into the manifest of the dataset version that ingest records (``{"dvc": {...}}``), so the
  version names the exact raw data it came from. A provider that fails raises
  :class:`~flightdeck.errors.SourceError` and the step fails before anything is written.
- ``openlineage`` returns an OpenLineage emitter that reports every step run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from flightdeck.core import Reporter, RunHook

if TYPE_CHECKING:
    from flightdeck.project import Project
    from flightdeck.workspace import Workspace

__all__ = ["VersioningContext", "VersioningProvider", "SnapshotHook", "build_hooks", "VERSION_METADATA_ATTR",
           "INGEST_STEP", "file_uri_path"]

# The attribute of the ingest step that collects provider snapshots; IngestStep._record_dataset_version
# writes it into the manifest.
VERSION_METADATA_ATTR = "version_metadata"
INGEST_STEP = "ingest"


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
    """Calls ``snapshot(reporter)`` right before the ingest step runs and records the result.

    The snapshot becomes ``manifest[name]`` of the dataset version that the step records; a skipped ingest
    (sources unchanged) records no new version, so nothing is snapshotted.
    """

    def __init__(self, name: str, snapshot: Callable[[Reporter], dict[str, Any]]) -> None:
        self.name = name
        self.snapshot = snapshot

    def step_started(self, step: Any, run_id: str, reporter: Reporter) -> None:
        if step.name != INGEST_STEP:
            return
        info = self.snapshot(reporter)
        vars(step).setdefault(VERSION_METADATA_ATTR, {})[self.name] = info
        reporter.event("dataset_snapshot", provider=self.name, **info)


def build_hooks(project: Project) -> list[RunHook]:
    """The run hooks of the project's ``data.versioning`` providers (observers first, then snapshots)."""
    from flightdeck.registry import Category, registry

    refs: Sequence[Any] = project.spec.data.versioning or ()
    if not refs:
        return []
    context = VersioningContext(project.spec.project, project.loaded.base_dir, project.workspace,
                                tuple(project.source_bindings()))
    hooks = []
    for ref in refs:
        provider = registry().create(Category.VERSIONING, ref.provider, project.provider_settings(ref))
        hooks.append(provider.hook(context))
    # Observers first: a lineage emitter reports a step's START before a snapshot can fail it.
    return sorted(hooks, key=lambda h: isinstance(h, SnapshotHook))
