"""Stored synthetic data sets: immutable, content-addressed sets of examples, each with its source chunk.

A set's id is the hash of the dataset version it was sampled from, the generator, the settings and the
examples themselves, so the same inputs always name the same set and a set never changes once written. The
set row and its examples commit in one transaction together with the ``synthetic/current`` pointer; the
per-chunk generation cache (``synthetic_generations``) is written chunk by chunk before that, so a killed
run loses at most one chunk's calls and a re-run finishes the set without asking the model again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, insert, select

from flightdeck.workspace import Workspace
from flightdeck.workspace.ids import resolve_id
from flightdeck.workspace.schema import synthetic_examples, synthetic_generations, synthetic_sets

__all__ = ["CURRENT_SET_STATE", "SyntheticSet", "SyntheticExample", "cached_generation", "cache_generation",
           "write_set", "list_sets", "resolve_set", "set_examples"]

CURRENT_SET_STATE = "synthetic/current"


@dataclass(frozen=True)
class SyntheticExample:
    """One generated question with its ground truth: the chunk (id, content hash), document and URI."""

    id: str
    set_id: str
    ordinal: int
    kind: str  # qa | paraphrase
    question: str
    answer: str
    parent_question: str | None
    chunk_id: str
    document_id: str
    source_uri: str
    chunk_hash: str
    generation_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SyntheticSet:
    """One stored set as listed by ``flightdeck data synthetic``."""

    id: str
    created_at: float
    run_id: str
    dataset_version: str
    generator: str
    config: dict[str, Any]
    counts: dict[str, Any]
    current: bool
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, dropped: bool = False) -> dict[str, Any]:
        from flightdeck.governance.versions import iso_time

        out = {"id": self.id, "short_id": self.id[:12], "created_at": iso_time(self.created_at),
               "run_id": self.run_id, "dataset_version": self.dataset_version, "generator": self.generator,
               "config": self.config, "counts": self.counts, "current": self.current}
        if dropped:
            out["dropped"] = self.dropped
        return out


def cached_generation(ws: Workspace, key: str) -> dict[str, Any] | None:
    """The stored generation of one chunk under ``key`` (see ``Synthesizer.generation_key``), or None."""
    with ws.engine.connect() as conn:
        return conn.execute(select(synthetic_generations.c.result)
                            .where(synthetic_generations.c.key == key)).scalar()


def cache_generation(ws: Workspace, key: str, chunk_hash: str, generator: str, result: dict[str, Any]) -> None:
    """Store one chunk's generation (its own transaction: a kill loses at most this chunk's calls)."""
    with ws.engine.begin() as conn:
        conn.execute(insert(synthetic_generations).prefix_with("OR IGNORE").values(
            key=key, chunk_hash=chunk_hash, generator=generator, created_at=time.time(), result=result))


def write_set(ws: Workspace, row: dict[str, Any], examples: list[dict[str, Any]]) -> bool:
    """Insert the set and its examples unless a set with this id exists; make it current. True if written."""
    with ws.engine.begin() as conn:
        exists = conn.execute(select(func.count()).select_from(synthetic_sets)
                              .where(synthetic_sets.c.id == row["id"])).scalar()
        if not exists:
            conn.execute(insert(synthetic_sets).values(**row))
            if examples:
                conn.execute(insert(synthetic_examples), [{"set_id": row["id"], **e} for e in examples])
        ws.set_state(conn, CURRENT_SET_STATE, row["id"])
    return not exists


def list_sets(ws: Workspace) -> list[SyntheticSet]:
    """Every synthetic set, oldest first, with the current one (the last one a run produced) marked."""
    current = ws.get_state(CURRENT_SET_STATE)
    with ws.engine.connect() as conn:
        rows = conn.execute(select(synthetic_sets).order_by(synthetic_sets.c.created_at, synthetic_sets.c.id))
        return [SyntheticSet(r.id, r.created_at, r.run_id, r.dataset_version, r.generator, r.config, r.counts,
                             r.id == current, r.dropped) for r in rows]


def resolve_set(ws: Workspace, ref: str | None) -> str:
    """The full id of the set named by ``ref``: a full id, a unique prefix, or ``current``/None."""
    return resolve_id(ws, synthetic_sets.c.id, ref or "current", current_state=CURRENT_SET_STATE,
                      what="synthetic set", lister="flightdeck data synthetic",
                      none_yet="add {provider: synthetic} to data.sources and run `flightdeck run`")


def set_examples(ws: Workspace, ref: str | None = None) -> list[SyntheticExample]:
    """The examples of set ``ref`` (default: the current set), in their stored order."""
    set_id = resolve_set(ws, ref)
    with ws.engine.connect() as conn:
        rows = conn.execute(select(synthetic_examples).where(synthetic_examples.c.set_id == set_id)
                            .order_by(synthetic_examples.c.ordinal)).mappings().all()
    return [SyntheticExample(**{k: r[k] for k in SyntheticExample.__dataclass_fields__}) for r in rows]
