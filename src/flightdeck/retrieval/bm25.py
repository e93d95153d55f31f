"""The BM25 keyword index of an index version: bm25s's precomputed sparse scores, memory-mapped.

SQLite FTS5 keeps the keyword index transactionally up to date with the chunks, but it scores every chunk
that contains any query term, so one query over a million chunks takes hundreds of milliseconds. The index
step therefore also builds this static index next to the vectors of each index version: bm25s stores each
term's BM25 contribution per chunk as a sparse matrix, so a query is a sum of a few sparse rows — a few
milliseconds at a million chunks — and it is memory-mapped, so opening it is instant.

Tokens are made as the workspace's FTS5 tokenizer (``porter unicode61``) makes them: lower case,
diacritics removed, split on anything that is not a letter or a digit, then Porter-stemmed (PyStemmer's
``porter``, the same algorithm), so BM25 ranks the same in both; BM25 parameters are Lucene's (k1 1.2,
b 0.75). Metadata filters are applied to the scores before the top k is taken (pushed down),
with the payloads saved beside the index.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.filters import Filter, PayloadColumns

__all__ = ["Bm25Index", "tokenize", "KEYWORD_FOLDER"]

KEYWORD_FOLDER = "keyword"
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
K1, B = 1.2, 0.75


def _bm25s() -> Any:
    optional_import("Stemmer", "bm25s", "the BM25 keyword index (PyStemmer)")  # tokenize() needs it as well
    return optional_import("bm25s", "bm25s", "the BM25 keyword index")


@functools.cache
def _stemmer() -> Any:
    return optional_import("Stemmer", "bm25s", "the BM25 keyword index (PyStemmer)").Stemmer("porter")


def tokenize(text: str) -> list[str]:
    """Lower-cased, Porter-stemmed words without diacritics, as FTS5's ``porter unicode61`` makes them."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _stemmer().stemWords(_TOKEN.findall(folded))


class Bm25Index:
    """Build once per index version (``build`` + ``save``); ``load`` and ``search`` in readers."""

    IDS_FILE = "ids.json"
    PAYLOADS_FILE = "payloads.jsonl"

    def __init__(self) -> None:
        self._retriever: Any = None
        self._ids: list[str] = []
        self._payloads: list[dict[str, Any]] | None = None
        self._folder: Path | None = None
        self._columns: PayloadColumns | None = None

    def build(self, ids: list[str], texts: list[str], payloads: list[dict[str, Any]]) -> None:
        bm25s = _bm25s()
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        # bm25s cannot index an empty corpus; an index of no chunks simply finds nothing
        if ids:
            retriever.index([tokenize(t) for t in texts], show_progress=False)
        self._retriever, self._ids, self._payloads = retriever if ids else None, list(ids), list(payloads)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(folder))
        (folder / self.IDS_FILE).write_text(json.dumps(self._ids))
        (folder / self.PAYLOADS_FILE).write_text(
            "".join(json.dumps(p, sort_keys=True) + "\n" for p in self._payloads or []))

    @classmethod
    def load(cls, folder: Path) -> Bm25Index:
        index = cls()
        index._ids = json.loads((folder / cls.IDS_FILE).read_text())
        index._folder = folder
        if index._ids:
            index._retriever = _bm25s().BM25.load(str(folder), mmap=True)
        return index

    @staticmethod
    def exists(folder: Path) -> bool:
        return (folder / Bm25Index.IDS_FILE).is_file()

    def _payload_columns(self) -> PayloadColumns:
        if self._columns is None:
            if self._payloads is None and self._folder is not None:
                lines = (self._folder / self.PAYLOADS_FILE).read_text().splitlines()
                self._payloads = [json.loads(line) for line in lines]
            self._columns = PayloadColumns(self._payloads or [])
        return self._columns

    def search(self, query: str, k: int, where: Filter | None = None) -> list[tuple[str, float]]:
        """``(chunk_id, bm25 score)`` of the chunks that contain a query term, best first."""
        if self._retriever is None or k <= 0:
            return []
        terms = [t for t in dict.fromkeys(tokenize(query)) if t in self._retriever.vocab_dict]
        if not terms:
            return []
        scores = np.asarray(self._retriever.get_scores(terms), dtype=np.float32)
        candidates = scores > 0
        if where is not None:
            candidates &= self._payload_columns().mask(where)
        rows = np.flatnonzero(candidates)
        if len(rows) > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        # best first; ties by chunk id, as FTS5 gives them
        order = sorted(rows.tolist(), key=lambda r: (-float(scores[r]), self._ids[r]))
        return [(self._ids[r], float(scores[r])) for r in order]

    def __len__(self) -> int:
        return len(self._ids)
