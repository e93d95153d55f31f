"""A deterministic, in-memory model registry (checklist 5.4) for tests: the fake of the model_registry category.

It keeps what a registry keeps — versions with their files' hashes and the release's facts, aliases that move —
and follows the same rules as the real ones (stage aliases, one version per release), so a test of the releases'
mirrors needs no server. ``down = True`` makes every call fail as an unreachable registry does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightdeck.governance.registries.base import STAGE_ALIASES, RegistryError, ReleaseFacts

if TYPE_CHECKING:
    from flightdeck.governance.releases import Release

__all__ = ["FakeModelRegistry", "FakeVersion"]

_LEFT_BEHIND = {"production": "archived", "staging": "candidate"}


@dataclass
class FakeVersion:
    """One version of the fake registry's model."""

    version: str
    release_id: str
    stage: str
    tags: dict[str, str]
    files: dict[str, str]  # name -> sha256


@dataclass
class FakeModelRegistry:
    """Versions and aliases in memory; ``calls`` lists every call as ``(method, release id, argument)``."""

    name: str = "fake"
    model_name: str = "fake-model"
    down: bool = False
    versions: list[FakeVersion] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def _check(self, method: str, release: Release, argument: str) -> None:
        self.calls.append((method, release.id, argument))
        if self.down:
            raise RegistryError(f"the fake registry is down (connection refused); release {release.name}: {method} "
                                "not done")

    def version_of(self, release_id: str) -> FakeVersion | None:
        return next((v for v in self.versions if v.release_id == release_id), None)

    def _require(self, release: Release) -> FakeVersion:
        found = self.version_of(release.id)
        if found is None:
            raise RegistryError(f"release {release.name} ({release.id}) has no version in {self.model_name!r}")
        return found

    def publish(self, release: Release, manifest: dict[str, Any], artifacts: dict[str, Path]) -> dict[str, Any]:
        self._check("publish", release, "")
        found = self.version_of(release.id)
        if found is None:
            files = {name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for name, p in sorted(artifacts.items())}
            found = FakeVersion(str(len(self.versions) + 1), release.id, release.stage,
                                ReleaseFacts.of(release, manifest).tags(), files)
            self.versions.append(found)
            self._stage(found, release.stage)
        return self.where(found)

    def set_stage(self, release: Release, stage: str) -> dict[str, Any]:
        self._check("set_stage", release, stage)
        version = self._require(release)
        self._stage(version, stage)
        return self.where(version)

    def set_alias(self, release: Release, alias: str) -> dict[str, Any]:
        self._check("set_alias", release, alias)
        version = self._require(release)
        self.aliases[alias] = version.version
        return self.where(version)

    def remove_alias(self, release: Release, alias: str) -> dict[str, Any]:
        self._check("remove_alias", release, alias)
        version = self._require(release)
        removed = self.aliases.get(alias) == version.version  # an alias that moved on is left alone
        if removed:
            del self.aliases[alias]
        return {**self.where(version), "removed": removed}

    def _stage(self, version: FakeVersion, stage: str) -> None:
        for alias in STAGE_ALIASES:
            holder = self.aliases.get(alias)
            if alias == stage:
                if holder is not None and holder != version.version and alias in _LEFT_BEHIND:
                    next(v for v in self.versions if v.version == holder).stage = _LEFT_BEHIND[alias]
                self.aliases[alias] = version.version
            elif holder == version.version:
                del self.aliases[alias]
        version.stage = stage

    def where(self, version: FakeVersion) -> dict[str, Any]:
        return {"model": self.model_name, "version": version.version,
                "aliases": sorted(a for a, v in self.aliases.items() if v == version.version)}
