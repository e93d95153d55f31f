"""``flightdeck tune --set``: tune the project on its own evaluation set (``evaluation.sets``), answers included.

- **Split.** A question is held out when the SHA-256 of its id, read as a fraction of 1, is below
  ``model.tuning.holdout`` (:func:`~flightdeck.evaluation.tuning.split_queries`, as for a BEIR split): the trials
  read only the *tune* part; the *holdout* part is scored once, for the spec's settings and for the best trial.
- **A trial** is the spec with the trial's settings written into it (``retrieval.search``, ``model.generator``'s
  ``temperature`` and ``prompt_template``, ``retrieval.query_transformation`` with ``retrieval.system``), validated
  as ``flightdeck validate`` would validate the file, and opened as a project over the *same* workspace: the index
  that ``flightdeck run`` built is searched with the trial's settings and nothing is re-indexed. Each question of the
  part is then searched and answered as ``flightdeck eval`` does (:func:`~flightdeck.evaluation.runner.evaluate`),
  with the embedder loaded once for the study (query vectors computed once per query) and a generator built once
  per distinct ``model.generator`` setting. A configuration is scored at most once per part.
- **The objective** is the mean over the questions a metric applies to of its per-question value: the retrieval
  metrics at ``evaluation.k`` over the answerable questions with reference sources; the answer-text metrics over
  those with a reference answer; the citation metrics over those with reference sources; groundedness, the
  supported-sentence rate and the judge's metrics over the answerable questions; ``refusal_rate`` over the
  unanswerable ones (1 when refused) and ``false_refusal_rate`` over the answerable ones (1 when refused;
  minimised). An answerable question without a value (refused, failed) counts 0, so a configuration cannot gain by
  refusing the hard questions. This is why a trial's objective can differ from ``flightdeck eval``'s mean of the
  same name, which averages the answered questions only.
- **What is measured** is ``evaluation``'s setting (``k``, ``metrics``, the support threshold), except that the LLM
  judge and the in-process tools run only when the objective is one of theirs; ``evaluation.validations`` suites are
  not run by trials. A trial keeps its questions' answers, scores and prompt records (template, SHA-256, tokens) in
  a JSON file beside the study's patch (``tune/<set>/``), named in the trial's run.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flightdeck.core import stable_hash
from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.metrics import JUDGE_METRICS, LOWER_IS_BETTER, TOOL_METRICS
from flightdeck.evaluation.metrics.retrieval import HIT_KS
from flightdeck.evaluation.runner import EvalOptions, QuestionResult, evaluate
from flightdeck.evaluation.sets import EvalQuestion, EvalSet
from flightdeck.evaluation.tuning import (
    TuneReport,
    _first_error,
    _QueryMemo,
    _space_dict,
    run_study,
    split_queries,
)
from flightdeck.models.trackers.builtin import ExperimentRuns
from flightdeck.models.tuners.base import Categorical, Space, Trial, Tuner, space_from_settings
from flightdeck.registry.categories import Category
from flightdeck.registry.lookup import registry
from flightdeck.spec.tuning import (
    ANSWER_PARAMS,
    NO_TRANSFORMATION,
    SET_OBJECTIVE_AT_K,
    TUNABLE,
    TuningSettings,
    refused_in_mode,
)

__all__ = ["SetConfiguration", "SetObjective", "check_set_objective", "question_values", "applies", "tune_set",
           "REFERENCE_ANSWER_METRICS"]

#: metrics scored against a question's reference answer
REFERENCE_ANSWER_METRICS = frozenset({"exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "answer_similarity",
                                      *TOOL_METRICS["openai_evals"]})
# what an objective needs from evaluation: metric -> (evaluation.metrics family or evaluation.tools entry, the key)
_NEEDS = {**{m: ("f1", "metrics") for m in ("token_f1",)},
          **{m: ("bleu_rouge", "metrics") for m in ("rouge1", "rouge2", "rougeL")},
          "answer_similarity": ("cosine_similarity", "metrics"),
          **{m: ("llm_as_a_judge", "metrics") for m in JUDGE_METRICS},
          **{m: ("openai_evals", "tools") for m in TOOL_METRICS["openai_evals"]}}


def applies(metric: str, q: EvalQuestion) -> bool:
    """Whether ``metric``'s per-question value of question ``q`` counts in the objective (see the module's doc)."""
    if metric == "refusal_rate":
        return not q.answerable
    if not q.answerable:
        return False
    if SET_OBJECTIVE_AT_K.match(metric):
        return q.has_references
    if metric in REFERENCE_ANSWER_METRICS:
        return bool(q.reference_answer)
    if metric in ("citation_precision", "citation_recall"):
        return bool(q.reference_sources)
    return True


def question_values(questions: list[EvalQuestion], results: list[QuestionResult], metric: str
                    ) -> dict[str, dict[str, float]]:
    """Per question ``metric`` applies to: ``{metric: value, **its other scores}``; a missing value counts 0."""
    by_id = {r.id: r for r in results}
    out: dict[str, dict[str, float]] = {}
    for q in questions:
        if not applies(metric, q):
            continue
        r = by_id[q.id]
        if metric in ("refusal_rate", "false_refusal_rate"):
            value = float(not r.found)
        else:
            value = float(r.scores.get(metric, 0.0))
        out[q.id] = {**{k: float(v) for k, v in r.scores.items()}, metric: value}
    return out


def check_set_objective(metric: str, options: EvalOptions, eval_set: EvalSet, where: str) -> int:
    """The objective's sign (+1 maximised, -1 minimised) when ``eval_set`` measured as ``options`` says gives
    ``metric`` a value per question; else a FlightdeckError saying what to set. ``where`` names the spec file."""
    from flightdeck.spec.tuning import OBJECTIVES, SET_OBJECTIVES

    at_k = SET_OBJECTIVE_AT_K.match(metric)
    if at_k:
        family, n = at_k.group(1), int(at_k.group(2))
        depths = sorted({*HIT_KS, options.k}) if family in ("recall", "hit_rate") else [options.k]
        if n not in depths:
            raise FlightdeckError(
                f"{where}: objective {metric} is not measured on an evaluation set: its {family} is taken at "
                f"{', '.join(f'{family}@{d}' for d in depths)} (evaluation.k is {options.k}); set evaluation.k: {n} "
                f"or choose one of those")
    elif metric not in SET_OBJECTIVES:
        raise FlightdeckError(f"{where}: objective {metric} has no value per question of an evaluation set; choose "
                              f"one of {', '.join(SET_OBJECTIVES)} or ndcg, recall, precision, mrr, hit_rate@k"
                              + (" (it is a BEIR objective: flightdeck tune --beir DIR)" if metric in OBJECTIVES
                                 else ""))
    need = _NEEDS.get(metric)
    if need is not None:
        name, key = need
        have = options.families if key == "metrics" else options.tools
        if name not in have:
            raise FlightdeckError(f"{where}: objective {metric} is measured only with {name} in evaluation.{key} "
                                  f"(now: {', '.join(have) or 'none'}); add it there, or choose another objective")
    if not any(applies(metric, q) for q in eval_set.questions):
        what = ("unanswerable questions" if metric == "refusal_rate" else "answerable questions with reference "
                "sources" if at_k or metric.startswith("citation_") else "answerable questions with a reference "
                "answer" if metric in REFERENCE_ANSWER_METRICS else "answerable questions")
        raise FlightdeckError(f"{eval_set.path}: objective {metric} needs {what}, and set {eval_set.name!r} has none")
    return -1 if metric in LOWER_IS_BETTER else 1


@dataclasses.dataclass(frozen=True)
class SetConfiguration:
    """A trial's spec: the trial's ``params`` written into the project's spec and validated (``loaded``)."""

    params: dict[str, Any]
    loaded: Any  # LoadedSpec

    @property
    def spec(self) -> Any:
        return self.loaded.spec

    @property
    def key(self) -> str:
        r = self.spec.retrieval
        qt = r.query_transformation
        return stable_hash([r.search.model_dump(), self.spec.model.generator.model_dump(),
                            None if qt is None else qt.model_dump(), list(r.system or [])])


