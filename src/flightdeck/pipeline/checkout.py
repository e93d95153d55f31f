"""Checking out a dataset version: restore it (:func:`~flightdeck.governance.versions.restore_version`) and
rebuild its index, as one recorded run of the pipeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flightdeck.core import NullReporter, Reporter, RunHook, Step, StepResult, stable_hash
from flightdeck.governance.versions import restore_version
from flightdeck.pipeline.runner import Runner, RunSummary
from flightdeck.workspace import CURRENT_INDEX, Workspace

__all__ = ["CheckoutStep", "CheckoutResult", "checkout"]



class CheckoutStep:
    """The step that restores a dataset version (recorded like any step; never skipped)."""

    name = "checkout"

    def __init__(self, ws: Workspace, version: str) -> None:
        self.ws = ws
        self.version = version

    def plan(self) -> tuple[str, str]:
        # A unique input: checking out is an explicit request, even of a version checked out before.
        return stable_hash([self.version, uuid.uuid4().hex]), stable_hash({"checkout": self.version})

    def run(self, run_id: str, reporter: Reporter) -> StepResult:
        counts = restore_version(self.ws, self.version, run_id)
        reporter.event("dataset_checked_out", dataset_version=self.version, **counts)
        return StepResult(self.version, {"dataset_version": self.version[:12], **counts})


@dataclass
class CheckoutResult:
    """What ``checkout`` did: the restored version and the run that re-embedded and re-indexed it."""

    dataset_version: str
    counts: dict[str, int]
    summary: RunSummary
    index_version: str | None
    note: str = ("the next `flightdeck run` brings the workspace back to the sources' current state")

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_version": self.dataset_version, **self.counts, "index_version": self.index_version,
                "run": self.summary.to_dict(), "note": self.note}


def checkout(ws: Workspace, version: str, follow_steps: Sequence[Step], spec_hash: str,
             reporter: Reporter | None = None, hooks: Sequence[RunHook] = ()) -> CheckoutResult:
    """Restore dataset version ``version`` (full id) and rebuild its index with ``follow_steps``.

    ``follow_steps`` are the pipeline's embed and index steps: they run after the restore in the same,
    recorded run; the embedding cache keeps old vectors, so usually nothing is embedded again. The caller
    holds the workspace's writer lock.
    """
    step = CheckoutStep(ws, version)
    summary = Runner(ws, reporter or NullReporter(), hooks=hooks).run([step, *follow_steps], spec_hash)
    counts = next(s.counts for s in summary.steps if s.step == "checkout")
    counts = {k: v for k, v in counts.items() if k != "dataset_version"}
    for s in summary.steps:
        if s.step == "embed":
            counts["embedded"] = int(s.counts.get("embedded", 0))
    return CheckoutResult(version, counts, summary, ws.get_state(CURRENT_INDEX))
