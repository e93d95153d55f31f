"""Releases (checklist 5.4, 8.1 model versioning and approval workflows): a release is its content-addressed
manifest; promotion only when governance.approvals allows it (library and CLI alike); one release in production,
rollback; a release whose artifacts or models changed is refused; export and import with every hash checked."""

from __future__ import annotations

import json
import sqlite3
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import FAILING_GATES, PASSING_GATES, write_eval_project
from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.governance.access import Role
from flightdeck.governance.releases import Actor, PolicyRefused, ReleaseError, ReleaseIntegrityError, ReleaseNotFound
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = [pytest.mark.unit, needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")]

PASSING, FAILING = PASSING_GATES, FAILING_GATES
ALICE, BOB = Actor("user:alice", Role.ADMIN), Actor("key:0123456789ab", Role.APPROVER)


def write_project(root: Path, *, gates: str = PASSING, k: int = 3, approvals: str = "") -> Path:
    return write_eval_project(root, project="release-test", k=k, gates=gates, extra=approvals)


def load(root: Path) -> Project:
    return Project.load(root).use(embedder=FakeEmbedder(dimension=64))


def built(root: Path, *, evaluate: bool = True) -> Project:
    project = load(root)
    project.run()
    if evaluate:
        project.evaluate()
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return built(write_project(tmp_path / "p"))


# --- what a release is -------------------------------------------------------------------------------------------
@pytest.mark.exercises("governance.model_governance.model_versioning")
def test_a_release_is_its_manifest_with_every_part_hashed(project: Project) -> None:
    release, created = project.create_release(ALICE)
    assert created and release.name == "v1" and release.stage == "candidate" and release.created_by == "user:alice"
    manifest = project.releases.manifest(release)
    # the id is the manifest's content hash: the same content is the same release
    data = project.workspace.artifacts.get_bytes(release.manifest)
    import hashlib

    assert release.id == "rel_" + hashlib.sha256(data).hexdigest()[:16] == "rel_" + release.manifest[:16]
    again, created_again = project.create_release(ALICE)
    assert (again.id, created_again) == (release.id, False) and len(project.releases.list()) == 1

    spec_text = project.workspace.artifacts.get_bytes(manifest["spec"]["artifact"]).decode()
    assert spec_text == project.spec_path.read_text()
    iv = manifest["index_version"]
    assert iv["id"] == project.searcher.index_version() and manifest["dataset_version"] == iv["dataset_version"]
    folder = project.workspace.store_folder(iv["store"], iv["id"])
    assert manifest["index_files"] and set(manifest["index_files"]) == {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert manifest["models"]["embedder"]["model_id"] == project.embedder.model_id
    assert manifest["models"]["generator"]["provider"] == "extractive" and manifest["prompts"] == []
    ev = manifest["evaluation"]
    [run] = [r for r in __import__("flightdeck.models.trackers.builtin", fromlist=["x"]).ExperimentRuns(
        project.workspace).list("eval")]
    assert ev["run_id"] == run.id and ev["passed"] is True and ev["gates"][0]["gate"] == "recall@3 >= 0.5"
    assert release.gates_passed is True and release.eval_run == run.id
    [created_event] = project.releases.events(release)
    assert (created_event.event, created_event.to_stage, created_event.actor) == ("created", "candidate", "user:alice")


def test_a_release_records_the_llm_s_weights_and_prompt(tmp_path: Path, gemma_gguf: Path) -> None:
    root = write_project(tmp_path / "p")
    spec = root / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace(
        "generator: {provider: extractive, max_sentences: 1}",
        f"generator: {{provider: llama_cpp, model_path: {gemma_gguf}, max_tokens: 8}}"))
    project = built(root, evaluate=False)
    release, _ = project.create_release(ALICE)
    manifest = project.releases.manifest(release)
    gen = manifest["models"]["generator"]
    import hashlib

    digest = hashlib.sha256(gemma_gguf.read_bytes()).hexdigest()
    assert gen["files"] == {gemma_gguf.name: {"sha256": digest, "size": gemma_gguf.stat().st_size}}
    [prompt] = manifest["prompts"]
    assert prompt["template"] and len(prompt["sha256"]) == 64
    # without an evaluation of this spec, a release cannot pass the gates the spec sets
    assert release.gates_passed is None and manifest["evaluation"] is None
    assert "no evaluation of its index version" in " ".join(project.releases.check_policy(release).to_dict()["missing"])


# --- the approval policy --------------------------------------------------------------------------------------------
@pytest.mark.exercises("governance.model_governance.approval_workflows")
def test_promotion_needs_an_approval_from_someone_else_then_archives_the_previous_one(project: Project) -> None:
    releases = project.releases
    v1, _ = project.create_release(ALICE)
    with pytest.raises(PolicyRefused, match=r"0 of 1 approval\(s\) from an approver or admin other than its "
                                            r"author user:alice") as refused:
        releases.promote("v1", ALICE)
    assert refused.value.reasons and releases.get("v1").stage == "candidate"
    with pytest.raises(ReleaseNotFound):  # a number no release can have is not found (not an integer overflow)
        releases.get("9223372036854775808")
    with pytest.raises(PolicyRefused, match="created release v1 and may not approve it"):
        releases.review("v1", ALICE, "approved")
    with pytest.raises(PolicyRefused, match="a viewer may not approve"):
        releases.review("v1", Actor("key:aaaaaaaaaaaa", Role.VIEWER), "approved")
    with pytest.raises(PolicyRefused, match="an approver may not promote|a approver may not promote"):
        releases.promote("v1", BOB)  # approvers approve; admins promote
    releases.review("v1", BOB, "approved", "looks good")
    assert releases.check_policy("v1").allowed and releases.check_policy("v1").approvals == [BOB.name]
    promoted = releases.promote("v1", ALICE, comment="first")
    assert promoted.stage == "production" and releases.get("production").id == v1.id

    # a second release (another search setting) replaces it; the first is archived, not deleted
    write_project(project.spec_path.parent, k=2)
    second = load(project.spec_path.parent)
    second.run()
    second.evaluate()
    v2, created = second.create_release(ALICE)
    assert created and v2.name == "v2"
    second.releases.review("v2", BOB, "approved")
    second.releases.promote("v2", ALICE)
    assert [(r.name, r.stage) for r in second.releases.list()] == [("v2", "production"), ("v1", "archived")]
    events = [(e.event, e.from_stage, e.to_stage) for e in second.releases.events("v1")]
    assert events == [("created", None, "candidate"), ("approved", None, None),
                      ("promoted", "candidate", "production"), ("archived", "production", "archived")]

    # rollback: v1 is back, v2 archived; an archived release cannot be promoted around the policy
    back = second.releases.rollback(ALICE, comment="v2 answers worse")
    assert back.id == v1.id and second.releases.get("production").id == v1.id
    assert second.releases.get("v2").stage == "archived"
    with pytest.raises(ReleaseError, match="is archived; bring it back with `flightdeck release rollback --to`"):
        second.releases.promote("v2", ALICE)
    assert second.releases.rollback(ALICE, to="v2").id == v2.id  # it was in production before
    # every change is an entry of the audit log, committed with it, and the chain verifies
    audited = [(e.action, e.actor) for e in second.audit.entries() if e.action.startswith("release.")]
    assert audited == [("release.created", "user:alice"), ("release.approved", BOB.name),
                       ("release.promoted", "user:alice"), ("release.created", "user:alice"),
                       ("release.approved", BOB.name), ("release.promoted", "user:alice"),
                       ("release.rolled_back", "user:alice"), ("release.rolled_back", "user:alice")]
    assert second.audit.verify().ok
    diff = second.releases.diff("v1", "v2")
    assert any(line.startswith("-  search: {mode: hybrid, k: 3}") for line in diff["spec"])
    assert any(line.startswith("+  search: {mode: hybrid, k: 2}") for line in diff["spec"])
    assert diff["index_version"] is None and diff["documents"] is None  # same documents, same index


def test_a_rejection_stands_until_that_person_approves(project: Project) -> None:
    releases = project.releases
    project.create_release(ALICE)
    carol = Actor("key:cccccccccccc", Role.ADMIN)
    releases.review("v1", BOB, "approved")
    releases.review("v1", carol, "rejected", "answers cite the wrong page")
    check = releases.check_policy("v1")
    assert not check.allowed and "rejected by key:cccccccccccc" in check.missing[0]
    with pytest.raises(PolicyRefused, match="rejected by key:cccccccccccc"):
        releases.promote("v1", ALICE)
    releases.review("v1", carol, "approved", "fixed")
    assert releases.check_policy("v1").approvals == [BOB.name, carol.name]
    assert releases.promote("v1", ALICE).stage == "production"


def test_a_failed_gate_blocks_promotion_whatever_the_approvals_unless_an_admin_overrides(tmp_path: Path) -> None:
    project = built(write_project(tmp_path / "p", gates=FAILING))
    release, _ = project.create_release(ALICE)
    assert release.gates_passed is False and release.summary["gates_missed"] == ["mrr@3 <= 0.01"]
    releases = project.releases
    releases.review("v1", BOB, "approved")
    with pytest.raises(PolicyRefused, match=r"missed gate\(s\): mrr@3 <= 0.01. An admin may override"):
        releases.promote("v1", ALICE)
    with pytest.raises(PolicyRefused, match="an override needs a reason"):
        releases.promote("v1", ALICE, override_reason="  ")
    promoted = releases.promote("v1", ALICE, override_reason="token F1 is unfair to extractive answers")
    assert promoted.stage == "production"
    [event] = [e for e in releases.events("v1") if e.event == "promoted"]
    assert event.details["override"] == {"reason": "token F1 is unfair to extractive answers",
                                         "gates": ["missed gate(s): mrr@3 <= 0.01"]}


def test_the_policy_is_the_spec_s(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", approvals=textwrap.dedent("""\
        governance:
          approvals: {required: 2, roles: [approver], self_approval: true, red_team_clean: true}
        """))
    project = built(root)
    project.create_release(ALICE)
    releases = project.releases
    releases.review("v1", ALICE, "approved")  # self approval allowed, but alice is an admin: not a counted role
    releases.review("v1", BOB, "approved")
    check = releases.check_policy("v1")
    assert check.approvals == [BOB.name]
    assert check.missing == ["1 of 2 approval(s) from an approver", "no red-team run on this release "
                                                                     "(`flightdeck redteam`)"]
    releases.review("v1", Actor("key:dddddddddddd", Role.APPROVER), "approved")
    releases.record_red_team("v1", ALICE, {"successful_attacks": 2})
    assert releases.check_policy("v1").missing == ["the last red-team run found 2 successful attack(s)"]
    releases.record_red_team("v1", ALICE, {"successful_attacks": 0})
    assert releases.check_policy("v1").allowed
    assert releases.check_policy("v1", "staging").allowed and releases.check_policy("v1", "staging").required == 0
    with pytest.raises(Exception, match="roles"):
        write_project(root, approvals="governance:\n  approvals: {roles: [viewer]}\n")
        Project.load(root)


# --- integrity ---------------------------------------------------------------------------------------------------
def test_a_release_whose_artifacts_changed_is_refused_naming_what(project: Project) -> None:
    release, _ = project.create_release(ALICE)
    releases = project.releases
    releases.review("v1", BOB, "approved")
    assert releases.verify(release) == []
    manifest = releases.manifest(release)
    iv = manifest["index_version"]
    name = sorted(manifest["index_files"])[0]
    target = project.workspace.store_folder(iv["store"], iv["id"]) / name
    original = target.read_bytes()
    target.write_bytes(original + b"\0")
    with pytest.raises(ReleaseIntegrityError, match=f"index file {name} of index version {iv['id'][:12]} was changed"):
        releases.promote("v1", ALICE)
    target.write_bytes(original)
    spec_artifact = project.workspace.artifacts.path(manifest["spec"]["artifact"])
    spec_artifact.chmod(0o644)
    spec_artifact.write_text(spec_artifact.read_text() + "# edited\n")
    assert releases.verify(release) == [f"the spec (artifact {manifest['spec']['artifact'][:12]}) was changed"]

    # the models it would be served with are checked too
    def other_model(kind: str, identity: dict[str, Any]) -> list[str]:
        return [f"the {kind} is something else"] if kind == "embedder" else []

    assert "the embedder is something else" in releases.verify(release, model_files=other_model)


# --- between machines ----------------------------------------------------------------------------------------------
@pytest.mark.exercises("deployment.packaging.artifact_registry")
def test_export_and_import_check_every_hash(project: Project, tmp_path: Path) -> None:
    release, _ = project.create_release(ALICE)
    project.releases.review("v1", BOB, "approved")
    archive = tmp_path / "v1.tar.gz"
    info = project.releases.export("v1", archive)
    assert info["index_files"] >= 1 and archive.is_file()

    other = load(write_project(tmp_path / "elsewhere"))  # a second project, never built
    imported, created = other.releases.import_(archive, ALICE)
    assert created and imported.id == release.id and imported.stage == "candidate"
    assert other.releases.verify(imported) == []  # the index files and every record arrived intact
    [event] = other.releases.events(imported)
    assert event.event == "imported" and [e["event"] for e in event.details["history"]] == ["created", "approved"]
    assert other.releases.check_policy(imported).approvals == []  # approvals do not travel
    assert other.releases.import_(archive, ALICE)[1] is False

    # a damaged archive is refused before anything is written
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(bad, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name.startswith("index/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            m.size = len(data)
            import io

            dst.addfile(m, io.BytesIO(data))
    third = load(write_project(tmp_path / "third"))
    with pytest.raises(ReleaseIntegrityError, match="does not match its hash"):
        third.releases.import_(bad, ALICE)
    assert third.releases.list() == []
    with pytest.raises(ReleaseError, match="not a release archive"):
        third.releases.import_(tmp_path / "elsewhere" / "flightdeck.yaml", ALICE)


# --- the CLI ---------------------------------------------------------------------------------------------------------
def test_the_cli_refuses_promotion_until_approved(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    load_ = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load_(cls, path).use(
        embedder=FakeEmbedder(dimension=64))))
    spec = str(project.spec_path)
    runner = CliRunner()

    def cli(*args: str, user: str = "alice", code: int = 0) -> Any:
        monkeypatch.setenv("LOGNAME", user)
        res = runner.invoke(app, ["release", *args, "--spec", spec, "--json"])
        assert res.exit_code == code, res.output
        return json.loads(res.stdout)

    out = cli("create")
    assert out["created"] and out["release"]["name"] == "v1" and not out["policy"]["allowed"]
    refused = cli("promote", "v1", code=1)
    assert "cannot be promoted to production: 0 of 1 approval(s)" in refused["error"]
    assert "created release v1 and may not approve it" in cli("approve", "v1", code=1)["error"]
    cli("approve", "v1", "-m", "ok", user="bob")
    assert cli("promote", "v1")["release"]["stage"] == "production"
    shown = cli("show", "production")
    assert shown["intact"] and [e["event"] for e in shown["events"]] == ["created", "approved", "promoted"]
    assert shown["events"][1]["actor"] == "user:bob" and shown["events"][1]["comment"] == "ok"
    assert [r["stage"] for r in cli("list")] == ["production"]
    res = runner.invoke(app, ["release", "list", "--spec", spec, "--stage", "live"])
    flat = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "one of candidate, staging, production, archived" in flat
    res = runner.invoke(app, ["release", "show", "v9", "--spec", spec])
    assert res.exit_code == 1 and "no release 'v9'" in res.output


def test_a_stage_edited_in_the_database_is_caught(project: Project) -> None:
    """The stage is a column anyone with the file can edit: a release moved to production that way disagrees with
    its events, so it is not intact (and cannot be served or promoted from)."""
    release, _ = project.create_release(ALICE)
    with sqlite3.connect(project.workspace.root / "metadata.db") as conn:
        conn.execute("UPDATE releases SET stage='production' WHERE id=?", (release.id,))
    assert project.releases.verify("production") == [
        "its stage reads production, but its events last moved it to candidate: the releases table was edited "
        "outside flightdeck"]
