"""Symbolic links in a files source: judged by where they really point, and every one that is skipped or
refused is reported with its path (issue #9: ``docs/leak.txt -> /etc/...`` must never be ingested)."""

from __future__ import annotations

import os
import sqlite3
import textwrap
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.data.documents import SourceItem
from flightdeck.data.sources.files import FilesConfig, FilesSource
from flightdeck.errors import SourceError
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

SECRET = "root:x:0:0:Zanzibar-secret-marker"


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """docs/ with a real file, a link to a file outside, a link to a file inside, and outside/secret.txt."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n", "utf-8")
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "real.md").write_text("# Real\n\nSprockets are aligned by hand.\n", "utf-8")
    (docs / "leak.txt").symlink_to(outside / "secret.txt")
    (docs / "alias.md").symlink_to(docs / "guide" / "real.md")
    return docs


def _scan(path: Path, **kw: object) -> tuple[FilesSource, dict[str, SourceItem], dict[str, str]]:
    src = FilesSource(FilesConfig(path=str(path), **kw))  # type: ignore[arg-type]
    items = {i.uri: i for i in src.scan()}
    return src, items, {f.uri: f.reason for f in src.failures}


def test_by_default_no_link_is_followed_and_each_is_reported(tree: Path) -> None:
    src, items, failures = _scan(tree)
    assert sorted(items) == ["guide/real.md"]
    assert "outside the source folder: refused" in failures["leak.txt"]
    assert "not followed" in failures["alias.md"] and "follow_symlinks: true" in failures["alias.md"]


def test_following_links_takes_those_inside_and_still_refuses_those_outside(tree: Path) -> None:
    src, items, failures = _scan(tree, follow_symlinks=True)
    assert sorted(items) == ["alias.md", "guide/real.md"]
    assert src.read(items["alias.md"]) == (tree / "guide" / "real.md").read_bytes()
    assert set(failures) == {"leak.txt"} and "refused" in failures["leak.txt"]


def test_a_folder_link_outside_is_refused_and_one_inside_is_followed(tree: Path, tmp_path: Path) -> None:
    (tree / "external").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tree / "guide-again").symlink_to(tree / "guide", target_is_directory=True)
    _, items, failures = _scan(tree, follow_symlinks=True)
    assert "guide-again/real.md" in items and not any(u.startswith("external/") for u in items)
    assert "outside the source folder: refused" in failures["external"]
    _, items, failures = _scan(tree)
    assert sorted(items) == ["guide/real.md"]
    assert "a symbolic link to a folder, not followed" in failures["guide-again"]


def test_a_loop_of_folder_links_is_reported_not_walked(tree: Path) -> None:
    (tree / "guide" / "up").symlink_to(tree, target_is_directory=True)  # docs/guide/up -> docs: a loop
    (tree / "guide" / "self").symlink_to(tree / "guide", target_is_directory=True)
    _, items, failures = _scan(tree, follow_symlinks=True)
    assert "guide/real.md" in items and len(items) == 2  # real.md and alias.md, each once
    assert "a loop" in failures["guide/up"] and "a loop" in failures["guide/self"]


def test_a_broken_link_is_reported(tree: Path) -> None:
    (tree / "gone.md").symlink_to(tree / "deleted.md")
    for follow in (False, True):
        _, _, failures = _scan(tree, follow_symlinks=follow)
        assert "broken symbolic link" in failures["gone.md"]


def test_excluded_links_are_not_reported(tree: Path) -> None:
    _, _, failures = _scan(tree, exclude=["leak.txt", "alias.md"])
    assert failures == {}


def test_read_refuses_a_link_swapped_in_after_the_scan(tree: Path, tmp_path: Path) -> None:
    src, items, _ = _scan(tree, follow_symlinks=True)
    real = tree / "guide" / "real.md"
    real.unlink()
    real.symlink_to(tmp_path / "outside" / "secret.txt")
    with pytest.raises(SourceError, match="outside the source folder .*: refused"):
        src.read(items["guide/real.md"])
    _, items, failures = _scan(tree, follow_symlinks=True)  # the next scan refuses it too
    assert "guide/real.md" not in items and "refused" in failures["guide/real.md"]
    os.unlink(real)
    (tree / "guide" / "other.md").write_text("# Other\n", "utf-8")
    real.symlink_to(tree / "guide" / "other.md")  # a link inside the folder, while links are not followed
    with pytest.raises(SourceError, match="follow_symlinks is false"):
        FilesSource(FilesConfig(path=str(tree))).read(SourceItem("guide/real.md", "h", "text/markdown"))


def test_a_leaking_link_is_neither_ingested_nor_searchable(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: symlinks
        data:
          sources: [{provider: files, path: ./docs, follow_symlinks: true}]
          chunking: {provider: recursive, size: 64, overlap: 8}
        retrieval: {system: [hybrid_search]}
        """), "utf-8")
    project = Project.load(tmp_path)
    project.use(embedder=FakeEmbedder())
    summary = project.run()
    ingest = next(s for s in summary.steps if s.step == "ingest")
    assert {f["uri"] for f in ingest.counts["failures"]} == {"docs/leak.txt"}
    with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as db:
        stored = " ".join(t for (t,) in db.execute("select text from chunks"))
    assert "Zanzibar" not in stored and "Sprockets" in stored
    assert all("Zanzibar" not in h.text for h in project.search("Zanzibar secret marker", mode="keyword").hits)