def _subset(eval_set: EvalSet, ids: list[str]) -> EvalSet:
    wanted = set(ids)
    questions = tuple(q for q in eval_set.questions if q.id in wanted)
    part = EvalSet(eval_set.name, eval_set.path, questions)
    return dataclasses.replace(part, sha256=hashlib.sha256(part.canonical().encode()).hexdigest())


class _Recorded:
    """The trial's project as :func:`evaluate` calls it, keeping what each answer says of its prompt."""

    def __init__(self, system: Any) -> None:
        self.system = system
        self.prompts: dict[str, dict[str, Any]] = {}

    def search(self, query: str, k: int | None = None) -> Any:
        return self.system.search(query, k=k)

    def ask_stream(self, question: str) -> Iterator[Any]:
        for item in self.system.ask_stream(question):
            if hasattr(item, "found") and hasattr(item, "prompt"):
                self.prompts[question] = {"prompt": dict(item.prompt), "usage": dict(item.usage)}
            yield item


class SetObjective:
    """Scores configurations of the project on parts of an evaluation set (one trial spec each, one index).

    ``loaded`` is the project's validated spec; ``open_project(loaded)`` opens a project of a trial's spec over the
    same workspace (the CLI passes ``Project``, and gives each the study's embedder); ``embed`` is the embedder's
    ``embed_documents`` (groundedness and answer similarity); ``options`` how to measure; ``results`` the folder of
    the trials' per-question files."""

    def __init__(self, loaded: Any, eval_set: EvalSet, metric: str, sign: int, options: EvalOptions,
                 embed: Callable[[list[str]], Any], open_project: Callable[[Any], Any], results: Path,
                 embedder: Any = None, reporter: Any = None) -> None:
        self.loaded = loaded
        self.eval_set = eval_set
        self.metric = metric
        self.sign = sign
        self.options = options
        self.embed = _TextVectors(embed)
        self.open_project = open_project
        self.results = Path(results)
        self.reporter = reporter
        self._memo = _QueryMemo(embedder) if embedder is not None else None
        self.scored: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        self.summaries: dict[tuple[str, str], dict[str, float | None]] = {}
        self.files: dict[tuple[str, str], Path] = {}
        self.index_versions: dict[str, str] = {}
        self._generator: Any = None  # the generator that loaded its model (its twins share it)
        self.base = self.configuration({})

    # configurations
    def configuration(self, params: dict[str, Any]) -> SetConfiguration:
        """The project's spec with ``params`` written in, validated as the file would be; a problem raises
        ValueError naming the setting."""
        import yaml

        from flightdeck.spec.loader import check_spec

        raw = _builtin(self.loaded.raw)
        for name, value in params.items():
            _write(raw, name, value, self.loaded.spec)
        loaded, problems = check_spec(self.loaded.path, yaml.safe_dump(raw, sort_keys=False))
        if problems:
            raise ValueError("; ".join(f"{p.location}: {p.message}" if p.location else p.message for p in problems))
        return SetConfiguration(dict(params), loaded)

    def preflight(self, space: Space) -> None:
        """Every value the space can reach (each list value, each range's ends), checked before the first trial:
        a setting this mode cannot vary, a value the spec refuses, an answer setting of a generator that writes no
        text, a template that does not load."""
        from flightdeck.models.generators.base import LlmSettings
        from flightdeck.models.generators.templates import load_template
        from flightdeck.spec.rules import LLM_GENERATORS

        where = f"{self.loaded.path}: model.tuning.space"
        try:
            refused_in_mode(space, "set")
        except ValueError as exc:
            raise FlightdeckError(f"{self.loaded.path}: {exc}") from None
        provider = self.loaded.spec.model.generator.provider
        for name in space:
            if name in ANSWER_PARAMS and provider not in LLM_GENERATORS:
                raise FlightdeckError(f"{where}: {name} sets how an LLM writes its answers; model.generator is "
                                      f"'{provider}', which writes none. Set model.generator to llama_cpp (local "
                                      "GGUF), openai or anthropic, or leave it out of the space")
            p = space[name]
            for value in (list(p.choices) if isinstance(p, Categorical) else [p.low, p.high]):
                try:
                    self.configuration({name: value})
                except ValueError as exc:
                    raise FlightdeckError(f"{where}: {name} {value!r} cannot be tried ({TUNABLE[name][1]}): "
                                          f"{_first_error(exc)}") from None
                if name == "prompt_template" and value is not None:
                    ref = LlmSettings.resolve_relative({"prompt_template": value},
                                                       self.loaded.base_dir)["prompt_template"]
                    try:
                        load_template(ref)
                    except FlightdeckError as exc:
                        raise FlightdeckError(f"{where}: prompt_template {value!r} cannot be tried: {exc}") from None

    # scoring
    def _project(self, config: SetConfiguration) -> Any:
        """The trial's project over the workspace, with the study's embedder and the trial's generator."""
        project = self.open_project(config.loaded)
        if self._memo is not None:
            project.use(embedder=self._memo)
        twin = self._answer_twin(project, config)
        if twin is not None:
            project.use(generator=twin)
        else:
            if self._generator is not None:  # one model held at a time
                _close(self._generator)
            self._generator = project.generator  # built from the trial's spec
        return project

    def _answer_twin(self, project: Any, config: SetConfiguration) -> Any:
        """The held LLM generator with the trial's answer settings (temperature, prompt template…), sharing its
        loaded model, when the trial's ``model.generator`` differs from it only in those; else None. The settings
        are the trial's, resolved from the spec's folder and validated by the provider's config class."""
        from flightdeck.models.generators.base import LlmSettings

        held, ref = self._generator, config.spec.model.generator
        if held is None or not callable(getattr(held, "with_settings", None)):
            return None
        if registry().config_class(Category.GENERATOR, ref.provider) is not type(held.config):
            return None
        wanted = type(held.config).model_validate(project.assembly.provider_settings(Category.GENERATOR, ref))
        answer = set(LlmSettings.model_fields)
        if ({k: v for k, v in wanted.model_dump().items() if k not in answer}
                != {k: v for k, v in held.config.model_dump().items() if k not in answer}):
            return None
        return held.with_settings(**{name: getattr(wanted, name) for name in answer})

    def scores(self, config: SetConfiguration, ids: list[str], split: str) -> dict[str, dict[str, float]]:
        """Per question of ``ids`` the objective applies to: the metrics measured (the objective's counting 0 when
        missing); the part is searched and answered once per configuration."""
        memo_key = (config.key, split)
        if memo_key in self.scored:
            return self.scored[memo_key]
        part = _subset(self.eval_set, ids)
        project = self._project(config)
        system = _Recorded(project)
        try:
            # retrieval scored on the hits the trial's k returns, not the spec's
            options = dataclasses.replace(self.options, search_k=config.spec.retrieval.search.k)
            result = evaluate(system, part, self.embed, options, self.reporter)
            generator = project.generator
            settings = {"provider": config.spec.model.generator.provider,
                        **getattr(getattr(generator, "config", None), "model_dump", dict)()}
        finally:
            project.workspace.close()
        errors = [r for r in result.questions if r.error]
        if errors and len(errors) == len(result.questions):
            raise FlightdeckError(f"every question of the {split} part failed; the first, {errors[0].id}: "
                                  f"{errors[0].error}")
        values = question_values(list(part.questions), result.questions, self.metric)
        self.scored[memo_key] = values
        self.summaries[memo_key] = dict(result.metrics)
        self.index_versions[config.key] = result.index_version
        self.results.mkdir(parents=True, exist_ok=True)
        path = self.results / f"{config.key[:12]}-{split}.json"
        rows = [{"id": r.id, "question": r.question, "outcome": r.outcome, "answer": r.answer, "found": r.found,
                 "error": r.error, "scores": r.scores, "objective": values.get(r.id, {}).get(self.metric),
                 **system.prompts.get(r.question, {})} for r in result.questions]
        path.write_text(json.dumps({"split": split, "objective": self.metric, "params": config.params,
                                    "generator": settings, "search": config.spec.retrieval.search.model_dump(),
                                    "metrics": result.metrics, "questions": rows}, indent=1, default=str))
        self.files[memo_key] = path
        return values

    def summary(self, config: SetConfiguration, split: str) -> dict[str, float | None]:
        return self.summaries[(config.key, split)]

    def describe(self, config: SetConfiguration) -> dict[str, Any]:
        r = config.spec.retrieval
        return {"search": r.search.model_dump(), "generator": config.spec.model.generator.model_dump(),
                "query_transformation": None if r.query_transformation is None else r.query_transformation.model_dump()}

    def index_version(self, config: SetConfiguration) -> str | None:
        return self.index_versions.get(config.key) or None

    def artifacts(self, config: SetConfiguration, split: str) -> dict[str, Path]:
        path = self.files.get((config.key, split))
        return {"results.json": path} if path is not None else {}

    def patch(self, best: SetConfiguration) -> dict[str, Any]:
        """The spec keys ``best`` changes: ``retrieval.search`` fields, ``model.generator``'s answer settings (with
        its provider, so the entry stays whole), ``retrieval.query_transformation`` with ``retrieval.system``."""
        base, patch = self.base.spec, {}
        before, after = base.retrieval.search.model_dump(), best.spec.retrieval.search.model_dump()
        search = {k: v for k, v in after.items() if before.get(k) != v}
        if search:
            patch.setdefault("retrieval", {})["search"] = search
        answer = {field: _generator_value(best.spec, field) for field in ANSWER_PARAMS.values()
                  if _generator_value(best.spec, field) != _generator_value(base, field)}
        if answer:
            patch["model"] = {"generator": {"provider": best.spec.model.generator.provider, **answer}}
        qt_before, qt_after = base.retrieval.query_transformation, best.spec.retrieval.query_transformation
        if (qt_before and qt_before.model_dump()) != (qt_after and qt_after.model_dump()):
            patch.setdefault("retrieval", {})["query_transformation"] = qt_after and qt_after.model_dump()
            patch["retrieval"]["system"] = list(best.spec.retrieval.system or [])
        return patch

    def indexes(self) -> dict[str, Any]:
        versions = sorted(set(self.index_versions.values()) - {""})
        return {"index_versions": versions}

    def close(self) -> None:
        if self._generator is not None:
            _close(self._generator)
            self._generator = None


