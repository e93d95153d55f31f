"""Experiment trackers (checklist 3.4): MLflow, Weights & Biases, TensorBoard and Neptune each receive a finished run,
and each run is read back with the tracker's own reader — MLflow's client from a real `mlflow server`, the W&B
SDK's record schema from its offline run log, TensorBoard's EventAccumulator, the Neptune client's DiskQueue over
its offline folder (as `neptune sync` reads it). Nothing leaves this machine: W&B and Neptune run offline.

Every tracker passes one contract (:class:`TrackerContract`), directly and through a project whose spec names it
under ``model.experiment_tracking``; a tracker that cannot be reached is recorded in the run, which still succeeds.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flightdeck import Project
from flightdeck.errors import FlightdeckError
from flightdeck.models.trackers.base import RunRecord, Tracker
from flightdeck.models.trackers.builtin import ExperimentRuns
from flightdeck.models.trackers.mlflow import MlflowConfig, MlflowTracker, flat_params, metric_keys, param_text
from flightdeck.models.trackers.neptune import NeptuneConfig, NeptuneTracker
from flightdeck.models.trackers.tensorboard import TensorboardConfig, TensorboardTracker
from flightdeck.models.trackers.wandb import WandbConfig, WandbTracker
from flightdeck.registry import Category, registry
from flightdeck.testing import FakeEmbedder
from llm_fixtures import free_port
from needs import missing, need, needs

EVAL = needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")  # what a project's evaluation needs

METRICS: dict[str, float | None] = {"ndcg@10": 0.625, "recall@5": 1.0, "mrr@10": 0.5, "token_f1": 0.42,
                                    "faithfulness": None}
PARAMS: dict[str, Any] = {"search": {"mode": "hybrid", "k": 5, "weights": [0.7, 0.3], "rerank": None},
                          "generator": {"provider": "extractive", "min_score": 0.3, "stream": False},
                          "evaluation": {"k": 5, "limit": None, "set": "qa"}, "embedder": "fake-256"}
GATES: list[dict[str, Any]] = [
    {"gate": "ndcg@10 >= 0.6", "metric": "ndcg@10", "operator": ">=", "threshold": 0.6, "value": 0.625,
     "passed": True, "reason": ""},
    {"gate": "faithfulness >= 0.8", "metric": "faithfulness", "operator": ">=", "threshold": 0.8, "value": None,
     "passed": False, "reason": "not measured"},
]


@pytest.fixture(autouse=True)
def _offline_and_quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No usage reports leave the machine, and the SDKs keep their own files out of the home folder."""
    for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DO_NOT_TRACK", "true"),
                        ("WANDB_ERROR_REPORTING", "false"), ("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache")),
                        ("WANDB_DATA_DIR", str(tmp_path / "wandb-data")),
                        ("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))):
        monkeypatch.setenv(name, value)
    for name in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY", "NEPTUNE_MODE", "NEPTUNE_PROJECT",
                 "NEPTUNE_API_TOKEN", "NEPTUNE_DATA_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


def make_run(run_id: str = "ev_0123456789abcdef", **changes: Any) -> RunRecord:
    started = 1_780_000_000.25
    values: dict[str, Any] = dict(
        id=run_id, kind="eval", name="qa", started_at=started, spec_hash="f" * 64, status="succeeded",
        finished_at=started + 12.5, git_commit="c0ffee" + "0" * 34, index_version="ix_1234", dataset_version="ds_5678",
        eval_set="set_9abc", params=json.loads(json.dumps(PARAMS)), metrics=dict(METRICS),
        gates=json.loads(json.dumps(GATES)), passed=False, artifacts={"report.json": "sha256:abc"})
    values.update(changes)
    return RunRecord(**values)


def write_reports(folder: Path, run: RunRecord) -> dict[str, Path]:
    """Small JSON, Markdown and HTML reports, as `flightdeck eval` writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "report.json", "markdown": folder / "report.md", "html": folder / "report.html"}
    files["json"].write_text(json.dumps({"run": {"id": run.id}, "metrics": run.metrics}, sort_keys=True), "utf-8")
    files["markdown"].write_text(f"# Evaluation {run.id}\n\n| metric | value |\n|---|---|\n| ndcg@10 | 0.625 |\n",
                                 "utf-8")
    files["html"].write_text(f"<!doctype html><title>{run.id}</title><p>ndcg@10 0.625</p>", "utf-8")
    return files


@dataclass
class Logged:
    """A run as a tracker's own reader gives it back, in flightdeck's names."""

    metrics: dict[str, float]  # by flightdeck's metric names (mapped back where the tracker renamed them)
    params: dict[str, Any]  # flattened: "search.k"
    about: dict[str, Any]  # run_id, spec_hash, git_commit, index_version, passed …
    files: dict[str, str]  # file name -> text
    missing: list[str] = field(default_factory=list)  # the metrics said to be unmeasured
    gates: str = ""  # the gates as the tracker shows them (JSON or a table)


class TrackerContract:
    """What every tracker does with a finished run; subclasses give ``tracker`` and a reader."""

    provider: str  # its name in a spec and in a run's `tracked`
    keeps_files: tuple[str, ...] = ("report.json", "report.md", "report.html")

    @pytest.fixture
    def tracker(self, tmp_path: Path) -> Tracker:
        raise NotImplementedError

    @pytest.fixture
    def spec_entry(self, tmp_path: Path) -> str:
        """How a spec names this tracker under model.experiment_tracking (YAML flow style)."""
        raise NotImplementedError

    def read_back(self, where: str, run: RunRecord) -> Logged:
        raise NotImplementedError

    def test_is_a_tracker_registered_under_its_name(self, tracker: Tracker) -> None:
        assert isinstance(tracker, Tracker)
        assert tracker.name in registry().names(Category.TRACKER)

    def test_a_finished_run_reads_back_with_the_trackers_own_reader(self, tracker: Tracker, tmp_path: Path) -> None:
        run = make_run()
        files = write_reports(tmp_path / "reports", run)
        where = tracker.log_run(run, files)
        assert isinstance(where, str) and where.strip()
        logged = self.read_back(where, run)
        # every measured metric by its own name, '@' and all; the unmeasured one left out and named
        assert logged.metrics == pytest.approx({k: v for k, v in METRICS.items() if v is not None})
        assert logged.missing == ["faithfulness"]
        # nested params, flattened where the tracker is flat
        assert float(logged.params["search.k"]) == 5 and logged.params["search.mode"] == "hybrid"
        assert float(logged.params["generator.min_score"]) == pytest.approx(0.3)
        assert "0.7" in str(logged.params["search.weights"])
        # what ties the run to flightdeck's records
        assert logged.about["run_id"] == run.id and logged.about["spec_hash"] == run.spec_hash
        assert logged.about["git_commit"] == run.git_commit and logged.about["index_version"] == "ix_1234"
        assert logged.about["eval_set"] == "set_9abc" and str(logged.about["passed"]).lower() == "false"
        assert "ndcg@10 >= 0.6" in logged.gates and "faithfulness >= 0.8" in logged.gates
        # the report files, whole
        assert set(self.keeps_files) <= set(logged.files)
        for name in self.keeps_files:
            assert logged.files[name] == (tmp_path / "reports" / name).read_text("utf-8"), name

    def test_two_runs_stay_two(self, tracker: Tracker, tmp_path: Path) -> None:
        first, second = make_run("ev_1111111111111111"), make_run("ev_2222222222222222", metrics={"ndcg@10": 0.75})
        where = [tracker.log_run(r, write_reports(tmp_path / r.id, r)) for r in (first, second)]
        assert where[0] != where[1]
        assert self.read_back(where[0], first).metrics["ndcg@10"] == pytest.approx(0.625)
        again = self.read_back(where[1], second)
        assert again.metrics == pytest.approx({"ndcg@10": 0.75}) and again.about["run_id"] == second.id

    @EVAL
    def test_a_project_evaluation_goes_to_it(self, spec_entry: str, tmp_path: Path) -> None:
        project = _load(_project(tmp_path / "project", f"[{spec_entry}]"))
        project.run()
        done = project.evaluate()
        where = done.run.tracked[self.provider]
        assert not where.startswith("error:"), where
        assert ExperimentRuns(project.workspace).get(done.run.id).tracked == {self.provider: where}
        logged = self.read_back(where, done.run)
        assert logged.about["run_id"] == done.run.id
        measured = {k: v for k, v in done.run.metrics.items() if v is not None}
        assert logged.metrics == pytest.approx(measured) and measured["recall@3"] == 1.0
        assert logged.files["report.md"] == done.files["markdown"].read_text("utf-8")


# --- a small project -------------------------------------------------------------------------------------------
DOCS = {
    "venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv followed by the folder "
               "name.\n",
    "json.md": "# JSON\n\nThe json module reads JSON text with json.loads and writes it with json.dumps.\n",
    "regex.md": "# Regular expressions\n\nUse re.search to find the first match of a pattern in a string.\n",
}
QUESTIONS = [
    {"id": "venv", "question": "How do I create a virtual environment?", "reference_answer":
     "Create a virtual environment with python -m venv.", "reference_sources": ["venv.md"]},
    {"id": "json", "question": "How do I read JSON text?", "reference_answer": "Read JSON text with json.loads.",
     "reference_sources": ["json.md"]},
    {"id": "regex", "question": "How do I find the first match of a pattern?", "reference_answer":
     "Use re.search.", "reference_sources": ["regex.md"]},
    {"id": "mars", "question": "What is the boiling point of lava on Mars?"},
]


def _project(root: Path, trackers: str) -> Path:
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, "utf-8")
    (root / "eval").mkdir()
    (root / "eval" / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: tracker-test
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: 64, overlap: 8}}
        retrieval:
          system: [hybrid_search]
          search: {{mode: hybrid, k: 3}}
        model:
          generator: {{provider: extractive, min_score: 0.3, max_sentences: 1}}
          experiment_tracking: {trackers}
        evaluation:
          sets: [eval/qa.jsonl]
          k: 3
          gates: {{"recall@3": ">= 0.5"}}
        """), "utf-8")
    return root


