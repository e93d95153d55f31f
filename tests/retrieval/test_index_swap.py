"""A rebuilt FAISS index is swapped in atomically: a reader that opened the previous version keeps reading
it, the next search reads the new one, and nobody sees a half-built folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

SPEC = """\
project: swap
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources: [{provider: files, path: ./docs}]
  chunking: {provider: recursive, size: 64, overlap: 0}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
"""


def _project(root: Path) -> Project:
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    return project


def test_a_running_reader_keeps_its_version_while_a_rebuild_swaps_in(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Lighthouses guide ships along the rocky coast at night.")
    (docs / "b.txt").write_text("Bakers knead dough before dawn to sell fresh bread.")
    (tmp_path / "flightdeck.yaml").write_text(SPEC)
    writer = _project(tmp_path)
    writer.run()
    reader = _project(tmp_path)
    first = reader.search("lighthouse ships coast", mode="vector", k=2)
    old_version = first.index_version
    old_store = reader.searcher._vector_store(old_version)
    b_chunks = {h.chunk_id for h in reader.search("bread dough", mode="vector", k=5).hits
                if h.document_id == "docs/b.txt"}
    assert b_chunks

    (docs / "c.txt").write_text("Lighthouse keepers logged every ship that passed the coast.")
    (docs / "b.txt").unlink()
    _project(tmp_path).run()
    new_version = writer.workspace.get_state("current_index")
    assert new_version != old_version
    indexes = writer.workspace.root / "indexes"
    assert not list(indexes.glob(".tmp-*"))  # no half-built folder is left behind
    assert (indexes / old_version).is_dir()  # the previous version stays for readers that hold it

    # the store the reader opened before the swap still answers, from the old version
    old_ids = {cid for cid, _ in old_store.search(FakeEmbedder().embed_query("bread dough"), 10)}
    assert b_chunks <= old_ids
    # the reader's next search switches to the new version by itself
    again = reader.search("lighthouse ships coast", mode="vector", k=3)
    assert again.index_version == new_version
    ids = {h.document_id for h in again.hits}
    assert "docs/c.txt" in ids and "docs/b.txt" not in ids
