"""The dvc versioning provider with DVC's real Python API and a local-folder remote, without and with git."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from flightdeck import Project
from flightdeck.data.versioning.base import VersioningContext
from flightdeck.data.versioning.dvc import DvcConfig, DvcVersioning
from flightdeck.errors import SourceError
from flightdeck.governance.versions import read_manifest
from flightdeck.registry import Category
from flightdeck.testing import FakeEmbedder
from needs import needs_provider

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
# DVC's Python API (the dvc extra) does the work; the settings and the missing-library message need nothing
DVC = needs_provider(Category.VERSIONING, "dvc")


def _with_dvc(root: Path, settings: str) -> Project:
    spec = root / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace("data:\n", f"data:\n  versioning:\n    - {settings}\n", 1))
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    return project


def _dvc_file(root: Path) -> dict:
    return YAML(typ="safe").load((root / "docs.dvc").read_text())


def _dir_listing(remote_or_cache: Path, md5: str) -> list[dict]:
    """DVC's own .dir object: the listing of the folder, each file with its md5."""
    digest = md5.removesuffix(".dir")
    return json.loads((remote_or_cache / "files" / "md5" / digest[:2] / f"{digest[2:]}.dir").read_text())


@pytest.mark.exercises("data.versioning.dvc")
@DVC
def test_dvc_tracks_the_raw_data_pushes_it_and_the_version_records_its_hash(project_dir: Path) -> None:
    remote = project_dir.parent / f"{project_dir.name}-remote"
    project = _with_dvc(project_dir, f"{{provider: dvc, remote: {remote}}}")  # path: the files source's folder
    run = project.run()
    assert run.status == "succeeded"
    # no git here: DVC was initialised without SCM next to the spec
    assert (project_dir / ".dvc").is_dir() and not (project_dir / ".git").exists()
    out = _dvc_file(project_dir)["outs"][0]
    assert out["path"] == "docs" and out["md5"].endswith(".dir") and out["nfiles"] == 3
    ws = project.workspace
    first = ws.get_state("current_dataset")
    recorded = read_manifest(ws, first)["dvc"]
    assert recorded == {"path": "docs", "dvc_file": "docs.dvc", "md5": out["md5"], "size": out["size"],
                        "nfiles": 3, "remote": str(remote)}
    versions = project.dataset_versions()
    assert versions[-1].providers["dvc"]["md5"] == out["md5"]
    # the hash is DVC's own: its .dir listing in the cache and in the remote names every file by its md5
    listing = _dir_listing(project_dir / ".dvc" / "cache", out["md5"])
    assert listing == _dir_listing(remote, out["md5"])
    files = {e["relpath"]: e["md5"] for e in listing}
    for rel in ("guide/install.md", "guide/care.html", "notes.txt"):
        md5 = hashlib.md5((project_dir / "docs" / rel).read_bytes()).hexdigest()
        assert files[rel] == md5
        assert (remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()  # pushed to the remote
    # a changed file changes the DVC hash, the dataset version and what the remote holds
    (project_dir / "docs" / "notes.txt").write_text("Widget colours: only purple now.\n")
    again = Project.load(project_dir)
    again.use(embedder=FakeEmbedder())
    assert again.run().status == "succeeded"
    second = ws.get_state("current_dataset")
    new_md5 = _dvc_file(project_dir)["outs"][0]["md5"]
    assert second != first and new_md5 != out["md5"]
    assert read_manifest(ws, second)["dvc"]["md5"] == new_md5
    assert read_manifest(ws, first)["dvc"]["md5"] == out["md5"]  # the old version still names the old data
    purple = hashlib.md5(b"Widget colours: only purple now.\n").hexdigest()
    assert (remote / "files" / "md5" / purple[:2] / purple[2:]).is_file()
    # an unchanged re-run skips ingest: no new version, DVC not asked again
    third = Project.load(project_dir)
    third.use(embedder=FakeEmbedder())
    assert {s.step: s.status for s in third.run().steps}["ingest"] == "skipped"
    assert ws.get_state("current_dataset") == second


@DVC
def test_dvc_in_a_git_work_tree_uses_git(project_dir: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    subprocess.run([git, "init", "-q", str(project_dir)], check=True)
    project = _with_dvc(project_dir, "{provider: dvc, path: ./docs, push: false}")
    assert project.run().status == "succeeded"
    config = (project_dir / ".dvc" / "config").read_text()
    assert "no_scm" not in config  # DVC uses git here
    assert "/docs" in (project_dir / ".gitignore").read_text()  # dvc add told git to ignore the data
    md5 = _dvc_file(project_dir)["outs"][0]["md5"]
    assert read_manifest(project.workspace, project.workspace.get_state("current_dataset"))["dvc"]["md5"] == md5


@DVC
def test_dvc_errors_are_clear_and_stop_before_anything_is_written(project_dir: Path, tmp_path: Path) -> None:
    ctx = VersioningContext("p", project_dir, None, ())  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="no `path:` set"):
        DvcVersioning(DvcConfig()).snapshot(ctx)
    with pytest.raises(SourceError, match="is not a folder"):
        DvcVersioning(DvcConfig(path="./nope")).snapshot(ctx)
    # a remote that cannot be written: the ingest step fails before it writes any document
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    project = _with_dvc(project_dir, f"{{provider: dvc, remote: {blocked / 'remote'}, retries: 1}}")
    with pytest.raises(SourceError, match="push to remote"):
        project.run()
    with sqlite3.connect(project_dir / ".flightdeck" / "metadata.db") as db:
        assert db.execute("select count(*) from documents").fetchone()[0] == 0
        assert db.execute("select status from step_runs where step = 'ingest'").fetchone()[0] == "failed"
    with pytest.raises(ValueError, match="extra"):
        DvcConfig(remote_url="x")  # type: ignore[call-arg]


def test_missing_dvc_names_the_extra(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flightdeck.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "dvc.exceptions", None)  # as if dvc were not installed
    ctx = VersioningContext("p", project_dir, None, ())  # type: ignore[arg-type]
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[dvc\]'"):
        DvcVersioning(DvcConfig(path="./docs")).snapshot(ctx)
