"""``flightdeck tune --set`` (checklist 3.5 against an objective on an eval split): trials on the tune part of the
project's own evaluation set over its built index, the best scored once on the held-out questions beside the spec's
settings, every trial in the runs table, the patch merged into the spec loads; answer settings (temperature, prompt
template) through the real llama.cpp generator; what a mode cannot vary or a set cannot measure is refused."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from conftest import DOCS, write_docs
from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.evaluation.tuning import split_queries
from flightdeck.models.trackers.builtin import ExperimentRuns
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = [pytest.mark.unit, needs("eval", "pytrec_eval", "sacrebleu", "rouge_score", "sklearn")]

# questions on conftest's widget documents; by hashed id, holdout 0.3 keeps out install and clean
QUESTIONS = [
    ("install", "How do I install a widget?", "Run widget install in a terminal.", "guide/install.md"),
    ("licence", "Where is the license key printed?", "The license key is printed on the box.", "guide/install.md"),
    ("w42", "What does installer error W42 mean?", "The sprockets are not aligned.", "guide/install.md"),
    ("clean", "How should I clean a widget?", "Clean a widget with a soft cloth once a week.", "guide/care.html"),
    ("store", "Where should widgets be stored?", "Store widgets in a dry place between 5 and 25 degrees Celsius.",
     "guide/care.html"),
    ("colour", "Which widget colour is the most popular in spring?", "Green widgets are the most popular in spring.",
     "notes.txt"),
    ("price", "What does a widget cost in Japan?", None, None),
    ("founder", "Who founded the company that makes widgets?", None, None),
]
HELD_OUT = ["install", "clean"]
# a page that repeats the questions and answers none: the search settings decide whether it is the hit answered from
FAQ = ("# Widget questions\n\nPeople often ask how to install a widget, where the license key is printed, what "
       "installer error W42 means, how to clean a widget, where widgets should be stored and which widget colour is "
       "the most popular in spring. The answers are in the guides.\n")
EXTRACTIVE = "{provider: extractive, max_sentences: 1, top_chunks: 1}"


def write_project(root: Path, *, space: str, generator: str = EXTRACTIVE, objective: str = "token_f1",
                  trials: int = 4, extra: str = "", questions: list[tuple[Any, ...]] | None = None,
                  search: str = "{mode: vector, k: 1}") -> Path:
    write_docs(root, {**DOCS, "faq.md": FAQ})
    (root / "eval").mkdir(parents=True, exist_ok=True)
    rows = [{"id": i, "question": q, **({"reference_answer": a, "reference_sources": [s]} if a else
                                         {"answerable": False})} for i, q, a, s in (questions or QUESTIONS)]
    (root / "eval" / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = root / "flightdeck.yaml"
    spec.write_text(textwrap.dedent(f"""\
        project: tune-set-test
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: 64, overlap: 8}}
        retrieval:
          system: [hybrid_search]
          search: {search}
        model:
          generator: {generator}
          hyperparameter_optimization: [{{provider: grid_random, method: grid}}]
          tuning: {{objective: {objective}, trials: {trials}, seed: 0, holdout: 0.3, space: {space}}}
        evaluation:
          metrics: [f1, bleu_rouge]
          sets: [{{name: qa, path: eval/qa.jsonl}}]
          k: 5
        """) + extra)
    return spec


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    """One FakeEmbedder for the project and every trial (the study shares the project's embedder)."""
    embedder = FakeEmbedder(dimension=256)
    load = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load(cls, path).use(embedder=embedder)))
    return embedder


def built(spec: Path) -> Path:
    Project.load(spec).run()
    return spec


def tune(spec: Path, *args: str, code: int = 0) -> Any:
    res = CliRunner().invoke(app, ["tune", "--spec", str(spec), "--json", *args])
    assert res.exit_code == code, res.output
    return json.loads(res.stdout) if res.stdout.strip().startswith("{") else res.output


def test_the_holdout_is_the_hashed_split_of_the_question_ids() -> None:
    assert split_queries([q[0] for q in QUESTIONS], 0.3)[1] == HELD_OUT


