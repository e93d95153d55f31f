"""`flightdeck export airflow|prefect|dagster` (improvement/orchestrators.py): the spec's pipeline as an Airflow DAG,
a Prefect flow and a Dagster job whose tasks run the flightdeck CLI — read back as Python, then run for real by each
orchestrator (Airflow's `dags test`, a Prefect flow run on its temporary server, Dagster's `execute_in_process`):
the first run builds, evaluates and releases; a second run, after the gates were made to fail, skips every build step
(flightdeck's step cache, in the workspace) and fails at evaluate after its retry, and the orchestrator says so.

Airflow and Prefect run from their own virtualenvs (.venv-airflow, .venv-prefect: `make orchestrators`); their tests
skip, saying so, without them. Dagster is in the dev venv.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import FAILING_GATES, PASSING_GATES, write_eval_project
from flightdeck import Project
from flightdeck.cli.export_cmd import default_flightdeck
from flightdeck.cli.main import app
from flightdeck.errors import SpecError
from flightdeck.improvement.orchestrators import (
    ORCHESTRATORS,
    export_airflow,
    export_dagster,
    export_pipeline,
    export_prefect,
    plan_export,
)
from flightdeck.registry import Category
from flightdeck.workspace import CURRENT_INDEX
from flightdeck.workspace.schema import experiment_runs, runs, step_runs
from needs import needs, needs_provider

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venv-airflow" / "bin" / "airflow"
PREFECT_PYTHON = REPO / ".venv-prefect" / "bin" / "python"
EVAL = needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")
EXPORTS = {"airflow": export_airflow, "prefect": export_prefect, "dagster": export_dagster}
RETRIES = 1  # the runs below: one retry, a second apart


def write_project(root: Path, *, automation: str | None = None, gates: str = PASSING_GATES) -> Path:
    extra = f"improvement:\n  automation: {automation}\n" if automation else ""
    return write_eval_project(root, project="orchestrated docs", gates=gates, extra=extra)


def constants(source: str) -> dict[str, Any]:
    """The module-level constants of a generated file (NAME = literal), read from its syntax tree."""
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return found


# --- what the exports say ---------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("orchestrator", ORCHESTRATORS)
def test_each_export_is_python_with_the_spec_s_tasks_retries_and_schedule(tmp_path: Path, orchestrator: str) -> None:
    root = write_project(tmp_path / "p", automation="{cron: '30 2 * * mon-fri', release: true}")
    source = EXPORTS[orchestrator](root, "/opt/fd/bin/flightdeck", retries=3, retry_delay=45)
    tree = ast.parse(source)
    found = constants(source)
    assert found["FLIGHTDECK"] == ["/opt/fd/bin/flightdeck"]
    assert found["SPEC"] == str((root / "flightdeck.yaml").resolve())
    assert found["TASKS"] == ("run", "evaluate", "release")  # automation.release: true asks for the release
    assert (found["RETRIES"], found["RETRY_DELAY_SECONDS"], found["CRON"]) == (3, 45, "30 2 * * mon-fri")
    doc = ast.get_docstring(tree) or ""
    assert f"`flightdeck export {orchestrator}`" in doc and "orchestrated docs" in doc
    assert "runs `flightdeck run` again, whose steps skip when their inputs and config are" in doc
    imported = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {"airflow": "airflow", "prefect": "prefect", "dagster": "dagster"}[orchestrator] in imported
    assert "flightdeck" not in imported  # the orchestrator's environment never imports flightdeck

    # without evaluation sets, a schedule or a release: one task, triggered by hand
    bare = write_project(tmp_path / "bare")
    (bare / "flightdeck.yaml").write_text(
        (bare / "flightdeck.yaml").read_text("utf-8").replace("  sets: [eval/qa.jsonl]\n", ""), "utf-8")
    source = EXPORTS[orchestrator](bare, ["/usr/bin/python3", "-m", "flightdeck"])
    found = constants(source)
    assert (found["TASKS"], found["CRON"], found["RETRIES"]) == (("run",), None, 2)
    assert found["FLIGHTDECK"] == ["/usr/bin/python3", "-m", "flightdeck"]
    assert "trigger it by hand" in (ast.get_docstring(ast.parse(source)) or "")


@pytest.mark.unit
def test_the_spec_s_values_stay_data_in_the_generated_code(tmp_path: Path) -> None:
    hostile = 'x""" + __import__("os").system("id") + """\\\n'
    root = write_eval_project(tmp_path / "p", project=json.dumps(hostile))
    for orchestrator in ORCHESTRATORS:
        source = export_pipeline(orchestrator, plan_export(root, "/opt/fd/bin/flightdeck"))
        tree = ast.parse(source)
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "__import__"]
        found = constants(source)
        name = found.get("DAG_ID") or found.get("FLOW_NAME") or found.get("JOB_NAME")
        assert name in ("flightdeck_x_import_os_system_id", "flightdeck-x_import_os_system_id"), name
        if orchestrator == "dagster":
            job = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "flightdeck_pipeline")
            tags = next(k for k in job.decorator_list[0].keywords if k.arg == "tags")
            assert ast.literal_eval(tags.value) == {"flightdeck/project": hostile}


@pytest.mark.unit
def test_bad_arguments_say_what_to_give(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    with pytest.raises(ValueError, match="not an absolute path: the orchestrator's workers share neither your PATH"):
        plan_export(root, "flightdeck")
    with pytest.raises(ValueError, match="retries -1: a whole number from 0 to 100"):
        plan_export(root, "/opt/fd/bin/flightdeck", retries=-1)
    with pytest.raises(ValueError, match="retry_delay 1.5: whole seconds"):
        plan_export(root, "/opt/fd/bin/flightdeck", retry_delay=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="orchestrator 'luigi': one of airflow, prefect, dagster"):
        export_pipeline("luigi", plan_export(root, "/opt/fd/bin/flightdeck"))
    with pytest.raises(SpecError, match="no spec found"):
        plan_export(tmp_path / "nowhere", "/opt/fd/bin/flightdeck")


@pytest.mark.unit
def test_the_command_prints_or_writes_the_export(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", automation="{cron: '@daily'}")
    runner = CliRunner()
    res = runner.invoke(app, ["export", "prefect", "--spec", str(root), "--retries", "4"])
    assert res.exit_code == 0, res.output
    found = constants(res.stdout)
    assert found["RETRIES"] == 4 and found["CRON"] == "0 0 * * *" and found["TASKS"] == ("run", "evaluate")
    assert found["FLIGHTDECK"] == default_flightdeck() and Path(found["FLIGHTDECK"][0]).is_absolute()

    out = tmp_path / "dags" / "pipeline.py"
    res = runner.invoke(app, ["export", "airflow", "--spec", str(root), "--out", str(out), "--release",
                              "--retry-delay", "5", "--flightdeck", "/srv/fd/bin/flightdeck"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and f"wrote {out}: airflow pipeline of orchestrated docs" in res.stderr
    found = constants(out.read_text("utf-8"))
    assert found["TASKS"] == ("run", "evaluate", "release") and found["RETRY_DELAY_SECONDS"] == 5
    assert found["FLIGHTDECK"] == ["/srv/fd/bin/flightdeck"] and found["DAG_ID"] == "flightdeck_orchestrated_docs"

    res = runner.invoke(app, ["export", "dagster", "--spec", str(root), "--json"])
    assert res.exit_code == 0, res.output
    said = json.loads(res.stdout)
    assert said["tasks"] == ["run", "evaluate"] and said["schedule"] == "0 0 * * *"
    assert constants(said["text"])["JOB_NAME"] == "flightdeck_orchestrated_docs"

    for args, says in ((["export", "luigi"], "'luigi' is not one of"),
                       (["export", "airflow", "--retries", "-1"], "Invalid value for '--retries'"),
                       (["export", "airflow", "--flightdeck", "bin/flightdeck"], "is not an absolute path"),
                       (["export", "airflow", "--out", str(tmp_path)], "is a folder:")):
        res = runner.invoke(app, [*args, "--spec", str(root)])
        assert res.exit_code == 2 and says in res.output, res.output
    res = runner.invoke(app, ["export", "dagster", "--spec", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "no spec found" in res.output
    # with no orchestrator named, the spec's agents.orchestration chooses; with none there, the command says so
    res = runner.invoke(app, ["export", "--spec", str(root)])
    said_plainly = " ".join(res.output.replace("│", " ").split())  # rich wraps the message in a box
    assert res.exit_code == 2 and "or choose one in the spec: agents: {orchestration: [airflow]}" in said_plainly
    spec = root / "flightdeck.yaml"
    spec.write_text(spec.read_text("utf-8") + "agents: {orchestration: [langgraph, dagster]}\n", "utf-8")
    res = runner.invoke(app, ["export", "--spec", str(root), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["orchestrator"] == "dagster"


@pytest.mark.unit
def test_the_dagster_job_has_the_ops_retry_policy_and_schedule(tmp_path: Path) -> None:
    pytest.importorskip("dagster")
    root = write_project(tmp_path / "p", automation="{cron: '15 4 * * *', release: true}")
    module = load_module(tmp_path / "job.py", export_dagster(root, "/opt/fd/bin/flightdeck", retries=3,
                                                             retry_delay=7))
    job = module.flightdeck_pipeline
    assert sorted(n.name for n in job.graph.nodes) == ["evaluate", "release", "run"]
    assert {(n.definition.retry_policy.max_retries, n.definition.retry_policy.delay) for n in job.graph.nodes} == {
        (3, 7)}
    deps = job.graph.dependency_structure
    assert [o.node_name for o in deps.all_upstream_outputs_from_node("release")] == ["evaluate"]
    assert [o.node_name for o in deps.all_upstream_outputs_from_node("evaluate")] == ["run"]
    (schedule,) = module.schedules
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "15 4 * * *", "UTC", "flightdeck_orchestrated_docs")


# --- run for real ----------------------------------------------------------------------------------------------
def load_module(path: Path, source: str) -> Any:
    path.write_text(source, "utf-8")
    spec = importlib.util.spec_from_file_location(f"flightdeck_export_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def orchestrator_env(**extra: str) -> dict[str, str]:
    """This process's environment (offline) without what would tie another Python to this venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PREFECT_API_URL")
           and not k.startswith(("AIRFLOW", "PREFECT", "DAGSTER"))}
    return {**env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "NO_COLOR": "1", **extra}


