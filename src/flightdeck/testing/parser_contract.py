"""The contract every parser passes: a test class that each media type's test inherits.

Usage (in a parser's test module)::

    from flightdeck.testing.parser_contract import ParserContract

    class TestMarkdownParser(ParserContract):
        @pytest.fixture
        def sample(self):
            return "text/markdown", b"# Guide\\n\\nWidgets hum.\\n\\n## Care\\n\\nOil them weekly.\\n"

        @pytest.fixture
        def garbage(self):
            return b"\\x00\\x01 binary"  # None when the format reads any bytes

        @pytest.fixture
        def reading_order(self):          # optional
            return ("Widgets hum", "Oil them weekly")

        @pytest.fixture
        def heading(self):                # optional
            return "Care"

The suite checks, through :func:`flightdeck.data.parsers.parse` (so the media type must be registered in
``PARSERS``), what the ingest step relies on (:class:`flightdeck.data.parsers.base.Parser`): the document keeps
the item's ``uri`` and ``content_hash``; a valid document gives sections with text, each under a heading path
of non-empty strings, in reading order; the same bytes always give the same document and the same warnings;
``warnings`` are strings; bytes the parser cannot read raise :class:`~flightdeck.errors.SourceError` naming the
item, and damaged bytes (empty, cut in half, NUL bytes spliced in) give a document or that error, never another
exception. Needs pytest.
"""

from __future__ import annotations

from importlib import import_module

import pytest

from flightdeck.data.documents import Document, Section, SourceItem, content_hash
from flightdeck.data.parsers import PARSERS, Parser, parse
from flightdeck.errors import SourceError

__all__ = ["ParserContract", "damaged"]

#: The uri of the items the suite parses: errors must name it.
SAMPLE_URI = "contract/sample"


def damaged(data: bytes) -> dict[str, bytes]:
    """Broken variants of a valid document's bytes, by name: what a disk, a download or a user can produce."""
    middle = len(data) // 2
    return {"empty": b"", "first_half": data[:middle], "nul_spliced": data[:middle] + b"\x00" * 64 + data[middle:]}


def _item(media_type: str, data: bytes, uri: str = SAMPLE_URI) -> SourceItem:
    return SourceItem(uri, content_hash(data), media_type)


class ParserContract:
    """Inherit and provide ``sample`` (``(media_type, bytes)`` of a small valid document) and ``garbage``
    (bytes that the parser must refuse, or None when the format reads any bytes).

    Optional: ``reading_order`` (phrases of the sample's text, in the order a reader meets them) and
    ``heading`` (a heading the sample puts in some section's heading path). Left empty, their tests skip.
    """

    @pytest.fixture
    def sample(self) -> tuple[str, bytes]:  # pragma: no cover - overridden
        raise NotImplementedError("a parser's test class provides sample: (media_type, bytes)")

    @pytest.fixture
    def garbage(self) -> bytes | None:  # pragma: no cover - overridden
        raise NotImplementedError("a parser's test class provides garbage: bytes it refuses, or None")

    @pytest.fixture
    def reading_order(self) -> tuple[str, ...]:
        return ()

    @pytest.fixture
    def heading(self) -> str | None:
        return None

    @pytest.fixture
    def item(self, sample: tuple[str, bytes]) -> SourceItem:
        media_type, data = sample
        return _item(media_type, data)

    @pytest.fixture
    def parsed(self, sample: tuple[str, bytes], item: SourceItem) -> Document:
        return parse(item, sample[1])

    def test_the_media_type_has_a_parser_that_satisfies_the_protocol(self, sample: tuple[str, bytes]) -> None:
        media_type, _ = sample
        assert media_type in PARSERS, f"{media_type!r} is not in flightdeck.data.parsers.PARSERS"
        module, _, name = PARSERS[media_type].partition(":")
        assert isinstance(getattr(import_module(module), name), Parser)

    def test_the_document_keeps_the_items_uri_and_hash(self, parsed: Document, item: SourceItem) -> None:
        assert isinstance(parsed, Document)
        assert (parsed.uri, parsed.content_hash) == (item.uri, item.content_hash)
        assert isinstance(parsed.title, str)
        assert isinstance(parsed.metadata, dict)

    def test_a_valid_document_has_sections_with_text_under_heading_paths(self, parsed: Document) -> None:
        assert isinstance(parsed.sections, tuple)
        assert any(s.text.strip() for s in parsed.sections), "a valid sample must give some text"
        for section in parsed.sections:
            assert isinstance(section, Section), section
            assert isinstance(section.text, str), section
            assert isinstance(section.metadata, dict), section
            path = section.heading_path
            assert isinstance(path, tuple), section
            # chunkers join the path into each chunk's heading line: an empty name would show as "A >  > B"
            assert all(isinstance(h, str) and h.strip() for h in path), path

    def test_sections_come_in_reading_order(self, parsed: Document, reading_order: tuple[str, ...]) -> None:
        if not reading_order:
            pytest.skip("no reading_order fixture for this parser")
        text = parsed.text
        at = 0
        for phrase in reading_order:
            found = text.find(phrase, at)
            assert found >= 0, (f"{phrase!r} is missing, or comes before the phrase ahead of it in reading order",
                                text)
            at = found + len(phrase)

    def test_headings_reach_the_heading_paths(self, parsed: Document, heading: str | None) -> None:
        if heading is None:
            pytest.skip("no heading fixture for this parser")
        paths = [s.heading_path for s in parsed.sections]
        assert any(heading in path for path in paths), (heading, paths)

    def test_the_same_bytes_give_the_same_document(self, sample: tuple[str, bytes], item: SourceItem,
                                                   parsed: Document) -> None:
        again = parse(item, sample[1])
        assert again == parsed
        assert again.warnings == parsed.warnings  # not part of equality, and still the same

    def test_warnings_are_strings(self, parsed: Document) -> None:
        assert isinstance(parsed.warnings, tuple), type(parsed.warnings)
        assert all(isinstance(w, str) and w.strip() for w in parsed.warnings), parsed.warnings

    def test_bytes_it_cannot_read_raise_a_source_error_naming_the_item(self, sample: tuple[str, bytes],
                                                                       garbage: bytes | None) -> None:
        if garbage is None:
            pytest.skip("this format reads any bytes")
        item = _item(sample[0], garbage, "contract/refused-item")
        with pytest.raises(SourceError) as err:  # any other exception propagates and fails the test
            parse(item, garbage)
        assert item.uri in str(err.value), str(err.value)

    @pytest.mark.parametrize("variant", sorted(damaged(b"")))
    def test_damaged_bytes_give_a_document_or_a_source_error(self, sample: tuple[str, bytes], variant: str) -> None:
        data = damaged(sample[1])[variant]
        item = _item(sample[0], data, f"contract/damaged-{variant}")
        try:
            doc = parse(item, data)
        except SourceError as err:
            assert item.uri in str(err), str(err)
            return
        assert isinstance(doc, Document)
        assert (doc.uri, doc.content_hash) == (item.uri, item.content_hash)
        assert all(isinstance(w, str) for w in doc.warnings), doc.warnings