# --- extractive over the search settings -----------------------------------------------------------------------
def test_tune_on_the_set_records_every_trial_scores_the_holdout_once_and_the_patch_loads(
        tmp_path: Path, fake: FakeEmbedder) -> None:
    # FakeEmbedder's vectors are bags of words: searched by vector alone, the FAQ page is often the first hit
    spec = built(write_project(tmp_path / "p", space="{mode: [vector, keyword], k: [1, 3]}"))
    out = tune(spec, "--patch", str(tmp_path / "tuned.yaml"))  # no --set: the first of evaluation.sets

    assert out["mode"] == "set" and out["dataset"] == "qa" and out["direction"] == "maximise"
    assert out["queries"] == {"tune": 6, "holdout": 2} and out["objective"] == "token_f1"
    trials = out["trials"]
    assert len(trials) == 4 and all(t["state"] == "complete" for t in trials)
    values = {(t["params"]["mode"], t["params"]["k"]): t["value"] for t in trials}
    assert len(set(values.values())) > 1  # the settings change what is retrieved, so what is answered
    # the baseline is the spec's own settings (vector, k 1): the trial (vector, 1) is the same configuration
    assert out["baseline"]["tune"] == values[("vector", 1)]
    assert out["best"]["tune"] == max(values.values()) > out["baseline"]["tune"]
    assert out["best"]["beats_baseline"] is True

    # the held-out questions were scored once each for the best and the baseline, never in a trial
    results = tmp_path / "p" / ".flightdeck" / "tune" / "qa"
    parts = {p.name: json.loads(p.read_text()) for p in results.glob("*.json")}
    held = [p for p in parts.values() if p["split"] == "holdout"]
    assert len(held) == 2 and all(sorted(q["id"] for q in p["questions"]) == sorted(HELD_OUT) for p in held)
    assert all(not {q["id"] for q in p["questions"]} & set(HELD_OUT) for p in parts.values() if p["split"] == "tune")
    h = out["holdout"]
    assert h["queries"] == 2 and h["gain"] == pytest.approx(h["best"] - h["baseline"], abs=1e-4)
    assert h["ci95"][0] <= h["gain"] <= h["ci95"][1]
    assert h["best_metrics"]["token_f1"] == h["best"] and "recall@5" in h["baseline_metrics"]

    # the patch: the changed search keys; merged into the spec, the spec loads with them
    patch = yaml.safe_load(Path(out["patch_file"]).read_text())
    assert patch == out["patch"] and set(patch) == {"retrieval"}
    assert patch["retrieval"]["search"] == {k: v for k, v in out["best"]["params"].items()
                                            if v != {"mode": "vector", "k": 1}[k]}
    raw = yaml.safe_load(spec.read_text())
    raw["retrieval"]["search"].update(patch["retrieval"]["search"])
    spec.write_text(yaml.safe_dump(raw))
    tuned = Project.load(spec).spec.retrieval.search
    assert {k: getattr(tuned, k) for k in out["best"]["params"]} == out["best"]["params"]

    # the runs table: the study and its trials, each trial with its settings, metrics and per-question results
    runs = ExperimentRuns(Project.load(spec).workspace)
    [study] = runs.list("tune")
    assert study.id == out["study_id"] and study.params["mode"] == "set" and study.eval_set
    assert study.params["trial_runs"] == [t["run_id"] for t in trials]
    for t in trials:
        run = runs.get(t["run_id"])
        assert run.kind == "trial" and run.status == "succeeded" and run.params["params"] == t["params"]
        assert run.metrics["token_f1"] == t["value"] and run.index_version and "ndcg@5" in run.metrics
        assert run.params["search"]["mode"] == t["params"]["mode"]
        assert Path(run.artifacts["results.json"]).is_file()