def workspace_facts(root: Path) -> dict[str, Any]:
    """The index, the step statuses of the last `flightdeck run`, the evaluation runs and the releases."""
    project = Project.load(root)
    try:
        ws = project.workspace
        with ws.engine.connect() as conn:
            last = conn.execute(select(runs.c.id).order_by(runs.c.started_at.desc()).limit(1)).scalar()
            steps = dict(conn.execute(select(step_runs.c.step, step_runs.c.status)
                                      .where(step_runs.c.run_id == last).order_by(step_runs.c.id)).all())
            evaluations = conn.execute(select(func.count()).select_from(experiment_runs)
                                       .where(experiment_runs.c.kind == "eval")).scalar()
        return {"index": ws.get_state(CURRENT_INDEX), "steps": steps, "evaluations": evaluations,
                "releases": [r.name for r in project.releases.list()]}
    finally:
        project.workspace.close()


def check_runs(root: Path, run: Callable[[], tuple[bool, str]]) -> None:
    """Run the exported pipeline twice: a first run that builds, evaluates and releases; then, with a gate the index
    misses, a run whose build steps all skip (the step cache, kept in the workspace across the orchestrator's task
    boundaries) and whose evaluate fails, is retried once, fails again and fails the run, saying which gate."""
    ok, log = run()
    assert ok, log[-6000:]
    first = workspace_facts(root)
    assert first["index"] and first["steps"] == {"ingest": "succeeded", "embed": "succeeded", "index": "succeeded"}
    assert first["evaluations"] == 1 and first["releases"] == ["v1"]

    spec = root / "flightdeck.yaml"
    spec.write_text(spec.read_text("utf-8").replace(f"gates: {PASSING_GATES}", f"gates: {FAILING_GATES}"), "utf-8")
    ok, log = run()
    assert not ok, log[-6000:]
    second = workspace_facts(root)
    assert second["steps"] == {"ingest": "skipped", "embed": "skipped", "index": "skipped"}
    assert second["index"] == first["index"]
    assert second["evaluations"] == 1 + 1 + RETRIES  # evaluate ran, then its retry
    assert second["releases"] == ["v1"]  # a missed gate stops the pipeline before release
    assert "gates missed: mrr@3 <= 0.01" in log, log[-6000:]


