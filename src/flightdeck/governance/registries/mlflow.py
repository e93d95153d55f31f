"""MLflow Model Registry: each release a version of one registered model, its stage and aliases MLflow aliases.

``publish`` logs the release's files (its manifest, the spec, the index version's files) as the artifacts of an
MLflow run under ``release/`` in the experiment ``releases:<model_name>``, and registers that folder as a new
version of the registered model ``model_name`` (created when missing). The version's tags say which release it
is: ``flightdeck.release_id``, ``flightdeck.release`` (v3), ``flightdeck.manifest_sha256`` (the release's
content hash), ``flightdeck.spec_hash``, ``flightdeck.dataset_version``, ``flightdeck.index_version``,
``flightdeck.gates_passed``, ``flightdeck.gates`` (each gate's verdict, JSON) and ``flightdeck.stage``.
Publishing a release that has a version already returns that version.

Stages are MLflow aliases (MLflow 2.9 replaced its fixed stages with them): ``candidate`` (the newest candidate),
``staging`` and ``production`` point at the version of the release in that stage; an archived release holds none.
When a stage alias moves to another version, the version it leaves gets the stage the workspace gave its release
(a production release replaced is archived, a staging one goes back to candidate) in its ``flightdeck.stage``
tag. Release aliases are aliases of the registered model (removing one deletes it there when it still names the
release's version); ``models:/<model_name>@production`` names the release in production to any MLflow client. MLflow
reserves the alias ``latest``.

``tracking_uri`` is a tracking server (``http://mlflow:5000``) or a database (``sqlite:///mlflow.db``, the default:
``mlflow.db`` beside the spec, artifacts in ``mlartifacts`` beside it), as for the MLflow tracker; credentials come
from MLflow's own environment variables. A server that does not answer its ``/health`` within ``timeout`` seconds
is said at once instead of after MLflow's minutes of retries.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from flightdeck.governance.registries.base import (
    DEFAULT_MODEL_NAME,
    STAGE_ALIASES,
    RegistryConfig,
    RegistryError,
    ReleaseFacts,
    check_http_reachable,
)
from flightdeck.registry.lookup import optional_import

if TYPE_CHECKING:
    from flightdeck.governance.releases import Release

__all__ = ["MlflowRegistryConfig", "MlflowRegistry"]

_MAX_TAG_VALUE = 5000  # MLflow's limit on a model version tag's value
_RESERVED_ALIASES = ("latest",)
# what the workspace does to the release a stage alias leaves (Releases._move)
_LEFT_BEHIND = {"production": "archived", "staging": "candidate"}


class MlflowRegistryConfig(RegistryConfig):
    """Settings of ``deployment.model_registry: [{provider: mlflow, ...}]``."""

    tracking_uri: str | None = Field(
        None, description="the MLflow tracking server (http://host:5000) or database (sqlite:///mlflow.db) that "
                          "holds the registry; relative files resolve from the spec's folder. Default: "
                          "sqlite:///mlflow.db beside the spec")
    artifact_location: str | None = Field(
        None, description="the folder (or s3://... URI) under which the releases' experiment keeps its artifacts; "
                          "default: the server's choice, or mlartifacts beside a SQLite database")
    experiment: str | None = Field(
        None, description="the MLflow experiment of the runs that hold each release's files (created when "
                          "missing); default: releases:<model_name>")
    tags: dict[str, str] = Field(default_factory=dict, description="more tags on every model version")

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        from flightdeck.models.trackers.mlflow import check_tracking_uri

        return check_tracking_uri(v)

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with relative files of ``tracking_uri`` and ``artifact_location`` taken from ``base_dir``
        (the spec's folder) and the default ``sqlite:///mlflow.db`` beside the spec — the MLflow tracker's rule."""
        from flightdeck.models.trackers.mlflow import MlflowConfig

        uris = {k: settings[k] for k in ("tracking_uri", "artifact_location") if k in settings}
        return {**settings, **MlflowConfig.resolve_relative(uris, base_dir)}