def _load(root: Path) -> Project:
    return Project.load(root).use(embedder=FakeEmbedder(dimension=64))


# --- MLflow: a real `mlflow server`, read back with MlflowClient ----------------------------------------------------
@pytest.mark.integration
@pytest.mark.exercises("model.experiment_tracking.mlflow")
class TestMlflowTracker(TrackerContract):
    provider = "mlflow"
    @pytest.fixture
    def tracker(self, mlflow_server: str) -> MlflowTracker:
        self.url = mlflow_server
        return MlflowTracker(MlflowConfig(tracking_uri=mlflow_server, tags={"team": "search"}))

    @pytest.fixture
    def spec_entry(self, mlflow_server: str) -> str:
        self.url = mlflow_server
        return f"{{provider: mlflow, tracking_uri: '{mlflow_server}'}}"

    def read_back(self, where: str, run: RunRecord) -> Logged:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.url)
        got = client.get_run(where)
        tags = got.data.tags
        assert got.info.run_name == run.id and got.info.status == "FINISHED"
        assert got.info.start_time == int(run.started_at * 1000)
        assert client.get_experiment(got.info.experiment_id).name == f"eval:{run.name}"
        assert tags.get("mlflow.source.git.commit") == run.git_commit
        names = json.loads(tags.get("flightdeck.metric_names", "{}"))  # MLflow key -> flightdeck name
        files: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as folder:
            for artifact in client.list_artifacts(where, "report"):
                local = Path(client.download_artifacts(where, artifact.path, dst_path=folder))
                files[local.name] = local.read_text("utf-8")
            record = Path(client.download_artifacts(where, "flightdeck/run.json", dst_path=folder))
            assert json.loads(record.read_text("utf-8"))["params"] == run.params  # the whole record, unflattened
        return Logged(metrics={names.get(k, k): v for k, v in got.data.metrics.items()}, params=got.data.params,
                      about={k.removeprefix("flightdeck."): v for k, v in tags.items() if k.startswith("flightdeck.")},
                      files=files, missing=json.loads(tags.get("flightdeck.missing_metrics", "[]")),
                      gates=tags.get("flightdeck.gates", ""))

    def test_names_mlflow_refuses_are_mapped_and_said(self, tracker: MlflowTracker, tmp_path: Path) -> None:
        from mlflow.tracking import MlflowClient

        run = make_run(metrics={"ndcg@10": 0.5, "ndcg_at_10": 0.25, "p@1 (strict)": 1.0, "latency_p50_ms": 8.0})
        where = tracker.log_run(run, write_reports(tmp_path, run))
        got = MlflowClient(tracking_uri=tracker.tracking_uri).get_run(where)
        assert got.data.metrics == {"ndcg_at_10": 0.5, "ndcg_at_10_2": 0.25, "p_at_1__strict_": 1.0,
                                    "latency_p50_ms": 8.0}
        assert json.loads(got.data.tags["flightdeck.metric_names"]) == {
            "ndcg_at_10": "ndcg@10", "ndcg_at_10_2": "ndcg_at_10", "p_at_1__strict_": "p@1 (strict)"}
        assert got.data.tags["team"] == "search" and "flightdeck.missing_metrics" not in got.data.tags

    def test_a_long_param_is_cut_to_mlflows_limit_and_kept_whole_in_the_record(self, tracker: MlflowTracker,
                                                                              tmp_path: Path) -> None:
        from mlflow.tracking import MlflowClient

        run = make_run(params={"prompt": "x" * 7000, "nested": {"deep": {"list": list(range(3))}}, "empty": {}})
        where = tracker.log_run(run, write_reports(tmp_path, run))
        params = MlflowClient(tracking_uri=tracker.tracking_uri).get_run(where).data.params
        assert len(params["prompt"]) == 6000 and params["prompt"].endswith("…")
        assert params["nested.deep.list"] == "[0, 1, 2]" and params["empty"] == "{}"

    def test_a_closed_port_is_said_at_once(self, tmp_path: Path) -> None:
        port = free_port()
        tracker = MlflowTracker(MlflowConfig(tracking_uri=f"http://127.0.0.1:{port}", timeout=3))
        started = time.monotonic()
        with pytest.raises(FlightdeckError, match=rf"MLflow tracking server http://127.0.0.1:{port} did not answer"
                                                  r".*mlflow server"):
            tracker.log_run(make_run(), write_reports(tmp_path, make_run()))
        assert time.monotonic() - started < 3  # not after MLflow's minutes of retries

    def test_by_default_a_sqlite_database_and_its_artifacts_lie_beside_the_spec(self, tmp_path: Path) -> None:
        from mlflow.tracking import MlflowClient

        tracker = MlflowTracker(MlflowConfig(**MlflowConfig.resolve_relative({}, tmp_path)))
        assert tracker.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
        run = make_run()
        where = tracker.log_run(run, write_reports(tmp_path / "r", run))
        client = MlflowClient(tracking_uri=tracker.tracking_uri)
        got = client.get_run(where)
        assert got.data.metrics["ndcg_at_10"] == 0.625
        folder = tmp_path / "mlartifacts" / "eval_qa" / where / "artifacts"  # eval_qa: the experiment eval:qa
        assert got.info.artifact_uri == folder.as_uri()
        assert (folder / "report" / "report.md").read_text("utf-8").startswith(f"# Evaluation {run.id}")


