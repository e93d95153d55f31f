"""Duplicate detection (``data.cleaning.dedupe``): exact (same cleaned text) and near (MinHash + LSH).

Near duplicates are found the standard way for web-scale corpora (Broder's MinHash, as in datasketch
and the deduplication of C4/The Pile): a document is the set of its word 5-shingles, a MinHash of 128
permutations estimates the Jaccard similarity of two such sets, and locality-sensitive hashing over the
signatures finds the candidate pairs without comparing every pair. A candidate counts as a duplicate when
its estimated Jaccard similarity reaches the threshold.

Which copy survives is deterministic: documents are visited in id order and the first one wins, whether
it was ingested in this run or an earlier one (earlier documents are compared through the signatures
stored in ``document_signatures``, never re-read).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from flightdeck.data.documents import content_hash
from flightdeck.registry.lookup import optional_import

__all__ = ["NUM_PERM", "SHINGLE_WORDS", "Signature", "Duplicate", "shingles", "minhash_bytes", "text_hash",
           "find_duplicates", "signature_scheme"]

NUM_PERM = 128
SHINGLE_WORDS = 5
_SEED = 1  # datasketch's default; stored signatures are only comparable under the same seed
_SCHEME = "affine32"  # datasketch 2's default, named so that a future default cannot change stored values
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Signature:
    """What dedupe needs of one document: its id, the hash of its cleaned text and its MinHash."""

    document_id: str
    text_hash: str
    minhash: bytes | None = None  # NUM_PERM little-endian uint64 values; None when near-dedupe is off
    empty: bool = False  # a document without text is nobody's duplicate


@dataclass(frozen=True)
class Duplicate:
    """A dropped document: ``uri`` duplicates ``duplicate_of`` (exact, or near with ``similarity``)."""

    uri: str
    duplicate_of: str
    kind: Literal["exact", "near"]
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "duplicate_of": self.duplicate_of, "kind": self.kind,
                "similarity": self.similarity}


def text_hash(text: str) -> str:
    """The exact-duplicate key: SHA-256 of the cleaned text."""
    return content_hash(text)


def shingles(text: str) -> set[str]:
    """The word 5-shingles of ``text``, lower-cased (a text of fewer words is one shingle)."""
    words = _WORD.findall(text.lower())
    if len(words) <= SHINGLE_WORDS:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def _datasketch() -> Any:
    return optional_import("datasketch", "cleaning", "near-duplicate removal (data.cleaning.dedupe: near)",
                           alternative="set data.cleaning.dedupe: exact")


def _scheme_kwargs(ds: Any) -> dict[str, str]:
    # datasketch 2 has several hashing schemes and wants to be told which one stored values came from;
    # 1.x has one (what 2.x calls "legacy") and no such argument.
    return {"scheme": _SCHEME} if "scheme" in inspect.signature(ds.MinHash.__init__).parameters else {}


def signature_scheme() -> str:
    """Names how signatures are computed (library major version and scheme); part of the pipeline hash,
    so that stored signatures are recomputed rather than compared across incompatible schemes."""
    ds = _datasketch()
    return f"datasketch{ds.__version__.split('.')[0]}-{_scheme_kwargs(ds).get('scheme', 'legacy')}-{NUM_PERM}"


def minhash_bytes(text: str) -> bytes:
    """The MinHash signature of ``text``'s shingles, as bytes for the ``document_signatures`` table."""
    ds = _datasketch()
    mh = ds.MinHash(num_perm=NUM_PERM, seed=_SEED, **_scheme_kwargs(ds))
    sh = shingles(text)
    if sh:
        mh.update_batch([s.encode("utf-8") for s in sorted(sh)])
    return np.asarray(mh.hashvalues, dtype="<u8").tobytes()


def _minhash(ds: Any, data: bytes) -> Any:
    return ds.MinHash(num_perm=NUM_PERM, seed=_SEED, hashvalues=np.frombuffer(data, dtype="<u8").astype(np.uint64),
                      **_scheme_kwargs(ds))


def find_duplicates(signatures: Iterable[Signature], mode: Literal["off", "exact", "near"],
                    threshold: float = 0.9) -> list[Duplicate]:
    """The documents to drop among ``signatures``: visited in id order, the first of each group wins.

    ``exact`` drops documents whose cleaned text equals an earlier one's; ``near`` does that too and
    also drops documents whose estimated Jaccard similarity with a kept one reaches ``threshold``
    (the most similar kept document is named; ties go to the smallest id).
    """
    if mode == "off":
        return []
    ds = _datasketch() if mode == "near" else None
    # The index only proposes candidates, each checked against ``threshold`` below: a slightly lower
    # index threshold misses fewer pairs just above it (and datasketch cannot band for thresholds near 1).
    lsh = ds.MinHashLSH(threshold=max(0.1, min(threshold - 0.05, 0.9)), num_perm=NUM_PERM) if ds is not None else None
    kept_by_hash: dict[str, str] = {}
    kept_minhash: dict[str, Any] = {}
    out: list[Duplicate] = []
    for sig in sorted(signatures, key=lambda s: s.document_id):
        if sig.empty:
            continue
        original = kept_by_hash.get(sig.text_hash)
        if original is not None:
            out.append(Duplicate(sig.document_id, original, "exact", 1.0))
            continue
        mh = _minhash(ds, sig.minhash) if ds is not None and sig.minhash is not None else None
        if mh is not None and lsh is not None:
            best: tuple[float, str] | None = None
            for cand in lsh.query(mh):
                sim = float(mh.jaccard(kept_minhash[cand]))
                if sim >= threshold and (best is None or (-sim, cand) < (-best[0], best[1])):
                    best = (sim, cand)
            if best is not None:
                out.append(Duplicate(sig.document_id, best[1], "near", round(best[0], 3)))
                continue
            lsh.insert(sig.document_id, mh)
            kept_minhash[sig.document_id] = mh
        kept_by_hash[sig.text_hash] = sig.document_id
    return out
