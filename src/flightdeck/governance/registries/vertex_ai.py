"""Vertex AI Model Registry: each release a version of one Vertex AI model, stages and aliases version aliases.

``publish`` copies the release's files — its manifest, the spec, the index version's files — to
``<artifact_uri>/<model_name>/<release id>/`` in Cloud Storage and uploads a model version with that folder as its
artifact URI (``models.upload``; the first release creates the model ``model_name``, later ones are versions of it
through ``parent_model``). The version's labels say which release it is (``flightdeck-release: rel_…``,
``flightdeck-number: v3``, ``flightdeck-stage``, ``flightdeck-gates-passed``); its version description holds the rest
of the release's facts (manifest sha256, spec hash, dataset and index versions, each gate's verdict). A release that
has a version already returns that version.

Stages are version aliases: ``candidate`` (the newest candidate), ``staging`` and ``production`` point at the
version of the release in that stage (``models/<id>@production``); an archived release holds none. An alias is
taken from the version that held it before it is given (``models.mergeVersionAliases``), and that version's
``flightdeck-stage`` label gets the stage the workspace gave its release (a production release replaced is archived).
Release aliases are version aliases too, with ``_`` written ``-`` (Vertex AI takes ``[a-z][a-zA-Z0-9-]*[a-z0-9]``);
removing one removes it from the release's version (``mergeVersionAliases`` with ``-alias``), unless another alias
the release keeps is written the same way. Vertex AI gives the first version the alias ``default``; flightdeck
leaves it alone.

Uploading needs the container that would serve the model (``serving_container_image_uri``). Credentials are
Google's application default credentials (``gcloud auth application-default login``, a service account of the
machine, ``GOOGLE_APPLICATION_CREDENTIALS``), never the spec; an ``http://`` endpoint (a local server) is called
without any, as credentials never travel unencrypted. The client is the SDK's generated ``aiplatform_v1`` client
over REST (``pip install 'flightdeck[vertex_ai]'``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from flightdeck.governance.registries.base import (
    DEFAULT_MODEL_NAME,
    STAGE_ALIASES,
    RegistryConfig,
    RegistryError,
    ReleaseFacts,
)
from flightdeck.registry.lookup import optional_import

if TYPE_CHECKING:
    from flightdeck.governance.releases import Release

__all__ = ["VertexAiRegistryConfig", "VertexAiRegistry", "vertex_alias"]

_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")
_LEFT_BEHIND = {"production": "archived", "staging": "candidate"}
_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def vertex_alias(alias: str) -> str:
    """A flightdeck alias as a Vertex AI version alias (``_`` written ``-``); refused when Vertex AI cannot take it."""
    translated = alias.replace("_", "-")
    if not _ALIAS.match(translated):
        raise RegistryError(f"alias {alias!r} cannot be a Vertex AI version alias ({translated!r}: a lower-case "
                            "letter, then letters, digits or '-', ending in a letter or digit, 2 to 128 characters)"
                            "; it stays in flightdeck only")
    return translated


def _label(value: str) -> str:
    return _LABEL_BAD.sub("-", value.lower())[:63]


class VertexAiRegistryConfig(RegistryConfig):
    """Settings of ``deployment.model_registry: [{provider: vertex_ai, ...}]``."""

    project: str = Field(..., min_length=1, description="the Google Cloud project of the model registry")
    location: str = Field("us-central1", min_length=1, description="the Vertex AI region")
    artifact_uri: str = Field(..., description="the Cloud Storage folder (gs://bucket/prefix) that receives each "
                                               "release's files, under <model_name>/<release id>/")
    serving_container_image_uri: str = Field(
        ..., min_length=1, description="the container image that would serve the model (Vertex AI's upload needs "
                                       "one for a custom model), e.g. the image of your `flightdeck serve`")
    api_endpoint: str | None = Field(None, description="the Vertex AI endpoint; default: "
                                                       "<location>-aiplatform.googleapis.com")
    storage_endpoint: str | None = Field(None, description="another Cloud Storage endpoint (a local server)")

    @field_validator("artifact_uri")
    @classmethod
    def _gcs(cls, v: str) -> str:
        if not re.match(r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/.*)?$", v):
            raise ValueError(f"artifact_uri {v!r} is not a Cloud Storage folder; write gs://bucket/prefix")
        return v.rstrip("/")


class VertexAiRegistry:
    """Mirrors releases into the Vertex AI Model Registry through the google-cloud-aiplatform SDK (REST)."""

    name = "vertex_ai"

    def __init__(self, config: VertexAiRegistryConfig) -> None:
        self.config = config

    @property
    def model_name(self) -> str:
        return self.config.model_name or DEFAULT_MODEL_NAME

    @property
    def parent(self) -> str:
        return f"projects/{self.config.project}/locations/{self.config.location}"

    @property
    def endpoint(self) -> str:
        return self.config.api_endpoint or f"{self.config.location}-aiplatform.googleapis.com"

    def client(self) -> Any:
        """The SDK's ``ModelServiceClient`` over REST, at :attr:`endpoint`."""
        aiplatform = optional_import("google.cloud.aiplatform_v1", "vertex_ai", "model registry 'vertex_ai'")
        credentials = None
        if self.endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        return aiplatform.ModelServiceClient(credentials=credentials, transport="rest",
                                             client_options={"api_endpoint": self.endpoint})

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from google.api_core import exceptions

        try:
            return fn(*args, timeout=self.config.timeout, **kwargs)
        except exceptions.GoogleAPICallError as exc:
            raise RegistryError(f"{what} at Vertex AI {self.endpoint}: {exc}") from exc
        except (exceptions.RetryError, OSError) as exc:
            raise RegistryError(f"{what}: Vertex AI at {self.endpoint} did not answer ({exc}); check api_endpoint "
                                "and location under deployment.model_registry") from exc

    # --- the protocol ------------------------------------------------------------------------------------------
    def publish(self, release: Release, manifest: dict[str, Any], artifacts: dict[str, Path]) -> dict[str, Any]:
        """Copy the release's files to Cloud Storage and upload them as a version of ``model_name``."""
        from google.cloud import aiplatform_v1

        client = self.client()
        model = self._model(client)
        if model is not None:
            existing = self._version(client, model, release)
            if existing is not None:
                return {**self._summary(existing), "created": False}
        folder = f"{self.config.artifact_uri}/{self.model_name}/{release.id}"
        self._upload_files(folder, artifacts)
        facts = ReleaseFacts.of(release, manifest)
        stage_aliases = [release.stage] if release.stage in STAGE_ALIASES else []  # archived: none
        if model is not None and stage_aliases:
            self._take_alias(client, model, release.stage, keep=None)
        request = aiplatform_v1.UploadModelRequest(
            parent=self.parent, parent_model=model or "",
            model=aiplatform_v1.Model(
                display_name=self.model_name, artifact_uri=folder, labels=self._labels(facts, release.stage),
                description=f"flightdeck releases of {facts.project or 'a project'}: one version per release",
                version_description=_description(facts), version_aliases=stage_aliases,
                container_spec=aiplatform_v1.ModelContainerSpec(image_uri=self.config.serving_container_image_uri)))
        operation = self._call(f"uploading release {release.name} as a version of {self.model_name!r}",
                               client.upload_model, request=request)
        try:
            response = operation.result(timeout=self.config.timeout)
        except Exception as exc:  # noqa: BLE001 - the operation's own error, said with what it was
            raise RegistryError(f"Vertex AI did not finish uploading release {release.name}: {exc}") from exc
        version = self._get(client, f"{response.model}@{response.model_version_id}")
        return {**self._summary(version), "created": True}

    def set_stage(self, release: Release, stage: str) -> dict[str, Any]:
        """Give the release's version the alias ``stage`` (none for archived) and its ``flightdeck-stage`` label."""
        client = self.client()
        version = self._require(client, release)
        model = version.name.split("@")[0]
        ours = version.version_id
        changes: list[str] = []
        for alias in STAGE_ALIASES:
            if alias == stage:
                self._take_alias(client, model, alias, keep=ours)
                if alias not in version.version_aliases:
                    changes.append(alias)
            elif alias in version.version_aliases:
                changes.append("-" + alias)
        if changes:
            self._merge(client, f"{model}@{ours}", changes)
        self._set_stage_label(client, f"{model}@{ours}", stage)
        return self._summary(self._get(client, f"{model}@{ours}"))

    def set_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Give the release's version the alias ``alias`` (``_`` as ``-``), taken from the version that held it."""
        translated = vertex_alias(alias)
        client = self.client()
        version = self._require(client, release)
        model = version.name.split("@")[0]
        self._take_alias(client, model, translated, keep=version.version_id)
        if translated not in version.version_aliases:
            self._merge(client, f"{model}@{version.version_id}", [translated])
        return self._summary(self._get(client, f"{model}@{version.version_id}"))

    def remove_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Remove the version alias ``alias`` (``_`` as ``-``) from the release's version when it holds it."""
        translated = alias.replace("_", "-")
        client = self.client()
        version = self._require(client, release)
        name = f"{version.name.split('@')[0]}@{version.version_id}"
        kept = {a.replace("_", "-") for a in release.aliases}  # eu_prod and eu-prod are one alias in Vertex AI
        removed = translated in version.version_aliases and translated not in kept
        if removed:
            self._merge(client, name, ["-" + translated])
        return {**self._summary(self._get(client, name)), "removed": removed}

    # --- helpers ----------------------------------------------------------------------------------------------
    def _upload_files(self, folder: str, artifacts: dict[str, Path]) -> None:
        optional_import("google.cloud.storage", "vertex_ai", "model registry 'vertex_ai'")
        from google.cloud import storage

        bucket_name, _, prefix = folder[len("gs://"):].partition("/")
        options = {"api_endpoint": self.config.storage_endpoint} if self.config.storage_endpoint else None
        credentials = None
        if (self.config.storage_endpoint or "").startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        try:
            bucket = storage.Client(project=self.config.project, credentials=credentials,
                                    client_options=options).bucket(bucket_name)
            for name, path in sorted(artifacts.items()):
                bucket.blob(f"{prefix}/{name}").upload_from_filename(str(path), timeout=self.config.timeout)
        except Exception as exc:  # noqa: BLE001 - storage's errors (refused, no bucket, no access), said with where
            raise RegistryError(f"copying the release's files to {folder} failed: {exc}; check artifact_uri (the "
                                "bucket must exist) and the credentials' access to it") from exc

    def _model(self, client: Any) -> str | None:
        """The resource name of the model ``model_name`` (None: not there yet)."""
        pager = self._call(f"looking up the model {self.model_name!r}", client.list_models,
                           request={"parent": self.parent, "filter": f'display_name="{self.model_name}"'})
        for model in pager:
            return str(model.name)
        return None

    def _versions(self, client: Any, model: str) -> list[Any]:
        return list(self._call(f"listing the versions of {model}", client.list_model_versions,
                               request={"name": model}))

    def _version(self, client: Any, model: str, release: Release) -> Any | None:
        found = self._call(f"looking up release {release.name} in {model}", client.list_model_versions,
                           request={"name": model, "filter": f'labels.flightdeck-release="{_label(release.id)}"'})
        return next(iter(found), None)

    def _require(self, client: Any, release: Release) -> Any:
        model = self._model(client)
        version = None if model is None else self._version(client, model, release)
        if version is None:
            raise RegistryError(f"release {release.name} ({release.id}) has no version in the Vertex AI model "
                                f"{self.model_name!r} ({self.parent}): its publish failed or came before the registry "
                                "was configured; nothing was changed there")
        return version

    def _get(self, client: Any, name: str) -> Any:
        return self._call(f"reading {name}", client.get_model, request={"name": name})

    def _merge(self, client: Any, name: str, aliases: list[str]) -> None:
        self._call(f"setting the aliases {aliases} of {name}", client.merge_version_aliases,
                   request={"name": name, "version_aliases": aliases})

    def _take_alias(self, client: Any, model: str, alias: str, keep: str | None) -> None:
        """Take ``alias`` from any version but ``keep`` (a stage alias leaves its release in the stage before)."""
        for version in self._versions(client, model):
            if alias in version.version_aliases and version.version_id != keep:
                self._merge(client, f"{model}@{version.version_id}", ["-" + alias])
                if alias in _LEFT_BEHIND:
                    self._set_stage_label(client, f"{model}@{version.version_id}", _LEFT_BEHIND[alias])

    def _set_stage_label(self, client: Any, name: str, stage: str) -> None:
        version = self._get(client, name)
        labels = dict(version.labels)
        labels["flightdeck-stage"] = stage
        self._call(f"labelling {name}", client.update_model,
                   request={"model": {"name": name, "labels": labels}, "update_mask": {"paths": ["labels"]}})

    @staticmethod
    def _labels(facts: ReleaseFacts, stage: str) -> dict[str, str]:
        return {"flightdeck-release": _label(facts.release_id), "flightdeck-number": _label(facts.name),
                "flightdeck-stage": stage, "flightdeck-gates-passed": facts.passed}

    def _summary(self, version: Any) -> dict[str, Any]:
        return {"model": self.model_name, "resource": version.name.split("@")[0], "version": str(version.version_id),
                "aliases": sorted(version.version_aliases), "artifact_uri": version.artifact_uri}


def _description(facts: ReleaseFacts) -> str:
    lines = [f"flightdeck release {facts.name} ({facts.release_id})", f"manifest sha256: {facts.manifest_sha256}",
             f"spec hash: {facts.spec_hash}", f"dataset version: {facts.dataset_version or '-'}",
             f"index version: {facts.index_version or '-'}", f"gates passed: {facts.passed}"]
    lines += [f"gate {g['gate']}: {'passed' if g['passed'] else 'missed'} ({g['value']})" for g in facts.gates]
    return "\n".join(lines)
