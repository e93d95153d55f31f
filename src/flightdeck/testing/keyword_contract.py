"""The contract every keyword index passes (``retrieval.search.keyword_index``): a test class to inherit.

Usage (in a keyword index's test module)::

    from flightdeck.testing.keyword_contract import KeywordIndexContract

    class TestBm25(KeywordIndexContract):
        @pytest.fixture
        def make_index(self):
            return lambda ws: keyword_index_for(SearchSettings(keyword_index="bm25"), ws)

``make_index(workspace)`` returns a new :class:`~flightdeck.retrieval.keyword.KeywordIndex` for that workspace.
The suite writes rows as ingest and the index step do (the chunks and the FTS5 table, the payloads, the index's
:meth:`build` into a version folder and the sync of its :meth:`live_table`), opens the version, and checks the
searches: ``(chunk_id, score)`` best first with higher scores better, at most ``k``, any query word matches
(query syntax is only words), an empty or wordless query finds nothing, metadata filters agree with
:func:`flightdeck.retrieval.filters.matches` (the reference semantics), and a row that was deleted or changed
is found no more (or only by its new words). Needs pytest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from flightdeck.core import stable_hash
from flightdeck.retrieval.filters import matches, parse_filter
from flightdeck.retrieval.keyword import Fts5Index, KeywordIndex, KeywordSearch
from flightdeck.testing.store_contract import FILTERS, SIZE, contract_collection
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import chunk_payloads, chunks, documents

__all__ = ["KeywordIndexContract", "Row", "contract_rows", "publish"]

Row = tuple[str, str, dict[str, Any]]  # chunk id, indexed text, normalised payload
TOPICS = ("solar", "turbine", "battery", "grid")
DOCUMENT = "contract/doc"


def contract_rows() -> list[Row]:
    """The store contract's 60 ids and payloads, each with a text: the word ``common`` (in every row), a topic
    word (``solar``, ``turbine``, ``battery``, ``grid`` in turn) and a word of its own (``w000`` ... ``w059``)."""
    ids, _, payloads = contract_collection()
    return [(cid, f"common {TOPICS[i % len(TOPICS)]} w{i:03d}", payloads[i]) for i, cid in enumerate(ids)]


def publish(ws: Workspace, index: KeywordIndex, rows: list[Row], version: str) -> KeywordSearch | None:
    """Make ``rows`` the workspace's chunks as ingest and the index step do, as index version ``version``, and
    return what ``index`` opens for it.

    Ingest replaces the chunks and their FTS5 rows in one transaction; the index step keeps the payloads, builds
    the index into the version's folder (rows sorted by chunk id) and syncs the index's table, if it has one:
    deletes the ids that are gone, upserts the rest, and closes it.
    """
    rows = sorted(rows)
    ids, texts, payloads = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    with ws.engine.begin() as conn:
        Fts5Index.delete(conn, [r[0] for r in conn.execute(select(chunks.c.id))])
        conn.execute(delete(documents))  # cascades to the chunks and their payloads
        conn.execute(insert(documents).values(
            id=DOCUMENT, source_uri="contract://doc", content_hash="0" * 64, pipeline_hash="0" * 64,
            media_type="text/plain", title="contract", metadata={}, chunk_count=len(rows), run_id="contract"))
        if rows:
            conn.execute(insert(chunks), [
                {"id": cid, "document_id": DOCUMENT, "ordinal": n, "text": t, "indexed_text": t, "heading": "",
                 "token_count": len(t.split()), "text_hash": stable_hash(t), "metadata": {}}
                for n, (cid, t, _) in enumerate(rows)])
            Fts5Index.add(conn, list(zip(ids, texts, strict=True)))
            conn.execute(insert(chunk_payloads), [{"chunk_id": cid, "payload": p, "payload_hash": stable_hash(p)}
                                                  for cid, _, p in rows])
    folder = ws.root / "indexes" / version
    folder.mkdir(parents=True, exist_ok=True)
    counts = index.build(folder, ids, lambda: list(texts), payloads)
    assert isinstance(counts, dict)
    table = index.live_table()
    if table is not None:
        try:
            table.delete(sorted(table.ids() - set(ids)))
            table.upsert(ids, texts, payloads)
        finally:
            table.close()
    return index.open(ws, version)


def _ids(hits: list[tuple[str, float]]) -> list[str]:
    return [cid for cid, _ in hits]


class KeywordIndexContract:
    """Inherit and provide a ``make_index`` fixture: ``make_index(workspace)`` returns a new keyword index."""

    @pytest.fixture
    def make_index(self) -> Callable[[Workspace], KeywordIndex]:  # pragma: no cover - overridden
        raise NotImplementedError("a keyword index's test class provides make_index")

    @pytest.fixture
    def workspace(self, tmp_path: Any) -> Iterator[Workspace]:
        ws = Workspace(tmp_path / "ws")
        yield ws
        ws.engine.dispose()

    @pytest.fixture
    def index(self, make_index: Callable[[Workspace], KeywordIndex], workspace: Workspace) -> Iterator[KeywordIndex]:
        index = make_index(workspace)
        yield index
        table = index.live_table()
        if table is not None:  # a server's table outlives the test: drop it
            drop = getattr(table, "drop", None)
            try:
                if callable(drop):
                    drop()
            finally:
                table.close()

    @pytest.fixture
    def filled(self, index: KeywordIndex, workspace: Workspace) -> tuple[KeywordSearch, list[Row]]:
        rows = contract_rows()
        searcher = publish(workspace, index, rows, "v1")
        assert searcher is not None, "open() of a version the index step built must return what to search"
        return searcher, rows

    @pytest.fixture
    def ranked(self, index: KeywordIndex, workspace: Workspace) -> KeywordSearch:
        rows: list[Row] = [
            ("r1", "solar solar solar panel", {"kind": "a"}),
            ("r2", "a solar panel on the roof of the old barn near the river, the mill and the road", {"kind": "b"}),
            ("r3", "wind turbine", {"kind": "a"}),
            ("r4", "hydro dam", {"kind": "b"}),
        ]
        searcher = publish(workspace, index, rows, "ranked")
        assert searcher is not None
        return searcher

    # --- what it is --------------------------------------------------------------------------------------------
    def test_name_and_description_are_stable(self, index: KeywordIndex, make_index: Callable[[Workspace], Any],
                                             workspace: Workspace) -> None:
        assert isinstance(index.name, str) and index.name
        described = index.describe()
        assert isinstance(described, dict)
        stable_hash(described)  # goes into the index step's config hash: must be JSON
        again = make_index(workspace)
        assert (again.name, again.describe()) == (index.name, described)  # the same index config on every run

    # --- searches ----------------------------------------------------------------------------------------------
    def test_empty_index_finds_nothing(self, index: KeywordIndex, workspace: Workspace) -> None:
        searcher = publish(workspace, index, [], "empty")
        assert searcher is not None
        assert searcher.search("common solar", 10) == []

    def test_hits_are_scored_best_first(self, filled: tuple[KeywordSearch, list[Row]]) -> None:
        searcher, rows = filled
        hits = searcher.search("solar w004 w008", 20)
        assert hits, "rows 4 and 8 hold both words"
        assert all(isinstance(cid, str) and isinstance(s, float) and math.isfinite(s) for cid, s in hits)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        assert len(set(_ids(hits))) == len(hits)
        solar = {cid for cid, t, _ in rows if "solar" in t.split()}
        assert set(_ids(hits)) == solar  # w004 and w008 are solar rows
        assert set(_ids(hits[:2])) == {rows[4][0], rows[8][0]}  # the two that hold two query words come first

    def test_more_of_the_word_in_less_text_ranks_higher(self, ranked: KeywordSearch) -> None:
        assert _ids(ranked.search("solar", 10)) == ["r1", "r2"]
        assert set(_ids(ranked.search("solar turbine", 10))) == {"r1", "r2", "r3"}  # any query word matches

    def test_a_words_own_row_is_found(self, filled: tuple[KeywordSearch, list[Row]]) -> None:
        searcher, rows = filled
        for i in (0, 17, 59):
            assert _ids(searcher.search(f"w{i:03d}", 10)) == [rows[i][0]]
        assert _ids(searcher.search("W017", 10)) == [rows[17][0]]  # case does not matter

    def test_k_bounds_the_hits(self, filled: tuple[KeywordSearch, list[Row]]) -> None:
        searcher, rows = filled
        assert len(searcher.search("common", 5)) == 5
        assert {cid for cid, _ in searcher.search("common", 500)} == {cid for cid, _, _ in rows}

    @pytest.mark.parametrize("query", ["", "   ", "!!! ??? ---", "zyxwv", "qqq xxxnothing"])
    def test_no_word_or_unknown_words_find_nothing(self, filled: tuple[KeywordSearch, list[Row]],
                                                   query: str) -> None:
        searcher, _ = filled
        assert searcher.search(query, 10) == []

    @pytest.mark.parametrize(("query", "words"), [
        ('"solar', "solar"),
        ("solar*", "solar"),
        ("solar:* | !turbine", "solar turbine"),
        ('w004" OR "w005', "w004 or w005"),
        ("'; DROP TABLE chunks; --", "drop table chunks"),
        ("(w004) NEAR(w005) -w006", "w004 near w005 w006"),
    ])
    def test_query_syntax_is_only_words(self, filled: tuple[KeywordSearch, list[Row]], query: str,
                                        words: str) -> None:
        searcher, _ = filled
        assert _ids(searcher.search(query, 500)) == _ids(searcher.search(words, 500))

    # --- filters -----------------------------------------------------------------------------------------------
    @pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
    def test_filter_matches_reference_semantics(self, filled: tuple[KeywordSearch, list[Row]],
                                                raw: dict[str, Any]) -> None:
        searcher, rows = filled
        condition = parse_filter(raw)
        allowed = {cid for cid, _, payload in rows if matches(condition, payload)}
        assert {cid for cid, _ in searcher.search("common", SIZE, condition)} == allowed, raw
        top = searcher.search("common", 5, condition)
        assert len(top) == min(5, len(allowed)) and {cid for cid, _ in top} <= allowed, raw

    # --- changes -----------------------------------------------------------------------------------------------
    def test_deleted_rows_are_gone(self, index: KeywordIndex, workspace: Workspace,
                                   filled: tuple[KeywordSearch, list[Row]]) -> None:
        _, rows = filled
        searcher = publish(workspace, index, rows[10:], "v2")
        assert searcher is not None
        assert {cid for cid, _ in searcher.search("common", 500)} == {cid for cid, _, _ in rows[10:]}
        assert searcher.search("w003", 10) == []
        assert _ids(searcher.search("w010", 10)) == [rows[10][0]]

    def test_changed_rows_are_found_by_their_new_words_only(self, index: KeywordIndex, workspace: Workspace,
                                                            filled: tuple[KeywordSearch, list[Row]]) -> None:
        _, rows = filled
        cid = rows[5][0]
        changed = [*rows[:5], (cid, "common replaced", {"kind": "replaced"}), *rows[6:]]
        searcher = publish(workspace, index, changed, "v2")
        assert searcher is not None
        assert searcher.search("w005", 10) == []
        assert _ids(searcher.search("replaced", 10)) == [cid]
        assert _ids(searcher.search("common", 500, parse_filter({"kind": "replaced"}))) == [cid]
        assert len(searcher.search("common", 500)) == len(rows)

    def test_a_new_instance_reads_what_was_built(self, filled: tuple[KeywordSearch, list[Row]],
                                                 make_index: Callable[[Workspace], KeywordIndex],
                                                 workspace: Workspace) -> None:
        searcher, _ = filled
        before = searcher.search("solar w004", 20)
        reader = make_index(workspace).open(workspace, "v1")  # another process serving the same index version
        assert reader is not None
        after = reader.search("solar w004", 20)
        assert _ids(after) == _ids(before)
        assert [s for _, s in after] == pytest.approx([s for _, s in before], rel=1e-5)
