"""The synthesize step (``data.sources: - {provider: synthetic}``): a synthetic set from the current chunks.

It runs after ingest: samples chunks of the current dataset version (stable under unrelated changes), asks
the LLM generator for question/answer pairs and paraphrases of each sampled chunk, and records an immutable
set whose examples keep their chunk as ground truth. Generations are cached per (chunk content hash, model
and sampling settings, prompt settings), so a re-run with unchanged chunks calls the model zero times and a
changed chunk re-generates only its own examples.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from flightdeck.data.synthetic import (
    Generation,
    Synthesizer,
    drop_counts,
    generator_fingerprint,
    normalize_question,
    require_llm,
    sample_chunks,
)
from flightdeck.data.synthetic_sets import cache_generation, cached_generation, write_set
from flightdeck.errors import FlightdeckError
from flightdeck.pipeline.progress import Reporter
from flightdeck.pipeline.runner import StepResult, stable_hash
from flightdeck.workspace import CURRENT_DATASET, Workspace
from flightdeck.workspace.schema import chunks, documents

__all__ = ["SynthesizeStep", "ChunkRow"]


@dataclass(frozen=True)
class ChunkRow:
    """What the step reads of one chunk: its text and where it came from."""

    chunk_id: str
    document_id: str
    source_uri: str
    text: str
    text_hash: str
    token_count: int


class SynthesizeStep:
    """Generate (or reuse) the examples of the sampled chunks and record the set they make."""

    name = "synthesize"

    def __init__(self, ws: Workspace, synthesizer: Synthesizer, generator: Any, generator_name: str) -> None:
        self.ws = ws
        self.synthesizer = synthesizer
        self.generator = generator
        self.generator_name = generator_name
        self.fingerprint = generator_fingerprint(generator)
        self._rows: list[ChunkRow] | None = None

    def rows(self) -> list[ChunkRow]:
        """Every chunk of the workspace (the current dataset version), sorted by id."""
        if self._rows is None:
            q = (select(chunks.c.id, chunks.c.document_id, documents.c.source_uri, chunks.c.text, chunks.c.text_hash,
                        chunks.c.token_count).join(documents, documents.c.id == chunks.c.document_id)
                 .order_by(chunks.c.id))
            with self.ws.engine.connect() as conn:
                self._rows = [ChunkRow(*r) for r in conn.execute(q)]
        return self._rows

    def sample(self) -> list[ChunkRow]:
        c = self.synthesizer.config
        return sample_chunks(self.rows(), seed=c.seed, n=c.chunks, min_tokens=c.min_tokens,
                             chunk_id=lambda r: r.chunk_id, tokens=lambda r: r.token_count)

    def config_hash(self) -> str:
        return stable_hash({"synthetic": self.synthesizer.config.model_dump(), "generator": self.fingerprint,
                            "key": self.synthesizer.generation_key("", self.fingerprint)})

    def plan(self) -> tuple[str, str]:
        picked = [(r.chunk_id, r.text_hash, r.document_id, r.source_uri) for r in self.sample()]
        return stable_hash([self.ws.get_state(CURRENT_DATASET), picked]), self.config_hash()

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        require_llm(self.generator, self.generator_name)
        version = self.ws.get_state(CURRENT_DATASET)
        if version is None:
            raise FlightdeckError(f"{self.ws.root}: no dataset version to sample; the ingest step records one")
        picked = self.sample()
        c = self.synthesizer.config
        if not picked:
            largest = max((r.token_count for r in self.rows()), default=0)
            raise FlightdeckError(
                f"synthetic data generation: no chunk of dataset version {version[:12]} has min_tokens={c.min_tokens}"
                f" tokens (the largest has {largest}); lower min_tokens in the synthetic entry of data.sources")
        t0 = time.perf_counter()
        generated = cached = calls = 0
        results: list[tuple[ChunkRow, str, Generation]] = []
        for n, row in enumerate(picked, 1):
            key = self.synthesizer.generation_key(row.text_hash, self.fingerprint)
            stored = cached_generation(self.ws, key)
            if stored is None:
                gen = self.synthesizer.generate(row.text, self.generator)
                cache_generation(self.ws, key, row.text_hash, self.fingerprint["model_id"], gen.to_dict())
                generated += 1
                calls += gen.calls
            else:
                gen = Generation(stored["items"], stored["dropped"], stored.get("calls", 0))
                cached += 1
            results.append((row, key, gen))
            reporter.progress(self.name, n, len(picked))
        examples, dropped = _assemble(results)
        for d in dropped:
            reporter.event("synthetic_dropped", **d)
        counts_by_kind = {k: sum(e["kind"] == k for e in examples) for k in ("qa", "paraphrase")}
        set_counts = {"chunks": len(picked), **counts_by_kind, "dropped": drop_counts(dropped)}
        config = {**c.model_dump(), "generator": self.fingerprint}
        set_id = stable_hash([version, self.fingerprint, c.model_dump(),
                              [[e[k] for k in ("chunk_id", "chunk_hash", "kind", "question", "answer")]
                               for e in examples]])
        written = write_set(self.ws, {"id": set_id, "created_at": time.time(), "run_id": run_id,
                                      "dataset_version": version, "generator": self.fingerprint["model_id"],
                                      "config": config, "counts": set_counts, "dropped": dropped}, examples)
        counts: dict[str, Any] = {
            "set": set_id[:12], "new_set": written, "dataset_version": version[:12], "sampled": len(picked),
            "eligible": sum(r.token_count >= c.min_tokens for r in self.rows()), "generated": generated,
            "cached": cached, "llm_calls": calls, **counts_by_kind, "dropped": drop_counts(dropped),
            "seconds": round(time.perf_counter() - t0, 3)}
        return StepResult(set_id, counts)


def _assemble(results: list[tuple[ChunkRow, str, Generation]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The set's examples in sample order with their provenance, and every dropped item with its chunk.

    A question already in the set (two chunks with the same text, or the model repeating itself) is dropped
    as a duplicate, and so are the paraphrases of a dropped question.
    """
    examples: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row, key, gen in results:
        where = {"chunk_id": row.chunk_id, "document_id": row.document_id}
        dropped += [{**where, **d} for d in gen.dropped]
        lost: set[str] = set()
        for item in gen.items:
            norm = normalize_question(item["question"])
            if norm in seen or (item["parent_question"] is not None and item["parent_question"] in lost):
                dropped.append({**where, "kind": item["kind"], "reason": "duplicate", "text": item["question"]})
                if item["kind"] == "qa":
                    lost.add(item["question"])
                continue
            seen.add(norm)
            ident = hashlib.sha256(f"{row.chunk_id}\x00{item['kind']}\x00{item['question']}".encode()).hexdigest()
            examples.append({"ordinal": len(examples), "id": ident[:24], "kind": item["kind"],
                             "question": item["question"], "answer": item["answer"],
                             "parent_question": item["parent_question"], "chunk_id": row.chunk_id,
                             "document_id": row.document_id, "source_uri": row.source_uri,
                             "chunk_hash": row.text_hash, "generation_key": key})
    return examples, dropped