@needs("tensorboard", "tensorboardX")
def test_every_trial_and_the_study_go_to_the_specs_tracker(tmp_path: Path, fake: FakeEmbedder) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = write_project(tmp_path / "p", space="{k: [1, 3]}", trials=2)
    raw = yaml.safe_load(spec.read_text())
    raw["model"]["experiment_tracking"] = [{"provider": "tensorboard", "log_dir": "tb"}]
    spec.write_text(yaml.safe_dump(raw))
    out = tune(built(spec))
    runs = ExperimentRuns(Project.load(spec).workspace)
    [study] = runs.list("tune")
    tracked = [runs.get(t["run_id"]) for t in out["trials"]] + [study]
    for run in tracked:  # each run's event files, read back with TensorBoard's own reader
        folder = Path(run.tracked["tensorboard"])
        assert folder.is_dir() and folder.is_relative_to(tmp_path / "p" / "tb"), run.tracked
        events = EventAccumulator(str(folder))
        events.Reload()
        scalars = events.Tags()["scalars"]
        assert ("holdout_gain" if run is study else "token_f1") in scalars, scalars  # the trial's objective
    assert len({run.tracked["tensorboard"] for run in tracked}) == 3  # two trials and the study, apart


def test_a_minimised_objective_gains_when_it_falls(tmp_path: Path, fake: FakeEmbedder) -> None:
    spec = built(write_project(tmp_path / "p", space="{k: [1, 5]}", objective="false_refusal_rate", trials=2))
    out = tune(spec)
    assert out["direction"] == "minimise"
    values = [t["value"] for t in out["trials"]]
    assert out["best"]["tune"] == min(values)
    h = out["holdout"]
    assert h["gain"] == pytest.approx(h["baseline"] - h["best"], abs=1e-4)


def test_a_trial_spec_is_the_validated_spec_with_the_settings_and_the_patch_names_what_changed(
        tmp_path: Path, fake: FakeEmbedder) -> None:
    from flightdeck.evaluation.tuning_set import SetObjective

    spec = write_project(tmp_path / "p", space="{query_transformation: [none, hyde]}",
                         generator="{provider: llama_cpp, model_path: /nowhere/model.gguf, temperature: 0.2}")
    project = Project.load(spec)  # nothing is loaded: the trials' specs are only built here
    objective = SetObjective(project.loaded, project.eval_set(), "token_f1", 1, project.eval_options(),
                             fake.embed_documents, Project, tmp_path / "results")
    trial = objective.configuration({"query_transformation": "hyde", "temperature": 0.7, "k": 3})
    assert trial.spec.retrieval.query_transformation.provider == "hyde"
    assert trial.spec.retrieval.system == ["hybrid_search", "query_transformation"]  # the rule the spec checks
    assert trial.spec.model.generator.settings == {"model_path": "/nowhere/model.gguf", "temperature": 0.7}
    assert objective.patch(trial) == {
        "retrieval": {"search": {"k": 3}, "query_transformation": {"provider": "hyde"},
                      "system": ["hybrid_search", "query_transformation"]},
        "model": {"generator": {"provider": "llama_cpp", "temperature": 0.7}}}
    same = objective.configuration({"query_transformation": "none", "temperature": 0.2})
    assert same.key == objective.base.key and objective.patch(same) == {}
    with pytest.raises(ValueError, match="temperature"):
        objective.configuration({"temperature": 2.5})


