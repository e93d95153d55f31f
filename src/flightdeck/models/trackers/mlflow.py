"""MLflow: each finished run becomes an MLflow run — params, metrics, tags and the report files as artifacts.

``tracking_uri`` is anything MLflow's client accepts: a tracking server (``http://mlflow:5000``) or a database
(``sqlite:///mlflow.db``, the default: ``mlflow.db`` beside the spec, its artifacts in ``mlartifacts`` beside it).
MLflow 3 refuses a plain folder (``./mlruns``) unless ``MLFLOW_ALLOW_FILE_STORE=true``. The client comes from
``mlflow-skinny`` (``pip install 'flightdeck[mlflow]'``); ``mlflow server --backend-store-uri sqlite:///mlflow.db``
serves the runs (the full ``mlflow`` package adds its web UI). Credentials come from MLflow's own environment
variables (``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``), never from the
spec.

What MLflow does not take as it is:

- metric and param names are kept to letters, digits and ``_ - . /`` (what MLflow and TensorBoard both take):
  ``ndcg@10`` is logged as ``ndcg_at_10`` (two names that would meet get ``_2``…); the tag
  ``flightdeck.metric_names`` maps every renamed metric back to its name;
- a metric is a number: a metric that could not be measured (None) is left out and named in the tag
  ``flightdeck.missing_metrics``;
- params are flat strings of at most 6000 characters: nested params become ``search.k``, lists and other
  values their JSON, longer values are cut (the full record is the artifact ``flightdeck/run.json``).

A server that does not answer is said at once (its ``/health`` is asked first, within ``timeout`` seconds)
instead of after MLflow's retries, which take minutes.
"""

from __future__ import annotations

import json
import posixpath
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.errors import FlightdeckError
from flightdeck.models.trackers.base import RunRecord
from flightdeck.registry.lookup import optional_import

__all__ = ["MlflowConfig", "MlflowTracker", "check_tracking_uri", "flat_params", "metric_keys", "param_text"]

# MLflow's limits (mlflow/utils/validation.py)
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_BATCH_PARAMS_TAGS = 100
_BATCH_METRICS = 1000
_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_\-./]")
_FOLDER = re.compile(r"[^A-Za-z0-9_.-]")
_STATUS = {"succeeded": "FINISHED", "failed": "FAILED"}
_NOT_PATHS = ("databricks", "databricks-uc", "uc")  # tracking URIs MLflow reads without a "scheme:"


def _clean_key(name: str) -> str:
    key = _KEY_CHARACTERS.sub("_", name.replace("@", "_at_")) or "_"
    # MLflow refuses names that a file path would change ("a//b", "/a", "a/", "../a"): keep them flat
    if posixpath.normpath(key) != key or key.startswith("/"):
        key = key.replace("/", "_")
    if key in (".", ".."):
        key = key.replace(".", "_")
    return key[:MAX_KEY]


def metric_keys(names: list[str] | Any) -> dict[str, str]:
    """Each metric name and the key that MLflow and TensorBoard accept for it (``ndcg@10`` → ``ndcg_at_10``).

    Two names that would become the same key get ``_2``, ``_3``… on the later ones, so none is overwritten.
    """
    keys: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        key = base = _clean_key(str(name))
        n = 1
        while key in used:
            n += 1
            suffix = f"_{n}"
            key = base[:MAX_KEY - len(suffix)] + suffix
        used.add(key)
        keys[str(name)] = key
    return keys


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as one level: ``{"search": {"k": 5}}`` → ``{"search.k": 5}`` (an empty dict stays a value)."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, key + "."))
        else:
            flat[key] = value
    return flat


