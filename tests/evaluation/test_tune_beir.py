"""``flightdeck tune`` on a BEIR folder (checklist 3.5): trials on the tune part of the judged queries, the best scored
once on the held-out part beside the spec's settings with a bootstrap interval, every trial in the runs table, a spec
patch; one index per chunking sharing one embeddings cache (proved with FakeEmbedder's ``embedded_texts``)."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.errors import SpecError
from flightdeck.evaluation import tuning as tuning_module
from flightdeck.evaluation.beir import evaluate_run
from flightdeck.evaluation.tuning import bootstrap_gain, per_query_scores, split_queries
from flightdeck.models.trackers.builtin import ExperimentRuns
from flightdeck.testing import FakeEmbedder
from needs import needs

pytestmark = pytest.mark.unit
TREC_EVAL = needs("eval", "pytrec_eval")

# tests/evaluation/test_eval_beir.py's corpus, and more: a long document (several chunks at any size tried here)
LONG = " ".join([
    "Vaccines train the immune system to recognise a pathogen before an infection.",
    "Edward Jenner used cowpox material to protect people against smallpox in 1796.",
    "Smallpox was declared eradicated in 1980 after a worldwide vaccination campaign.",
    "Antibiotics such as penicillin kill bacteria or stop them from growing.",
    "Alexander Fleming noticed in 1928 that a mould stopped the growth of staphylococci.",
    "Resistance to antibiotics grows when they are prescribed for viral infections.",
    "Anaesthesia made long surgical operations possible without pain for the patient.",
    "Ether was first used publicly for surgical anaesthesia in Boston in 1846.",
    "X-rays were discovered by Wilhelm Roentgen in 1895 and soon used to find fractures.",
    "Computed tomography combines many X-ray images into cross-sectional pictures of the body.",
    "Insulin was isolated in 1921 and turned type 1 diabetes from a fatal disease into a chronic one.",
    "Handwashing between patients lowered deaths from childbed fever in Vienna in the 1840s.",
] * 2)
CORPUS = [
    ("d1", "Aspirin and the heart", "Low dose aspirin reduces the risk of heart attack in adults."),
    ("d2", "Vitamin D", "Vitamin D deficiency is common in northern countries during winter."),
    ("d3", "Sleep", "Adults who sleep less than six hours have higher blood pressure."),
    ("d4", "Coffee", "Moderate coffee drinking is not linked to heart disease."),
    ("d5", "Exercise", "Regular exercise lowers resting heart rate and blood pressure."),
    ("d6", "Smoking", "Smoking damages the lungs and is the main cause of lung cancer."),
    ("d7", "Sugar", "Sugary drinks raise the risk of type 2 diabetes and weight gain."),
    ("d8", "Salt", "Eating less salt lowers blood pressure in people with hypertension."),
    ("d9", "Statins", "Statins lower LDL cholesterol and prevent heart attacks in people at risk."),
    ("d10", "A short history of medicine", LONG),
]
QUERIES = {"q1": "aspirin lowers heart attack risk", "q2": "vitamin D deficiency in winter",
           "q3": "short sleep raises blood pressure", "q4": "coffee and heart disease",
           "q5": "exercise lowers heart rate", "q6": "smoking causes lung cancer",
           "q7": "sugary drinks and diabetes", "q8": "salt intake and hypertension",
           "q9": "statins and cholesterol", "q10": "who discovered penicillin",
           "q11": "history of smallpox vaccination", "q12": "discovery of X-rays", "q99": "unjudged query"}
QRELS = [("q1", "d1", 1), ("q1", "d9", 1), ("q2", "d2", 1), ("q3", "d3", 1), ("q3", "d8", 1), ("q4", "d4", 1),
         ("q5", "d5", 1), ("q6", "d6", 1), ("q7", "d7", 1), ("q8", "d8", 1), ("q9", "d9", 1), ("q10", "d10", 1),
         ("q11", "d10", 1), ("q12", "d10", 1)]

SPACE = "{fusion: [rrf, weighted], candidates: [5, 50], keyword_weight: {low: 0.2, high: 2.0}}"


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x})
                                                 for i, t, x in CORPUS) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in QUERIES.items()))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                              + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS))
    return root


def write_spec(folder: Path, space: str = SPACE, trials: int = 6, extra: str = "") -> Path:
    (folder / "docs").mkdir(parents=True, exist_ok=True)  # the project's own documents: not what is tuned on
    spec = folder / "flightdeck.yaml"
    spec.write_text(textwrap.dedent(f"""\
        project: tune-test
        data:
          sources: [{{provider: files, path: ./docs}}]
          chunking: {{provider: recursive, size: 128, overlap: 16}}
        retrieval:
          search: {{mode: hybrid, k: 10, candidates: 20, fusion: weighted, keyword_weight: 0.0}}
        model:
          tuning: {{trials: {trials}, seed: 0, space: {space}}}
        """) + extra)
    return spec


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    """One FakeEmbedder for every chunking's project (as the study shares the real model)."""
    from flightdeck.cli import tune_cmd

    embedder = FakeEmbedder()
    monkeypatch.setattr(tune_cmd, "_open_project", lambda path: Project.load(path).use(embedder=embedder))
    return embedder


