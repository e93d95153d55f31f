"""Neptune: each finished run becomes a Neptune run — parameters, metrics, the run's ids and the report files.

Written with the ``neptune`` client 1.x (the client of the Neptune app 2.x). ``mode: offline`` (the default)
needs no account and no network: the client writes the run's operations under
``<data_directory>/offline/run__<id>__…/`` (``data_directory`` defaults to ``.neptune`` beside the spec), with the
report files copied into its ``upload_path/``; ``neptune sync --path <the folder above .neptune> --project
WORKSPACE/PROJECT`` uploads it later. ``mode: async`` or ``sync`` sends it at once to ``project`` with
``api_token: ${NEPTUNE_API_TOKEN}``; ``mode: debug`` keeps nothing.

Fields: ``parameters/…`` (the params, nested; lists and None as text), ``metrics/<name>`` (names as they are:
``metrics/ndcg@10``; a metric that could not be measured is left out and named in
``flightdeck/missing_metrics``), ``flightdeck/…`` (run id, kind, status, passed, spec hash, git commit, index and
dataset versions, set, gates as JSON), ``reports/json``, ``reports/markdown``, ``reports/html``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from flightdeck.models.trackers.base import RunRecord
from flightdeck.registry.lookup import optional_import

__all__ = ["NeptuneConfig", "NeptuneTracker"]

# The client takes its data folder only from this variable (read when a run starts), so it is set around
# init_run; the lock keeps two trackers of one process from starting runs in each other's folders.
_DATA_DIRECTORY_VARIABLE = "NEPTUNE_DATA_DIRECTORY"
_ENV_LOCK = threading.Lock()


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    with _ENV_LOCK:
        before = os.environ.get(name)
        os.environ[name] = value
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


class NeptuneConfig(BaseModel):
    """Settings of ``model.experiment_tracking: [{provider: neptune, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    project: str | None = Field(None, description="WORKSPACE/PROJECT in Neptune; needed by the online modes "
                                                  "(offline runs take it when synced)")
    mode: Literal["offline", "async", "sync", "debug"] = Field(
        "offline", description="offline: write the run locally (sync it later with `neptune sync`); async/sync: "
                               "send it to Neptune (needs project and api_token); debug: keep nothing")
    path_settings: ClassVar[tuple[str, ...]] = ("data_directory",)  # resolved from the spec's folder
    data_directory: str | None = Field(None, description="the client's data folder (offline runs are in its "
                                                         "offline/); default: .neptune beside the spec")
    api_token: SecretStr | None = Field(None, description="online modes: the API token; write it as "
                                                          "${NEPTUNE_API_TOKEN}")
    tags: list[str] = Field(default_factory=list, description="more tags on every run (the kind of run is one)")

    @model_validator(mode="after")
    def _check(self) -> NeptuneConfig:
        if self.mode in ("async", "sync") and not self.project:
            raise ValueError(f"mode: {self.mode} sends the run to Neptune: set `project: WORKSPACE/PROJECT`")
        if self.api_token is not None and self.mode in ("offline", "debug"):
            raise ValueError(f"api_token is used only by the online modes (async, sync), not mode: {self.mode}; "
                             "remove it")
        return self

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with the default ``data_directory``: ``.neptune`` in the spec's folder."""
        settings.setdefault("data_directory", str(Path(base_dir) / ".neptune"))
        return settings


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _field_values(params: dict[str, Any]) -> dict[str, Any]:
    """Params as Neptune field values: nested dicts stay namespaces; lists and None become their JSON."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            if value:
                out[str(name)] = _field_values(value)
        elif isinstance(value, bool | int | float | str):
            out[str(name)] = value
        else:
            out[str(name)] = _text(value)
    return out


class NeptuneTracker:
    """Logs each finished run to Neptune with the ``neptune`` client (offline by default)."""

    name = "neptune"

    def __init__(self, config: NeptuneConfig | None = None) -> None:
        self.config = config or NeptuneConfig()

    @property
    def data_directory(self) -> Path:
        """The client's data folder (``.neptune`` in the current folder outside a project)."""
        return Path(self.config.data_directory or ".neptune").resolve()

    def log_run(self, run: RunRecord, files: dict[str, Path]) -> str:
        """Write (offline) or send the Neptune run of ``run``; return its offline folder, or its URL."""
        neptune = optional_import("neptune", "neptune", "tracker 'neptune'")
        from neptune.types import File

        cfg = self.config
        folder = self.data_directory
        with _environment(_DATA_DIRECTORY_VARIABLE, str(folder)):
            nrun = neptune.init_run(
                project=cfg.project, api_token=cfg.api_token.get_secret_value() if cfg.api_token else None,
                mode=cfg.mode, name=run.id, custom_run_id=run.id, description=f"flightdeck {run.kind} {run.name}",
                tags=list(dict.fromkeys([run.kind, *cfg.tags])), capture_stdout=False, capture_stderr=False,
                capture_hardware_metrics=False, capture_traceback=False, source_files=[], git_ref=False)
        try:
            params = _field_values(run.params)
            if params:
                nrun["parameters"] = params
            for name, value in run.metrics.items():
                if value is not None:
                    nrun["metrics"][name] = float(value)
            about: dict[str, Any] = {"run_id": run.id, "kind": run.kind, "name": run.name, "status": run.status,
                                     "spec_hash": run.spec_hash}
            for key, value in (("git_commit", run.git_commit), ("index_version", run.index_version),
                               ("dataset_version", run.dataset_version), ("eval_set", run.eval_set),
                               ("error", run.error)):
                if value:
                    about[key] = value
            if run.passed is not None:
                about["passed"] = run.passed
            if run.gates:
                about["gates"] = _text(run.gates)
            missing = [name for name, value in run.metrics.items() if value is None]
            if missing:
                about["missing_metrics"] = _text(missing)
            nrun["flightdeck"] = about
            for kind, path in files.items():
                # the content, not the path: the offline run stays whole if the workspace's reports are removed
                nrun["reports"][kind].upload(File.from_content(Path(path).read_bytes(),
                                                               extension=Path(path).suffix.lstrip(".") or "txt"))
            if run.status == "failed":
                nrun["sys/failed"] = True
            where = str(nrun.get_url())
        finally:
            nrun.stop()
        if cfg.mode == "offline":
            run_id = where.rpartition("/")[2]  # "offline/<id>"
            found = sorted((folder / "offline").glob(f"run__{run_id}__*")) if run_id else []
            return str(found[-1]) if found else where
        return where