# --- answer settings through the real llama.cpp generator ------------------------------------------------------
@pytest.mark.slow
def test_temperature_and_prompt_template_reach_the_llm(tmp_path: Path, fake: FakeEmbedder, gemma_gguf: Path) -> None:
    root = tmp_path / "p"
    (root / "prompts").mkdir(parents=True)
    template = root / "prompts" / "terse.j2"
    template.write_text(textwrap.dedent("""\
        {% block system %}{{ system_prompt }} Answer in one short sentence.{% endblock %}
        {% block user %}{% for s in sources %}[{{ s.id }}] {{ s.text }}
        {% endfor %}Question: {{ question }}{% endblock %}
        """))
    questions = [q for q in QUESTIONS if q[0] in ("install", "licence", "w42")]  # install is held out
    generator = (f"{{provider: llama_cpp, model_path: {gemma_gguf}, n_threads: 2, n_ctx: 512, max_tokens: 8, "
                 "max_prompt_tokens: 400, top_chunks: 1}")
    spec = built(write_project(root, generator=generator, questions=questions, trials=2, objective="rougeL",
                               space="{temperature: [0.0, 1.5], prompt_template: [prompts/terse.j2]}"))
    out = tune(spec, "--tuner", "grid_random")
    assert out["queries"] == {"tune": 2, "holdout": 1}
    assert [t["state"] for t in out["trials"]] == ["complete", "complete"]
    assert {t["params"]["temperature"] for t in out["trials"]} == {0.0, 1.5}
    parts = [json.loads(p.read_text()) for p in (root / ".flightdeck" / "tune" / "qa").glob("*-tune.json")]
    assert len(parts) == 3  # the spec's settings and the two trials
    sha = hashlib.sha256(template.read_text().encode()).hexdigest()
    for t in [*out["trials"], {"params": {}}]:
        [part] = [f for f in parts if f["params"] == t["params"]]
        temperature, template_used = t["params"].get("temperature", 0.0), t["params"].get("prompt_template")
        # the generator each answered with was built from the trial's spec: its temperature and its template
        assert part["generator"]["provider"] == "llama_cpp" and part["generator"]["temperature"] == temperature
        prompts = [q["prompt"] for q in part["questions"]]
        assert len(prompts) == 2 and all(q["usage"]["prompt_tokens"] > 0 for q in part["questions"])
        if template_used is None:  # the spec's own: the shipped template of Gemma's prompt format
            assert all(p["template"] == "grounded_completion" and p["sha256"] != sha for p in prompts)
        else:  # every answer was written from the template file
            assert all(p["sha256"] == sha and p["template"].endswith("prompts/terse.j2") for p in prompts)


# --- what is refused --------------------------------------------------------------------------------------------
def test_what_a_mode_or_a_set_cannot_do_is_refused_naming_the_setting(tmp_path: Path, fake: FakeEmbedder) -> None:
    spec = built(write_project(tmp_path / "p", space="{k: [1, 5]}"))

    def refused(space: str, *args: str, objective: str = "token_f1", generator: str = EXTRACTIVE) -> str:
        write_project(tmp_path / "p", space=space, objective=objective, generator=generator)
        out = tune(spec, *args, code=1)
        return out["error"] if isinstance(out, dict) else out

    assert "'chunk_size' cannot be tuned with --set: each chunking needs its own index" in refused(
        "{chunk_size: [64, 128]}")
    assert "'chunker' cannot be tuned with --set: each chunking needs its own index" in refused(
        "{chunker: [recursive, sentence]}")
    assert "temperature sets how an LLM writes its answers; model.generator is 'extractive'" in refused(
        "{temperature: [0.0, 0.5]}")
    assert ("query_transformation 'hyde' cannot be tried (retrieval.query_transformation): "
            "model.generator: query transformation 'hyde' needs an LLM generator") in refused(
        "{query_transformation: [none, hyde]}")
    assert "k 2000 cannot be tried (retrieval.search.k)" in refused("{k: [1, 2000]}")
    assert "objective ndcg@10 is not measured on an evaluation set: its ndcg is taken at ndcg@5" in refused(
        "{k: [1, 5]}", objective="ndcg@10")
    assert "objective answer_similarity is measured only with cosine_similarity in evaluation.metrics" in refused(
        "{k: [1, 5]}", objective="answer_similarity")
    assert "its recall is taken at recall@1, recall@3, recall@5 (evaluation.k is 5)" in refused(
        "{k: [1, 5]}", objective="recall@100")
    llm = "{provider: llama_cpp, model_path: /nonexistent.gguf}"
    assert "prompt_template 'prompts/missing.j2' cannot be tried: model.generator.prompt_template: no template " \
           "file at" in refused("{prompt_template: [null, prompts/missing.j2]}", generator=llm)
    assert "temperature 3.0 cannot be tried (model.generator.temperature)" in refused(
        "{temperature: [0.0, 3.0]}", generator=llm)
    # --beir keeps refusing the answer settings, and says where they can be tuned
    (tmp_path / "beir" / "qrels").mkdir(parents=True)
    write_project(tmp_path / "p", space="{temperature: [0.0, 0.5]}", objective="ndcg@10")
    res = CliRunner().invoke(app, ["tune", "--spec", str(spec), "--beir", str(tmp_path / "beir"), "--json"])
    assert res.exit_code == 1 and "'temperature' cannot be tuned with --beir" in res.stdout
    assert "flightdeck tune --set NAME" in res.stdout
    assert not ExperimentRuns(Project.load(spec).workspace).list("trial")  # nothing ran


