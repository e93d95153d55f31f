"""Serving a release (checklist 5.4): the production release answers with its own spec and index version, even after
the workspace moved on; a promotion or a rollback switches a running server's release without a restart and with
no failed request under load; a release that cannot be served is refused and the one serving stays."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flightdeck import Project
from flightdeck.governance.access import Role
from flightdeck.governance.releases import Actor, ReleaseIntegrityError
from flightdeck.serving.releases import ReleaseSwitch
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

ADMIN, APPROVER = Actor("user:alice", Role.ADMIN), Actor("key:0123456789ab", Role.APPROVER)
DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv followed by the folder "
               "name.\n",
    "regex.md": "# Regular expressions\n\nUse re.search to find the first match of a pattern in a string.\n",
}
SPEC = """\
project: switch-test
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval:
  system: [hybrid_search]
  search: {mode: hybrid, k: 2}
model:
  generator: {provider: extractive, max_sentences: 1}
governance:
  approvals: {gates_must_pass: false}
"""


def released(root: Path, embedder: FakeEmbedder, docs: dict[str, str]) -> Project:
    """Write ``docs``, build, and put a release of the build in production; returns the project."""
    folder = root / "docs"
    for old in folder.glob("*") if folder.exists() else []:
        old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, "utf-8")
    (root / "flightdeck.yaml").write_text(SPEC, "utf-8")
    project = Project.load(root).use(embedder=embedder)
    project.run()
    release, _ = project.create_release(ADMIN)
    project.releases.review(release.id, APPROVER, "approved")
    project.releases.promote(release.id, ADMIN)
    return project


def test_a_release_answers_from_its_own_index_after_the_workspace_moved_on(tmp_path: Path) -> None:
    embedder = FakeEmbedder(dimension=64)
    first = released(tmp_path, embedder, DOCS)
    v1 = first.releases.get("production")
    # the documents change: regex.md is gone from the workspace, a new page arrives; v2 is built but not promoted
    (tmp_path / "docs" / "regex.md").unlink()
    (tmp_path / "docs" / "json.md").write_text("# JSON\n\nRead JSON text with json.loads.\n", "utf-8")
    now = Project.load(tmp_path).use(embedder=embedder)
    now.run()
    assert all("regex" not in h.document_id for h in now.search("first match of a pattern").hits)

    served = now.for_release("production", embedder=embedder)
    assert served.release is not None and served.release.id == v1.id
    result = served.search("first match of a pattern")
    assert result.index_version == v1.index_version != now.searcher.index_version()
    assert result.hits[0].document_id.endswith("regex.md") and "re.search" in result.hits[0].text
    answer = served.ask("How do I find the first match of a pattern?")
    assert "re.search" in answer.answer and answer.index_version == v1.index_version


def test_a_promotion_and_a_rollback_switch_the_server_with_no_failed_request(tmp_path: Path) -> None:
    embedder = FakeEmbedder(dimension=64)
    base = released(tmp_path, embedder, DOCS)
    v1 = base.releases.get("production")
    switched: list[tuple[str, str]] = []
    switch = ReleaseSwitch(base, "production", poll_s=0.05,
                           on_switch=lambda old, new: switched.append((old.release.name, new.release.name)))
    assert switch.release.id == v1.id

    # v2: another page; built and approved while v1 serves
    second = released(tmp_path, embedder, {**DOCS, "json.md": "# JSON\n\nRead JSON text with json.loads.\n"})
    v2 = second.releases.get("production")
    second.releases.rollback(ADMIN)  # back to v1 for now: the load starts on v1
    assert switch.check() is False  # the generation moved, the target still names v1

    errors: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                project = switch.current  # a request holds the project it started with
                result = project.search("virtual environment", k=2)
                seen.add(result.index_version)
                assert result.hits and project.release.index_version == result.index_version
            except BaseException as exc:  # noqa: BLE001 - every failure is one the test reports
                errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    switch.start()
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        second.releases.rollback(ADMIN, to=v2.id)  # v2 to production
        _wait(lambda: switch.release.id == v2.id)
        time.sleep(0.3)
        second.releases.rollback(ADMIN)  # and back to v1
        _wait(lambda: switch.release.id == v1.id)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        switch.stop()
    assert errors == []
    assert seen == {v1.index_version, v2.index_version}
    assert switched == [("v1", "v2"), ("v2", "v1")] and switch.switches == 2


def test_a_release_that_cannot_be_served_is_refused_and_the_server_keeps_its_own(tmp_path: Path) -> None:
    embedder = FakeEmbedder(dimension=64)
    base = released(tmp_path, embedder, DOCS)
    switch = ReleaseSwitch(base, "production", poll_s=0.05)
    v1 = switch.release
    second = released(tmp_path, embedder, {**DOCS, "json.md": "# JSON\n\nRead JSON text with json.loads.\n"})
    v2 = second.releases.get("production")
    # v2's index files are damaged after its promotion (a disk error, a hand edit): the switch refuses it
    manifest = second.releases.manifest(v2)
    iv = manifest["index_version"]
    damaged = second.workspace.store_folder(iv["store"], iv["id"]) / sorted(manifest["index_files"])[0]
    damaged.write_bytes(damaged.read_bytes() + b"\0")
    assert switch.check() is False
    assert switch.release.id == v1.id and "was changed" in (switch.last_error or "")
    with pytest.raises(ReleaseIntegrityError):
        ReleaseSwitch(second, "production")  # and a server does not start on it


def _wait(condition: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("the switch did not happen in time")
        time.sleep(0.02)
