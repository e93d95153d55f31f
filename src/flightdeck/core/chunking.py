"""The chunk-size rule, written once: how many tokens a chunk may hold for an encoder of ``max_tokens``.

Chunkers count a chunk's tokens as the embedder's tokenizer does *without* special tokens
(``Tokenizer.count``), and promise ``count(indexed_text) <= size``. The encoder adds its own special tokens to
every text it embeds (BERT-style models: ``[CLS]`` and ``[SEP]``), so a chunk of ``size`` tokens plus those must
fit the model's maximum sequence length, or the model silently cuts the chunk's end off.

Two limits, on purpose, and both live here:

- a run builds its chunker with :func:`fit_chunk_size`: the spec's ``size``, lowered to
  :func:`chunk_token_window` when it is larger;
- ``flightdeck validate`` refuses only a size above the model's maximum itself (:func:`chunk_size_error`).
  The default chunk size (:data:`DEFAULT_CHUNK_SIZE`, 256) equals the maximum of the default embedding model
  (all-MiniLM-L6-v2, 256): that spec has always been valid, and runs with chunks of 254 tokens. A size between
  the window and the maximum is lowered by the run, not refused.

In ``core`` because the spec rules and the chunkers both need it, and the spec layer is below ``data/``.
"""

from __future__ import annotations

__all__ = ["SPECIAL_TOKENS", "DEFAULT_CHUNK_SIZE", "chunk_token_window", "fit_chunk_size", "chunk_size_error"]

#: Special tokens the encoder adds to every text it embeds (``[CLS]`` and ``[SEP]``).
SPECIAL_TOKENS = 2
#: Tokens per chunk when the spec does not say (every built-in chunker's default ``size``).
DEFAULT_CHUNK_SIZE = 256


def chunk_token_window(max_tokens: int) -> int:
    """The most tokens (special tokens excluded) a chunk may hold for an encoder of ``max_tokens`` tokens."""
    return max_tokens - SPECIAL_TOKENS


def fit_chunk_size(size: int, max_tokens: int) -> int:
    """The chunk size to build the chunker with: ``size``, or :func:`chunk_token_window` when that is smaller."""
    return min(size, chunk_token_window(max_tokens))


def chunk_size_error(size: int, max_tokens: int) -> str | None:
    """What ``validate`` says about ``size`` for an encoder of ``max_tokens`` tokens, or None when it is accepted.

    Accepted up to ``max_tokens`` (not the smaller window): see the module docstring.
    """
    if size <= max_tokens:
        return None
    return (f"chunk size {size} exceeds the embedding model's maximum sequence length {max_tokens};"
            f" set size <= {max_tokens}.")
