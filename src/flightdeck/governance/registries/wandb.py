"""Weights & Biases Artifacts: each release a version of one artifact of type ``model``, stages and aliases W&B
aliases.

``publish`` logs the artifact ``model_name`` (type ``model``) with the release's files — its manifest, the spec,
the index version's files under their names — and the release's facts as the artifact's metadata (release id,
manifest sha256, spec hash, dataset and index versions, each gate's verdict), with the aliases of its stage
(``candidate``) and of its id (``rel_…``), from a W&B run of job type ``release`` named after the release (v3).

W&B's runs only ever *add* aliases to an artifact version, and a version is its content: logging the same files
again is the same version. So a stage change or a release alias logs the release's artifact again (run job type
``release-stage``) with the new alias; W&B moves an alias from the version that held it, and ``models:production``
names the release in production. What this cannot do is take an alias away: an archived release keeps a stage
alias until another release takes it (removing one needs W&B's public API online, which flightdeck does not call).
So ``flightdeck release alias NAME --remove`` is recorded on the release as ``mirror_failed`` for W&B, with what to
do: set the alias on another release (W&B moves it), or delete it in the W&B app (the artifact version's aliases)
or with ``wandb.Api().artifact(...)`` online; ``flightdeck release sync`` does not retry it (``removes_aliases``).
The SDK gives every logged artifact W&B's own alias ``latest``, so ``latest`` is the release mirrored last.
To log the files again, the registry keeps where each release's files are (in the workspace, whose files never
change) in ``<dir>/flightdeck-releases/<model_name>/<release id>.json``.

``mode: offline`` (the default) needs no account and no network: each run is written under ``<dir>/wandb/`` and
``wandb sync`` uploads it later; ``mode: online`` sends it at once with ``api_key: ${WANDB_API_KEY}`` or the key of
``wandb login``. The SDK runs in a child process, as for the W&B tracker, so its service and process-wide state
stay out of flightdeck's process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from flightdeck.governance.registries.base import DEFAULT_MODEL_NAME, RegistryConfig, RegistryError, ReleaseFacts
from flightdeck.models.trackers.wandb import WandbConnection, run_sdk_child
from flightdeck.registry.lookup import optional_import

if TYPE_CHECKING:
    from flightdeck.governance.releases import Release

__all__ = ["WandbRegistryConfig", "WandbRegistry"]

_CHILD = "from flightdeck.governance.registries.wandb import _child; _child()"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")  # what W&B takes as an artifact name


class WandbRegistryConfig(WandbConnection, RegistryConfig):
    """Settings of ``deployment.model_registry: [{provider: wandb, ...}]``: the W&B connection the tracker takes
    (project, entity, mode, dir, api_key, timeout) and the artifact's name; ``dir`` also holds
    flightdeck-releases/."""

    @field_validator("model_name")
    @classmethod
    def _artifact_name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(f"model_name {v!r} is not a W&B artifact name: letters, digits, '-', '_' and '.', at "
                             "most 128; set model_name, e.g. " + repr(re.sub(r"[^A-Za-z0-9_.-]", "-", v)[:128]))
        return v


class WandbRegistry:
    """Mirrors releases into W&B Artifacts with the W&B SDK (offline by default)."""

    name = "wandb"
    removes_aliases = False  # a run only adds aliases (see the module)

    def __init__(self, config: WandbRegistryConfig | None = None) -> None:
        self.config = config or WandbRegistryConfig()

    @property
    def model_name(self) -> str:
        name = self.config.model_name or DEFAULT_MODEL_NAME
        return name if _NAME.match(name) else re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:128]

    @property
    def folder(self) -> Path:
        """The folder that holds ``wandb/`` and ``flightdeck-releases/`` (the current one outside a project)."""
        return Path(self.config.dir or ".").resolve()

    def record_path(self, release_id: str) -> Path:
        """Where the registry keeps the files of release ``release_id`` (to log its artifact again)."""
        return self.folder / "flightdeck-releases" / self.model_name / f"{release_id}.json"

    # --- the protocol ------------------------------------------------------------------------------------------
    def publish(self, release: Release, manifest: dict[str, Any], artifacts: dict[str, Path]) -> dict[str, Any]:
        """Log the release's artifact with the aliases of its stage and its id."""
        facts = ReleaseFacts.of(release, manifest)
        record = {"release_id": release.id, "release": release.name, "facts": facts.to_dict(),
                  "files": {name: str(Path(p).resolve()) for name, p in sorted(artifacts.items())}}
        stage_aliases = [] if release.stage == "archived" else [release.stage]
        done = self._log(release, record, "release", stage_aliases, "publish")
        path = self.record_path(release.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**record, "digest": done["digest"]}, indent=2, sort_keys=True), "utf-8")
        os.replace(tmp, path)
        return done

    def set_stage(self, release: Release, stage: str) -> dict[str, Any]:
        """Log the release's artifact again with the alias ``stage`` (archived: its id only; see the module)."""
        aliases = [] if stage == "archived" else [stage]
        return self._log(release, self._record(release), "release-stage", aliases, f"stage {stage}")

    def set_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Log the release's artifact again with the alias ``alias`` (W&B moves it from the version before)."""
        return self._log(release, self._record(release), "release-alias", [alias], f"alias {alias}")

    def remove_alias(self, release: Release, alias: str) -> dict[str, Any]:
        """Refused, saying what to do: a W&B run cannot take an alias away (see the module)."""
        where = f"{self.config.entity + '/' if self.config.entity else ''}{self.config.project}/{self.model_name}"
        synced = " once its runs are uploaded (wandb sync)" if self.config.mode == "offline" else ""
        raise RegistryError(
            f"W&B cannot remove the alias {alias!r} from release {release.name}: W&B runs only add aliases, so "
            f"{where}:{alias} still names {release.name} there (flightdeck's own alias is removed). Point it at "
            f"another release (`flightdeck release alias {alias} <release>`: W&B moves it), or delete it in the W&B "
            f"app (the artifact version's aliases){synced}")

    # --- helpers ----------------------------------------------------------------------------------------------
    def _record(self, release: Release) -> dict[str, Any]:
        path = self.record_path(release.id)
        try:
            record: dict[str, Any] = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise RegistryError(f"release {release.name} ({release.id}) was never logged to W&B by this registry "
                                f"(no {path}): its publish failed or came before the registry was configured; "
                                "nothing was logged") from None
        gone = [name for name, p in record["files"].items() if not Path(p).is_file()]
        if gone:
            raise RegistryError(f"the files of release {release.name} are gone from the workspace ({', '.join(gone)}):"
                                " W&B aliases move only with the release's files; nothing was logged")
        return record

    def _log(self, release: Release, record: dict[str, Any], job_type: str, stage_aliases: list[str],
             what: str) -> dict[str, Any]:
        optional_import("wandb", "wandb", "model registry 'wandb'")
        cfg = self.config
        self.folder.mkdir(parents=True, exist_ok=True)
        aliases = list(dict.fromkeys([*stage_aliases, release.id]))
        job = {"init": {"project": cfg.project, "entity": cfg.entity, "dir": str(self.folder), "mode": cfg.mode,
                        "name": f"{release.name} {what}", "group": self.model_name, "job_type": job_type,
                        "config": {"flightdeck": {"release_id": release.id, "release": release.name,
                                                  "action": what, "stage": release.stage}}},
               "artifact": {"name": self.model_name, "type": "model", "files": record["files"],
                            "metadata": {"flightdeck": record["facts"]}, "aliases": aliases,
                            "description": f"flightdeck release {release.name} ({release.id})"}}
        try:
            result, code, said = run_sdk_child(_CHILD, job, cfg)
        except subprocess.TimeoutExpired as exc:
            raise RegistryError(f"the W&B SDK did not log release {release.name} ({what}) within {cfg.timeout:g} s "
                                f"(deployment.model_registry wandb `timeout`); its folder: {self.folder}") from exc
        if result is None:
            raise RegistryError(f"the W&B SDK failed to log release {release.name} ({what}; exit {code}): {said}")
        return {"model": self.model_name, "artifact": f"{cfg.project}/{self.model_name}:{release.id}",
                "aliases": aliases, "digest": result["digest"], "run": result["where"]}


def _child() -> None:
    """The child process of :meth:`WandbRegistry._log`: one W&B run that logs the release's artifact."""
    import wandb

    job = json.loads(sys.stdin.read())
    settings = wandb.Settings(console="off", silent=True, disable_git=True, save_code=False, x_disable_stats=True,
                              x_save_requirements=False)
    wb = wandb.init(**job["init"], settings=settings, reinit="create_new")
    spec = job["artifact"]
    try:
        artifact = wandb.Artifact(spec["name"], type=spec["type"], description=spec["description"],
                                  metadata=spec["metadata"])
        for name, path in sorted(spec["files"].items()):
            # immutable: the workspace's files never change, so W&B need not copy them into its staging folder
            artifact.add_file(path, name=name, policy="immutable")
        digest = artifact.manifest.digest()
        wb.log_artifact(artifact, aliases=spec["aliases"])
    except BaseException:
        wb.finish(exit_code=1)
        raise
    wb.finish(exit_code=0)
    where = wb.settings.sync_dir if job["init"]["mode"] == "offline" else (wb.url or wb.id)
    wandb.teardown()  # waits until the service has written and closed the run's files
    print(json.dumps({"where": str(where), "digest": digest}), flush=True)
