"""Model registries (checklist 5.4, deployment.model_registry): every release, stage change and alias is mirrored
into MLflow, W&B Artifacts, SageMaker or Vertex AI, and read back with that registry's own client — MLflow's client
from a real `mlflow server`, the W&B SDK's record schema from its offline run logs, boto3 from moto's SageMaker and
S3 server, the Vertex AI SDK from a local server speaking its REST shape (no Vertex AI service can run here, so that
option stays planned) with the files in gcp-storage-emulator.

Every registry passes one contract (:class:`ModelRegistryContract`): directly on releases of a real workspace, and
through a project whose spec names it under ``deployment.model_registry``; a registry that cannot be reached is an
event on the release (``mirror_failed``) and the promotion stays recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import struct
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import write_eval_project
from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import SpecError
from flightdeck.governance.access import Role
from flightdeck.governance.registries import STAGE_ALIASES, ModelRegistry, RegistryError, ReleaseFacts
from flightdeck.governance.registries.mlflow import MlflowRegistry, MlflowRegistryConfig
from flightdeck.governance.registries.sagemaker import SagemakerRegistry, SagemakerRegistryConfig
from flightdeck.governance.registries.vertex_ai import VertexAiRegistry, VertexAiRegistryConfig, vertex_alias
from flightdeck.governance.registries.wandb import WandbRegistry, WandbRegistryConfig
from flightdeck.governance.releases import Actor, PolicyRefused, Release, ReleaseError, Releases
from flightdeck.pipeline.assembly import Assembly
from flightdeck.registry import Category
from flightdeck.registry import registry as providers
from flightdeck.spec.status import option_usable
from flightdeck.testing import FakeEmbedder
from flightdeck.testing.model_registry import FakeModelRegistry
from needs import need, needs

EVAL = needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")  # what a project's evaluation needs

# --- a small project ---------------------------------------------------------------------------------------------
ALICE, BOB = Actor("user:alice", Role.ADMIN), Actor("key:0123456789ab", Role.APPROVER)


def write_project(root: Path, *, k: int = 3, registry_entry: str | None = None, project: str = "release-test") -> Path:
    deployment = f"deployment:\n  model_registry:\n    - {registry_entry}\n" if registry_entry else ""
    return write_eval_project(root, project=project, k=k, extra=deployment)


def load(root: Path) -> Project:
    return Project.load(root).use(embedder=FakeEmbedder(dimension=64))


def built(root: Path, *, evaluate: bool = True) -> Project:
    project = load(root)
    project.run()
    if evaluate:
        project.evaluate()
    return project


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _offline_and_quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No usage reports leave the machine; the SDKs keep their files out of the home folder; AWS's chain finds the
    test's keys and nothing of the machine's."""
    for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DO_NOT_TRACK", "true"),
                        ("WANDB_ERROR_REPORTING", "false"), ("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache")),
                        ("WANDB_DATA_DIR", str(tmp_path / "wandb-data")),
                        ("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config")),
                        ("AWS_ACCESS_KEY_ID", "test-key"), ("AWS_SECRET_ACCESS_KEY", "test-secret"),
                        ("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config")),
                        ("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))):
        monkeypatch.setenv(name, value)
    for name in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "AWS_PROFILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION", "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)


# --- releases of a real workspace, shared by the contract tests (each test uses a model name of its own) ----------
@dataclass
class Pool:
    """Three releases of one workspace (v1 evaluated with a passing gate, v2 and v3 with other specs)."""

    releases: Releases
    items: list[Release]

    def manifest(self, release: Release) -> dict[str, Any]:
        return self.releases.manifest(release)

    def artifacts(self, release: Release) -> dict[str, Path]:
        return self.releases.artifact_paths(release)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    need("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")
    root = write_project(tmp_path_factory.mktemp("pool") / "p")
    project = built(root)
    items = [project.create_release(ALICE)[0]]
    for k in (4, 5):  # another spec, another release of the same index version
        write_project(root, k=k)
        items.append(load(root).create_release(ALICE)[0])
    assert [r.name for r in items] == ["v1", "v2", "v3"] and items[0].gates_passed is True
    return Pool(project.releases, items)


def staged(release: Release, stage: str) -> Release:
    """The release as :class:`Releases` hands it to a registry after moving it to ``stage``."""
    return dataclasses.replace(release, stage=stage)


@dataclass
class Seen:
    """A release's version as the registry's own client shows it, in flightdeck's words."""

    version: str
    stage: str | None  # the stage the registry shows (an alias it holds, an approval status…); None: none
    aliases: set[str]  # its other aliases (release aliases)
    facts: dict[str, str]  # release_id, manifest_sha256, gates_passed as recorded there
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 of what the registry holds
    versions_of_release: int = 1  # how many versions there say they are this release


class ModelRegistryContract:
    """What every model registry does with the releases; subclasses give ``registry``, ``read`` and the entries."""

    provider: str
    #: whether the registry can take an alias away (W&B's runs only add aliases: an archived release keeps one)
    removes_aliases = True

    @pytest.fixture
    def registry(self, tmp_path: Path) -> ModelRegistry:
        raise NotImplementedError

    def read(self, registry: Any, release: Release) -> Seen:
        raise NotImplementedError

    def spec_entry(self, tmp_path: Path) -> str:
        """How a spec names this registry under deployment.model_registry (YAML flow style)."""
        raise NotImplementedError

    def unreachable_entry(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        """A spec entry whose registry cannot be reached (a closed port), failing within a few seconds."""
        raise NotImplementedError

    def publish(self, registry: Any, pool: Pool, release: Release) -> dict[str, Any]:
        return dict(registry.publish(release, pool.manifest(release), pool.artifacts(release)))

    def test_is_a_model_registry_registered_under_its_name(self, registry: ModelRegistry) -> None:
        assert isinstance(registry, ModelRegistry) and registry.name == self.provider
        if self.provider != "fake":
            assert self.provider in providers().names(Category.MODEL_REGISTRY)

    def test_a_release_becomes_a_version_with_its_files_and_facts(self, registry: Any, pool: Pool) -> None:
        v1 = pool.items[0]
        result = self.publish(registry, pool, v1)
        assert result["model"] == registry.model_name
        seen = self.read(registry, v1)
        assert seen.facts["release_id"] == v1.id and seen.facts["manifest_sha256"] == v1.manifest
        assert seen.facts["gates_passed"] == "true"
        assert seen.files == {name: sha256(path) for name, path in pool.artifacts(v1).items()}
        assert {"manifest.json", "flightdeck.yaml"} <= set(seen.files)
        assert any(name.startswith("index/") for name in seen.files)
        assert seen.stage == "candidate"

    def test_publishing_a_release_again_finds_its_version(self, registry: Any, pool: Pool) -> None:
        v1 = pool.items[0]
        first = self.publish(registry, pool, v1)
        again = self.publish(registry, pool, v1)
        assert again.get("version") == first.get("version")
        assert self.read(registry, v1).versions_of_release == 1

    def test_the_stages_follow_the_releases(self, registry: Any, pool: Pool) -> None:
        v1, v2 = pool.items[:2]
        for release in (v1, v2):
            self.publish(registry, pool, release)
        assert self.read(registry, v2).stage == "candidate"  # the newest candidate
        registry.set_stage(staged(v1, "staging"), "staging")
        assert self.read(registry, v1).stage == "staging"
        registry.set_stage(staged(v1, "production"), "production")
        assert self.read(registry, v1).stage == "production"
        registry.set_stage(staged(v2, "production"), "production")  # the workspace archives v1
        assert self.read(registry, v2).stage == "production"
        assert self.read(registry, v1).stage != "production"  # one release in production
        registry.set_stage(staged(v2, "archived"), "archived")
        if self.removes_aliases:
            assert self.read(registry, v2).stage in (None, "archived")

    def test_an_alias_moves_between_releases(self, registry: Any, pool: Pool) -> None:
        v1, v2 = pool.items[:2]
        for release in (v1, v2):
            self.publish(registry, pool, release)
        registry.set_alias(v1, "golden")
        assert "golden" in self.read(registry, v1).aliases
        registry.set_alias(v2, "golden")
        assert "golden" in self.read(registry, v2).aliases
        assert "golden" not in self.read(registry, v1).aliases

    def test_a_removed_alias_leaves_the_registry(self, registry: Any, pool: Pool) -> None:
        v1, v2 = pool.items[:2]
        for release in (v1, v2):
            self.publish(registry, pool, release)
        registry.set_alias(v1, "golden")
        registry.set_alias(v1, "silver")
        registry.set_alias(v2, "silver")  # moved on: removing it from v1 leaves v2's alone
        result = registry.remove_alias(dataclasses.replace(v1, aliases=()), "golden")
        assert result["removed"] is True and "golden" not in result["aliases"]
        assert self.read(registry, v1).aliases == set()
        again = registry.remove_alias(v1, "silver")
        assert again["removed"] is False  # told twice, or about an alias it no longer holds: nothing to do
        assert self.read(registry, v2).aliases == {"silver"}

    def test_a_release_published_late_lands_in_its_stage(self, registry: Any, pool: Pool) -> None:
        """``sync`` publishes a release that missed its publish in the stage it has reached since."""
        v1, v2 = pool.items[:2]
        self.publish(registry, pool, staged(v1, "archived"))
        seen = self.read(registry, v1)
        assert seen.stage in (None, "archived") and seen.aliases == set()
        self.publish(registry, pool, staged(v2, "production"))
        assert self.read(registry, v2).stage == "production"

    def test_a_release_never_published_is_refused_by_name(self, registry: Any, pool: Pool) -> None:
        v3 = pool.items[2]
        with pytest.raises(RegistryError, match=rf"release v3 \({v3.id}\)"):
            registry.set_stage(staged(v3, "production"), "production")

    @EVAL
    def test_a_spec_entry_mirrors_every_release_of_the_project(self, tmp_path: Path) -> None:
        root = write_project(tmp_path / "p", registry_entry=self.spec_entry(tmp_path))
        project = built(root)
        [mirror] = project.releases.mirrors
        assert mirror.name == self.provider and mirror.model_name == "release-test"  # the project's name
        release, _ = project.create_release(ALICE)
        published = [e for e in project.releases.events(release) if e.event.startswith("mirror")]
        assert [(e.event, e.details["registry"], e.details["action"]) for e in published] == [
            ("mirrored", self.provider, "publish")], published
        project.releases.review("v1", BOB, "approved")
        promoted = project.releases.promote("v1", ALICE)
        assert promoted.stage == "production"
        last = project.releases.events(release)[-1]
        assert (last.event, last.details["action"]) == ("mirrored", "set_stage")
        assert self.read(mirror, promoted).stage == "production"

    @EVAL
    def test_a_registry_that_is_down_is_an_event_and_the_promotion_stays(self, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        root = write_project(tmp_path / "p", registry_entry=self.unreachable_entry(tmp_path, monkeypatch))
        project = built(root)
        started = time.monotonic()
        release, created = project.create_release(ALICE)
        assert created and release.stage == "candidate"
        project.releases.review("v1", BOB, "approved")
        promoted = project.releases.promote("v1", ALICE)
        assert time.monotonic() - started < 60  # said, not retried for minutes
        assert promoted.stage == "production" and project.releases.get("production").id == release.id
        failed = [e for e in project.releases.events(release) if e.event == "mirror_failed"]
        assert [(e.details["registry"], e.details["action"]) for e in failed] == [
            (self.provider, "publish"), (self.provider, "set_stage")]
        assert all(e.details["error"] for e in failed)
        assert not [e for e in project.releases.events(release) if e.event == "mirrored"]


# --- the fake of the category (flightdeck.testing) -----------------------------------------------------------------
@pytest.mark.unit
class TestFakeModelRegistry(ModelRegistryContract):
    provider = "fake"

    @pytest.fixture
    def registry(self) -> FakeModelRegistry:
        return FakeModelRegistry(model_name="fake-" + uuid.uuid4().hex[:8])

    def read(self, registry: FakeModelRegistry, release: Release) -> Seen:
        version = registry.version_of(release.id)
        assert version is not None
        held = {a for a, v in registry.aliases.items() if v == version.version}
        stage = next((a for a in STAGE_ALIASES if a in held), None)
        return Seen(version.version, stage, held - set(STAGE_ALIASES),
                    {k.removeprefix("flightdeck."): v for k, v in version.tags.items()}, version.files,
                    sum(v.release_id == release.id for v in registry.versions))

    test_a_spec_entry_mirrors_every_release_of_the_project = None  # type: ignore[assignment]  # not in a spec

    @EVAL
    def test_a_registry_that_is_down_is_an_event_and_the_promotion_stays(self, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        project = built(write_project(tmp_path / "p"))
        down = FakeModelRegistry(down=True)
        releases = Releases(project.workspace, project.spec.governance.approvals, mirrors=[down])
        release, _ = project.create_release(ALICE)  # the project's own releases: no mirror
        releases.review("v1", BOB, "approved")
        promoted = releases.promote("v1", ALICE)
        assert promoted.stage == "production"
        [failed] = [e for e in releases.events(release) if e.event == "mirror_failed"]
        assert failed.details == {"registry": "fake", "action": "set_stage", "stage": "production",
                                  "error": "RegistryError: the fake registry is down (connection refused); release v1: "
                                           "set_stage not done"}
        assert down.calls == [("set_stage", release.id, "production")]


# --- what Releases tells the registries: removed aliases, imports, and sync after a registry was down (the fake) ------
@pytest.fixture
def fake_mirror(monkeypatch: pytest.MonkeyPatch) -> FakeModelRegistry:
    """One fake registry that every project of the test mirrors into, as a spec's deployment.model_registry does."""
    fake = FakeModelRegistry()
    monkeypatch.setattr(Assembly, "model_registries", lambda self: [fake])
    return fake


def mirror_events(releases: Releases, ref: str) -> list[tuple[str, str, str]]:
    """``(event, action, argument)`` of each mirror event of ``ref``."""
    return [(e.event, e.details["action"], e.details.get("stage") or e.details.get("alias") or "")
            for e in releases.events(ref) if e.event.startswith("mirror")]


@pytest.mark.unit
@EVAL
def test_removing_an_alias_is_mirrored(tmp_path: Path, fake_mirror: FakeModelRegistry) -> None:
    project = built(write_project(tmp_path / "p"))
    release, _ = project.create_release(ALICE)
    releases = project.releases
    releases.set_alias("golden", "v1", ALICE)
    version = fake_mirror.version_of(release.id)
    assert version is not None and fake_mirror.aliases["golden"] == version.version
    releases.remove_alias("golden", ALICE)
    assert "golden" not in fake_mirror.aliases and fake_mirror.calls[-1] == ("remove_alias", release.id, "golden")
    assert mirror_events(releases, "v1")[-1] == ("mirrored", "remove_alias", "golden")
    assert [e.event for e in releases.events("v1")][-2:] == ["unaliased", "mirrored"]  # after it committed


@pytest.mark.unit
@EVAL
def test_an_imported_release_is_published(tmp_path: Path, fake_mirror: FakeModelRegistry) -> None:
    source = built(write_project(tmp_path / "a"))
    source.releases.mirrors.clear()
    release, _ = source.create_release(ALICE)
    archive = tmp_path / "v1.tar.gz"
    source.releases.export("v1", archive)
    assert fake_mirror.versions == []  # the source machine has no registry
    other = load(write_project(tmp_path / "b"))
    imported, created = other.releases.import_(archive, ALICE)
    assert created and imported.id == release.id
    version = fake_mirror.version_of(release.id)
    assert version is not None and version.tags["flightdeck.manifest_sha256"] == release.manifest
    assert version.files == {name: sha256(path) for name, path in other.releases.artifact_paths(imported).items()}
    assert [e.event for e in other.releases.events(imported)] == ["imported", "mirrored"]
    calls = len(fake_mirror.calls)
    assert other.releases.import_(archive, ALICE)[1] is False and len(fake_mirror.calls) == calls  # nothing new


@pytest.mark.unit
@EVAL
def test_sync_brings_a_registry_that_was_down_level(tmp_path: Path, fake_mirror: FakeModelRegistry) -> None:
    project = built(write_project(tmp_path / "p"))
    releases = project.releases
    v1, _ = project.create_release(ALICE)
    releases.set_alias("old", "v1", ALICE)
    fake_mirror.down = True  # every change from here on misses the registry
    write_project(tmp_path / "p", k=4)
    v2, _ = load(tmp_path / "p").create_release(ALICE)
    releases.review("v1", BOB, "approved")
    releases.promote("v1", ALICE)
    releases.set_alias("golden", "v1", ALICE)
    releases.remove_alias("old", ALICE)
    assert releases.mirror_status("v1")["fake"]["event"] == "mirror_failed"
    assert mirror_events(releases, "v2") == [("mirror_failed", "publish", "")]
    assert fake_mirror.aliases["old"] == fake_mirror.version_of(v1.id).version  # type: ignore[union-attr]

    with pytest.raises(PolicyRefused, match="key:0123456789ab: the role approver may not sync releases to the model "
                                            "registries"):
        releases.sync(None, BOB)
    calls = len(fake_mirror.calls)
    still = releases.sync(None, ALICE)  # still down: each registry stops at its first failure
    assert [(r["name"], r["ok"]) for r in still] == [("v1", False), ("v2", False)]
    assert still[0]["registries"] == [{"registry": "fake", "ok": False, "done": [], "failed": "publish",
                                       "error": "RegistryError: the fake registry is down (connection refused); "
                                                "release v1: publish not done"}]
    assert len(fake_mirror.calls) == calls + 2

    fake_mirror.down = False
    synced = releases.sync(None, ALICE)
    assert [(r["name"], r["stage"], r["ok"]) for r in synced] == [("v1", "production", True), ("v2", "candidate", True)]
    assert synced[0]["registries"] == [{"registry": "fake", "ok": True, "done": [
        "publish", "set_stage production", "set_alias golden", "remove_alias old"]}]
    assert synced[1]["registries"][0]["done"] == ["publish", "set_stage candidate"]
    one, two = fake_mirror.version_of(v1.id), fake_mirror.version_of(v2.id)
    assert one is not None and two is not None and len(fake_mirror.versions) == 2  # v1's publish found its version
    assert fake_mirror.aliases == {"production": one.version, "golden": one.version, "candidate": two.version}
    assert mirror_events(releases, "v1")[-4:] == [("mirrored", "publish", ""), ("mirrored", "set_stage", "production"),
                                                  ("mirrored", "set_alias", "golden"),
                                                  ("mirrored", "remove_alias", "old")]
    entry = project.audit.last("release.synced")
    assert entry is not None and entry.target == v2.id and entry.details == {"release": "v2",
                                                                             "registries": {"fake": "ok"}}

    calls = len(fake_mirror.calls)
    assert releases.sync(None, ALICE) == [] and len(fake_mirror.calls) == calls  # nothing missed: nothing to do
    everything = releases.sync(None, ALICE, all_=True)
    assert [r["name"] for r in everything] == ["v1", "v2"] and all(r["ok"] for r in everything)
    assert len(fake_mirror.versions) == 2  # told again, nothing duplicated
    with pytest.raises(ReleaseError, match="not both"):
        releases.sync("v1", ALICE, all_=True)


@pytest.mark.unit
@EVAL
def test_syncing_an_older_candidate_leaves_the_candidate_alias_on_the_newest(tmp_path: Path,
                                                                            fake_mirror: FakeModelRegistry) -> None:
    root = write_project(tmp_path / "p")
    project = built(root)
    v1, _ = project.create_release(ALICE)
    write_project(root, k=4)
    v2, _ = load(root).create_release(ALICE)
    newest = fake_mirror.version_of(v2.id)
    assert newest is not None and fake_mirror.aliases["candidate"] == newest.version
    synced = project.releases.sync("v1", ALICE)
    assert [(r["name"], r["registries"][0]["done"]) for r in synced] == [
        ("v1", ["publish", "set_stage candidate"]), ("v2", ["publish", "set_stage candidate"])]
    assert fake_mirror.aliases["candidate"] == newest.version


@pytest.mark.unit
@EVAL
def test_the_cli_syncs_and_says_what_still_failed(tmp_path: Path, fake_mirror: FakeModelRegistry,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    project = built(write_project(tmp_path / "p"))
    load_ = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load_(cls, path).use(
        embedder=FakeEmbedder(dimension=64))))
    spec = str(project.spec_path)
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        res = runner.invoke(app, ["release", *args, "--spec", spec])
        assert res.exit_code == code, res.output
        return res.output

    fake_mirror.down = True
    assert cli("create").startswith("created v1")
    shown = json.loads(cli("show", "v1", "--json"))
    assert shown["mirrors"]["fake"]["event"] == "mirror_failed"
    text = cli("show", "v1")
    assert "mirror_failed by user:" in text and "(fake publish)" in text
    assert re.search(r"registry fake: FAILED publish at \S+ \S+: RegistryError: the fake registry is down", text)
    assert "`flightdeck release sync v1` tells the registries again" in text
    out = json.loads(cli("sync", "--json", code=1))
    assert out["ok"] is False and out["registries"] == ["fake"]
    assert [(r["name"], r["registries"][0]["failed"]) for r in out["releases"]] == [("v1", "publish")]
    text = cli("sync", code=1)
    assert "  fake: FAILED at publish (done: nothing): RegistryError: the fake registry is down" in text
    assert text.rstrip().endswith("1 release(s) synced; 1 registry call(s) still failed")

    fake_mirror.down = False
    text = cli("sync")
    assert text.splitlines()[0].startswith("v1    rel_") and "  fake: ok (publish, set_stage candidate)" in text
    assert "every release is level in fake" in cli("sync")
    assert json.loads(cli("sync", "v1", "--json"))["ok"] is True
    assert re.search(r"registry fake: ok set_stage candidate at \S+ \S+\n", cli("show", "v1"))
    cli("alias", "golden", "v1")
    cli("alias", "golden", "--remove")
    assert "golden" not in fake_mirror.aliases and fake_mirror.calls[-1][0] == "remove_alias"
    res = runner.invoke(app, ["release", "sync", "v1", "--all", "--spec", spec])
    assert res.exit_code == 2 and "not both" in res.output


@pytest.mark.unit
def test_release_facts_are_flat_tags() -> None:
    release = Release("rel_0123456789abcdef", 3, 1.0, "user:alice", "a" * 64, "b" * 64, "d" * 64, "ix_1", "ev_1",
                      False, "staging", {})
    manifest = {"project": "docs", "evaluation": {"gates": [
        {"gate": "recall@3 >= 0.5", "metric": "recall@3", "passed": True, "value": 0.9},
        {"gate": "mrr@3 <= 0.01", "metric": "mrr@3", "passed": False, "value": 0.7}]}}
    facts = ReleaseFacts.of(release, manifest)
    tags = facts.tags()
    assert tags["flightdeck.release"] == "v3" and tags["flightdeck.stage"] == "staging"
    assert tags["flightdeck.gates_passed"] == "false" and tags["flightdeck.project"] == "docs"
    assert json.loads(tags["flightdeck.gates"]) == [{"gate": "recall@3 >= 0.5", "passed": True, "value": 0.9},
                                                   {"gate": "mrr@3 <= 0.01", "passed": False, "value": 0.7}]
    assert "flightdeck.eval_run" in tags and all(isinstance(v, str) for v in tags.values())
    assert ReleaseFacts.of(dataclasses.replace(release, gates_passed=None)).passed == "none"


# --- MLflow: a real `mlflow server`, read back with MlflowClient ---------------------------------------------------
@pytest.mark.integration
@pytest.mark.exercises("deployment.model_registry.mlflow")
class TestMlflowRegistry(ModelRegistryContract):
    provider = "mlflow"

    @pytest.fixture
    def registry(self, mlflow_server: str) -> MlflowRegistry:
        self.url = mlflow_server
        return MlflowRegistry(MlflowRegistryConfig(tracking_uri=mlflow_server, tags={"team": "search"},
                                                   model_name=f"docs-{uuid.uuid4().hex[:8]}"))

    def spec_entry(self, tmp_path: Path) -> str:
        self.url = self._server
        return f"{{provider: mlflow, tracking_uri: '{self._server}'}}"

    def unreachable_entry(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        return f"{{provider: mlflow, tracking_uri: 'http://127.0.0.1:{free_port()}', timeout: 3}}"

    @pytest.fixture(autouse=True)
    def _server_url(self, request: pytest.FixtureRequest) -> None:
        if request.node.name.startswith("test_a_spec_entry"):
            self._server = request.getfixturevalue("mlflow_server")

    def client(self, registry: MlflowRegistry) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)

    @staticmethod
    def download(registry: MlflowRegistry, uri: str, folder: str) -> Path:
        """The files of ``uri`` (``models:/name@alias``), as any MLflow client pointed at the registry gets them
        (``models:`` URIs are resolved with the registry URI of the environment)."""
        from mlflow.artifacts import download_artifacts

        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        os.environ.update(MLFLOW_TRACKING_URI=registry.tracking_uri, MLFLOW_REGISTRY_URI=registry.tracking_uri)
        try:
            return Path(download_artifacts(artifact_uri=uri, dst_path=folder))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def read(self, registry: MlflowRegistry, release: Release) -> Seen:
        client = self.client(registry)
        found = client.search_model_versions(f"name = '{registry.model_name}' and "
                                             f"tag.`flightdeck.release_id` = '{release.id}'")
        assert found, f"no version of {release.name} in {registry.model_name}"
        version = client.get_model_version(registry.model_name, found[0].version)
        tags = version.tags
        held = set(version.aliases)
        stage = next((a for a in STAGE_ALIASES if a in held), None)
        with tempfile.TemporaryDirectory() as folder:
            local = self.download(registry, f"models:/{registry.model_name}/{version.version}", folder)
            files = {p.relative_to(local).as_posix(): sha256(p) for p in local.rglob("*") if p.is_file()}
        assert all(tags.get(k) == v for k, v in registry.config.tags.items())  # the spec's own tags
        assert tags.get("flightdeck.stage") in (stage, "archived", "candidate")
        return Seen(str(version.version), stage, held - set(STAGE_ALIASES),
                    {k.removeprefix("flightdeck."): v for k, v in tags.items() if k.startswith("flightdeck.")}, files,
                    len(found))

    def test_models_uri_of_the_production_alias_names_the_release(self, registry: MlflowRegistry, pool: Pool) -> None:
        v1, v2 = pool.items[:2]
        for release in (v1, v2):
            self.publish(registry, pool, release)
        registry.set_stage(staged(v1, "production"), "production")
        registry.set_stage(staged(v2, "production"), "production")
        with tempfile.TemporaryDirectory() as folder:
            local = self.download(registry, f"models:/{registry.model_name}@production", folder)
            assert sha256(local / "manifest.json") == v2.manifest  # the manifest's hash is the release's name
        client = self.client(registry)
        left = client.search_model_versions(f"name = '{registry.model_name}' and tag.`flightdeck.release_id` = "
                                            f"'{v1.id}'")[0]
        assert client.get_model_version(registry.model_name, left.version).tags["flightdeck.stage"] == "archived"
        version = client.get_model_version_by_alias(registry.model_name, "production")
        gates = json.loads(client.get_model_version(registry.model_name, version.version).tags.get("flightdeck.gates",
                                                                                                  "[]"))
        assert version.tags["flightdeck.release"] == "v2" and gates == []  # v2 was not evaluated
        run = client.get_run(version.run_id)
        assert run.info.run_name == "v2" and run.data.tags["flightdeck.release_id"] == v2.id

    def test_mlflow_reserves_latest(self, registry: MlflowRegistry, pool: Pool) -> None:
        self.publish(registry, pool, pool.items[0])
        with pytest.raises(RegistryError, match="MLflow reserves the alias 'latest'"):
            registry.set_alias(pool.items[0], "latest")

    def test_by_default_a_sqlite_registry_lies_beside_the_spec(self, tmp_path: Path, pool: Pool) -> None:
        settings = MlflowRegistryConfig.resolve_relative({}, tmp_path)
        assert settings == {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}
        registry = MlflowRegistry(MlflowRegistryConfig(**settings, model_name="docs"))
        result = self.publish(registry, pool, pool.items[0])
        assert result["version"] == "1" and result["aliases"] == ["candidate"]
        assert list((tmp_path / "mlartifacts").glob("releases_docs/*/artifacts/release/manifest.json"))

    @EVAL
    def test_sync_brings_the_server_level_after_it_was_unreachable(self, tmp_path: Path, mlflow_server: str) -> None:
        root = write_project(tmp_path / "p", registry_entry=f"{{provider: mlflow, tracking_uri: "
                                                            f"'http://127.0.0.1:{free_port()}', timeout: 3}}")
        project = built(root)
        project.create_release(ALICE)
        project.releases.review("v1", BOB, "approved")
        project.releases.promote("v1", ALICE)
        project.releases.set_alias("golden", "v1", ALICE)
        assert project.releases.mirror_status("v1")["mlflow"]["event"] == "mirror_failed"
        model = f"docs-{uuid.uuid4().hex[:8]}"  # the spec now names the server that answers
        write_project(root, registry_entry=f"{{provider: mlflow, tracking_uri: '{mlflow_server}', "
                                           f"model_name: {model}}}")
        releases = load(root).releases
        [synced] = releases.sync(None, ALICE)
        assert synced["ok"] and synced["registries"][0]["done"] == ["publish", "set_stage production",
                                                                    "set_alias golden"]
        [mirror] = releases.mirrors
        seen = self.read(mirror, releases.get("v1"))
        assert (seen.stage, seen.aliases, seen.facts["manifest_sha256"]) == ("production", {"golden"},
                                                                             releases.get("v1").manifest)
        releases.remove_alias("golden", ALICE)
        assert self.read(mirror, releases.get("v1")).aliases == set()
        assert releases.mirror_status("v1")["mlflow"]["result"]["removed"] is True
        assert releases.sync(None, ALICE) == []

    def test_a_closed_port_is_said_at_once(self, pool: Pool) -> None:
        port = free_port()
        registry = MlflowRegistry(MlflowRegistryConfig(tracking_uri=f"http://127.0.0.1:{port}", timeout=3))
        started = time.monotonic()
        with pytest.raises(RegistryError, match=rf"MLflow server http://127.0.0.1:{port} did not answer.*"
                                                r"mlflow server"):
            self.publish(registry, pool, pool.items[0])
        assert time.monotonic() - started < 3


# --- W&B: offline runs, read back from their .wandb logs with the SDK's record schema ----------------------------
def wandb_records(path: Path) -> list[Any]:
    """The records of a ``run-<id>.wandb`` log (as tests/models/test_trackers.py reads them): W&B's LevelDB-style
    log of 32 KiB blocks (a 7-byte header ':W&B' 0xBEE1 version; per record CRC32, length, type 1 full / 2 first /
    3 middle / 4 last), each record a ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@dataclass
class WandbLogged:
    """One artifact record of an offline run."""

    started: float
    job_type: str
    name: str
    type: str
    digest: str
    aliases: list[str]
    metadata: dict[str, Any]
    entries: dict[str, Any]  # path -> manifest entry


def wandb_artifacts(folder: Path) -> list[WandbLogged]:
    """Every artifact the offline runs under ``folder/wandb`` logged, in the order the runs started."""
    out: list[WandbLogged] = []
    for log in folder.glob("wandb/offline-run-*/run-*.wandb"):
        records = wandb_records(log)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        started = run.start_time.seconds + run.start_time.nanos / 1e9
        for r in records:
            if r.WhichOneof("record_type") == "artifact":
                a = r.artifact
                out.append(WandbLogged(started, run.job_type, a.name, a.type, a.digest, list(a.aliases),
                                       json.loads(a.metadata or "{}"), {e.path: e for e in a.manifest.contents}))
    return sorted(out, key=lambda a: a.started)


def wandb_versions(logged: list[WandbLogged], name: str) -> tuple[list[str], dict[str, str]]:
    """What W&B makes of the logged artifacts ``name`` when they are synced: a version per distinct content (digest),
    in the order first logged, and each alias on the version that was logged with it last."""
    digests: list[str] = []
    aliases: dict[str, str] = {}
    for a in (a for a in logged if a.name == name):
        if a.digest not in digests:
            digests.append(a.digest)
        for alias in [*a.aliases, "latest"]:
            aliases[alias] = a.digest
    return digests, aliases


@pytest.mark.integration
@pytest.mark.exercises("deployment.model_registry.wandb")
class TestWandbRegistry(ModelRegistryContract):
    provider = "wandb"
    removes_aliases = False

    @pytest.fixture
    def registry(self, tmp_path: Path) -> WandbRegistry:
        need("wandb", "wandb")
        return WandbRegistry(WandbRegistryConfig(dir=str(tmp_path / "wb"), project="flightdeck-test",
                                                 model_name="docs-index"))

    def spec_entry(self, tmp_path: Path) -> str:
        need("wandb", "wandb")
        return "{provider: wandb, project: flightdeck-test}"

    def unreachable_entry(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        need("wandb", "wandb")
        # online, to a W&B server that is not there: the SDK cannot start the run within the timeout
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")
        return "{provider: wandb, mode: online, api_key: '" + "0" * 40 + "', timeout: 8}"

    def read(self, registry: WandbRegistry, release: Release) -> Seen:
        logged = wandb_artifacts(registry.folder)
        assert logged and all(a.type == "model" for a in logged)
        digests, aliases = wandb_versions(logged, registry.model_name)
        mine = [a for a in logged if a.metadata["flightdeck"]["release_id"] == release.id]
        assert mine, f"no artifact of {release.name}"
        digest = mine[0].digest
        assert {a.digest for a in mine} == {digest}  # logged again: the same content, the same version
        held = {alias for alias, d in aliases.items() if d == digest}
        # the stage alias this version was given last among those it still holds (W&B cannot take one away, so a
        # release promoted from staging holds both until another release is staged)
        given = [alias for a in mine for alias in a.aliases if alias in STAGE_ALIASES and alias in held]
        stage = given[-1] if given else None
        files = {}
        for path, entry in mine[0].entries.items():
            local = Path(entry.local_path)
            # W&B's own digest of each file (base64 MD5) still matches the file it recorded
            import base64

            assert base64.b64encode(hashlib.md5(local.read_bytes()).digest()).decode() == entry.digest
            files[path] = sha256(local)
        facts = mine[0].metadata["flightdeck"]
        return Seen(f"v{digests.index(digest)}", stage, held - set(STAGE_ALIASES) - {"latest", release.id},
                    {"release_id": facts["release_id"], "manifest_sha256": facts["manifest_sha256"],
                     "gates_passed": {True: "true", False: "false"}.get(facts["gates_passed"], "none")}, files,
                    len({a.digest for a in mine}))

    def test_every_change_is_a_run_that_logs_the_same_content(self, registry: WandbRegistry, pool: Pool) -> None:
        v1 = pool.items[0]
        published = self.publish(registry, pool, v1)
        moved = registry.set_stage(staged(v1, "production"), "production")
        aliased = registry.set_alias(v1, "golden")
        assert published["digest"] == moved["digest"] == aliased["digest"]
        logged = wandb_artifacts(registry.folder)
        assert [(a.job_type, set(a.aliases)) for a in logged] == [  # the SDK adds W&B's own "latest"
            ("release", {"latest", "candidate", v1.id}), ("release-stage", {"latest", "production", v1.id}),
            ("release-alias", {"latest", "golden", v1.id})]
        assert {a.digest for a in logged} == {published["digest"]}
        meta = logged[0].metadata["flightdeck"]
        assert meta["gates"] == [{"gate": "recall@3 >= 0.5", "passed": True, "value": meta["gates"][0]["value"]}]
        record = json.loads(registry.record_path(v1.id).read_text())
        assert record["digest"] == published["digest"] and set(record["files"]) == set(pool.artifacts(v1))

    def test_an_archived_release_keeps_its_stage_alias_until_another_takes_it(self, registry: WandbRegistry,
                                                                            pool: Pool) -> None:
        v1, v2 = pool.items[:2]
        for release in (v1, v2):
            self.publish(registry, pool, release)
        registry.set_stage(staged(v1, "production"), "production")
        registry.set_stage(staged(v1, "archived"), "archived")
        assert self.read(registry, v1).stage == "production"  # W&B's runs cannot take an alias away
        registry.set_stage(staged(v2, "production"), "production")
        assert self.read(registry, v1).stage is None and self.read(registry, v2).stage == "production"

    def test_a_removed_alias_leaves_the_registry(self, registry: WandbRegistry, pool: Pool) -> None:
        """A W&B run cannot take an alias away: removing one is refused, saying what to do, and nothing is logged."""
        v1 = pool.items[0]
        self.publish(registry, pool, v1)
        registry.set_alias(v1, "golden")
        logged = len(wandb_artifacts(registry.folder))
        with pytest.raises(RegistryError, match=r"W&B cannot remove the alias 'golden' from release v1: W&B runs only "
                                                r"add aliases, so flightdeck-test/docs-index:golden still names v1 "
                                                r"there.*`flightdeck release alias golden <release>`.*W&B app.*"
                                                r"wandb sync"):
            registry.remove_alias(dataclasses.replace(v1, aliases=()), "golden")
        assert len(wandb_artifacts(registry.folder)) == logged and "golden" in self.read(registry, v1).aliases
        assert WandbRegistry.removes_aliases is False

    @EVAL
    def test_sync_does_not_ask_again_for_an_alias_it_cannot_remove(self, registry: WandbRegistry,
                                                                   tmp_path: Path) -> None:
        project = built(write_project(tmp_path / "p"))
        project.create_release(ALICE)  # before the registry was configured
        releases = Releases(project.workspace, project.spec.governance.approvals, mirrors=[registry])
        [first] = releases.sync("v1", ALICE)
        assert first["registries"] == [{"registry": "wandb", "ok": True, "done": ["publish", "set_stage candidate"]}]
        releases.set_alias("golden", "v1", ALICE)
        releases.remove_alias("golden", ALICE)
        last = releases.mirror_status("v1")["wandb"]
        assert (last["event"], last["action"], last["alias"]) == ("mirror_failed", "remove_alias", "golden")
        assert last["error"].startswith("RegistryError: W&B cannot remove the alias 'golden' from release v1")
        [again] = releases.sync(None, ALICE)  # told the rest again; the removal is not asked for again
        assert again["registries"] == [{"registry": "wandb", "ok": True, "done": ["publish", "set_stage candidate"],
                                        "kept_aliases": ["golden"]}]
        assert releases.sync(None, ALICE) == []
        assert "golden" in self.read(registry, releases.get("v1")).aliases

    def test_settings_for_people(self) -> None:
        with pytest.raises(ValueError, match="model_name 'my docs' is not a W&B artifact name.*'my-docs'"):
            WandbRegistryConfig(model_name="my docs")
        with pytest.raises(ValueError, match="api_key is used only by mode: online"):
            WandbRegistryConfig(api_key="k")
        assert WandbRegistryConfig.resolve_relative({}, Path("/p")) == {"dir": "/p"}


# --- SageMaker: boto3 against moto's server ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    need("sagemaker", "boto3")
    need("dev", "moto")  # moto's server stands in for SageMaker and S3 here
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


_SAGEMAKER_META_VALUE = re.compile(r"^[\w .:/=+\-@]{0,256}$")  # what SageMaker takes as a metadata value


@pytest.mark.integration
@pytest.mark.exercises("deployment.model_registry.sagemaker")
class TestSagemakerRegistry(ModelRegistryContract):
    provider = "sagemaker"

    @pytest.fixture(autouse=True)
    def _endpoint(self, moto_endpoint: str) -> None:
        import boto3

        self.url = moto_endpoint
        self.bucket = f"models-{uuid.uuid4().hex[:10]}"
        boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=self.bucket)

    @pytest.fixture
    def registry(self) -> SagemakerRegistry:
        return SagemakerRegistry(SagemakerRegistryConfig(
            bucket=self.bucket, region="us-east-1", endpoint_url=self.url, s3_endpoint_url=self.url,
            model_name=f"docs-{uuid.uuid4().hex[:8]}", image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/fd:1"))

    def spec_entry(self, tmp_path: Path) -> str:
        return (f"{{provider: sagemaker, bucket: {self.bucket}, region: us-east-1, endpoint_url: '{self.url}', "
                f"s3_endpoint_url: '{self.url}'}}")

    def unreachable_entry(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        closed = f"http://127.0.0.1:{free_port()}"
        return (f"{{provider: sagemaker, bucket: {self.bucket}, region: us-east-1, endpoint_url: '{closed}', "
                f"s3_endpoint_url: '{closed}', timeout: 3}}")

    def clients(self) -> tuple[Any, Any]:
        import boto3

        return (boto3.client("sagemaker", endpoint_url=self.url, region_name="us-east-1"),
                boto3.client("s3", endpoint_url=self.url, region_name="us-east-1"))

    def packages(self, group: str) -> list[dict[str, Any]]:
        sm, _ = self.clients()
        summaries = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
        return [sm.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]

    def read(self, registry: SagemakerRegistry, release: Release) -> Seen:
        mine = [p for p in self.packages(registry.model_name)
                if p["CustomerMetadataProperties"]["flightdeck.release_id"] == release.id]
        assert mine, f"no package of {release.name}"
        package = mine[0]
        meta = package["CustomerMetadataProperties"]
        assert all(_SAGEMAKER_META_VALUE.match(v) and len(k) <= 128 for k, v in meta.items()), meta
        status = package["ModelApprovalStatus"]
        stage = {"Approved": "production", "Rejected": "archived"}.get(status, meta["flightdeck.stage"])
        assert (status == "PendingManualApproval") == (stage in ("candidate", "staging"))
        url = meta["flightdeck.model_data"]
        if registry.config.image_uri:  # deployable: the container's model data is the release's
            assert package["InferenceSpecification"]["Containers"][0] == {"Image": registry.config.image_uri,
                                                                            "ModelDataUrl": url}
        bucket, _, key = url[len("s3://"):].partition("/")
        _, s3 = self.clients()
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            files = {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                     for m in tar.getmembers() if m.isfile()}
        aliases = {k.removeprefix("flightdeck.alias.") for k in meta if k.startswith("flightdeck.alias.")}
        return Seen(str(package["ModelPackageVersion"]), stage, aliases,
                    {k.removeprefix("flightdeck."): v for k, v in meta.items()}, files, len(mine))

    def test_stages_are_approval_statuses(self, registry: SagemakerRegistry, pool: Pool) -> None:
        v1, v2 = pool.items[:2]
        for release in (v1, v2):
            self.publish(registry, pool, release)
        registry.set_stage(staged(v1, "production"), "production")
        registry.set_stage(staged(v2, "staging"), "staging")
        statuses = {p["CustomerMetadataProperties"]["flightdeck.release"]: (p["ModelApprovalStatus"],
                                                                           p.get("ApprovalDescription"))
                    for p in self.packages(registry.model_name)}
        assert statuses == {"v1": ("Approved", "flightdeck: release v1 in production"),
                            "v2": ("PendingManualApproval", "flightdeck: release v2 in staging")}
        registry.set_stage(staged(v2, "production"), "production")
        statuses = {p["CustomerMetadataProperties"]["flightdeck.release"]: p["ModelApprovalStatus"]
                    for p in self.packages(registry.model_name)}
        assert statuses == {"v1": "Rejected", "v2": "Approved"}
        [v1_package] = [p for p in self.packages(registry.model_name)
                        if p["CustomerMetadataProperties"]["flightdeck.release"] == "v1"]
        assert v1_package["ApprovalDescription"] == "flightdeck: archived, replaced in production by v2"
        meta = v1_package["CustomerMetadataProperties"]
        assert meta["flightdeck.gates"] == "recall@3 ge 0.5 passed"
        _, s3 = self.clients()
        manifest = s3.get_object(Bucket=self.bucket, Key=meta["flightdeck.manifest_uri"].split("/", 3)[3])["Body"]
        assert hashlib.sha256(manifest.read()).hexdigest() == v1.manifest

    def test_without_an_image_the_package_has_no_inference_specification(self, pool: Pool) -> None:
        registry = SagemakerRegistry(SagemakerRegistryConfig(bucket=self.bucket, region="us-east-1",
                                                             endpoint_url=self.url, s3_endpoint_url=self.url,
                                                             model_name="no-image"))
        result = self.publish(registry, pool, pool.items[0])
        [package] = self.packages("no-image")
        assert "InferenceSpecification" not in package or not package["InferenceSpecification"]
        assert result["model_data"] == package["CustomerMetadataProperties"]["flightdeck.model_data"]

    def test_settings_for_people(self) -> None:
        with pytest.raises(ValueError, match="model_name 'python_docs' is not a SageMaker model package group name.*"
                                             "set model_name: python-docs"):
            SagemakerRegistryConfig(bucket="models", model_name="python_docs")
        with pytest.raises(ValueError, match="bucket 's3://models/x' is not an S3 bucket name"):
            SagemakerRegistryConfig(bucket="s3://models/x")
        registry = SagemakerRegistry(SagemakerRegistryConfig(bucket="models"))
        with pytest.raises(RegistryError, match="no AWS region for the SageMaker model registry"):
            registry.set_stage(Release("rel_0", 1, 0, "u", "m", "s", None, None, None, None, "candidate", {}),
                               "production")


# --- Vertex AI: the SDK's REST client against a local server speaking Vertex AI's REST shape ----------------------
_VERTEX_ALIAS = re.compile(r"^-?[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")


def _vertex_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message}}


class VertexServer:
    """A local HTTP server speaking the Vertex AI Model Registry REST shape (v1 ``models``: upload, list with a
    display-name filter, get, listVersions with a label filter, mergeVersionAliases, patch of labels), written from
    Google's REST reference — not recorded from Vertex AI. It is strict where Vertex AI is: an upload needs a
    container image, aliases match Vertex AI's pattern, an alias held by another version is refused, removing an
    alias a version does not hold is refused."""

    def __init__(self) -> None:
        self.models: dict[str, list[dict[str, Any]]] = {}  # model name -> its versions (REST JSON)
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def version(self, name: str) -> dict[str, Any] | None:
        model, _, ver = name.partition("@")
        versions = self.models.get(model) or []
        if not ver:
            ver = "default"
        return next((v for v in versions if v["versionId"] == ver or ver in v["versionAliases"]), None)

    def handle(self, method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        loc = r"projects/[^/]+/locations/[^/]+"
        if (m := re.fullmatch(rf"/v1/({loc})/models:upload", path)) and method == "POST":
            return self._upload(m.group(1), body or {})
        if (m := re.fullmatch(rf"/v1/({loc})/models", path)) and method == "GET":
            want = re.fullmatch(r'display_name="(.*)"', query.get("filter", ""))
            found = [self.version(name) for name in self.models if name.startswith(m.group(1) + "/")]
            return 200, {"models": [v for v in found if v and (not want or v["displayName"] == want.group(1))]}
        if (m := re.fullmatch(rf"/v1/({loc}/models/[^/@:]+):listVersions", path)) and method == "GET":
            if m.group(1) not in self.models:
                return 404, _vertex_error(404, "NOT_FOUND", f"model {m.group(1)} not found")
            versions = self.models[m.group(1)]
            if want := re.fullmatch(r'labels\.([a-z0-9_-]+)="(.*)"', query.get("filter", "")):
                versions = [v for v in versions if v.get("labels", {}).get(want.group(1)) == want.group(2)]
            return 200, {"models": versions}
        if (m := re.fullmatch(rf"/v1/({loc}/models/[^/:]+):mergeVersionAliases", path)) and method == "POST":
            return self._merge(m.group(1), (body or {}).get("versionAliases", []))
        if m := re.fullmatch(rf"/v1/({loc}/models/[^/:]+)", path):
            found = self.version(m.group(1))
            if found is None:
                return 404, _vertex_error(404, "NOT_FOUND", f"{m.group(1)} not found")
            if method == "GET":
                return 200, found
            if method == "PATCH":
                for name in query.get("updateMask", "").split(","):
                    key = re.sub(r"_([a-z])", lambda g: g.group(1).upper(), name)
                    if key not in ("labels", "description", "versionDescription", "displayName"):
                        return 400, _vertex_error(400, "INVALID_ARGUMENT", f"update_mask {name} is not updatable")
                    found[key] = (body or {}).get(key)
                return 200, found
        return 404, _vertex_error(404, "NOT_FOUND", f"no route {method} {path}")

    def _upload(self, parent: str, body: dict[str, Any]) -> tuple[int, Any]:
        model = dict(body.get("model") or {})
        if not (model.get("containerSpec") or {}).get("imageUri"):
            return 400, _vertex_error(400, "INVALID_ARGUMENT", "model.container_spec.image_uri is required")
        aliases = model.get("versionAliases", [])
        if bad := [a for a in aliases if not _VERTEX_ALIAS.match(a) or a.startswith("-")]:
            return 400, _vertex_error(400, "INVALID_ARGUMENT", f"invalid version aliases {bad}")
        if parent_model := body.get("parentModel") or "":
            if parent_model not in self.models:
                return 404, _vertex_error(404, "NOT_FOUND", f"parent model {parent_model} not found")
            name, versions = parent_model, self.models[parent_model]
            if taken := [a for a in aliases for v in versions if a in v["versionAliases"]]:
                return 400, _vertex_error(400, "FAILED_PRECONDITION", f"aliases {taken} are used by another version")
        else:
            name = f"{parent}/models/{len(self.models) + 1000}"
            versions = self.models.setdefault(name, [])
        version_id = str(len(versions) + 1)
        model.pop("containerSpec")  # input only
        model.update(name=name, versionId=version_id, versionAliases=(["default"] if not versions else []) + aliases,
                     versionCreateTime="2026-01-01T00:00:00Z")
        versions.append(model)
        return 200, {"name": f"{name}/operations/{len(self.requests)}", "done": True,
                     "metadata": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1."
                                           "UploadModelOperationMetadata"},
                     "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                                  "model": name, "modelVersionId": version_id}}

    def _merge(self, name: str, aliases: list[str]) -> tuple[int, Any]:
        found = self.version(name)
        if found is None:
            return 404, _vertex_error(404, "NOT_FOUND", f"{name} not found")
        for alias in aliases:
            if not _VERTEX_ALIAS.match(alias):
                return 400, _vertex_error(400, "INVALID_ARGUMENT", f"invalid version alias {alias!r}")
            if alias.startswith("-"):
                if alias[1:] not in found["versionAliases"]:
                    return 400, _vertex_error(400, "INVALID_ARGUMENT", f"alias {alias[1:]!r} is not on {name}")
                found["versionAliases"].remove(alias[1:])
                continue
            holder = next((v for v in self.models[name.split("@")[0]] if alias in v["versionAliases"]), None)
            if holder is not None and holder is not found:
                return 400, _vertex_error(400, "FAILED_PRECONDITION",
                                          f"alias {alias!r} is used by version {holder['versionId']}")
            if alias not in found["versionAliases"]:
                found["versionAliases"].append(alias)
        return 200, found

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with fake.lock:
                    status, out = fake.handle(method, urllib.parse.unquote(url.path),
                                              dict(urllib.parse.parse_qsl(url.query)), body)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's names
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

        return Handler


@pytest.fixture(scope="module")
def vertex_server() -> Iterator[VertexServer]:
    need("vertex_ai", "google.cloud.aiplatform_v1")
    server = VertexServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gcs_endpoint() -> Iterator[str]:
    need("dev", "gcp_storage_emulator")  # stands in for Cloud Storage here
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# Not marked `exercises`: no Vertex AI service runs here, so deployment.model_registry.vertex_ai stays planned
# (PLANNED_REASONS); these tests prove the provider against Vertex AI's REST shape only.
@pytest.mark.integration
class TestVertexAiRegistry(ModelRegistryContract):
    provider = "vertex_ai"

    @pytest.fixture(autouse=True)
    def _servers(self, vertex_server: VertexServer, gcs_endpoint: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.vertex, self.gcs = vertex_server, gcs_endpoint
        self.bucket = f"models-{uuid.uuid4().hex[:10]}"
        self.storage = storage.Client(project="test", credentials=AnonymousCredentials(),
                                      client_options={"api_endpoint": gcs_endpoint})
        self.storage.create_bucket(self.bucket)

    def settings(self, **changes: Any) -> dict[str, Any]:
        return {"project": "test", "location": "europe-west4", "artifact_uri": f"gs://{self.bucket}/releases",
                "serving_container_image_uri": "europe-docker.pkg.dev/test/fd/serve:1",
                "api_endpoint": self.vertex.url, "storage_endpoint": self.gcs, **changes}

    @pytest.fixture
    def registry(self) -> VertexAiRegistry:
        return VertexAiRegistry(VertexAiRegistryConfig(**self.settings(model_name=f"docs-{uuid.uuid4().hex[:8]}")))

    # deployment.model_registry.vertex_ai is planned, so a spec cannot name it (see
    # test_the_vertex_ai_option_is_planned_with_its_reason; a closed port is test_a_closed_port_is_said)
    test_a_spec_entry_mirrors_every_release_of_the_project = None  # type: ignore[assignment]
    test_a_registry_that_is_down_is_an_event_and_the_promotion_stays = None  # type: ignore[assignment]

    def read(self, registry: VertexAiRegistry, release: Release) -> Seen:
        client = registry.client()
        [model] = [m.name for m in client.list_models(request={"parent": registry.parent,
                                                               "filter": f'display_name="{registry.model_name}"'})]
        mine = [v for v in client.list_model_versions(request={"name": model}) if
                v.labels.get("flightdeck-release") == release.id]
        assert mine, f"no version of {release.name}"
        version = mine[0]
        held = set(version.version_aliases)
        stage = next((a for a in STAGE_ALIASES if a in held), None)
        assert version.labels["flightdeck-stage"] in {stage, "archived", "candidate"}
        description = dict(line.split(": ", 1) for line in version.version_description.splitlines()[1:]
                           if not line.startswith("gate "))
        bucket, _, prefix = version.artifact_uri[len("gs://"):].partition("/")
        files = {b.name[len(prefix) + 1:]: hashlib.sha256(b.download_as_bytes()).hexdigest()
                 for b in self.storage.list_blobs(bucket, prefix=prefix + "/")}
        return Seen(version.version_id, stage, {a for a in held - set(STAGE_ALIASES) if a != "default"},
                    {"release_id": version.labels["flightdeck-release"],
                     "manifest_sha256": description["manifest sha256"],
                     "gates_passed": version.labels["flightdeck-gates-passed"]}, files, len(mine))

    def test_a_release_alias_is_written_as_vertex_takes_it(self, registry: VertexAiRegistry, pool: Pool) -> None:
        v1 = pool.items[0]
        self.publish(registry, pool, v1)
        result = registry.set_alias(v1, "eu_prod")
        assert "eu-prod" in result["aliases"] and "eu-prod" in self.read(registry, v1).aliases
        assert vertex_alias("blue_green") == "blue-green"
        with pytest.raises(RegistryError, match="alias 'x_' cannot be a Vertex AI version alias"):
            registry.set_alias(v1, "x_")
        # eu-prod is also how Vertex AI writes a flightdeck alias eu-prod the release keeps: removing eu_prod leaves it
        assert registry.remove_alias(dataclasses.replace(v1, aliases=("eu-prod",)), "eu_prod")["removed"] is False
        start = len(self.vertex.requests)
        result = registry.remove_alias(dataclasses.replace(v1, aliases=()), "eu_prod")
        assert result["removed"] is True and "eu-prod" not in self.read(registry, v1).aliases
        assert [body for _, path, body in self.vertex.requests[start:] if path.endswith(":mergeVersionAliases")] == [
            {"versionAliases": ["-eu-prod"]}]
        assert registry.remove_alias(v1, "x_")["removed"] is False  # never there: Vertex AI could not take it

    def test_the_requests_are_vertex_ai_s(self, registry: VertexAiRegistry, pool: Pool) -> None:
        v1, v2 = pool.items[:2]
        start = len(self.vertex.requests)
        self.publish(registry, pool, v1)
        self.publish(registry, pool, v2)
        uploads = [body for method, path, body in self.vertex.requests[start:] if path.endswith("/models:upload")]
        assert len(uploads) == 2 and "parentModel" not in uploads[0]
        assert uploads[1]["parentModel"].startswith("projects/test/locations/europe-west4/models/")
        sent = uploads[1]["model"]
        assert sent["displayName"] == registry.model_name and sent["versionAliases"] == ["candidate"]
        assert sent["containerSpec"] == {"imageUri": "europe-docker.pkg.dev/test/fd/serve:1"}
        assert sent["artifactUri"] == f"gs://{self.bucket}/releases/{registry.model_name}/{v2.id}"
        assert sent["labels"] == {"flightdeck-release": v2.id, "flightdeck-number": "v2",
                                  "flightdeck-stage": "candidate", "flightdeck-gates-passed": "none"}
        # the candidate alias was taken from v1 before v2's upload asked for it
        merges = [(path, body) for method, path, body in self.vertex.requests[start:]
                  if path.endswith(":mergeVersionAliases")]
        assert merges == [(f"/v1/{uploads[1]['parentModel']}@1:mergeVersionAliases",
                           {"versionAliases": ["-candidate"]})]  # the name is the path's

    def test_a_closed_port_is_said(self, pool: Pool) -> None:
        registry = VertexAiRegistry(VertexAiRegistryConfig(**self.settings(api_endpoint=f"http://127.0.0.1:"
                                                                                        f"{free_port()}", timeout=3)))
        started = time.monotonic()
        with pytest.raises(RegistryError, match="Vertex AI at http://127.0.0.1:.* did not answer|Vertex AI http"):
            self.publish(registry, pool, pool.items[0])
        assert time.monotonic() - started < 30

    def test_settings_for_people(self) -> None:
        with pytest.raises(ValueError, match="artifact_uri 'models/x' is not a Cloud Storage folder"):
            VertexAiRegistryConfig(**{**self.settings(), "artifact_uri": "models/x"})
        with pytest.raises(ValueError, match="serving_container_image_uri"):
            VertexAiRegistryConfig(**{k: v for k, v in self.settings().items() if k != "serving_container_image_uri"})


# --- the checklist and the spec ------------------------------------------------------------------------------------
@pytest.mark.unit
def test_the_section_takes_the_registries_as_providers() -> None:
    names = providers().names(Category.MODEL_REGISTRY)
    assert {"mlflow", "wandb", "sagemaker", "vertex_ai"} <= set(names)
    for option in ("mlflow", "wandb", "sagemaker"):
        assert option_usable(f"deployment.model_registry.{option}").state in ("ready", "needs extra")


@pytest.mark.unit
def test_the_vertex_ai_option_is_planned_with_its_reason(tmp_path: Path) -> None:
    status = option_usable("deployment.model_registry.vertex_ai")
    assert status.state == "planned" and "no Vertex AI service can run here" in status.detail
    root = write_project(tmp_path / "p", registry_entry="{provider: vertex_ai, project: x, artifact_uri: gs://b/p, "
                                                        "serving_container_image_uri: img}")
    with pytest.raises(SpecError, match=r"flightdeck.yaml:17:7: deployment.model_registry.0: 'vertex_ai' \(5.4 Model "
                                        r"Registry.*is planned: no Vertex AI service can run here.*Ready choices: "
                                        "mlflow, sagemaker, wandb"):
        Project.load(root)


@pytest.mark.unit
def test_a_registry_entry_is_checked_where_it_is_written(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", registry_entry="{provider: sagemaker, region: us-east-1}")
    with pytest.raises(SpecError) as err:
        Project.load(root)
    [problem] = err.value.problems
    assert (problem.line, problem.location, problem.message) == (17, "deployment.model_registry.0.bucket",
                                                                 "Field required")
    root = write_project(tmp_path / "q", registry_entry="{provider: mlflw}")
    with pytest.raises(SpecError, match="unknown model_registry 'mlflw'.*Did you mean 'mlflow'"):
        Project.load(root)


@pytest.mark.unit
def test_the_project_builds_its_mirrors_with_the_project_name(tmp_path: Path) -> None:
    need("sagemaker", "boto3")
    root = write_project(tmp_path / "p", project="python-docs",
                         registry_entry="{provider: sagemaker, bucket: models, region: eu-west-1}")
    [mirror] = load(root).releases.mirrors
    assert isinstance(mirror, SagemakerRegistry) and mirror.model_name == "python-docs"
    assert load(write_project(tmp_path / "q")).releases.mirrors == []
