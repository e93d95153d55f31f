"""Token counting with the embedder's own tokenizer: the ``tokenization`` preprocessor.

Chunk sizes are budgets in the embedder's tokens, so they must be measured with the very tokenizer the
embedder uses; a word count or another model's tokenizer would let chunks overflow the model's window.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

if TYPE_CHECKING:
    import tokenizers

__all__ = ["Tokenizer"]


class Tokenizer:
    """A Hugging Face ``tokenizers`` tokenizer used to count and cut text.

    Truncation and padding are switched off (many ``tokenizer.json`` files ship with both on), so counts
    are true lengths. Special tokens such as ``[CLS]``/``[SEP]`` are never counted.
    """

    def __init__(self, tokenizer: tokenizers.Tokenizer) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tok = tokenizer

    @classmethod
    def from_model_dir(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load ``<path>/tokenizer.json`` (a sentence-transformers or transformers model folder)."""
        # tokenizers is a dependency of flightdeck itself: there is no extra for it
        hf_tokenizers = optional_import("tokenizers", None,
                                        "tokenization (the 'tokenizers' package, a dependency of flightdeck itself)",
                                        install="pip install 'tokenizers>=0.15'", alternative="reinstall flightdeck")
        file = Path(path) / "tokenizer.json"
        if not file.is_file():
            raise SourceError(f"{file}: no tokenizer.json here; "
                              "point the model path at a folder that has one")
        return cls(hf_tokenizers.Tokenizer.from_file(str(file)))

    def count(self, text: str) -> int:
        """Number of tokens in ``text``, special tokens excluded."""
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Token counts of many texts at once (the Rust side runs them in parallel)."""
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span ``(start, end)`` of every token of ``text``, special tokens excluded."""
        return list(self._tok.encode(text, add_special_tokens=False).offsets)

    def split_to_fit(self, text: str, max_tokens: int) -> list[str]:
        """Cut ``text`` at token boundaries into pieces of at most ``max_tokens`` tokens each.

        The last resort for a run without any separator (a long word, a URL, minified code). Pieces are
        consecutive slices: ``"".join(pieces) == text``. Each piece is re-counted on its own, because a
        cut inside a word can tokenize differently than the whole word did.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        offsets = self.offsets(text)
        if len(offsets) <= max_tokens:
            return [text] if text else []
        # Candidate cut positions: the start of every token but the first, and the end of the text.
        cuts = sorted({start for start, _ in offsets if start > 0} | {len(text)})
        pieces: list[str] = []
        start = 0
        k = 0
        while start < len(text):
            while cuts[k] <= start:
                k += 1
            # cuts[k + m - 1] is roughly m tokens after start; step back while the re-count is too high.
            j = min(k + max_tokens - 1, len(cuts) - 1)
            while j > k and self.count(text[start:cuts[j]]) > max_tokens:
                j -= 1
            end = cuts[j]
            if self.count(text[start:end]) > max_tokens:
                end = self._cut_chars(text, start, end, max_tokens)
            pieces.append(text[start:end])
            start = end
        return pieces

    def _cut_chars(self, text: str, start: int, end: int, max_tokens: int) -> int:
        """Largest ``e`` in ``(start, end]`` with ``text[start:e]`` within budget (at least one char)."""
        lo, hi = start + 1, end
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count(text[start:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return lo
