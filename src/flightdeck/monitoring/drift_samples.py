"""The samples a drift analysis compares, read from a workspace (see :mod:`flightdeck.monitoring.drift`).

- a dataset version: the text of every chunk it holds, read from its document records (the content-addressed
  JSON artifacts that ``dataset_version_documents.chunks_artifact`` names), documents by id, chunks in order;
- an index version: the chunks of the dataset version it was built from (the index step indexes every chunk of the
  workspace, which is that version's), as the index holds them (``indexed_text``), with the vectors its embedder
  made for them when the embedding cache still holds all of them;
- a window of traces: the questions asked and each answer's retrieval scores (``details["retrieved"]``).

Versions are named by full id, unique prefix or ``current``; an unknown one is an error that lists those that exist.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from sqlalchemy import func, select

from flightdeck.core.durations import duration_seconds
from flightdeck.errors import WorkspaceError
from flightdeck.governance.versions import iso_time, list_versions, version_documents
from flightdeck.monitoring.drift import DriftInputError, Sample
from flightdeck.workspace import CURRENT_DATASET, CURRENT_INDEX, Workspace
from flightdeck.workspace.ids import resolve_id
from flightdeck.workspace.index_versions import get_index_version
from flightdeck.workspace.schema import dataset_versions, embeddings, index_versions, traces

__all__ = ["dataset_sample", "index_sample", "trace_window", "trace_windows", "parse_window", "read_samples",
           "resolve_index_version", "resolve_dataset_version"]

_LISTED = 10
_LISTER = "<listed here>"  # resolve_id names a listing command; these errors list the versions themselves


def parse_window(window: str | float | int) -> float:
    """A window's length in seconds: a number of seconds, or ``30m``, ``24h``, ``7d``, ``2w``."""
    seconds = duration_seconds(window if isinstance(window, int | float) else str(window),
                               bare_seconds=isinstance(window, int | float))
    if seconds is None:
        raise DriftInputError(f"window {window!r} is not a duration; write a number and a unit: 90m, 24h, 7d, 2w")
    if seconds <= 0:
        raise DriftInputError(f"window {window!r} must be longer than 0")
    return seconds


# dataset versions ------------------------------------------------------------------------------------------
def _dataset_listing(ws: Workspace) -> str:
    versions = list_versions(ws)
    if not versions:
        return ""
    shown = [f"{v.short_id} ({iso_time(v.created_at)}, {v.documents} documents{', current' if v.current else ''})"
             for v in reversed(versions[-_LISTED:])]
    more = f" and {len(versions) - _LISTED} older" if len(versions) > _LISTED else ""
    return f"The dataset versions, newest first: {'; '.join(shown)}{more}"


def _with_listing(exc: WorkspaceError, listing: str) -> WorkspaceError:
    """``exc``'s message without its pointer to a listing command, followed by the listing itself."""
    message = str(exc).replace(f"; `{_LISTER}` lists them", "")
    return WorkspaceError(f"{message}. {listing}" if listing else message)


def resolve_dataset_version(ws: Workspace, ref: str) -> str:
    """The full id of the dataset version ``ref`` (full id, unique prefix, ``current``); the error lists them."""
    try:
        return resolve_id(ws, dataset_versions.c.id, ref, current_state=CURRENT_DATASET, what="dataset version",
                          lister=_LISTER, none_yet="run `flightdeck run` first")
    except WorkspaceError as exc:
        raise _with_listing(exc, _dataset_listing(ws)) from None


def _records(ws: Workspace, version: str) -> list[dict[str, Any]]:
    """The chunks of dataset version ``version`` (full id): documents by id, chunks in reading order."""
    out: list[dict[str, Any]] = []
    for doc_id, doc in sorted(version_documents(ws, version).items()):
        if not doc.chunks_artifact:
            raise WorkspaceError(f"dataset version {version[:12]} was recorded before document records existed "
                                 f"(document {doc_id} has none): its chunks are unknown; compare newer versions")
        try:
            record = json.loads(ws.artifacts.get_bytes(doc.chunks_artifact))
        except FileNotFoundError:
            raise WorkspaceError(f"{ws.root}: artifact {doc.chunks_artifact} (the record of document {doc_id} in "
                                 f"dataset version {version[:12]}) is missing from {ws.artifacts.root}") from None
        out.extend(record.get("chunks", []))
    return out


def dataset_sample(ws: Workspace, ref: str) -> Sample:
    """The chunk texts of dataset version ``ref``."""
    version = resolve_dataset_version(ws, ref)
    chunks = _records(ws, version)
    created = next((v.created_at for v in list_versions(ws) if v.id == version), None)
    return Sample("dataset", version, f"dataset version {version[:12]}", [c["text"] for c in chunks],
                  {"created_at": iso_time(created), "chunks": len(chunks),
                   "documents": len(version_documents(ws, version))})


# index versions --------------------------------------------------------------------------------------------
def _index_listing(ws: Workspace) -> str:
    current = ws.get_state(CURRENT_INDEX)
    with ws.engine.connect() as conn:
        rows = conn.execute(select(index_versions.c.id, index_versions.c.created_at, index_versions.c.chunk_count,
                                   index_versions.c.embedder)
                            .order_by(index_versions.c.created_at.desc())).all()
    if not rows:
        return ""
    shown = [f"{r.id[:12]} ({iso_time(r.created_at)}, {r.chunk_count} chunks, {r.embedder}"
             f"{', current' if r.id == current else ''})" for r in rows[:_LISTED]]
    more = f" and {len(rows) - _LISTED} older" if len(rows) > _LISTED else ""
    return f"The index versions, newest first: {'; '.join(shown)}{more}"


