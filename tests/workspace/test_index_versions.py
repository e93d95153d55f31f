"""Index versions as records: written once per id, read back typed, listed per dataset version in build order."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightdeck.workspace import Workspace
from flightdeck.workspace.index_versions import (
    IndexVersion,
    collection_name,
    get_index_version,
    index_versions_of,
    record_index_version,
)

pytestmark = pytest.mark.unit


def _version(id_: str, dataset: str, created: float, collection: str | None = None) -> IndexVersion:
    return IndexVersion(id=id_, created_at=created, run_id=f"run-{id_}", dataset_version=dataset, embedder="m@1",
                        dim=8, store="faiss" if collection is None else "qdrant", chunk_count=3,
                        index_artifact="a" * 64, ids_artifact="b" * 64, collection=collection)


def test_a_version_is_recorded_once_and_read_back_as_written(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = _version("v1", "d1", 10.0)
    with ws.engine.begin() as conn:
        assert record_index_version(conn, first) is True
        # content-addressed: the same id again is the same index, and the first record stays
        assert record_index_version(conn, _version("v1", "d2", 99.0)) is False
    assert get_index_version(ws, "v1") == first
    assert get_index_version(ws, "nope") is None


def test_versions_of_datasets_come_oldest_first_and_only_those_asked(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.engine.begin() as conn:
        for v in (_version("late", "d1", 30.0, "c"), _version("early", "d1", 10.0), _version("other", "d2", 20.0)):
            record_index_version(conn, v)
    assert [v.id for v in index_versions_of(ws, ["d1"])] == ["early", "late"]
    assert [v.id for v in index_versions_of(ws, ["d1", "d2"])] == ["early", "other", "late"]
    assert index_versions_of(ws, []) == []
    assert get_index_version(ws, "late").collection == "c"  # type: ignore[union-attr]


def test_a_collection_name_is_per_workspace_model_and_store_and_safe_for_servers(tmp_path: Path) -> None:
    a, b = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    name = collection_name(a, "m@1", "qdrant")
    assert name == collection_name(a, "m@1", "qdrant")
    assert name.startswith("flightdeck_") and name.replace("_", "").isalnum() and len(name) == 31
    assert len({name, collection_name(b, "m@1", "qdrant"), collection_name(a, "m@2", "qdrant"),
                collection_name(a, "m@1", "chroma")}) == 4