def tune(spec: Path, beir_dir: Path, *args: str) -> dict[str, Any]:
    from flightdeck.cli.main import app

    res = CliRunner().invoke(app, ["tune", "--beir", str(beir_dir), "--spec", str(spec), "--workspace",
                                   str(spec.parent / "tune-ws"), "--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def text_hashes(index_folder: str) -> set[str]:
    with sqlite3.connect(Path(index_folder) / ".flightdeck" / "metadata.db") as conn:
        return {r[0] for r in conn.execute("SELECT text_hash FROM chunks")}


# --- the pieces -------------------------------------------------------------------------------------------------
def test_the_split_is_by_hashed_query_id() -> None:
    qids = [f"q{i}" for i in range(1, 13)]
    tune_part, held = split_queries(qids, 0.2)
    assert held == ["q4", "q5", "q7"] and len(tune_part) == 9
    # independent of order and of the other queries
    assert split_queries(list(reversed(qids)), 0.2)[1] == ["q7", "q5", "q4"]
    assert split_queries(["q4", "q1"], 0.2) == (["q1"], ["q4"])
    many = split_queries([str(i) for i in range(2000)], 0.2)
    assert 0.17 < len(many[1]) / 2000 < 0.23
    with pytest.raises(Exception, match=r"both parts need queries"):
        split_queries(["q1", "q2"], 0.2)


@TREC_EVAL
def test_per_query_scores_average_to_evaluate_run() -> None:
    qrels = {"a": {"x": 1}, "b": {"y": 1, "z": 1}, "c": {"w": 1}}
    run = {"a": {"w": 3.0, "x": 2.0}, "b": {"z": 5.0}, "c": {}}
    per = per_query_scores(qrels, run)
    means = evaluate_run(qrels, run)
    for metric in ("ndcg@10", "recall@100", "mrr@10"):
        assert sum(p[metric] for p in per.values()) / 3 == pytest.approx(means[metric], abs=1e-5)
    assert per["c"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}


def test_the_bootstrap_interval_is_paired_and_seeded() -> None:
    base = [0.2, 0.5, 0.1, 0.9, 0.4, 0.3, 0.6, 0.5]
    best = [b + d for b, d in zip(base, [0.1, 0.0, 0.2, -0.05, 0.1, 0.15, 0.0, 0.1], strict=True)]
    gain = bootstrap_gain(best, base, seed=0, resamples=4000)
    assert gain["gain"] == pytest.approx(0.075) and gain["queries"] == 8
    assert gain["ci95"][0] < 0.075 < gain["ci95"][1] and -0.05 <= gain["ci95"][0] and gain["ci95"][1] <= 0.2
    assert gain == bootstrap_gain(best, base, seed=0, resamples=4000)  # the seed fixes it
    assert (gain["improved"], gain["worsened"]) == (5, 1)
    # a shift the same on every query has no spread: the interval is the point
    assert bootstrap_gain([0.6, 0.7], [0.5, 0.6], seed=1)["ci95"] == [pytest.approx(0.1), pytest.approx(0.1)]


# --- end to end -------------------------------------------------------------------------------------------------
@TREC_EVAL
def test_tune_records_every_trial_scores_the_holdout_once_and_writes_the_patch(
        beir_dir: Path, tmp_path: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    holdout = {"q4", "q5", "q7"}
    scored: list[set[str]] = []
    real = tuning_module.per_query_scores

    def counting(qrels: dict[str, Any], run: dict[str, Any]) -> Any:
        scored.append(set(qrels))
        return real(qrels, run)

    monkeypatch.setattr(tuning_module, "per_query_scores", counting)
    spec = write_spec(tmp_path / "project", trials=7)
    out = tune(spec, beir_dir, "--tuner", "grid_random", "--patch", str(tmp_path / "tuned.yaml"))

    assert out["queries"] == {"tune": 9, "holdout": 3} and out["tuner"] == "grid_random"
    assert len(out["trials"]) == 7 and all(t["state"] == "complete" for t in out["trials"])
    # the held-out queries: scored once for the best and once for the baseline, never during the trials
    same = (out["best"]["chunking"], out["best"]["search"]) == (out["baseline"]["chunking"], out["baseline"]["search"])
    assert sum(1 for s in scored if s == holdout) == (1 if same else 2)
    assert all(not (s & holdout) for s in scored if s != holdout)
    h = out["holdout"]
    assert h["queries"] == 3 and h["objective"] == "ndcg@10"
    assert h["gain"] == pytest.approx(h["best"] - h["baseline"], abs=1e-4)
    assert h["ci95"][0] <= h["gain"] <= h["ci95"][1] and h["level"] == 0.95

    # the patch: the changed keys only, written and parseable; merged into the spec, it loads
    import yaml

    patch = yaml.safe_load(Path(out["patch_file"]).read_text())
    assert patch == (out["patch"] or {}) and out["patch_file"] == str(tmp_path / "tuned.yaml")
    assert "flightdeck tune" in Path(out["patch_file"]).read_text().splitlines()[0]
    # recommended when the best trial beats the spec's settings on the tune part, as here
    assert out["best"]["beats_baseline"] and out["best"]["tune"] > out["baseline"]["tune"]  # keyword_weight 0 is poor
    spec_values = {"fusion": "weighted", "candidates": 20, "keyword_weight": 0.0}
    assert patch == {"retrieval": {"search": {n: v for n, v in out["best"]["params"].items() if v != spec_values[n]}}}

    # the runs table: the study (kind tune) and each trial (kind trial) with its params and tune score
    runs = ExperimentRuns(Project.load(spec).workspace)
    [study] = runs.list("tune")
    trials = runs.list("trial", limit=50)
    assert study.id == out["study_id"] and study.status == "succeeded"
    assert study.params["tuner"] == "grid_random" and study.params["trial_runs"] == [t["run_id"] for t in out["trials"]]
    assert study.metrics["holdout_gain"] == h["gain"] and study.artifacts["patch"] == out["patch_file"]
    assert len(trials) == 7 and {t.params["study"] for t in trials} == {study.id}
    by_number = {t.params["number"]: t for t in trials}
    for t in out["trials"]:
        run = by_number[t["number"]]
        assert run.status == "succeeded" and run.params["params"] == t["params"]
        assert run.metrics["ndcg@10"] == t["value"] and run.index_version


@TREC_EVAL
def test_a_trial_changing_only_query_settings_embeds_nothing(beir_dir: Path, tmp_path: Path,
                                                             fake: FakeEmbedder) -> None:
    spec = write_spec(tmp_path / "project", space="{fusion: [rrf, weighted], rrf_k: [10, 60]}", trials=4)
    out = tune(spec, beir_dir, "--tuner", "grid_random")
    [index] = out["indexes"].values()  # one index for every trial
    chunks = text_hashes(index["folder"])
    # the baseline's index embedded each chunk text once; the 4 trials (2 fusions x 2 rrf_k) embedded nothing
    assert len(fake.embedded_texts) == len(set(fake.embedded_texts)) == len(chunks) == index["embedded"]
    assert {tuple(sorted(t["params"].items())) for t in out["trials"]} == {
        (("fusion", f), ("rrf_k", k)) for f in ("rrf", "weighted") for k in (10, 60)}
    versions = {r.index_version for r in ExperimentRuns(Project.load(spec).workspace).list("trial")}
    assert versions == {index["index_version"]}


@TREC_EVAL
def test_a_new_chunk_size_embeds_only_chunks_not_seen_before(beir_dir: Path, tmp_path: Path,
                                                            fake: FakeEmbedder) -> None:
    spec = write_spec(tmp_path / "project", space="{chunk_size: [128, 48]}", trials=2,
                      extra="  hyperparameter_optimization: [{provider: grid_random, method: grid}]\n")
    out = tune(spec, beir_dir)
    assert out["tuner"] == "grid_random"
    indexes = {ix["folder"]: ix for ix in out["indexes"].values()}
    assert len(indexes) == 2
    base = next(ix for f, ix in indexes.items() if "-128-" in f)
    small = next(ix for f, ix in indexes.items() if "-48-" in f)
    seen, new = text_hashes(base["folder"]), text_hashes(small["folder"])
    assert new - seen and new & seen  # the long document splits anew; the short ones are the same chunks
    # the second chunking embedded exactly the texts the first had not: the shared ones came from the cache
    assert small["embedded"] == len(new - seen) and small["cached"] == len(new & seen)
    assert (small["seeded_from_cache"], small["added_to_cache"]) == (len(seen), len(new - seen))
    assert len(fake.embedded_texts) == len(seen | new) == len(set(fake.embedded_texts))

    # a second study over the same workspaces embeds nothing at all
    before = len(fake.embedded_texts)
    again = tune(spec, beir_dir, "--seed", "1")
    assert len(fake.embedded_texts) == before
    assert all(ix["embedded"] == 0 and ix["added_to_cache"] == 0 for ix in again["indexes"].values())


@TREC_EVAL
def test_the_chunker_is_tuned_with_one_index_each_and_a_whole_entry_in_the_patch(beir_dir: Path, tmp_path: Path,
                                                                                 fake: FakeEmbedder) -> None:
    import yaml

    from flightdeck.data.chunkers.sentence import SentenceConfig

    spec = write_spec(tmp_path / "project", space="{chunker: [recursive, sentence], chunk_size: [128, 48]}",
                      trials=4, extra="  hyperparameter_optimization: [{provider: grid_random, method: grid}]\n")
    out = tune(spec, beir_dir, "--patch", str(tmp_path / "tuned.yaml"))
    tried = {(t["params"]["chunker"], t["params"]["chunk_size"]) for t in out["trials"]}
    assert tried == {(c, s) for c in ("recursive", "sentence") for s in (128, 48)}
    indexes = {ix["folder"]: ix for ix in out["indexes"].values()}
    assert sorted(Path(f).name.rsplit("-", 1)[0] for f in indexes) == [
        "recursive-128-16", "recursive-48-16", "sentence-128-0", "sentence-48-0"]  # the sentence chunker's overlap
    # each chunker split the long document its own way: different chunk texts at the same size
    by_name = {Path(f).name.rsplit("-", 1)[0]: f for f in indexes}
    assert text_hashes(by_name["recursive-48-16"]) != text_hashes(by_name["sentence-48-0"])
    # nothing embedded twice across the four chunkings
    assert len(fake.embedded_texts) == len(set(fake.embedded_texts))
    # the patch: another chunker's whole entry, which validates as that chunker's settings; else only the changes
    patch = yaml.safe_load(Path(out["patch_file"]).read_text()) or {}
    best = out["best"]["params"]
    if best["chunker"] == "sentence" and out["best"]["beats_baseline"]:
        entry = patch["data"]["chunking"]
        assert entry["provider"] == "sentence" and entry["size"] == best["chunk_size"]
        assert SentenceConfig(**{k: v for k, v in entry.items() if k != "provider"}).overlap == 0
    else:
        assert patch.get("data", {}).get("chunking", {}).get("provider", "recursive") == "recursive"


# --- what is refused --------------------------------------------------------------------------------------------
def test_bad_space_keys_are_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    valid = ("candidates, chunk_overlap, chunk_size, chunker, fusion, k, keyword_weight, mode, prompt_template, "
             "query_transformation, rrf_k, temperature, vector_weight")
    for space, message in (
            ("{chunk_sise: [128]}", f"unknown tuning parameter 'chunk_sise'. Tunable: {valid}. Did you mean "
                                    "'chunk_size'?"),
            ("{chunker: [recursive, sentense]}", "chunker: Unknown chunker 'sentense'"),
            ("{keyword_index: [bm25s]}", "'keyword_index' cannot be tuned"),
            ("{query_transformation: [hide]}", "query_transformation: Unknown query_transformation 'hide'"),
            ("{fusion: {low: 1, high: 2}}", "fusion takes a list of choices, not a range"),
            ("{fusion: [rrf, rfr]}", "fusion: Unknown fusion 'rfr'. Available: rrf, weighted"),
            ("{k: [5, 2.5]}", "k: 2.5 is not an integer"),
            ("{chunk_size: [64, 128], chunk_overlap: [0, 32]}", "chunk_overlap up to 32 needs every chunk_size above"),
    ):
        spec = write_spec(tmp_path / "p", space=space)
        with pytest.raises(SpecError) as err:
            Project.load(spec)
        text = "\n".join(str(p) for p in err.value.problems)
        assert message in text and "flightdeck.yaml:8" in text, text
        if "keyword_index" in space:
            assert f"Tunable: {valid}." in text


@TREC_EVAL
def test_a_chunk_size_the_model_cannot_hold_is_refused_before_any_trial(beir_dir: Path, tmp_path: Path,
                                                                        fake: FakeEmbedder) -> None:
    from flightdeck.cli.main import app

    spec = write_spec(tmp_path / "project", space="{chunk_size: [256, 384]}")
    res = CliRunner().invoke(app, ["tune", "--beir", str(beir_dir), "--spec", str(spec), "--json",
                                   "--workspace", str(tmp_path / "ws"), "--tuner", "grid_random"])
    assert res.exit_code == 1, res.output
    error = json.loads(res.stdout)["error"]
    assert "{'chunk_size': 384} cannot be tried" in error
    assert "exceeds the embedding model's maximum sequence length 256" in error
    assert fake.embedded_texts == [] and ExperimentRuns(Project.load(spec).workspace).list() == []


def test_the_cli_needs_a_beir_folder_and_a_space(beir_dir: Path, tmp_path: Path) -> None:
    from flightdeck.cli.main import app

    spec = write_spec(tmp_path / "project")
    res = CliRunner().invoke(app, ["tune", "--spec", str(spec)])
    assert res.exit_code == 2 and "--beir" in res.output
    res = CliRunner().invoke(app, ["tune", "--spec", str(spec), "--beir", str(beir_dir), "--objective", "bleu"])
    assert res.exit_code == 2 and "unknown objective 'bleu'" in res.output
    res = CliRunner().invoke(app, ["tune", "--spec", str(spec), "--beir", str(beir_dir), "--tuner", "optuan",
                                   "--json"])
    assert res.exit_code == 1 and "Unknown tuner 'optuan'. Available: grid_random, hyperopt, optuna, ray_tune. " \
                                  "Did you mean 'optuna'?" in json.loads(res.stdout)["error"]


# --- each tuner through flightdeck tune -------------------------------------------------------------------------
def _tuner_param(name: str, extra: str, module: str, *marks: Any) -> Any:
    # the option's mark is written out by the caller: tests/test_checklist_honesty.py reads marks from the source
    return pytest.param(name, marks=[needs(extra, module), *marks], id=name)


@TREC_EVAL
@pytest.mark.parametrize("tuner", [
    _tuner_param("optuna", "optuna", "optuna", pytest.mark.exercises("model.hyperparameter_optimization.optuna")),
    _tuner_param("hyperopt", "hyperopt", "hyperopt",
                 pytest.mark.exercises("model.hyperparameter_optimization.hyperopt")),
    _tuner_param("grid_random", "dev", "numpy", pytest.mark.exercises("model.hyperparameter_optimization.grid_random")),
    _tuner_param("ray_tune", "ray_tune", "ray", pytest.mark.slow,
                 # a local Ray takes 10-35 s to start here
                 pytest.mark.exercises("model.hyperparameter_optimization.ray_tune")),
])
def test_each_tuner_tunes_a_beir_split(tuner: str, beir_dir: Path, tmp_path: Path, fake: FakeEmbedder) -> None:
    spec = write_spec(tmp_path / "project", trials=6,
                      extra=f"  hyperparameter_optimization: [{tuner}]\n")
    out = tune(spec, beir_dir)
    assert out["tuner"] == tuner and len(out["trials"]) == 6
    assert all(t["state"] == "complete" and 0.0 <= t["value"] <= 1.0 for t in out["trials"])
    assert out["best"]["tune"] == max(t["value"] for t in out["trials"])
    assert out["holdout"]["queries"] == 3 and len(out["holdout"]["ci95"]) == 2
    assert Path(out["patch_file"]).is_file()
    assert len(ExperimentRuns(Project.load(spec).workspace).list("trial")) == 6
    if tuner == "ray_tune":
        import ray

        assert not ray.is_initialized()  # the tuner shut down the Ray it started


@TREC_EVAL
def test_no_patch_when_no_trial_beats_the_spec_on_the_tune_part(beir_dir: Path, tmp_path: Path,
                                                                 fake: FakeEmbedder) -> None:
    # the spec already has the best of this space (a weight of 0 for keywords is poor here): nothing to change
    spec = write_spec(tmp_path / "project", space="{keyword_weight: [0.0]}", trials=2)
    out = tune(spec, beir_dir, "--tuner", "grid_random")
    assert out["best"]["beats_baseline"] is False and out["patch"] == {}
    assert out["holdout"]["gain"] == 0.0 and out["holdout"]["ci95"] == [0.0, 0.0]
    assert "no trial beat the spec's settings" in Path(out["patch_file"]).read_text()


@TREC_EVAL
def test_search_values_out_of_bounds_are_refused_before_any_trial(beir_dir: Path, tmp_path: Path,
                                                                  fake: FakeEmbedder) -> None:
    from flightdeck.cli.main import app

    for space, message in (("{k: [10, 0]}", "k 0 is not a valid retrieval.search.k: Input should be greater than "
                                            "or equal to 1"),
                           ("{mode: [hybrid, semantic]}", "mode 'semantic' is not a valid retrieval.search.mode"),
                           ("{vector_weight: {low: -1, high: 1}}", "vector_weight -1.0 is not a valid")):
        spec = write_spec(tmp_path / "project", space=space)
        res = CliRunner().invoke(app, ["tune", "--beir", str(beir_dir), "--spec", str(spec), "--json",
                                       "--workspace", str(tmp_path / "ws"), "--tuner", "grid_random"])
        assert res.exit_code == 1 and message in json.loads(res.stdout)["error"], res.output
    assert fake.embedded_texts == [] and ExperimentRuns(Project.load(spec).workspace).list() == []