def param_text(value: Any, limit: int = MAX_PARAM_VALUE) -> str:
    """A param value as text: strings as they are, anything else as JSON; cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_tracking_uri(v: str | None) -> str | None:
    """``tracking_uri`` as given, or a ValueError for an empty one (the tracker's and the registry's rule)."""
    if v is not None and not v.strip():
        raise ValueError("tracking_uri is empty; write e.g. http://localhost:5000 or sqlite:///mlflow.db, or "
                         "remove it")
    return v


class MlflowConfig(BaseModel):
    """Settings of ``model.experiment_tracking: [{provider: mlflow, ...}]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tracking_uri: str | None = Field(
        None, description="where runs go: an MLflow tracking server (http://host:5000) or a database "
                          "(sqlite:///mlflow.db); relative files resolve from the spec's folder. Default: "
                          "sqlite:///mlflow.db beside the spec")
    artifact_location: str | None = Field(
        None, description="the folder (or s3://... URI) under which each experiment that flightdeck creates keeps "
                          "its artifacts, in a subfolder named after it; default: the server's choice, or "
                          "mlartifacts beside a SQLite database")
    experiment: str | None = Field(
        None, description="the MLflow experiment (created when missing); default: '<kind>:<name>' of the run, "
                          "e.g. 'eval:qa' for the evaluation set qa")
    tags: dict[str, str] = Field(default_factory=dict, description="more tags on every run")
    timeout: float = Field(10.0, gt=0, description="seconds a tracking server has to answer its /health before "
                                                   "the run is reported as not tracked")

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        return check_tracking_uri(v)

    @classmethod
    def resolve_relative(cls, settings: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with a relative folder or SQLite file of ``tracking_uri`` and ``artifact_location`` resolved
        from ``base_dir`` (the spec's folder), and the default ``sqlite:///mlflow.db`` beside the spec."""
        for key in ("tracking_uri", "artifact_location"):
            if isinstance(settings.get(key), str):
                settings[key] = _resolve_uri(settings[key], Path(base_dir))
        settings.setdefault("tracking_uri", "sqlite:///" + str((Path(base_dir) / "mlflow.db").resolve()))
        return settings


def _resolve_uri(uri: str, base_dir: Path) -> str:
    if uri.startswith("sqlite:///"):
        database = uri[len("sqlite:///"):]
        if database and database != ":memory:" and not Path(database).is_absolute():
            return "sqlite:///" + str((base_dir / Path(database).expanduser()).resolve())
        return uri
    if uri in _NOT_PATHS:
        return uri
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "" and not Path(uri).expanduser().is_absolute():
        return str((base_dir / Path(uri).expanduser()).resolve())
    if parsed.scheme == "file" and not parsed.netloc and not parsed.path.startswith("/"):
        return (base_dir / parsed.path).resolve().as_uri()
    return uri


class MlflowTracker:
    """Logs each finished run to MLflow through its client (:class:`mlflow.tracking.MlflowClient`)."""

    name = "mlflow"

    def __init__(self, config: MlflowConfig | None = None) -> None:
        self.config = config or MlflowConfig()

    @property
    def tracking_uri(self) -> str:
        """The URI runs go to (the default ``mlflow.db`` is taken from the current folder outside a project)."""
        return self.config.tracking_uri or "sqlite:///" + str(Path("mlflow.db").resolve())

    def artifact_location(self, experiment: str) -> str | None:
        """Where the new experiment ``experiment`` keeps its artifacts: a subfolder of ``artifact_location``, or of
        ``mlartifacts`` beside a SQLite database; else (None) the server's choice. MLflow's own default for a
        database would be ``mlruns`` in the current folder, wherever that is."""
        root = self.config.artifact_location
        uri = self.tracking_uri
        if not root and uri.startswith("sqlite:///") and uri[len("sqlite:///"):] not in ("", ":memory:"):
            root = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
        return None if not root else root.rstrip("/") + "/" + (_FOLDER.sub("_", experiment) or "experiment")

    def experiment_name(self, run: RunRecord) -> str:
        return self.config.experiment or f"{run.kind}:{run.name}"

    def log_run(self, run: RunRecord, files: dict[str, Path]) -> str:
        """Create the MLflow run of ``run`` (params, metrics, tags, the report files) and return its run id."""
        optional_import("mlflow", "mlflow", "tracker 'mlflow'")
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri
        self._check_reachable(uri)
        client = MlflowClient(tracking_uri=uri)
        experiment = self.experiment_name(run)
        experiment_id = self._experiment(client, experiment, self.artifact_location(experiment))
        ended = run.finished_at or time.time()
        keys = metric_keys(list(run.metrics))
        tags = self._tags(run, keys)
        created = client.create_run(experiment_id, start_time=int(run.started_at * 1000), tags=tags, run_name=run.id)
        run_id: str = created.info.run_id
        try:
            flat = flat_params(run.params)
            names = metric_keys(list(flat))  # the same rule for param names
            params = [Param(names[name], param_text(value)) for name, value in flat.items()]
            for i in range(0, len(params), _BATCH_PARAMS_TAGS):
                client.log_batch(run_id, params=params[i:i + _BATCH_PARAMS_TAGS])
            metrics = [Metric(keys[name], float(value), int(ended * 1000), 0)
                       for name, value in run.metrics.items() if value is not None]
            for i in range(0, len(metrics), _BATCH_METRICS):
                client.log_batch(run_id, metrics=metrics[i:i + _BATCH_METRICS])
            for path in files.values():
                client.log_artifact(run_id, str(path), artifact_path="report")
            with tempfile.TemporaryDirectory(prefix="flightdeck-mlflow-") as folder:
                record = Path(folder) / "run.json"
                record.write_text(json.dumps({k: v for k, v in run.to_dict().items() if k != "tracked"},
                                             indent=2, sort_keys=True, default=str), "utf-8")
                client.log_artifact(run_id, str(record), artifact_path="flightdeck")
        except BaseException:
            client.set_terminated(run_id, status="FAILED", end_time=int(time.time() * 1000))
            raise
        client.set_terminated(run_id, status=_STATUS.get(run.status, "FINISHED"), end_time=int(ended * 1000))
        return run_id

    def _check_reachable(self, uri: str) -> None:
        if urllib.parse.urlparse(uri).scheme not in ("http", "https"):
            return
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=self.config.timeout):  # noqa: S310 (http(s) only, above)
                pass
        except urllib.error.HTTPError:
            return  # it answered (a proxy asking for credentials is an answer): MLflow's client says the rest
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FlightdeckError(
                f"the MLflow tracking server {uri} did not answer ({url}: {reason}); start it (mlflow server "
                "--host 127.0.0.1 --port 5000) or correct tracking_uri under model.experiment_tracking") from exc

    @staticmethod
    def _experiment(client: Any, name: str, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return str(client.create_experiment(name, artifact_location=artifact_location))
            except MlflowException as exc:  # made by another process meanwhile
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise exc from None
        if experiment.lifecycle_stage == "deleted":
            raise FlightdeckError(f"the MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore "
                                  f"--experiment-id {experiment.experiment_id}) or set another `experiment:`")
        return str(experiment.experiment_id)

    def _tags(self, run: RunRecord, keys: dict[str, str]) -> dict[str, str]:
        tags = {
            "flightdeck.run_id": run.id,
            "flightdeck.kind": run.kind,
            "flightdeck.name": run.name,
            "flightdeck.status": run.status,
            "flightdeck.spec_hash": run.spec_hash,
            "flightdeck.passed": {True: "true", False: "false"}.get(run.passed, "none"),  # type: ignore[arg-type]
        }
        for key, value in (("git_commit", run.git_commit), ("index_version", run.index_version),
                           ("dataset_version", run.dataset_version), ("eval_set", run.eval_set), ("error", run.error)):
            if value:
                tags[f"flightdeck.{key}"] = value
        if run.git_commit:
            tags["mlflow.source.git.commit"] = run.git_commit  # shown by MLflow's UI
        if run.gates:
            tags["flightdeck.gates"] = param_text(run.gates, MAX_TAG_VALUE)
        renamed = {key: name for name, key in keys.items() if key != name}
        if renamed:
            tags["flightdeck.metric_names"] = param_text(renamed, MAX_TAG_VALUE)
        missing = [name for name, value in run.metrics.items() if value is None]
        if missing:
            tags["flightdeck.missing_metrics"] = param_text(missing, MAX_TAG_VALUE)
        tags.update(self.config.tags)
        return {k: param_text(v, MAX_TAG_VALUE) for k, v in tags.items()}
