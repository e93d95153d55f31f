"""What a model registry is told of the releases (checklist 5.4): the :class:`ModelRegistry` protocol, the settings
every registry shares (:class:`RegistryConfig`) and what each records of a release (:class:`ReleaseFacts`).

The workspace is the source of truth: :class:`~flightdeck.governance.releases.Releases` decides, records, and then
tells each registry of ``deployment.model_registry`` what happened — ``publish`` after a release is created or
imported, ``set_stage`` after each stage change, ``set_alias`` after an alias is set, ``remove_alias`` after one is
removed. What a registry returns (where the release went: ``{"model": name, "version": "3"}``) or raises becomes an
event on the release (``mirrored`` or ``mirror_failed``); a registry that is down never undoes a promotion, and
``Releases.sync`` (``flightdeck release sync``) later brings it level with the workspace. So every method is
idempotent: told twice, a registry ends as told once.

Stages map to the registry's own words: an alias (MLflow, W&B, Vertex AI) named after the stage —
``candidate``, ``staging``, ``production`` — that moves to the release now in it, and that an archived release
loses; SageMaker's approval status instead (see its module). Release aliases are aliases of the registry too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.errors import FlightdeckError

if TYPE_CHECKING:
    from flightdeck.governance.releases import Release

__all__ = ["ModelRegistry", "RegistryConfig", "RegistryError", "ReleaseFacts", "STAGE_ALIASES", "DEFAULT_MODEL_NAME",
           "check_http_reachable"]

#: the stages that are aliases in a registry (an archived release holds none of them)
STAGE_ALIASES = ("candidate", "staging", "production")
#: the model name outside a project (a project's default is its spec's ``project``)
DEFAULT_MODEL_NAME = "flightdeck"


class RegistryError(FlightdeckError):
    """A registry refused or could not be reached; the message names the registry, the release and what to do."""


class RegistryConfig(BaseModel):
    """Settings every entry of ``deployment.model_registry`` takes beside its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model_name: str | None = Field(
        None, min_length=1, description="the registered model (MLflow), artifact (W&B), model package group "
                                        "(SageMaker) or model (Vertex AI) that holds one version per release; "
                                        "default: the spec's project name")
    timeout: float = Field(30.0, gt=0, description="seconds the registry has to answer one request before the "
                                                   "release is recorded as not mirrored (mirror_failed)")


@runtime_checkable
class ModelRegistry(Protocol):
    """Mirrors releases into a model registry; each method returns where the release is there (a small dict)."""

    name: str

    def publish(self, release: Release, manifest: dict[str, Any], artifacts: dict[str, Path]) -> dict[str, Any]:
        """Make ``release`` a version of the registry's model with its ``artifacts`` (name -> local file) and
        the facts of its ``manifest``; publishing a release that is there already finds it, never a duplicate."""
        ...

    def set_stage(self, release: Release, stage: str) -> dict[str, Any]:
        """Show ``release`` in ``stage`` (candidate, staging, production, archived)."""
        ...

    def set_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Point the alias ``alias`` at ``release`` (away from the release that held it)."""
        ...

    def remove_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Take the alias ``alias`` from ``release`` (``release.aliases`` are those it keeps); an alias that another
        release holds there now, or that it does not hold, is left alone. A registry that cannot take an alias away
        raises :class:`RegistryError` saying so, and has ``removes_aliases = False`` (``sync`` does not retry it)."""
        ...


@dataclass(frozen=True)
class ReleaseFacts:
    """What every registry records of a release: who it is and what it was checked with."""

    release_id: str
    name: str  # v3
    stage: str
    manifest_sha256: str
    spec_hash: str
    created_by: str
    dataset_version: str | None = None
    index_version: str | None = None
    eval_run: str | None = None
    gates_passed: bool | None = None
    project: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)  # {gate, passed, value} of the evaluation

    @classmethod
    def of(cls, release: Release, manifest: dict[str, Any] | None = None) -> ReleaseFacts:
        """The facts of ``release`` (and of its ``manifest`` when given: the project and each gate's verdict)."""
        evaluation = (manifest or {}).get("evaluation") or {}
        gates = [{"gate": g.get("gate"), "passed": g.get("passed"), "value": g.get("value")}
                 for g in evaluation.get("gates") or [] if isinstance(g, dict)]
        return cls(release_id=release.id, name=release.name, stage=release.stage, manifest_sha256=release.manifest,
                   spec_hash=release.spec_hash, created_by=release.created_by,
                   dataset_version=release.dataset_version, index_version=release.index_version,
                   eval_run=release.eval_run, gates_passed=release.gates_passed,
                   project=(manifest or {}).get("project"), gates=gates)

    @property
    def passed(self) -> str:
        """The gates' verdict as a word: true, false, none (no evaluation with gates)."""
        return {True: "true", False: "false"}.get(self.gates_passed, "none")  # type: ignore[arg-type]

    def tags(self, prefix: str = "flightdeck.") -> dict[str, str]:
        """The facts as flat string tags (empty ones left out); ``gates`` as JSON."""
        values = {"release_id": self.release_id, "release": self.name, "stage": self.stage,
                  "manifest_sha256": self.manifest_sha256, "spec_hash": self.spec_hash,
                  "created_by": self.created_by, "dataset_version": self.dataset_version,
                  "index_version": self.index_version, "eval_run": self.eval_run, "gates_passed": self.passed,
                  "project": self.project,
                  "gates": json.dumps(self.gates, sort_keys=True, default=str) if self.gates else None}
        return {f"{prefix}{k}": str(v) for k, v in values.items() if v not in (None, "")}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_http_reachable(url: str, what: str, fix: str, timeout: float, path: str = "") -> None:
    """Raise :class:`RegistryError` at once when nothing answers at ``url`` (an http(s) URL; others pass), rather
    than after a client's minutes of retries. Any HTTP answer counts: a proxy asking for credentials answered."""
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        return
    target = url.rstrip("/") + path
    try:
        with urllib.request.urlopen(target, timeout=timeout):  # noqa: S310 (http(s) only, above)
            pass
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(f"{what} {url} did not answer ({target}: {reason}); {fix}") from exc
