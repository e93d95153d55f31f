"""The ``fixed`` chunker: windows of a fixed number of tokens over the whole document, with overlap.

The baseline of the chunking literature: no structure, every chunk (but the last) holds ``size`` tokens
of the embedder's tokenizer and repeats the last ``overlap`` tokens of the one before. Windows start at a
word, so a chunk never begins with the tail of a cut word; section boundaries are ignored, and each
chunk's ``metadata["heading"]`` names the section where it starts. A window over several sections takes
the metadata of all of them (``page_start``/``page_end``, the lowest ``ocr_confidence``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from flightdeck.data.chunkers.base import ChunkerConfig, chunk_metadata
from flightdeck.data.chunkers.recursive import RecursiveChunker
from flightdeck.data.documents import Chunk, Document, Section

if TYPE_CHECKING:
    from flightdeck.data.tokenization import Tokenizer

__all__ = ["FixedConfig", "FixedChunker"]


class FixedConfig(ChunkerConfig):
    """Options of the ``fixed`` chunker: ``size`` tokens per window, ``overlap`` tokens repeated."""


class FixedChunker:
    """Fixed token windows (see :class:`FixedConfig`); ``tokenizer.count(chunk.indexed_text) <= size``.

    Chunks carry no heading path in their indexed text (the windows ignore structure), so the indexed
    text is exactly the window.
    """

    def __init__(self, config: FixedConfig | None = None) -> None:
        self.config = config or FixedConfig()

    def chunk(self, document: Document, tokenizer: Tokenizer) -> list[Chunk]:
        """Return the windows of ``document``, numbered ``0..n-1``."""
        text = ""
        spans: list[tuple[int, int, Section]] = []  # (start, end) character offsets of each section in ``text``
        for section in document.sections:
            if not section.text.strip():
                continue
            if text:
                text += "\n\n"
            spans.append((len(text), len(text) + len(section.text), section))
            text += section.text
        chunks: list[Chunk] = []
        for start, piece in self._windows(text, tokenizer):
            end = start + len(piece)
            # Every section the window overlaps gives it metadata (its pages); the first one, its heading.
            covered = [sec for s, e, sec in spans if s < end and e > start] or \
                [next((sec for s, _, sec in reversed(spans) if s <= start), spans[0][2])]
            meta = chunk_metadata(document, covered, covered[0].heading_path)
            chunk = Chunk(document.uri, len(chunks), piece, (), 0, meta)
            chunks.append(replace(chunk, token_count=tokenizer.count(piece)))
        return chunks

    def _windows(self, text: str, tok: Tokenizer) -> list[tuple[int, str]]:
        """``(character offset, text)`` of each window of at most ``size`` tokens."""
        size, overlap = self.config.size, self.config.overlap
        offsets = tok.offsets(text)
        n = len(offsets)

        def word_start(i: int) -> bool:
            s = offsets[i][0]
            return s == 0 or text[s - 1].isspace()

        out: list[tuple[int, str]] = []
        i = 0
        while i < n:
            j = min(i + size, n)
            begin = offsets[i][0]
            # A slice can re-tokenize into more tokens than it was cut from (WordPiece): shrink until it fits.
            while j > i + 1 and tok.count(text[begin:offsets[j - 1][1]]) > size:
                j -= 1
            # End at a word too when that costs at most half a window (a long URL or code run is cut).
            k = j
            while i + size // 2 < k < n and not word_start(k):
                k -= 1
            if k > i + size // 2:
                j = k
            piece = text[begin:offsets[j - 1][1]]
            if tok.count(piece) > size:  # one token that alone re-tokenizes longer: cut by characters
                parts: list[str] = []
                RecursiveChunker._emit(piece, lambda p: tok.count(p) <= size, size, tok, parts)
                out.extend((begin, p) for p in parts)
            elif piece.strip():
                out.append((begin, piece.strip()))
            if j >= n:
                break
            nxt = max(j - overlap, i + 1)
            while nxt > i + 1 and not word_start(nxt):
                nxt -= 1  # begin the next window at a word: the overlap grows by the part of a cut word
            if not word_start(nxt):
                nxt = j  # no word start inside the overlap: continue right after this window
            i = nxt
        return out
