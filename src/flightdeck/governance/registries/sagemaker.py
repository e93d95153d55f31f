"""Amazon SageMaker Model Registry: each release a model package (a version) of one model package group.

``publish`` uploads the release's files — its manifest, the spec, the index version's files — as one
``model.tar.gz`` (SageMaker's model data) to ``s3://<bucket>/<prefix>/<model_name>/<release id>/``, with the
manifest beside it, and creates a model package in the group ``model_name`` (created when missing). The package's
customer metadata holds the release's facts: ``flightdeck.release_id``, ``flightdeck.release`` (v3),
``flightdeck.manifest_sha256`` (the release's content hash), ``flightdeck.spec_hash``, the dataset and index
versions, ``flightdeck.gates_passed`` and ``flightdeck.gates`` (each gate's verdict), ``flightdeck.stage``, and the
S3 URIs ``flightdeck.manifest_uri`` and ``flightdeck.model_data``. With ``image_uri`` (the inference container), the
package also has an inference specification with that image and the model data, so SageMaker can deploy it. The
release id is the request's idempotency token, and a release that has a package already returns that package.

SageMaker has no stages or aliases; its approval status says what may be deployed. Stages map to it:
``candidate`` and ``staging`` → PendingManualApproval, ``production`` → Approved, ``archived`` → Rejected, with the
stage in ``flightdeck.stage`` and who/what in the approval description. One release is in production: when one is
approved, a package approved before is rejected (its release was archived), as the workspace does. A release alias
is the metadata key ``flightdeck.alias.<alias>`` on one package, moved from the package that held it and dropped
from it when the alias is removed.

Credentials, like the region, come from AWS's own chain (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``…, an instance
role), never from the spec; ``profile`` names a profile. ``endpoint_url`` and ``s3_endpoint_url`` point at other
endpoints (a VPC endpoint, or moto's server in the tests).

Metadata values are what SageMaker takes: at most 256 characters of letters, digits, spaces and ``_ . : / = + - @``
(a gate ``recall@3 >= 0.5`` reads ``recall@3 ge 0.5``); the manifest in S3 has everything.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from flightdeck.governance.registries.base import DEFAULT_MODEL_NAME, RegistryConfig, RegistryError, ReleaseFacts
from flightdeck.registry.lookup import optional_import

if TYPE_CHECKING:
    from flightdeck.governance.releases import Release

__all__ = ["SagemakerRegistryConfig", "SagemakerRegistry", "APPROVAL_STATUS"]

#: a stage as SageMaker's approval status
APPROVAL_STATUS = {"candidate": "PendingManualApproval", "staging": "PendingManualApproval",
                   "production": "Approved", "archived": "Rejected"}
_GROUP = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_META_BAD = re.compile(r"[^\w .:/=+\-@]")
_OPERATORS = ((">=", " ge "), ("<=", " le "), ("==", " eq "), ("!=", " ne "), (">", " gt "), ("<", " lt "))
_MAX_META = 256
_ALIAS_KEY = "flightdeck.alias."


class SagemakerRegistryConfig(RegistryConfig):
    """Settings of ``deployment.model_registry: [{provider: sagemaker, ...}]``."""

    bucket: str = Field(..., description="the S3 bucket that receives each release's model.tar.gz and manifest")
    prefix: str = Field("flightdeck/releases", description="the key prefix in the bucket; each release goes to "
                                                          "<prefix>/<model_name>/<release id>/")
    region: str | None = Field(None, description="the AWS region; default: AWS's own (AWS_REGION, the profile)")
    profile: str | None = Field(None, description="the AWS profile whose credentials are used; default: AWS's chain")
    endpoint_url: str | None = Field(None, description="another SageMaker endpoint (a VPC endpoint, a local server)")
    s3_endpoint_url: str | None = Field(None, description="another S3 endpoint")
    image_uri: str | None = Field(None, description="the inference container image (ECR URI): with it, each "
                                                    "package gets an inference specification that SageMaker can "
                                                    "deploy, with the release's model.tar.gz as its model data")

    @field_validator("model_name")
    @classmethod
    def _group_name(cls, v: str | None) -> str | None:
        if v is not None and not _GROUP.match(v):
            suggestion = re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9-]", "-", v)).strip("-")[:63] or "releases"
            raise ValueError(f"model_name {v!r} is not a SageMaker model package group name (letters, digits and "
                             f"'-', at most 63, starting with a letter or digit); set model_name: {suggestion}")
        return v

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if v.startswith("s3://") or not _BUCKET.match(v):
            raise ValueError(f"bucket {v!r} is not an S3 bucket name; write the name alone, e.g. my-models "
                             "(the key prefix goes in `prefix`)")
        return v

    @field_validator("endpoint_url", "s3_endpoint_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"an endpoint is an http:// or https:// URL, got {v!r}")
        return v


class SagemakerRegistry:
    """Mirrors releases into a SageMaker model package group through boto3."""

    name = "sagemaker"

    def __init__(self, config: SagemakerRegistryConfig) -> None:
        self.config = config

    @property
    def model_name(self) -> str:
        return self.config.model_name or DEFAULT_MODEL_NAME

    def _clients(self) -> tuple[Any, Any]:
        boto3 = optional_import("boto3", "sagemaker", "model registry 'sagemaker'")
        from botocore.config import Config

        cfg = self.config
        session = boto3.session.Session(profile_name=cfg.profile, region_name=cfg.region)
        if session.region_name is None:
            raise RegistryError("no AWS region for the SageMaker model registry: set `region:` under "
                                "deployment.model_registry, or AWS_REGION")
        config = Config(connect_timeout=cfg.timeout, read_timeout=cfg.timeout,
                        retries={"max_attempts": 2, "mode": "standard"})
        return (session.client("sagemaker", endpoint_url=cfg.endpoint_url, config=config),
                session.client("s3", endpoint_url=cfg.s3_endpoint_url, config=config))

    def _where(self) -> str:
        return self.config.endpoint_url or f"SageMaker in {self.config.region or 'the default region'}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """``fn(**kwargs)``, with AWS's errors said as what failed, where, and what to do."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn(**kwargs)
        except NoCredentialsError as exc:
            raise RegistryError(f"{what}: no AWS credentials; set AWS_PROFILE (or `profile:`), or AWS_ACCESS_KEY_ID "
                                "and AWS_SECRET_ACCESS_KEY") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise RegistryError(f"{what} at {self._where()}: {error.get('Code', '?')}: {error.get('Message', exc)}"
                                ) from exc
        except BotoCoreError as exc:  # the endpoint did not answer, a timeout
            raise RegistryError(f"{what}: {exc}; check that {self._where()} is reachable (endpoint_url, region)"
                                ) from exc

    # --- the protocol ------------------------------------------------------------------------------------------
    def publish(self, release: Release, manifest: dict[str, Any], artifacts: dict[str, Path]) -> dict[str, Any]:
        """Upload the release's model.tar.gz and create its model package; the existing package if it has one."""
        sm, s3 = self._clients()
        self._group(sm, manifest.get("project"))
        existing = self._package(sm, release)
        if existing is not None:
            return {**self._summary(existing), "created": False}
        key = f"{self.config.prefix.strip('/')}/{self.model_name}/{release.id}".lstrip("/")
        bucket = self.config.bucket
        with tempfile.TemporaryDirectory(prefix="flightdeck-sagemaker-") as folder:
            archive = Path(folder) / "model.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                for name, path in sorted(artifacts.items()):
                    tar.add(str(path), arcname=name, recursive=False)
            self._call(f"uploading release {release.name}'s model data to s3://{bucket}/{key}/", s3.upload_file,
                       Filename=str(archive), Bucket=bucket, Key=f"{key}/model.tar.gz")
        if "manifest.json" in artifacts:
            self._call(f"uploading release {release.name}'s manifest", s3.upload_file,
                       Filename=str(artifacts["manifest.json"]), Bucket=bucket, Key=f"{key}/manifest.json")
        model_data = f"s3://{bucket}/{key}/model.tar.gz"
        facts = ReleaseFacts.of(release, manifest)
        metadata = {k: _meta(v) for k, v in facts.tags().items()}
        if facts.gates:
            metadata["flightdeck.gates"] = _meta(" / ".join(
                f"{g['gate']} {'passed' if g['passed'] else 'missed'}" for g in facts.gates))
        metadata["flightdeck.model_data"] = model_data
        metadata["flightdeck.manifest_uri"] = f"s3://{bucket}/{key}/manifest.json"
        request: dict[str, Any] = {
            "ModelPackageGroupName": self.model_name, "ClientToken": release.id,
            "ModelPackageDescription": f"flightdeck release {release.name} ({release.id})"
                                       + (f" of {facts.project}" if facts.project else ""),
            "ModelApprovalStatus": APPROVAL_STATUS[release.stage], "CustomerMetadataProperties": metadata,
            "MetadataProperties": {"GeneratedBy": "flightdeck"}}
        if self.config.image_uri:
            request["InferenceSpecification"] = {
                "Containers": [{"Image": self.config.image_uri, "ModelDataUrl": model_data}],
                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]}
        arn = self._call(f"creating the model package of release {release.name} in group {self.model_name!r}",
                         sm.create_model_package, **request)["ModelPackageArn"]
        return {**self._summary(self._describe(sm, arn)), "created": True}

    def set_stage(self, release: Release, stage: str) -> dict[str, Any]:
        """Set the release's approval status for ``stage``; approving one rejects the package approved before."""
        sm, _ = self._clients()
        package = self._require(sm, release)
        arn = package["ModelPackageArn"]
        for other in self._packages(sm):
            if other["ModelPackageArn"] == arn:
                continue
            meta = other.get("CustomerMetadataProperties") or {}
            if stage == "production" and other.get("ModelApprovalStatus") == "Approved":
                self._update(sm, other, status="Rejected", stage="archived",
                             description=f"flightdeck: archived, replaced in production by {release.name}")
            elif stage == "staging" and meta.get("flightdeck.stage") == "staging":
                self._update(sm, other, stage="candidate")
        self._update(sm, package, status=APPROVAL_STATUS[stage], stage=stage,
                     description=f"flightdeck: release {release.name} in {stage}")
        return self._summary(self._describe(sm, arn))

    def set_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Set ``flightdeck.alias.<alias>`` on the release's package, taking it from the package that held it."""
        sm, _ = self._clients()
        package = self._require(sm, release)
        key = _ALIAS_KEY + alias
        for other in self._packages(sm):
            if other["ModelPackageArn"] != package["ModelPackageArn"] and \
                    key in (other.get("CustomerMetadataProperties") or {}):
                self._update(sm, other, remove=[key])
        self._update(sm, package, add={key: release.name})
        return self._summary(self._describe(sm, package["ModelPackageArn"]))

    def remove_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Drop ``flightdeck.alias.<alias>`` from the release's package (other packages are left alone)."""
        sm, _ = self._clients()
        package = self._require(sm, release)
        key = _ALIAS_KEY + alias
        removed = key in (package.get("CustomerMetadataProperties") or {})
        if removed:
            self._update(sm, package, remove=[key])
        return {**self._summary(self._describe(sm, package["ModelPackageArn"])), "removed": removed}

    # --- helpers ----------------------------------------------------------------------------------------------
    def _group(self, sm: Any, project: str | None) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call(f"reading the model package group {self.model_name!r}", sm.describe_model_package_group,
                       ModelPackageGroupName=self.model_name)
            return
        except RegistryError as exc:
            if not isinstance(exc.__cause__, ClientError):  # the endpoint did not answer
                raise
        # missing (SageMaker says ValidationException, not a 404); any other refusal comes back from the create
        self._call(f"creating the model package group {self.model_name!r}", sm.create_model_package_group,
                   ModelPackageGroupName=self.model_name,
                   ModelPackageGroupDescription=f"flightdeck releases of {project or 'a project'}: one package per "
                                                "release; Approved is the release in production")

    def _describe(self, sm: Any, arn: str) -> dict[str, Any]:
        described: dict[str, Any] = self._call("reading a model package", sm.describe_model_package,
                                               ModelPackageName=arn)
        return described

    def _packages(self, sm: Any) -> list[dict[str, Any]]:
        """Every package of the group, described, newest first."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"ModelPackageGroupName": self.model_name, "ModelPackageType": "Versioned",
                                      "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            page = self._call(f"listing the model packages of {self.model_name!r}", sm.list_model_packages, **kwargs)
            out += [self._describe(sm, s["ModelPackageArn"]) for s in page.get("ModelPackageSummaryList", [])]
            token = page.get("NextToken")
            if not token:
                return out

    def _package(self, sm: Any, release: Release) -> dict[str, Any] | None:
        return next((p for p in self._packages(sm)
                     if (p.get("CustomerMetadataProperties") or {}).get("flightdeck.release_id") == release.id), None)

    def _require(self, sm: Any, release: Release) -> dict[str, Any]:
        package = self._package(sm, release)
        if package is None:
            raise RegistryError(f"release {release.name} ({release.id}) has no model package in the group "
                                f"{self.model_name!r} at {self._where()}: its publish failed or came before the "
                                "registry was configured; nothing was changed there")
        return package

    def _update(self, sm: Any, package: dict[str, Any], *, status: str | None = None, stage: str | None = None,
                description: str | None = None, add: dict[str, str] | None = None,
                remove: list[str] | None = None) -> None:
        # The whole state is sent each time: SageMaker merges the metadata it is given, while some emulators
        # replace the package's metadata, status and description with what an update names.
        meta = dict(package.get("CustomerMetadataProperties") or {})
        meta.update(add or {})
        if stage is not None:
            meta["flightdeck.stage"] = stage
        for key in remove or ():
            meta.pop(key, None)
        request: dict[str, Any] = {"ModelPackageArn": package["ModelPackageArn"],
                                   "ModelApprovalStatus": status or package.get("ModelApprovalStatus"),
                                   "CustomerMetadataProperties": meta}
        if remove:
            request["CustomerMetadataPropertiesToRemove"] = list(remove)
        said = description or package.get("ApprovalDescription")
        if said:
            request["ApprovalDescription"] = said[:1024]
        self._call(f"updating model package {package['ModelPackageArn']}", sm.update_model_package, **request)

    def _summary(self, package: dict[str, Any]) -> dict[str, Any]:
        meta = package.get("CustomerMetadataProperties") or {}
        return {"model": self.model_name, "version": str(package.get("ModelPackageVersion")),
                "arn": package["ModelPackageArn"], "status": package.get("ModelApprovalStatus"),
                "model_data": meta.get("flightdeck.model_data"),
                "aliases": sorted(k[len(_ALIAS_KEY):] for k in meta if k.startswith(_ALIAS_KEY))}


def _meta(value: str) -> str:
    """``value`` as SageMaker takes a metadata value: operators as words, other signs as '_', 256 characters."""
    for op, word in _OPERATORS:
        value = value.replace(op, word)
    value = _META_BAD.sub("_", re.sub(r" {2,}", " ", value)).strip()
    return value if len(value) <= _MAX_META else value[:_MAX_META - 3] + "..."