@pytest.mark.unit
def test_mlflow_names_params_and_uris() -> None:
    assert metric_keys(["ndcg@10", "a/b", "/x", "a//b", "..", "é"]) == {
        "ndcg@10": "ndcg_at_10", "a/b": "a/b", "/x": "_x", "a//b": "a__b", "..": "__", "é": "_"}
    assert flat_params({"a": {"b": {"c": 1}, "d": []}, "e": {}}) == {"a.b.c": 1, "a.d": [], "e": {}}
    assert param_text("text") == "text" and param_text(None) == "null" and param_text([1, "a"]) == '[1, "a"]'
    base = Path("/project")
    assert MlflowConfig.resolve_relative({"tracking_uri": "sqlite:///mlflow.db"}, base)["tracking_uri"] == \
        "sqlite:////project/mlflow.db"
    assert MlflowConfig.resolve_relative({"tracking_uri": "sqlite:////abs/m.db"}, base)["tracking_uri"] == \
        "sqlite:////abs/m.db"
    assert MlflowConfig.resolve_relative({"tracking_uri": "./runs"}, base)["tracking_uri"] == "/project/runs"
    assert MlflowConfig.resolve_relative({}, base) == {"tracking_uri": "sqlite:////project/mlflow.db"}
    assert MlflowConfig.resolve_relative({"artifact_location": "art"}, base)["artifact_location"] == "/project/art"
    assert MlflowConfig.resolve_relative({"tracking_uri": "http://h:5000"}, base)["tracking_uri"] == "http://h:5000"
    assert MlflowConfig.resolve_relative({"tracking_uri": "databricks"}, base)["tracking_uri"] == "databricks"
    with pytest.raises(ValueError, match="tracking_uri is empty"):
        MlflowConfig(tracking_uri=" ")


