"""What a tracker receives: one finished run — its params, metrics, gates, artifacts, spec hash and commit.

The built-in runs table (:mod:`.builtin`) keeps every run in the workspace; a tracker chosen under
``model.experiment_tracking`` (MLflow, W&B, TensorBoard, Neptune) gets the same record once the run is over.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["RunRecord", "Tracker"]


@dataclass
class RunRecord:
    """One experiment run: an evaluation (``kind`` eval), a tuning study (tune) or one of its trials (trial)."""

    id: str
    kind: str
    name: str
    started_at: float
    spec_hash: str
    status: str = "running"
    finished_at: float | None = None
    git_commit: str | None = None
    index_version: str | None = None
    dataset_version: str | None = None
    eval_set: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    passed: bool | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    tracked: dict[str, str] = field(default_factory=dict)  # tracker name → its run id / URL, or "error: …"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Tracker(Protocol):
    """Sends a finished run somewhere people look at runs; returns where it went (a run id or URL)."""

    name: str

    def log_run(self, run: RunRecord, files: dict[str, Path]) -> str: ...
