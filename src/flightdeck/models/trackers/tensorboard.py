"""TensorBoard: each finished run becomes a TensorBoard run folder of event files.

``<log_dir>/<run name>/<run id>/`` (``log_dir`` defaults to ``runs`` beside the spec) gets:

- one scalar per measured metric (step 0, at the time the run ended), named as MLflow names it: TensorBoard's
  writers allow only letters, digits, ``_ - . /``, so ``ndcg@10`` is the tag ``ndcg_at_10``;
- an HParams session: the run's params, flattened (``search.k``), against those metrics, so the HParams
  dashboard compares runs with different settings;
- text: the Markdown report (``report``), the gates (``gates``), the run's ids and versions (``flightdeck``),
  and which tag holds which metric when a name had to change (``metric_names``).

The events are written with tensorboardX, which needs neither TensorFlow nor PyTorch (TensorBoard's own
``tensorboard.summary.Writer`` writes scalars only); ``tensorboard --logdir runs`` shows them.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.models.trackers.base import RunRecord
from flightdeck.models.trackers.mlflow import flat_params, metric_keys, param_text
from flightdeck.registry.lookup import optional_import

__all__ = ["TensorboardConfig", "TensorboardTracker"]

_FOLDER = re.compile(r"[^A-Za-z0-9_.-]")


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


class TensorboardConfig(BaseModel):
    """Settings of ``model.experiment_tracking: [{provider: tensorboard, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path_settings: ClassVar[tuple[str, ...]] = ("log_dir",)  # resolved from the spec's folder
    log_dir: str | None = Field(None, description="the folder of the event files (`tensorboard --logdir` it); "
                                                  "default: runs beside the spec")

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with the default ``log_dir``: ``runs`` in the spec's folder."""
        settings.setdefault("log_dir", str(Path(base_dir) / "runs"))
        return settings


class TensorboardTracker:
    """Writes each finished run as TensorBoard event files (scalars, an HParams session, the report as text)."""

    name = "tensorboard"

    def __init__(self, config: TensorboardConfig | None = None) -> None:
        self.config = config or TensorboardConfig()

    @property
    def log_dir(self) -> Path:
        """The folder of all runs (``runs`` in the current folder outside a project)."""
        return Path(self.config.log_dir or "runs").resolve()

    def run_dir(self, run: RunRecord) -> Path:
        """The TensorBoard run folder of ``run``: one per flightdeck run, beside the others of its set."""
        return self.log_dir / (_FOLDER.sub("_", run.name) or "run") / _FOLDER.sub("_", run.id)

    def log_run(self, run: RunRecord, files: dict[str, Path]) -> str:
        """Write the event files of ``run``; return their folder."""
        tbx = optional_import("tensorboardX", "tensorboard", "tracker 'tensorboard'")
        from tensorboardX.summary import hparams

        folder = self.run_dir(run)
        folder.mkdir(parents=True, exist_ok=True)
        wall = run.finished_at or time.time()
        keys = metric_keys(list(run.metrics))
        measured = {keys[name]: float(value) for name, value in run.metrics.items() if value is not None}
        flat = flat_params(run.params)
        names = metric_keys(list(flat))
        # HParams values are numbers, booleans or strings; anything else is shown as its JSON
        hparam_values = {names[k]: v if isinstance(v, bool | int | float | str) else param_text(v)
                         for k, v in flat.items()}
        writer = tbx.SummaryWriter(logdir=str(folder))
        try:
            for tag, value in measured.items():
                writer.add_scalar(tag, value, global_step=0, walltime=wall)
            # The session only: TensorBoard reads one experiment summary per log dir (the first it finds), so
            # one per run would hide the params and metrics of the others; without it, it builds the
            # experiment from every run's session.
            _, session_start, session_end = hparams(hparam_values, measured)
            for summary in (session_start, session_end):
                writer.file_writer.add_summary(summary, None, wall)
            writer.add_text("flightdeck", self._about(run), global_step=0, walltime=wall)
            if run.gates:
                writer.add_text("gates", self._gates(run), global_step=0, walltime=wall)
            renamed = {name: key for name, key in keys.items() if key != name}
            missing = [name for name, value in run.metrics.items() if value is None]
            if renamed or missing:
                lines = ["| metric | tag |", "|---|---|"]
                lines += [f"| {_cell(name)} | {key} |" for name, key in renamed.items()]
                lines += [f"| {_cell(name)} | (not measured) |" for name in missing]
                writer.add_text("metric_names", "\n".join(lines), global_step=0, walltime=wall)
            markdown = files.get("markdown")
            if markdown is not None:
                writer.add_text("report", Path(markdown).read_text("utf-8"), global_step=0, walltime=wall)
        finally:
            writer.close()
        return str(folder)

    @staticmethod
    def _about(run: RunRecord) -> str:
        rows = [("run", run.id), ("kind", run.kind), ("name", run.name), ("status", run.status),
                ("passed", run.passed), ("spec hash", run.spec_hash), ("git commit", run.git_commit),
                ("index version", run.index_version), ("dataset version", run.dataset_version),
                ("evaluation set", run.eval_set), ("error", run.error)]
        return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows if v is not None])

    @staticmethod
    def _gates(run: RunRecord) -> str:
        lines = ["| gate | value | passed | reason |", "|---|---|---|---|"]
        for g in run.gates:
            lines.append(f"| {_cell(g.get('gate', ''))} | {_cell(g.get('value'))} | {_cell(g.get('passed'))} "
                         f"| {_cell(g.get('reason', ''))} |")
        return "\n".join(lines)
