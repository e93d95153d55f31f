"""Weights & Biases: each finished run becomes a W&B run — config, summary metrics and the report files.

``mode: offline`` (the default) needs no account and no network: the W&B SDK writes the run under
``<dir>/wandb/offline-run-<time>-<id>/`` (its ``run-<id>.wandb`` log and a ``files/`` folder), and
``wandb sync <that folder>`` uploads it later. ``mode: online`` sends it at once, with the API key of
``api_key: ${WANDB_API_KEY}`` or of ``wandb login``.

The run is named after flightdeck's run id, grouped by the evaluation set (``group``), typed by the kind of run
(``job_type``: eval, tune, trial). Its config is the run's params (nested as they are) with a ``flightdeck``
block (run id, spec hash, git commit, index and dataset versions, set); its summary holds the metrics by their
own names (``ndcg@10``; W&B takes any name), ``flightdeck/passed``, ``flightdeck/gates`` and
``flightdeck/missing_metrics`` (the metrics that could not be measured, left out of the summary). The report
files are copied into the run's ``files/report/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from flightdeck.errors import FlightdeckError
from flightdeck.models.trackers.base import RunRecord
from flightdeck.registry.lookup import optional_import

__all__ = ["WandbConnection", "WandbConfig", "WandbTracker", "run_sdk_child"]

_CHILD = "from flightdeck.models.trackers.wandb import _child; _child()"


class WandbConnection(BaseModel):
    """Where the W&B SDK writes and as whom: the settings the tracker and the model registry share."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    project: str = Field("flightdeck", min_length=1, description="the W&B project of the runs (and artifacts)")
    entity: str | None = Field(None, description="the W&B team or user; default: the API key's default entity")
    mode: Literal["offline", "online"] = Field(
        "offline", description="offline: write the runs locally (sync them later with `wandb sync`); online: send "
                               "them to W&B (needs an API key)")
    path_settings: ClassVar[tuple[str, ...]] = ("dir",)  # resolved from the spec's folder
    dir: str | None = Field(None, description="the folder that holds wandb/ with the runs; default: the spec's "
                                              "folder")
    api_key: SecretStr | None = Field(None, description="online mode: the W&B API key; write it as ${WANDB_API_KEY}")
    timeout: float = Field(120.0, gt=0, description="seconds the W&B SDK has to write (or send) one run")

    @model_validator(mode="after")
    def _online_key(self) -> Self:
        if self.api_key is not None and self.mode == "offline":
            raise ValueError("api_key is used only by mode: online; remove it, or set `mode: online`")
        return self

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with the default ``dir``: the spec's folder (a relative ``dir`` is resolved already)."""
        settings.setdefault("dir", str(base_dir))
        return settings


def run_sdk_child(child: str, job: dict[str, Any], connection: WandbConnection
                  ) -> tuple[dict[str, Any] | None, int, str]:
    """Run ``job`` (JSON on stdin) in a child Python that executes ``child`` with the W&B SDK, as ``connection``
    says (its API key in the environment, its timeout): ``(the child's last {"where": …} line, exit code, the last
    lines it said)``; the result is None when it failed. Raises ``subprocess.TimeoutExpired`` past the timeout."""
    env = dict(os.environ)
    if connection.api_key is not None:
        env["WANDB_API_KEY"] = connection.api_key.get_secret_value()
    done = subprocess.run([sys.executable, "-c", child], input=json.dumps(job, default=str), capture_output=True,
                          text=True, env=env, timeout=connection.timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"where": ')]
    said = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
    result = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    return result, done.returncode, said


class WandbConfig(WandbConnection):
    """Settings of ``model.experiment_tracking: [{provider: wandb, ...}]``."""

    tags: list[str] = Field(default_factory=list, description="more tags on every run (the kind of run is one)")


class WandbTracker:
    """Logs each finished run to Weights & Biases with the W&B SDK (offline by default).

    The SDK runs in a child process: its run log is written by a service process that finishes the file only
    after ``finish()`` has returned (``wandb.teardown()`` waits for it, and would also end any W&B run of the
    calling process). The child's exit waits for it, so the run is whole when :meth:`log_run` returns, and the
    SDK's process-wide state (its service, ``wandb.run``, exit hooks) stays out of flightdeck's process.
    """

    name = "wandb"

    def __init__(self, config: WandbConfig | None = None) -> None:
        self.config = config or WandbConfig()

    @property
    def folder(self) -> Path:
        """The folder that holds ``wandb/`` (the current one outside a project)."""
        return Path(self.config.dir or ".").resolve()

    def log_run(self, run: RunRecord, files: dict[str, Path]) -> str:
        """Write (offline) or send (online) the W&B run of ``run``; return its offline folder, or its URL."""
        optional_import("wandb", "wandb", "tracker 'wandb'")
        cfg = self.config
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {"run_id": run.id, "kind": run.kind, "spec_hash": run.spec_hash, "git_commit": run.git_commit,
                "index_version": run.index_version, "dataset_version": run.dataset_version,
                "eval_set": run.eval_set}
        summary: dict[str, Any] = {name: value for name, value in run.metrics.items() if value is not None}
        summary["flightdeck/passed"] = run.passed
        summary["flightdeck/status"] = run.status
        if run.gates:
            summary["flightdeck/gates"] = run.gates
        missing = [name for name, value in run.metrics.items() if value is None]
        if missing:
            summary["flightdeck/missing_metrics"] = missing
        if run.error:
            summary["flightdeck/error"] = run.error
        job = {"init": {"project": cfg.project, "entity": cfg.entity, "dir": str(self.folder), "mode": cfg.mode,
                        "name": run.id, "group": run.name, "job_type": run.kind,
                        "tags": list(dict.fromkeys([run.kind, *cfg.tags])),
                        "config": {**run.params, "flightdeck": meta}},
               "summary": summary, "files": [str(Path(p).resolve()) for p in files.values()],
               "exit_code": 0 if run.status == "succeeded" else 1}
        try:
            result, code, said = run_sdk_child(_CHILD, job, cfg)
        except subprocess.TimeoutExpired as exc:
            raise FlightdeckError(f"the W&B SDK did not finish the run {run.id} within {cfg.timeout:g} s "
                                  f"(model.experiment_tracking wandb `timeout`); its folder: {self.folder}") from exc
        if result is None:
            raise FlightdeckError(f"the W&B SDK failed on run {run.id} (exit {code}): {said}")
        return str(result["where"])


def _child() -> None:
    """The child process of :meth:`WandbTracker.log_run`: one W&B run from the job on standard input."""
    import wandb

    job = json.loads(sys.stdin.read())
    settings = wandb.Settings(console="off", silent=True, disable_git=True, save_code=False, x_disable_stats=True,
                              x_save_requirements=False)
    wb = wandb.init(**job["init"], settings=settings, reinit="create_new")
    try:
        wb.summary.update(job["summary"])
        # copied, not linked: the offline run stays whole if the workspace's reports are removed
        report = Path(wb.dir) / "report"
        report.mkdir(parents=True, exist_ok=True)
        for path in map(Path, job["files"]):
            shutil.copy2(path, report / path.name)
            wb.save(str(report / path.name), base_path=wb.dir, policy="now")
    except BaseException:
        wb.finish(exit_code=1)
        raise
    wb.finish(exit_code=job["exit_code"])
    where = wb.settings.sync_dir if job["init"]["mode"] == "offline" else (wb.url or wb.id)
    wandb.teardown()  # waits until the service has written and closed the run's files
    print(json.dumps({"where": str(where)}), flush=True)