# --- W&B: offline, read back from the run's .wandb log with the SDK's record schema ------------------------------
def wandb_records(path: Path) -> list[Any]:
    """The records of a ``run-<id>.wandb`` log: W&B's LevelDB-style log of 32 KiB blocks (a 7-byte file header
    ':W&B' 0xBEE1 version; each record's header CRC32, length, type 1 full / 2 first / 3 middle / 4 last), each
    record a ``wandb_internal_pb2.Record`` (the SDK 0.31 reads it in Go only, so the framing is read here)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding at the end of a block
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@pytest.mark.integration
@pytest.mark.exercises("model.experiment_tracking.wandb")
class TestWandbTracker(TrackerContract):
    provider = "wandb"
    @pytest.fixture
    def tracker(self, tmp_path: Path) -> WandbTracker:
        need("wandb", "wandb")
        return WandbTracker(WandbConfig(dir=str(tmp_path / "wb"), project="flightdeck-test", tags=["nightly"]))

    @pytest.fixture
    def spec_entry(self) -> str:
        need("wandb", "wandb")
        return "{provider: wandb, project: flightdeck-test}"

    def read_back(self, where: str, run: RunRecord) -> Logged:
        folder = Path(where)
        assert folder.name.startswith("offline-run-") and folder.parent.name == "wandb"
        logs = list(folder.glob("run-*.wandb"))
        assert len(logs) == 1
        records = wandb_records(logs[0])
        kinds = [r.WhichOneof("record_type") for r in records]
        started = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert started.display_name == run.id and started.run_group == run.name and started.job_type == run.kind
        assert started.project == "flightdeck-test" and "eval" in started.tags
        config = {u.key: json.loads(u.value_json) for u in started.config.update}
        summary: dict[str, Any] = {}
        for r in records:
            if r.WhichOneof("record_type") == "summary":
                for u in r.summary.update:
                    summary["/".join(u.nested_key) or u.key] = json.loads(u.value_json)
        saved = {f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files}
        assert {f"report/{n}" for n in self.keeps_files} <= saved
        assert kinds[-1] == "exit" and records[-1].exit.exit_code == (0 if run.status == "succeeded" else 1)
        about = config.pop("flightdeck")
        config.pop("_wandb", None)
        metrics = {k: v for k, v in summary.items() if not k.startswith(("flightdeck/", "_"))}
        return Logged(metrics=metrics, params=flat_params(config),
                      about={**about, "passed": summary["flightdeck/passed"]},
                      files={p.name: p.read_text("utf-8") for p in (folder / "files" / "report").iterdir()},
                      missing=summary.get("flightdeck/missing_metrics", []),
                      gates=json.dumps(summary.get("flightdeck/gates", [])))

    def test_a_run_is_written_where_asked_and_tagged(self, tracker: WandbTracker, tmp_path: Path) -> None:
        run = make_run()
        where = Path(tracker.log_run(run, write_reports(tmp_path / "r", run)))
        assert where.parent == tmp_path / "wb" / "wandb"
        started = next(r.run for r in wandb_records(next(where.glob("run-*.wandb")))
                       if r.WhichOneof("record_type") == "run")
        assert list(started.tags) == ["eval", "nightly"]

    def test_settings_for_people(self) -> None:
        with pytest.raises(ValueError, match="api_key is used only by mode: online"):
            WandbConfig(api_key="k")
        assert WandbConfig.resolve_relative({}, Path("/p")) == {"dir": "/p"}


# --- TensorBoard: event files read back with TensorBoard's EventAccumulator ----------------------------------------
def _table_rows(markdown: str) -> list[tuple[str, str]]:
    """The first two cells of each row of a two-column Markdown table (the header rows left out)."""
    rows = []
    for line in markdown.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows.append((cells[0], cells[1]))
    return rows


@pytest.mark.integration
@pytest.mark.exercises("model.experiment_tracking.tensorboard")
class TestTensorboardTracker(TrackerContract):
    provider = "tensorboard"
    keeps_files = ("report.md",)  # the Markdown report, as text; the others are files TensorBoard cannot show

    @pytest.fixture
    def tracker(self, tmp_path: Path) -> TensorboardTracker:
        need("tensorboard", "tensorboardX", "tensorboard")
        return TensorboardTracker(TensorboardConfig(log_dir=str(tmp_path / "tb")))

    @pytest.fixture
    def spec_entry(self) -> str:
        need("tensorboard", "tensorboardX", "tensorboard")
        return "tensorboard"

    def read_back(self, where: str, run: RunRecord) -> Logged:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.plugins.hparams import plugin_data_pb2

        folder = Path(where)
        assert folder.name == run.id and folder.parent.name == run.name
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()

        def text(tag: str) -> str:
            return acc.Tensors(f"{tag}/text_summary")[0].tensor_proto.string_val[0].decode("utf-8")

        names: dict[str, str] = {}  # tag -> metric name
        unmeasured: list[str] = []
        if "metric_names/text_summary" in acc.Tags()["tensors"]:
            for name, tag in _table_rows(text("metric_names")):
                if tag == "(not measured)":
                    unmeasured.append(name)
                else:
                    names[tag] = name
        scalars = {names.get(tag, tag): acc.Scalars(tag)[0].value for tag in acc.Tags()["scalars"]}
        assert all(acc.Scalars(tag)[0].step == 0 for tag in acc.Tags()["scalars"])
        session = plugin_data_pb2.HParamsPluginData.FromString(
            acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
        params = {k: v.string_value if v.HasField("string_value") else
                  v.bool_value if v.HasField("bool_value") else v.number_value for k, v in session.hparams.items()}
        rename = {"run": "run_id", "evaluation set": "eval_set"}
        about = {rename.get(key, key.replace(" ", "_")): value for key, value in _table_rows(text("flightdeck"))}
        return Logged(metrics=scalars, params=params, about=about, files={"report.md": text("report")},
                      missing=unmeasured, gates=text("gates"))

    def test_the_hparams_session_compares_runs(self, tracker: TensorboardTracker, tmp_path: Path) -> None:
        from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

        for run_id, k in (("ev_1111111111111111", 5), ("ev_2222222222222222", 10)):
            run = make_run(run_id, params={"search": {"k": k}})
            tracker.log_run(run, write_reports(tmp_path / run_id, run))
        mux = EventMultiplexer()
        mux.AddRunsFromDirectory(str(tmp_path / "tb"))
        mux.Reload()
        sessions = mux.PluginRunToTagToContent("hparams")
        assert set(sessions) == {"qa/ev_1111111111111111", "qa/ev_2222222222222222"}
        # no run writes the experiment summary: TensorBoard reads the first it finds as the whole experiment
        assert all(set(tags) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
                   for tags in sessions.values())


# --- Neptune: offline, read back with the client's DiskQueue, as `neptune sync` reads it ---------------------------
@pytest.mark.integration
@pytest.mark.exercises("model.experiment_tracking.neptune")
class TestNeptuneTracker(TrackerContract):
    provider = "neptune"
    @pytest.fixture
    def tracker(self, tmp_path: Path) -> NeptuneTracker:
        need("neptune", "neptune")
        return NeptuneTracker(NeptuneConfig(data_directory=str(tmp_path / ".neptune")))

    @pytest.fixture
    def spec_entry(self) -> str:
        need("neptune", "neptune")
        return "{provider: neptune, tags: [nightly]}"

    def read_back(self, where: str, run: RunRecord) -> Logged:
        from neptune.core.components.queue.disk_queue import DiskQueue
        from neptune.internal.operation import Operation

        folder = Path(where)
        assert folder.parent.name == "offline" and folder.name.startswith("run__")
        assert json.loads((folder / "metadata.json").read_text())["mode"] == "offline"
        fields: dict[str, Any] = {}
        with DiskQueue(data_path=folder, to_dict=lambda op: op.to_dict(), from_dict=Operation.from_dict,
                       lock=threading.RLock()) as queue:
            while batch := queue.get_batch(1000):
                for element in batch:
                    op = element.obj
                    key = "/".join(op.path)
                    if type(op).__name__ == "UploadFile":
                        fields[key] = (folder / "upload_path" / op.tmp_file_name).read_text("utf-8")
                    elif hasattr(op, "value"):
                        fields[key] = op.value
                    elif hasattr(op, "values"):
                        fields[key] = list(op.values)
        assert fields["sys/name"] == run.id
        metrics = {k.removeprefix("metrics/"): v for k, v in fields.items() if k.startswith("metrics/")}
        params = {k.removeprefix("parameters/").replace("/", "."): v for k, v in fields.items()
                  if k.startswith("parameters/")}
        about = {k.removeprefix("flightdeck/"): v for k, v in fields.items() if k.startswith("flightdeck/")}
        names = {"reports/json": "report.json", "reports/markdown": "report.md", "reports/html": "report.html"}
        files = {names[k]: v for k, v in fields.items() if k in names}
        return Logged(metrics=metrics, params=params, about=about, files=files,
                      missing=json.loads(about.get("missing_metrics", "[]")), gates=about.get("gates", ""))

    def test_the_offline_run_is_whole_without_the_report_files(self, tracker: NeptuneTracker, tmp_path: Path) -> None:
        run = make_run()
        files = write_reports(tmp_path / "r", run)
        where = tracker.log_run(run, files)
        for path in files.values():
            path.unlink()
        assert self.read_back(where, run).files["report.html"].startswith("<!doctype html>")
        assert "NEPTUNE_DATA_DIRECTORY" not in os.environ  # set only while the run started

    def test_settings_for_people(self) -> None:
        with pytest.raises(ValueError, match="mode: async sends the run to Neptune: set `project"):
            NeptuneConfig(mode="async")
        with pytest.raises(ValueError, match="api_token is used only by the online modes"):
            NeptuneConfig(api_token="t")
        assert NeptuneConfig.resolve_relative({}, Path("/p")) == {"data_directory": "/p/.neptune"}


# --- a tracker that fails does not fail the run ----------------------------------------------------------------------
@pytest.mark.integration
@EVAL
@pytest.mark.skipif(bool(missing("mlflow")), reason="needs flightdeck[mlflow] (missing: mlflow)")
def test_an_unreachable_tracker_is_recorded_and_the_run_still_succeeds(tmp_path: Path) -> None:
    port = free_port()
    trackers = f"[{{provider: mlflow, tracking_uri: 'http://127.0.0.1:{port}', timeout: 2}}, tensorboard]"
    project = _load(_project(tmp_path / "project", trackers))
    project.run()
    done = project.evaluate()
    assert done.run.status == "succeeded" and done.run.passed is True
    assert done.run.tracked["mlflow"].startswith(f"error: FlightdeckError: the MLflow tracking server "
                                                 f"http://127.0.0.1:{port} did not answer")
    assert Path(done.run.tracked["tensorboard"]).is_dir()  # the next tracker still got the run
    assert Path(done.run.tracked["tensorboard"]).is_relative_to(tmp_path / "project" / "runs")
    stored = ExperimentRuns(project.workspace).get(done.run.id)
    assert stored.status == "succeeded" and stored.tracked == done.run.tracked
    assert done.report["run"]["tracked"]["mlflow"].startswith("error:")
