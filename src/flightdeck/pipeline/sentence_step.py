"""The ``sentences`` step: the vector of every sentence of every chunk, computed at index time.

It runs when the generator is ``extractive`` and the spec asks for the real-time tier (``scoping.latency:
real_time``, or ``precompute_sentences: true`` on the generator): the extractive answerer ranks the sentences
of the retrieved chunks against the question, and with their vectors stored it embeds only the question, which
is what brings an answer under 100 ms on 2 CPU cores. It costs index time: about 12,000 sentences, 4 to 5
minutes, for the demo on this machine's 2 cores.
Vectors go into the ``embeddings`` table under the SHA-256 of the sentence, beside the chunks' own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import insert, select

from flightdeck.core import Reporter, StepResult, stable_hash
from flightdeck.retrieval.embedders.cache import text_key
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import chunks, embeddings

__all__ = ["SentenceVectorsStep"]

_COMMIT_ROWS = 512


class SentenceVectorsStep:
    """Embed the sentences (``split`` of each chunk text) and the chunk texts that have no stored vector."""

    name = "sentences"

    def __init__(self, ws: Workspace, embedder: Any, split: Callable[[str], list[str]], split_version: str) -> None:
        self.ws = ws
        self.embedder = embedder
        self.split = split
        self.split_version = split_version

    def plan(self) -> tuple[str, str]:
        with self.ws.engine.connect() as conn:
            hashes = sorted({r[0] for r in conn.execute(select(chunks.c.text_hash))})
        return stable_hash(hashes), stable_hash({"model": self.embedder.model_id, "split": self.split_version})

    def _texts(self) -> dict[str, str]:
        """Each chunk text and each of its sentences, by key."""
        texts: dict[str, str] = {}
        with self.ws.engine.connect() as conn:
            for (text,) in conn.execute(select(chunks.c.text)):
                for piece in (text, *self.split(text)):
                    texts.setdefault(text_key(piece), piece)
        return texts

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        t0 = time.perf_counter()
        model_id = self.embedder.model_id
        texts = self._texts()
        with self.ws.engine.connect() as conn:
            have = {r[0] for r in conn.execute(select(embeddings.c.text_hash).where(embeddings.c.model_id == model_id))}
        todo = sorted(((k, t) for k, t in texts.items() if k not in have), key=lambda kv: len(kv[1]), reverse=True)
        reporter.progress(self.name, 0, len(todo))
        for start in range(0, len(todo), _COMMIT_ROWS):
            batch = todo[start:start + _COMMIT_ROWS]
            vectors = self.embedder.embed_documents([t for _, t in batch])
            with self.ws.engine.begin() as conn:
                conn.execute(insert(embeddings).prefix_with("OR IGNORE"), [
                    {"model_id": model_id, "text_hash": k, "dim": int(v.shape[0]),
                     "vector": np.asarray(v, dtype="<f4").tobytes()} for (k, _), v in zip(batch, vectors, strict=True)])
            reporter.progress(self.name, start + len(batch), len(todo))
        counts = {"texts": len(texts), "embedded": len(todo), "stored_before": len(texts) - len(todo),
                  "seconds": round(time.perf_counter() - t0, 3)}
        return StepResult(output_hash=stable_hash(sorted(texts)), counts=counts)