@pytest.fixture
def project_root(tmp_path: Path) -> Iterator[Path]:
    yield write_project(tmp_path / "assistant")


def export_file(orchestrator: str, root: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(EXPORTS[orchestrator](root, default_flightdeck(), retries=RETRIES, retry_delay=1, release=True),
                   "utf-8")
    return out


@EVAL
@pytest.mark.exercises("agents.orchestration.dagster")
@pytest.mark.integration
@pytest.mark.slow
@needs_provider(Category.EMBEDDER, "sentence_transformers")
def test_dagster_runs_the_exported_job_in_process(project_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("dagster")
    module = load_module(export_file("dagster", project_root, tmp_path / "job.py"), (tmp_path / "job.py").read_text())

    def run() -> tuple[bool, str]:
        result = module.flightdeck_pipeline.execute_in_process(raise_on_error=False)
        lines = []
        for event in result.all_events:
            failure = getattr(event.event_specific_data, "user_failure_data", None)
            lines.append(f"{event.step_key} {event.event_type_value} {event.message or ''} "
                         f"{failure.description if failure is not None else ''}")
        retried = [e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        if not result.success:
            assert retried == ["evaluate"] * RETRIES, retried
        else:
            assert result.output_for_node("release")["name"] == "v1"
            assert result.output_for_node("run")["steps"]["embed"] == "succeeded"
        return result.success, "\n".join(lines)

    check_runs(project_root, run)


@EVAL
@pytest.mark.exercises("agents.orchestration.airflow")
@pytest.mark.integration
@pytest.mark.slow
@needs_provider(Category.EMBEDDER, "sentence_transformers")
@pytest.mark.skipif(not AIRFLOW.exists(), reason=f"{AIRFLOW} is missing: `make orchestrators` builds .venv-airflow "
                                                 "(Airflow 3.1 cannot share the dev venv)")
def test_airflow_dags_test_runs_the_exported_dag(project_root: Path, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    dag_file = export_file("airflow", project_root, home / "dags" / "flightdeck_pipeline.py")
    env = orchestrator_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dag_file.parent),
                           AIRFLOW__CORE__LOAD_EXAMPLES="False")
    migrate = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    # the DAGs as Airflow reads them: tasks, dependencies, retries and schedule (one exported with the spec's cron)
    scheduled = write_project(tmp_path / "scheduled", automation="{cron: '30 2 * * mon-fri'}")
    (tmp_path / "scheduled.py").write_text(export_airflow(scheduled, default_flightdeck(), retries=4), "utf-8")
    parsed = subprocess.run([str(AIRFLOW.parent / "python"), "-c", textwrap.dedent(f"""\
        import json, runpy
        for path in ({str(dag_file)!r}, {str(tmp_path / "scheduled.py")!r}):
            dag = runpy.run_path(path)["flightdeck_pipeline"]()
            print(json.dumps({{"dag_id": dag.dag_id, "tasks": [t.task_id for t in dag.topological_sort()],
                              "upstream": {{t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}},
                              "retries": sorted({{t.retries for t in dag.tasks}}),
                              "max_active_runs": dag.max_active_runs,
                              "schedule": [type(dag.timetable).__name__, dag.timetable.summary,
                                           str(getattr(dag.timetable, "_timezone", ""))]}}))
        """)], env=env, capture_output=True, text=True, timeout=300)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    unscheduled, cron = (json.loads(line) for line in parsed.stdout.strip().splitlines()[-2:])
    assert unscheduled == {
        "dag_id": "flightdeck_orchestrated_docs", "tasks": ["run", "evaluate", "release"], "retries": [RETRIES],
        "upstream": {"run": [], "evaluate": ["run"], "release": ["evaluate"]}, "max_active_runs": 1,
        "schedule": ["NullTimetable", "None", ""]}
    assert cron["tasks"] == ["run", "evaluate"] and cron["retries"] == [4]
    assert cron["schedule"] == ["CronTriggerTimetable", "30 2 * * mon-fri", "UTC"]

    def run() -> tuple[bool, str]:
        done = subprocess.run([str(AIRFLOW), "dags", "test", "flightdeck_orchestrated_docs"], env=env,
                              capture_output=True, text=True, timeout=600)
        log = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # Airflow's log colours its words
        if done.returncode != 0:
            assert "new_state=up_for_retry" in log and "state=failed, run_type=manual" in log, log[-6000:]
        else:
            assert "state=success, run_type=manual" in log and "created release v1" in log, log[-6000:]
        return done.returncode == 0, log

    check_runs(project_root, run)


@EVAL
@pytest.mark.exercises("agents.orchestration.prefect")
@pytest.mark.integration
@pytest.mark.slow
@needs_provider(Category.EMBEDDER, "sentence_transformers")
@pytest.mark.skipif(not PREFECT_PYTHON.exists(), reason=f"{PREFECT_PYTHON} is missing: `make orchestrators` builds "
                                                        ".venv-prefect (Prefect 3 pins fastapi<0.151, older than "
                                                        "flightdeck's server)")
def test_prefect_runs_the_exported_flow_on_its_temporary_server(project_root: Path, tmp_path: Path) -> None:
    flow_file = export_file("prefect", project_root, tmp_path / "flow.py")
    # no PREFECT_API_URL: the flow run starts Prefect's temporary server, on a SQLite database under PREFECT_HOME
    env = orchestrator_env(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                           PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")

    def run() -> tuple[bool, str]:
        done = subprocess.run([str(PREFECT_PYTHON), str(flow_file)], env=env, capture_output=True, text=True,
                              timeout=600)
        log = done.stdout + done.stderr
        assert "Starting temporary server on http://127.0.0.1:" in log, log[-3000:]
        if done.returncode != 0:
            assert "Retry 1/1 will start 1 second(s) from now" in log and "Retries are exhausted" in log, log[-6000:]
            assert "Finished in state Failed" in log
        else:
            assert "created release v1" in log and "Finished in state Completed" in log
        return done.returncode == 0, log

    check_runs(project_root, run)
    usage = subprocess.run([str(PREFECT_PYTHON), str(flow_file), "deploy"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert usage.returncode == 1 and "usage: python" in usage.stderr

