"""The ``recursive`` chunker: token-aware recursive splitting that keeps the heading path.

Each section is cut at the largest separator that makes its pieces fit (paragraphs, then lines, then
sentences, then words), neighbouring pieces are packed greedily up to the token budget, and each chunk
starts with a few tokens of the previous one so that a sentence cut at a boundary is still retrievable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import field_validator

from flightdeck.data.chunkers.base import ChunkerConfig, chunk_metadata
from flightdeck.data.documents import Chunk, Document, Section

if TYPE_CHECKING:
    from flightdeck.data.tokenization import Tokenizer

__all__ = ["RecursiveConfig", "RecursiveChunker"]

_HEADING_JOIN = " > "


class RecursiveConfig(ChunkerConfig):
    """Options of the ``recursive`` chunker.

    ``size`` is the most tokens a chunk may have *as indexed*, heading line included when
    ``include_heading`` is on; ``overlap`` is how many tokens of the previous chunk (of the same
    section) are repeated at the start of the next one.
    """

    separators: list[str] = ["\n\n", "\n", ". ", " "]
    include_heading: bool = True

    @field_validator("separators")
    @classmethod
    def _separators_not_empty(cls, v: list[str]) -> list[str]:
        if not v or any(s == "" for s in v):
            raise ValueError("separators must be non-empty strings, largest first, "
                             'e.g. ["\\n\\n", "\\n", " "]')
        return v


def _split_keep(text: str, sep: str) -> list[str]:
    # The separator stays at the end of its piece, so the pieces concatenate back to the text.
    parts = text.split(sep)
    pieces = [p + sep for p in parts[:-1]] + [parts[-1]]
    return [p for p in pieces if p]


class RecursiveChunker:
    """Chunks documents section by section (see :class:`RecursiveConfig`).

    Guarantees ``tokenizer.count(chunk.indexed_text) <= config.size`` for every chunk (special tokens not
    counted: the run leaves room for them, :func:`flightdeck.core.chunking.fit_chunk_size`). With
    ``include_heading`` on, ``chunk.heading_path`` is the section's path, shortened from the front only
    if it alone would take more than half the budget; with it off, ``heading_path`` is ``()`` so nothing
    but the text is indexed. ``metadata["heading"]`` always holds the full path, and the section's own
    metadata (``page``, ``slide``, ``ocr_confidence``) is carried over (see ``chunkers.base``).
    """

    def __init__(self, config: RecursiveConfig | None = None) -> None:
        self.config = config or RecursiveConfig()

    def chunk(self, document: Document, tokenizer: Tokenizer) -> list[Chunk]:
        """Return the chunks of ``document``, numbered ``0..n-1``; sections without text give none."""
        chunks: list[Chunk] = []
        for section in document.sections:
            heading = self._heading(section, tokenizer)
            base_meta = chunk_metadata(document, [section], section.heading_path)
            for text in self._section_texts(section.text, heading, tokenizer):
                chunk = Chunk(document.uri, len(chunks), text, heading, 0, dict(base_meta))
                chunks.append(replace(chunk, token_count=tokenizer.count(chunk.indexed_text)))
        return chunks

    def _heading(self, section: Section, tok: Tokenizer) -> tuple[str, ...]:
        if not self.config.include_heading:
            return ()
        path = section.heading_path
        limit = self.config.size // 2
        # Drop the outermost headings first: the innermost says most about this chunk.
        while len(path) > 1 and tok.count(_HEADING_JOIN.join(path)) > limit:
            path = path[1:]
        if path and tok.count(path[0]) > limit:
            path = (tok.split_to_fit(path[0], limit)[0].strip(),)
        return path

    def _section_texts(self, text: str, heading: tuple[str, ...], tok: Tokenizer) -> list[str]:
        if not text.strip():
            return []
        size = self.config.size
        heading_line = _HEADING_JOIN.join(heading)
        budget = size - (tok.count(heading_line) if heading else 0)

        def fits(body: str) -> bool:
            return tok.count(f"{heading_line}\n{body}" if heading else body) <= size

        pieces = self._split(text, list(self.config.separators), budget, tok)
        counts = tok.count_batch(pieces)
        out: list[str] = []
        raw, used, has_piece = "", 0, False
        for piece, n in zip(pieces, counts, strict=True):
            if has_piece and used + n > budget:
                self._emit(raw, fits, budget, tok, out)
                raw = self._tail(raw, min(self.config.overlap, budget - n, used // 2), tok)
                used, has_piece = tok.count(raw), False
            raw += piece
            used += n
            has_piece = has_piece or n > 0
        if has_piece:
            self._emit(raw, fits, budget, tok, out)
        return out

    def _split(self, text: str, seps: list[str], budget: int, tok: Tokenizer) -> list[str]:
        """Pieces of ``text`` of at most ``budget`` tokens each that concatenate back to ``text``."""
        if tok.count(text) <= budget:
            return [text]
        for i, sep in enumerate(seps):
            if sep in text:
                parts = _split_keep(text, sep)
                out: list[str] = []
                for part, n in zip(parts, tok.count_batch(parts), strict=True):
                    out.extend([part] if n <= budget else self._split(part, seps[i + 1:], budget, tok))
                return out
        return tok.split_to_fit(text, budget)

    @staticmethod
    def _emit(raw: str, fits: Callable[[str], bool], budget: int, tok: Tokenizer, out: list[str]) -> None:
        text = raw.strip()
        if not text:
            return
        if fits(text):
            out.append(text)
            return
        # Token counts of pieces do not always add up (a word cut in two re-tokenizes differently);
        # shrink the budget until every part fits, which keeps the size bound a guarantee.
        for smaller in range(budget, 0, -1):
            parts = [p.strip() for p in tok.split_to_fit(text, smaller)]
            if all(fits(p) for p in parts if p):
                out.extend(p for p in parts if p)
                return
        raise AssertionError("unreachable: a single character always fits a chunk of 16+ tokens")

    @staticmethod
    def _tail(raw: str, max_tokens: int, tok: Tokenizer) -> str:
        """The end of ``raw``, starting at a word, of at most ``max_tokens`` tokens ("" if none)."""
        if max_tokens <= 0:
            return ""
        offsets = tok.offsets(raw)
        i = max(len(offsets) - max_tokens, 0)
        while i < len(offsets):
            start = offsets[i][0]
            # Start at a word so the overlap never begins with half a word.
            if (start == 0 or raw[start - 1].isspace()) and tok.count(raw[start:]) <= max_tokens:
                return raw[start:]
            i += 1
        return ""