def resolve_index_version(ws: Workspace, ref: str) -> str:
    """The full id of the index version ``ref`` (full id, unique prefix, ``current``); the error lists them."""
    try:
        return resolve_id(ws, index_versions.c.id, ref, current_state=CURRENT_INDEX, what="index version",
                          lister=_LISTER, none_yet="run `flightdeck run` first")
    except WorkspaceError as exc:
        raise _with_listing(exc, _index_listing(ws)) from None


def _cached_vectors(ws: Workspace, model_id: str, dim: int, text_hashes: list[str]) -> np.ndarray | None:
    """The embedding cache's vectors of ``text_hashes`` for ``model_id``, row for row; None if any is gone."""
    found: dict[str, bytes] = {}
    wanted = list(dict.fromkeys(text_hashes))
    with ws.engine.connect() as conn:
        for start in range(0, len(wanted), 900):
            found.update({r[0]: r[1] for r in conn.execute(
                select(embeddings.c.text_hash, embeddings.c.vector)
                .where(embeddings.c.model_id == model_id, embeddings.c.text_hash.in_(wanted[start:start + 900])))})
    if not text_hashes or any(h not in found for h in text_hashes):
        return None
    matrix = np.frombuffer(b"".join(found[h] for h in text_hashes), dtype="<f4")
    return matrix.reshape(len(text_hashes), dim) if matrix.size == len(text_hashes) * dim else None


def index_sample(ws: Workspace, ref: str) -> Sample:
    """The chunks index version ``ref`` holds, as indexed (``indexed_text``), with its cached vectors if whole."""
    version = resolve_index_version(ws, ref)
    iv = get_index_version(ws, version)
    assert iv is not None  # resolved above
    if not iv.dataset_version:
        raise WorkspaceError(f"index version {version[:12]} names no dataset version, so its chunks are unknown; "
                             "compare other index versions")
    chunks = sorted(_records(ws, iv.dataset_version), key=lambda c: c["id"])  # the index's row order
    vectors = _cached_vectors(ws, iv.embedder, iv.dim, [c["text_hash"] for c in chunks])
    return Sample("index", version, f"index version {version[:12]}", [c["indexed_text"] for c in chunks],
                  {"created_at": iso_time(iv.created_at), "chunks": len(chunks), "embedder": iv.embedder,
                   "store": iv.store, "dataset_version": iv.dataset_version,
                   "vectors": "cached" if vectors is not None else "re-embedded"},
                  vectors=vectors, vector_model=iv.embedder)


# traces ----------------------------------------------------------------------------------------------------
def trace_window(ws: Workspace, start: float, end: float, label: str | None = None) -> Sample:
    """The traces made in ``[start, end)`` (seconds since the epoch): their questions and retrieval scores."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(traces.c.question, traces.c.details)
                            .where(traces.c.created_at >= start, traces.c.created_at < end)
                            .order_by(traces.c.created_at, traces.c.id)).all()
    scores: list[list[float]] = []
    for row in rows:
        retrieved = (row.details or {}).get("retrieved") or []
        scores.append([float(h["score"]) for h in retrieved if isinstance(h, dict) and h.get("score") is not None])
    span = f"{iso_time(start)} to {iso_time(end)}"
    return Sample("traces", span, label or f"traces {span}", [r.question for r in rows],
                  {"start": iso_time(start), "end": iso_time(end), "traces": len(rows)}, scores=scores)


def _trace_listing(ws: Workspace) -> str:
    with ws.engine.connect() as conn:
        count, first, last = conn.execute(select(func.count(), func.min(traces.c.created_at),
                                                 func.max(traces.c.created_at))).one()
    if not count:
        return "no trace is stored yet: traces are written by `flightdeck serve` (deployment.server.store_traces)"
    return f"the workspace holds {count} traces, from {iso_time(first)} to {iso_time(last)}"


def trace_windows(ws: Workspace, window: str | float = "7d", now: float | None = None) -> tuple[Sample, Sample]:
    """The last ``window`` before ``now`` (B) and the ``window`` before it (A)."""
    length = parse_window(window)
    end = time.time() if now is None else now
    b = trace_window(ws, end - length, end, f"the last {window} of traces")
    a = trace_window(ws, end - 2 * length, end - length, f"the {window} of traces before")
    empty = [s.label for s in (a, b) if not s.texts]
    if empty:
        raise WorkspaceError(f"no traces in {' nor in '.join(empty)} ({a.info['start']} to {b.info['end']}); "
                             f"{_trace_listing(ws)}; choose a --window that holds traces on both sides")
    return a, b


def read_samples(ws: Workspace, *, datasets: tuple[str, str] | list[str] | None = None,
                 indexes: tuple[str, str] | list[str] | None = None, traces: bool = False,
                 window: str | float = "7d", now: float | None = None) -> tuple[str, Sample, Sample]:
    """The kind of comparison and its two samples: exactly one of ``datasets``, ``indexes`` (two refs each) or
    ``traces`` (two windows)."""
    given = [name for name, value in (("datasets", datasets), ("indexes", indexes), ("traces", traces)) if value]
    if len(given) != 1:
        raise DriftInputError("compare one thing: two dataset versions (datasets=(A, B)), two index versions "
                              "(indexes=(A, B)) or two windows of traces (traces=True)"
                              + (f"; got {', '.join(given)}" if given else ""))
    kind = given[0]
    if kind == "traces":
        a, b = trace_windows(ws, window, now)
        return kind, a, b
    refs = list(datasets if kind == "datasets" else indexes)  # type: ignore[arg-type]
    if len(refs) != 2:
        raise DriftInputError(f"{kind}: give two versions (A then B), got {len(refs)}")
    read = dataset_sample if kind == "datasets" else index_sample
    return kind, read(ws, str(refs[0])), read(ws, str(refs[1]))