class _TextVectors:
    """``embed`` with each text embedded once for the whole study: every trial measures groundedness and answer
    similarity against the same chunk texts and reference answers."""

    def __init__(self, embed: Callable[[list[str]], Any]) -> None:
        self._embed = embed
        self._vectors: dict[str, Any] = {}

    def __call__(self, texts: list[str]) -> Any:
        import numpy as np

        todo = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if todo:
            self._vectors.update(zip(todo, self._embed(todo), strict=True))
        if not texts:
            return self._embed([])
        return np.stack([self._vectors[t] for t in texts])


def _builtin(value: Any) -> Any:
    """A deep copy of the spec's values as plain Python types (the YAML reader's scalars are subclasses of them that
    the YAML writer refuses)."""
    if isinstance(value, dict):
        return {str(k): _builtin(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_builtin(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return copy.deepcopy(value)


def _close(generator: Any) -> None:
    close = getattr(generator, "close", None)
    if callable(close):
        close()


def _generator_value(spec: Any, field: str) -> Any:
    """``model.generator``'s setting ``field`` as it takes effect: the spec's value, else the provider's default."""
    ref = spec.model.generator
    if field in ref.settings:
        return ref.settings[field]
    config = registry().config_class(Category.GENERATOR, ref.provider)
    info = getattr(config, "model_fields", {}).get(field)
    return None if info is None else info.default


def _write(raw: dict[str, Any], name: str, value: Any, spec: Any) -> None:
    """Write space key ``name``'s ``value`` into the plain spec ``raw`` where the spec keeps it."""
    where = TUNABLE[name][1].split(".")
    if where[:2] == ["retrieval", "search"]:
        retrieval = raw.setdefault("retrieval", {}) or {}
        raw["retrieval"] = retrieval
        search = retrieval.get("search") or {}
        retrieval["search"] = {**search, where[2]: value}
    elif name in ANSWER_PARAMS:
        model = raw.setdefault("model", {}) or {}
        raw["model"] = model
        ref = model.get("generator") or spec.model.generator.provider
        ref = {"provider": ref} if isinstance(ref, str) else dict(ref)
        model["generator"] = {**ref, ANSWER_PARAMS[name]: value}
    elif name == "query_transformation":
        retrieval = raw.setdefault("retrieval", {}) or {}
        raw["retrieval"] = retrieval
        system = [s for s in (retrieval.get("system") or spec.retrieval.system or []) if s != "query_transformation"]
        if value in (None, NO_TRANSFORMATION):
            retrieval["query_transformation"] = None
        else:
            current = spec.retrieval.query_transformation
            # the spec's own settings of this transformation (queries: 3…) stay; another one starts from its defaults
            retrieval["query_transformation"] = (current.model_dump() if current is not None
                                                 and current.provider == value else {"provider": value})
            system.append("query_transformation")
        retrieval["system"] = system
    else:
        raise ValueError(f"{name} is not a setting of an evaluation set's trial")


def tune_set(eval_set: EvalSet, *, loaded: Any, tuning: TuningSettings, tuner: Tuner, tuner_name: str,
             options: EvalOptions, embed: Callable[[list[str]], Any], open_project: Callable[[Any], Any],
             runs: ExperimentRuns, spec_hash: str, results: Path, embedder: Any = None, git_commit: str | None = None,
             patch_path: Path | None = None, set_id: str | None = None, reporter: Any = None, trackers: Any = (),
             on_trial: Callable[[Trial], None] | None = None) -> TuneReport:
    """Tune the project of ``loaded`` on ``eval_set``: trials on the tune part of its questions, the best scored
    once on the holdout part beside the spec's settings, the gain with a paired 95 % bootstrap interval. Every
    trial is a ``trial`` run and the study a ``tune`` run of ``runs`` (and of ``trackers``); the spec patch is
    written to ``patch_path`` (default ``<results>/<study id>.patch.yaml``). ``options.limit`` keeps the first N
    questions of the set before it is split."""
    t0 = time.perf_counter()
    where = str(loaded.path)
    if not tuning.space:
        raise FlightdeckError(f"{where}: model.tuning.space is empty; give the settings to tune, e.g. model: {{tuning: "
                              "{space: {candidates: [50, 100, 200], temperature: [0.0, 0.7]}}}")
    questions = eval_set.questions[: options.limit] if options.limit else eval_set.questions
    eval_set = dataclasses.replace(eval_set, questions=tuple(questions))
    sign = check_set_objective(tuning.objective, options, eval_set, where)
    metric = tuning.objective
    measured = dataclasses.replace(  # the judge and the tools cost minutes per trial: only for their objectives
        options, limit=None, judge=options.judge if metric in JUDGE_METRICS else None,
        tools=tuple(t for t in options.tools if metric in TOOL_METRICS.get(t, ())))
    tune_ids, holdout_ids = split_queries([q.id for q in eval_set.questions], tuning.holdout)
    for part, ids in (("tune", tune_ids), ("holdout", holdout_ids)):
        if not any(applies(metric, q) for q in eval_set.questions if q.id in set(ids)):
            raise FlightdeckError(f"{eval_set.path}: the {part} part ({len(ids)} questions, by hashed id) has no "
                                  f"question that {metric} applies to; use a larger set or another --holdout")
    objective = SetObjective(loaded, eval_set, metric, sign, measured, embed, open_project, results, embedder,
                             reporter)
    try:
        objective.preflight(space_from_settings(_space_dict(tuning.space), {n: t for n, (t, _) in TUNABLE.items()}))
    except BaseException:
        objective.close()
        raise
    report = run_study(objective, tuning=tuning, tuner=tuner, tuner_name=tuner_name, name=f"set:{eval_set.name}",
                       label=eval_set.name, split="questions", tune_ids=tune_ids, holdout_ids=holdout_ids, runs=runs,
                       spec_hash=spec_hash, study_params={"set": eval_set.name, "set_path": eval_set.path,
                                                          "limit": options.limit, "k": measured.k,
                                                          "families": list(measured.families)},
                       patch_path=patch_path, patch_dir=results, git_commit=git_commit, eval_set=set_id, mode="set",
                       noun="questions", trackers=trackers, on_trial=on_trial)
    report.seconds = round(time.perf_counter() - t0, 2)
    return report
