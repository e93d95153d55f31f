"""The ``sentence`` chunker: whole sentences packed up to the token budget, section by section.

A chunk never ends inside a sentence unless that sentence alone is longer than the budget (then it is
cut at commas, then words, as the ``recursive`` chunker would). The overlap repeats whole sentences: the
last sentences of the previous chunk that fit in ``overlap`` tokens, or none.

Sentences are found with a rule-based splitter (end punctuation followed by a capital, a digit or an
opening quote; paragraph breaks; a short list of abbreviations that do not end sentences), which needs no
model and behaves the same on every machine.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from flightdeck.data.chunkers.base import ChunkerConfig
from flightdeck.data.chunkers.recursive import RecursiveChunker

if TYPE_CHECKING:
    from flightdeck.data.tokenization import Tokenizer

__all__ = ["SentenceConfig", "SentenceChunker", "split_sentences"]

# End punctuation (optionally closed by quotes/brackets), whitespace, then what can start a sentence.
_BOUNDARY = re.compile(r"""(?<=[.!?…])["'”’)\]]*\s+(?=["'“‘(\[]?[A-Z0-9À-ÖØ-Þ])|\n[ \t]*\n\s*""")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "st", "vs", "cf", "fig", "no",
                            "etc", "approx", "dept", "inc", "ltd", "jr", "sr", "vol", "p", "pp", "ch"})
_LAST_WORD = re.compile(r"(\S+?)[.]?[\"'”’)\]]*$")
# Cut points for a sentence longer than the budget, largest first.
_LONG_SENTENCE_SEPARATORS = ["; ", ", ", " "]


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences that concatenate back to ``text`` (whitespace stays with each)."""
    pieces: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        head = text[start:m.start()]
        if m.group(0).count("\n") < 2:  # a paragraph break always ends a sentence
            # Searched in the last whitespace-free run only: searched over the whole head, the pattern
            # backtracks quadratically over a long run (a base64 blob before "…end. Next").
            words = head.rsplit(None, 1)
            word = _LAST_WORD.search(words[-1]) if words else None
            # "e.g. The" or "Dr. Smith": an abbreviation, not the end of a sentence; "A. B." initials too.
            w = word.group(1) if word else ""
            if w.lower().rstrip(".") in _ABBREVIATIONS or (len(w) == 1 and w.isupper()):
                continue
        pieces.append(text[start:m.end()])
        start = m.end()
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p]


class SentenceConfig(ChunkerConfig):
    """Options of the ``sentence`` chunker.

    ``size`` is the most tokens a chunk may have as indexed (heading line included when
    ``include_heading`` is on); ``overlap`` is the most tokens of whole sentences repeated from the
    previous chunk of the same section.
    """

    overlap: int = Field(0, ge=0)  # whole sentences are repeated: none unless asked (the base says 32)
    include_heading: bool = True

    @property
    def separators(self) -> list[str]:
        """Where a sentence longer than a chunk is cut, largest first (not a setting)."""
        return list(_LONG_SENTENCE_SEPARATORS)


class SentenceChunker(RecursiveChunker):
    """Packs whole sentences (see :class:`SentenceConfig`); ``tokenizer.count(indexed_text) <= size``.

    Shares the ``recursive`` chunker's section walk, heading handling, packing and size guarantee; only
    the pieces (sentences instead of separator splits) and the overlap (whole sentences) differ.
    """

    config: SentenceConfig  # type: ignore[assignment]

    def __init__(self, config: SentenceConfig | None = None) -> None:
        self.config = config or SentenceConfig()  # type: ignore[assignment]

    def _split(self, text: str, seps: list[str], budget: int, tok: Tokenizer) -> list[str]:
        sentences = split_sentences(text)
        out: list[str] = []
        for sentence, n in zip(sentences, tok.count_batch(sentences), strict=True):
            if n <= budget:
                out.append(sentence)
            else:  # one sentence longer than a chunk: cut it as the recursive chunker cuts text
                out.extend(RecursiveChunker._split(self, sentence, seps, budget, tok))
        return out

    @staticmethod
    def _tail(raw: str, max_tokens: int, tok: Tokenizer) -> str:
        """The last whole sentences of ``raw`` within ``max_tokens`` tokens ("" if not even one fits)."""
        if max_tokens <= 0:
            return ""
        tail = ""
        for sentence in reversed(split_sentences(raw)):
            if tok.count(sentence + tail) > max_tokens:
                break
            tail = sentence + tail
        return tail