def test_the_index_must_be_built_and_a_set_named(tmp_path: Path, fake: FakeEmbedder) -> None:
    spec = write_project(tmp_path / "p", space="{k: [1, 5]}")
    out = tune(spec, code=1)
    assert "no index yet; run `flightdeck run` before `flightdeck tune --set`" in out["error"]
    out = tune(spec, "--set", "nope", code=1)
    assert "no evaluation set 'nope'" in out["error"]
    res = CliRunner().invoke(app, ["tune", "--spec", str(spec), "--set", "qa", "--beir", str(tmp_path)])
    assert res.exit_code == 2 and "not both" in res.output


@pytest.mark.slow
def test_query_transformation_trials_search_with_the_llm_s_passages(tmp_path: Path, fake: FakeEmbedder,
                                                                   gemma_gguf: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from flightdeck.retrieval.query_transform import HydeTransform

    made: list[tuple[str, int, Any]] = []  # (question, max_tokens, the variants HyDE made with the real model)
    real = HydeTransform._variants

    def recording(self: HydeTransform, query: str) -> Any:
        variants = real(self, query)
        made.append((query, self.config.max_tokens, variants))
        return variants

    monkeypatch.setattr(HydeTransform, "_variants", recording)
    questions = [q for q in QUESTIONS if q[0] in ("install", "licence", "w42")]  # install is held out
    generator = (f"{{provider: llama_cpp, model_path: {gemma_gguf}, n_threads: 2, n_ctx: 512, max_tokens: 8, "
                 "max_prompt_tokens: 400, top_chunks: 1}")
    # the spec's own HyDE settings (a short passage) are what the hyde trial uses; none searches as written
    spec = write_project(root := tmp_path / "p", generator=generator, questions=questions, trials=2,
                         objective="recall@1", space="{query_transformation: [none, hyde]}",
                         search="{mode: hybrid, k: 1}")
    spec.write_text(spec.read_text().replace(
        "  system: [hybrid_search]\n",
        "  system: [hybrid_search, query_transformation]\n  query_transformation: {provider: hyde, max_tokens: 12}\n"))
    built(spec)
    out = tune(spec, "--tuner", "grid_random")
    assert [t["state"] for t in out["trials"]] == ["complete", "complete"]
    assert {t["params"]["query_transformation"] for t in out["trials"]} == {"none", "hyde"}
    # HyDE ran once per question: on the two tune questions for the spec's settings (the hyde trial is that
    # configuration, scored once), never for none, and on the held-out one for the baseline (and the best)
    assert sorted(q for q, _, _ in made) == sorted(q for _, q, *_ in questions)
    for _, max_tokens, variants in made:
        assert max_tokens == 12  # the spec's settings of the transformation, not HyDE's defaults
        [variant] = variants
        assert variant.passages and all(p.strip() for p in variant.passages)  # a passage the model wrote
        assert variant.keyword is not None  # BM25 still reads the question
    # two configurations answered the tune part: the spec's (= the hyde trial) and none
    parts = [json.loads(f.read_text()) for f in (root / ".flightdeck" / "tune" / "qa").glob("*-tune.json")]
    assert len(parts) == 2 and {"query_transformation": "none"} in [p["params"] for p in parts]