class MlflowRegistry:
    """Mirrors releases into an MLflow Model Registry through MLflow's client (mlflow-skinny)."""

    name = "mlflow"

    def __init__(self, config: MlflowRegistryConfig | None = None) -> None:
        self.config = config or MlflowRegistryConfig()

    @property
    def model_name(self) -> str:
        return self.config.model_name or DEFAULT_MODEL_NAME

    @property
    def tracking_uri(self) -> str:
        """The URI of the registry (the default ``mlflow.db`` is taken from the current folder outside a project)."""
        return self.config.tracking_uri or "sqlite:///" + str(Path("mlflow.db").resolve())

    def client(self) -> Any:
        """MLflow's client of the registry, once the server (if it is one) answered."""
        optional_import("mlflow", "mlflow", "model registry 'mlflow'")
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri
        check_http_reachable(uri, "the MLflow server", "start it (mlflow server --host 127.0.0.1 --port 5000) or "
                             "correct tracking_uri under deployment.model_registry", self.config.timeout, "/health")
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    # --- the protocol ------------------------------------------------------------------------------------------
    def publish(self, release: Release, manifest: dict[str, Any], artifacts: dict[str, Path]) -> dict[str, Any]:
        """Register ``release`` as a version of ``model_name`` with its files; the existing version if it has one."""
        client = self.client()
        self._registered_model(client, manifest.get("project"))
        existing = self._version(client, release)
        if existing is not None:
            return self._where(client, existing, created=False)
        facts = ReleaseFacts.of(release, manifest)
        tags = {**self._tags(facts), **self.config.tags}
        experiment = self.config.experiment or f"releases:{self.model_name}"
        experiment_id = self._experiment(client, experiment)
        run = client.create_run(experiment_id, start_time=int(release.created_at * 1000), run_name=release.name,
                                tags={k: v for k, v in tags.items() if k != "flightdeck.stage"})
        run_id: str = run.info.run_id
        try:
            with tempfile.TemporaryDirectory(prefix="flightdeck-release-") as folder:
                client.log_artifacts(run_id, str(_staged(artifacts, Path(folder))), artifact_path="release")
        except BaseException:
            _terminate(client, run_id, "FAILED")
            raise
        _terminate(client, run_id, "FINISHED")
        version = client.create_model_version(self.model_name, source=f"runs:/{run_id}/release", run_id=run_id,
                                              tags=tags, description=_description(facts),
                                              await_creation_for=int(self.config.timeout))
        self._move_stage_aliases(client, str(version.version), release.stage)
        return self._where(client, str(version.version), created=True)

    def set_stage(self, release: Release, stage: str) -> dict[str, Any]:
        """Point the stage alias ``stage`` at the release's version (none for archived) and tag it."""
        client = self.client()
        version = self._require_version(client, release)
        self._move_stage_aliases(client, version, stage)
        return self._where(client, version)

    def set_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Point the MLflow alias ``alias`` at the release's version (MLflow moves it from the version before)."""
        if alias.lower() in _RESERVED_ALIASES:
            raise RegistryError(f"MLflow reserves the alias {alias!r}; release {release.name} keeps it in flightdeck "
                                "only — choose another alias to see it in MLflow")
        client = self.client()
        version = self._require_version(client, release)
        client.set_registered_model_alias(self.model_name, alias, version)
        return self._where(client, version)

    def remove_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Delete the MLflow alias ``alias`` when it names the release's version (one that moved on is left alone)."""
        client = self.client()
        version = self._require_version(client, release)
        holders: dict[str, str] = dict(client.get_registered_model(self.model_name).aliases or {})
        removed = alias.lower() not in _RESERVED_ALIASES and str(holders.get(alias)) == version
        if removed:
            client.delete_registered_model_alias(self.model_name, alias)
        return {**self._where(client, version), "removed": removed}

    # --- helpers ----------------------------------------------------------------------------------------------
    def _registered_model(self, client: Any, project: str | None) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(self.model_name)
            return
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        try:
            client.create_registered_model(
                self.model_name, tags={"flightdeck.project": project} if project else None,
                description="flightdeck releases: one version per release (its manifest, spec and index files); "
                            "the aliases candidate, staging and production follow the workspace's stages")
        except MlflowException as exc:  # made by another process meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _experiment(self, client: Any, name: str) -> str:
        from flightdeck.models.trackers.mlflow import MlflowConfig, MlflowTracker

        tracker = MlflowTracker(MlflowConfig(tracking_uri=self.tracking_uri,
                                             artifact_location=self.config.artifact_location))
        return MlflowTracker._experiment(client, name, tracker.artifact_location(name))

    def _version(self, client: Any, release: Release) -> str | None:
        found = client.search_model_versions(
            f"name = '{_quoted(self.model_name)}' and tag.`flightdeck.release_id` = '{_quoted(release.id)}'")
        versions = sorted(int(v.version) for v in found)
        return str(versions[0]) if versions else None

    def _require_version(self, client: Any, release: Release) -> str:
        version = self._version(client, release)
        if version is None:
            raise RegistryError(f"release {release.name} ({release.id}) has no version in the MLflow model "
                                f"{self.model_name!r} at {self.tracking_uri}: its publish failed or came before the "
                                "registry was configured (see `flightdeck release show`); nothing was changed there")
        return version

    def _move_stage_aliases(self, client: Any, version: str, stage: str) -> None:
        holders: dict[str, str] = dict(client.get_registered_model(self.model_name).aliases or {})
        for alias in STAGE_ALIASES:
            holder = holders.get(alias)
            if alias == stage:
                if holder is not None and holder != version and alias in _LEFT_BEHIND:
                    client.set_model_version_tag(self.model_name, holder, "flightdeck.stage", _LEFT_BEHIND[alias])
                client.set_registered_model_alias(self.model_name, alias, version)
            elif holder == version:
                client.delete_registered_model_alias(self.model_name, alias)
        client.set_model_version_tag(self.model_name, version, "flightdeck.stage", stage)

    def _where(self, client: Any, version: str, created: bool | None = None) -> dict[str, Any]:
        got = client.get_model_version(self.model_name, version)
        out: dict[str, Any] = {"model": self.model_name, "version": version, "run_id": got.run_id,
                               "aliases": sorted(got.aliases or [])}
        if created is not None:
            out["created"] = created
        return out

    @staticmethod
    def _tags(facts: ReleaseFacts) -> dict[str, str]:
        tags = facts.tags()
        return {k: v if len(v) <= _MAX_TAG_VALUE else v[:_MAX_TAG_VALUE - 1] + "…" for k, v in tags.items()}


def _terminate(client: Any, run_id: str, status: str) -> None:
    # MLflow prints the run's URL on standard output when a server holds it; that output is a command's (--json)
    with contextlib.redirect_stdout(sys.stderr):
        client.set_terminated(run_id, status=status)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _description(facts: ReleaseFacts) -> str:
    gates = {"true": "gates passed", "false": "gates missed", "none": "no gates measured"}[facts.passed]
    return (f"flightdeck release {facts.name} ({facts.release_id}) of {facts.project or 'a project'}: manifest "
            f"sha256 {facts.manifest_sha256}, index version {facts.index_version or '-'}, {gates}")


def _staged(artifacts: dict[str, Path], folder: Path) -> Path:
    """The files of ``artifacts`` under their names in ``folder`` (hard links where the file system allows)."""
    for name, path in artifacts.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise RegistryError(f"artifact name {name!r} leaves the release's folder")
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(path, target)
    return folder
