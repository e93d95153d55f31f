"""The contract every source passes: a test class that each source's test module inherits.

Usage (in a source's test module)::

    from flightdeck.testing.source_contract import SourceContract

    class TestFilesSource(SourceContract):
        @pytest.fixture
        def make_source(self, tmp_path):
            (tmp_path / "a.md").write_text("# A\\n\\nSome text.")
            return lambda: FilesSource(FilesConfig(path=str(tmp_path)))

        @pytest.fixture
        def change_item(self, tmp_path):        # optional
            def change():
                (tmp_path / "a.md").write_text("# A\\n\\nOther text.")
                return "a.md"
            return change

The suite checks what the ingest step relies on (:class:`flightdeck.data.sources.base.Source`): ``scan()``
lists items with a unique ``uri``, a content hash and a media type a parser reads, in a stable order, and the
same hashes again while nothing changed; ``read(item)`` (after the scan, as the ingest step does) returns bytes
that parse into a document of that item; ``failures`` is a list, empty for good data and reset by each scan;
``source_uri(item)``, where defined, names each item. With the optional fixtures it also checks that changing
one item changes its hash alone (``change_item``), and that an item the source cannot deliver is reported in
``failures`` while the others still come (``make_failing_source``). Needs pytest.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flightdeck.data.documents import Document, SourceItem
from flightdeck.data.parsers import PARSERS, parse
from flightdeck.data.sources.base import ItemFailure, Source

__all__ = ["SourceContract"]


def _listing(items: list[SourceItem]) -> list[tuple[str, str, str]]:
    return [(i.uri, i.content_hash, i.media_type) for i in items]


class SourceContract:
    """Inherit and provide ``make_source``: a zero-argument factory of fresh sources over the same good data.

    Optional: ``change_item`` (a callable that changes one item's content where the sources read it and
    returns that item's uri) and ``make_failing_source`` (a factory of a source whose data holds good items and
    at least one that it cannot deliver). Left at None, their tests skip.
    """

    @pytest.fixture
    def make_source(self) -> Callable[[], Source]:  # pragma: no cover - overridden
        raise NotImplementedError("a source's test class provides make_source")

    @pytest.fixture
    def change_item(self) -> Callable[[], str] | None:
        return None

    @pytest.fixture
    def make_failing_source(self) -> Callable[[], Source] | None:
        return None

    @pytest.fixture
    def scanned(self, make_source: Callable[[], Source]) -> tuple[Source, list[SourceItem]]:
        source = make_source()
        return source, list(source.scan())

    def test_satisfies_the_protocol(self, make_source: Callable[[], Source]) -> None:
        assert isinstance(make_source(), Source)

    def test_scan_lists_items_with_unique_uris_hashes_and_parsable_types(
            self, scanned: tuple[Source, list[SourceItem]]) -> None:
        source, items = scanned
        assert items, "the contract needs a source over some data"
        for item in items:
            assert isinstance(item, SourceItem), item
            assert isinstance(item.uri, str) and item.uri.strip(), item
            assert isinstance(item.content_hash, str) and item.content_hash.strip(), item
            assert item.media_type in PARSERS, (item.uri, item.media_type)
            assert isinstance(item.metadata, dict), item
        uris = [i.uri for i in items]
        assert len(set(uris)) == len(uris), sorted(u for u in uris if uris.count(u) > 1)
        assert isinstance(source.failures, list) and source.failures == [], source.failures

    def test_unchanged_data_scans_the_same_in_the_same_order(self, make_source: Callable[[], Source],
                                                            scanned: tuple[Source, list[SourceItem]]) -> None:
        source, items = scanned
        assert _listing(list(make_source().scan())) == _listing(items)  # a fresh source, as the next run has
        assert _listing(list(source.scan())) == _listing(items)  # the same one again
        assert source.failures == []

    def test_read_after_the_scan_returns_bytes_that_parse(self, scanned: tuple[Source, list[SourceItem]]) -> None:
        source, items = scanned
        for item in items:
            data = source.read(item)
            assert isinstance(data, bytes), (item.uri, type(data))
            doc = parse(item, data)
            assert isinstance(doc, Document)
            assert (doc.uri, doc.content_hash) == (item.uri, item.content_hash)

    def test_source_uri_names_each_item(self, scanned: tuple[Source, list[SourceItem]]) -> None:
        source, items = scanned
        own = getattr(source, "source_uri", None)
        if own is None:
            pytest.skip("this source defines no source_uri: the ingest step joins the item's uri to its root")
        shown = [own(item) for item in items]
        assert all(isinstance(s, str) and s.strip() for s in shown), shown
        assert len(set(shown)) == len(shown), shown

    def test_changing_one_item_changes_its_hash_alone(self, make_source: Callable[[], Source],
                                                      change_item: Callable[[], str] | None) -> None:
        if change_item is None:
            pytest.skip("no change_item fixture for this source")
        before = {i.uri: i.content_hash for i in make_source().scan()}
        changed = change_item()
        after = {i.uri: i.content_hash for i in make_source().scan()}
        assert changed in before and changed in after, (changed, sorted(before))
        assert after[changed] != before[changed]
        del before[changed], after[changed]
        assert after == before

    def test_an_item_it_cannot_deliver_is_reported_and_the_rest_still_come(
            self, make_failing_source: Callable[[], Source] | None) -> None:
        if make_failing_source is None:
            pytest.skip("no make_failing_source fixture for this source")
        source = make_failing_source()
        items = list(source.scan())  # must not raise
        failures = list(source.failures)
        assert items, "the good items must still come"
        assert failures, "the bad item must be reported in failures"
        for failure in failures:
            assert isinstance(failure, ItemFailure), failure
            assert isinstance(failure.uri, str) and failure.uri.strip(), failure
            assert isinstance(failure.reason, str) and failure.reason.strip(), failure
        assert not {f.uri for f in failures} & {i.uri for i in items}, "an item is delivered or reported, not both"
        again = list(source.scan())
        assert _listing(again) == _listing(items)
        # each scan starts a new list: the second one reports the same failures, not twice as many
        assert [(f.uri, f.reason) for f in source.failures] == [(f.uri, f.reason) for f in failures]
