"""Where the Responses and Assistants shapes keep what each key creates (migration 0011, a real workspace DB): the
tables as schema.py defines them, objects and items per owner, a paused run taken once, pages of items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flightdeck.serving.openai_store import ObjectNotFound, ObjectStore, new_id, public
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import openai_items

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ObjectStore]:
    workspace = Workspace(tmp_path / ".flightdeck")
    yield ObjectStore(workspace.engine)
    workspace.close()


def test_migration_0011_creates_the_tables_as_schema_py_defines_them(store: ObjectStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), openai_items.metadata)
    assert [d for d in diff if any(name in repr(d) for name in ("openai_objects", "openai_items"))] == []


def test_an_object_is_read_only_by_its_owner_and_the_inside_stays_inside(store: ObjectStore) -> None:
    store.put("response", "resp_1", "key-a", {"id": "resp_1", "output": [], "_input": ["secret"]})
    assert public(store.get("response", "resp_1", "key-a")) == {"id": "resp_1", "output": []}
    for kind, owner in (("response", "key-b"), ("conversation", "key-a")):
        with pytest.raises(ObjectNotFound, match="no .* 'resp_1' made with this key"):
            store.get(kind, "resp_1", owner)
    with pytest.raises(ObjectNotFound):
        store.replace("response", "resp_1", "key-b", {"id": "resp_1"})
    with pytest.raises(ObjectNotFound):
        store.remove("response", "resp_1", "key-b")
    assert store.get("response", "resp_1", "key-a")["_input"] == ["secret"]


def test_a_paused_run_is_taken_once(store: ObjectStore) -> None:
    store.put("paused", "call_1", "key-a", {"state": 1})
    assert store.take("paused", "call_1", "key-b") is None
    assert store.take("paused", "call_1", "key-a") == {"state": 1}
    assert store.take("paused", "call_1", "key-a") is None


def test_items_keep_their_order_and_come_in_pages(store: ObjectStore) -> None:
    store.put("conversation", "conv_1", "key-a", {"id": "conv_1"})
    items = [{"id": new_id("msg"), "n": n} for n in range(5)]
    store.add_items("conv_1", "key-a", items[:2])
    store.add_items("conv_1", "key-a", items[2:])
    assert [i["n"] for i in store.items("conv_1", "key-a")[0]] == [0, 1, 2, 3, 4]
    page, more = store.items("conv_1", "key-a", limit=2, order="desc")
    assert [i["n"] for i in page] == [4, 3] and more
    page, more = store.items("conv_1", "key-a", limit=2, order="desc", after=page[-1]["id"])
    assert [i["n"] for i in page] == [2, 1] and more
    assert store.items("conv_1", "key-b")[0] == []
    with pytest.raises(ObjectNotFound, match="after: no item"):
        store.items("conv_1", "key-a", after="msg_nope")
    store.remove("conversation", "conv_1", "key-a")
    assert store.items("conv_1", "key-a")[0] == []


def test_objects_are_listed_newest_first_per_owner_and_parent(store: ObjectStore) -> None:
    clock = iter(range(100))
    store.clock = lambda: float(next(clock))
    for n in range(3):
        store.put("run", f"run_{n}", "key-a", {"id": f"run_{n}"}, parent="thread_1")
    store.put("run", "run_x", "key-a", {"id": "run_x"}, parent="thread_2")
    store.put("run", "run_y", "key-b", {"id": "run_y"}, parent="thread_1")
    found, more = store.listing("run", "key-a", parent="thread_1", limit=2)
    assert [r["id"] for r in found] == ["run_2", "run_1"] and more
    found, more = store.listing("run", "key-a", parent="thread_1", order="asc", after="run_0")
    assert [r["id"] for r in found] == ["run_1", "run_2"] and not more
