"""``flightdeck tune`` on a BEIR split: a tuner proposes retrieval settings, each is scored on the *tune* queries, and
the best is scored once on the *holdout* queries beside the spec's own settings, with a bootstrap interval.

- **Split.** A judged query is held out when the SHA-256 of its id, read as a fraction of 1, is below ``holdout``
  (0.2): deterministic, independent of the other queries and of their order.
- **One index per chunking.** A trial that varies only query-time settings (``k``, ``candidates``, ``mode``,
  ``fusion``, ``rrf_k``, the weights) searches the index of its chunking with those settings: a searcher is built
  over that index with other ``retrieval.search`` settings, nothing is re-indexed or re-embedded. A chunking
  (``chunker``, ``chunk_size``, ``chunk_overlap``) gets its own workspace, keyed by its settings, built once by the
  ordinary pipeline. The workspaces share one embeddings cache (``embeddings.db`` beside them, the workspace table's
  layout: model id and text hash): it is copied into a new workspace before its run and the new vectors back
  after, so a new chunking embeds only the chunk texts no chunking had before. Query vectors are computed once
  per query for the whole study.
- **Scores.** Each query is searched as it would be served (the trial's ``k`` and ``mode``); chunk hits become
  document hits (best chunk first) and pytrec_eval scores them per query: ``ndcg@10``, ``recall@100``, ``mrr@10``.
  A configuration is scored at most once per split.
- **Records.** The study is a run of kind ``tune`` in the runs table, each trial a run of kind ``trial`` with its
  params and tune score; the spec patch (the changed keys, YAML) is written where asked and kept with the study.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import insert, select

from flightdeck.core import stable_hash
from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.beir import BeirDataset, beir_spec, trec_eval
from flightdeck.models.trackers.builtin import ExperimentRuns
from flightdeck.models.tuners.base import Space, Trial, Tuner, best_trial, space_from_settings
from flightdeck.registry.categories import Category
from flightdeck.registry.lookup import registry
from flightdeck.spec.tuning import CHUNKING_PARAMS, OBJECTIVES, TUNABLE, TuningSettings, refused_in_mode
from flightdeck.workspace.db import open_engine
from flightdeck.workspace.schema import embeddings

__all__ = ["split_queries", "per_query_scores", "bootstrap_gain", "spec_patch", "patch_yaml", "tuner_for",
           "EmbeddingsCache", "Configuration", "BeirObjective", "TuneReport", "StudyObjective", "run_study", "track",
           "require_beir", "tune_beir", "describe_params", "DEFAULT_TUNER"]

DEFAULT_TUNER = "optuna"
_FLOAT_DIGITS = 4  # float settings are tried, recorded and written with 4 decimals
_COPY_ROWS = 2000


# --- the split and the scores ---------------------------------------------------------------------------------
def split_queries(qids: list[str], holdout: float) -> tuple[list[str], list[str]]:
    """``(tune, holdout)``: a query is held out when sha256(query id) / 2**256 < ``holdout``."""
    if not 0.0 < holdout < 1.0:
        raise FlightdeckError(f"holdout must be between 0 and 1 (a share of the queries), got {holdout}")
    tune, held = [], []
    for qid in qids:
        fraction = int.from_bytes(hashlib.sha256(str(qid).encode()).digest(), "big") / 2 ** 256
        (held if fraction < holdout else tune).append(qid)
    if not tune or not held:
        raise FlightdeckError(f"{len(qids)} judged queries split {len(tune)} / {len(held)} (tune / holdout) with "
                              f"holdout {holdout}: both parts need queries; use a split with more judged queries "
                              "or another --holdout")
    return tune, held


def per_query_scores(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
                     ) -> dict[str, dict[str, float]]:
    """Per judged query: ``ndcg@10``, ``recall@100``, ``mrr@10`` (pytrec_eval; their means are
    :func:`flightdeck.evaluation.beir.evaluate_run`'s). A query with nothing retrieved scores 0."""
    pytrec_eval = trec_eval()
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {q: {"ndcg@10": full.get(q, {}).get("ndcg_cut_10", 0.0),
                "recall@100": full.get(q, {}).get("recall_100", 0.0),
                "mrr@10": mrr.get(q, {}).get("recip_rank", 0.0)} for q in qrels}


def bootstrap_gain(best: list[float], baseline: list[float], seed: int, resamples: int = 10000,
                   level: float = 0.95) -> dict[str, Any]:
    """The mean per-query gain ``best - baseline`` and its paired percentile bootstrap interval (queries resampled
    with replacement, numpy seeded with ``seed``)."""
    import numpy as np

    diffs = np.asarray(best, dtype=float) - np.asarray(baseline, dtype=float)
    if diffs.size == 0:
        raise FlightdeckError("no holdout queries to compare on")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # in blocks: resamples x queries indices at once could be large
        n = min(1000, resamples - start)
        means[start:start + n] = diffs[rng.integers(0, diffs.size, size=(n, diffs.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"gain": round(float(diffs.mean()), 5), "ci95": [round(float(low), 5), round(float(high), 5)],
            "level": level, "resamples": resamples, "queries": int(diffs.size),
            "share_of_resamples_le_0": round(float((means <= 0).mean()), 4),
            "improved": int((diffs > 0).sum()), "worsened": int((diffs < 0).sum())}


# --- configurations -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Configuration:
    """What a trial searches with: the chunking (provider and settings) and the ``retrieval.search`` settings."""

    chunking: dict[str, Any]
    search: Any  # SearchSettings

    @property
    def chunking_key(self) -> str:
        return stable_hash(self.chunking)[:12]

    @property
    def key(self) -> str:
        return stable_hash([self.chunking, self.search.model_dump()])


def _search_field(name: str) -> str:
    return TUNABLE[name][1].rsplit(".", 1)[1]


def _normal(params: dict[str, Any]) -> dict[str, Any]:
    """Params as tried and recorded: floats with 4 decimals, numpy scalars as Python numbers."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        value = value.item() if hasattr(value, "item") else value
        if TUNABLE.get(name, (None,))[0] is float:
            value = round(float(value), _FLOAT_DIGITS)
        elif TUNABLE.get(name, (None,))[0] is int:
            value = int(value)
        out[name] = value
    return out


def spec_patch(base: Configuration, best: Configuration) -> dict[str, Any]:
    """The spec keys that ``best`` changes from ``base``, nested as in the spec (``data.chunking`` keeps its
    ``provider`` so that the patch is a whole provider entry; another chunker's entry is given whole, with every
    setting it was tried with: it replaces the spec's ``data.chunking``)."""
    patch: dict[str, Any] = {}
    changed = {k: v for k, v in best.chunking.items() if base.chunking.get(k) != v}
    if best.chunking.get("provider") != base.chunking.get("provider"):
        patch["data"] = {"chunking": dict(best.chunking)}
    elif changed:
        patch["data"] = {"chunking": {"provider": best.chunking["provider"],
                                      **{k: v for k, v in changed.items() if k != "provider"}}}
    before, after = base.search.model_dump(), best.search.model_dump()
    search = {k: v for k, v in after.items() if before.get(k) != v}
    if search:
        patch["retrieval"] = {"search": search}
    return patch


def patch_yaml(patch: dict[str, Any], comment: str = "") -> str:
    """The patch as YAML (a comment first); an empty patch says the spec is already the best found."""
    import yaml

    head = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    if not patch:
        return head + "# no change: the spec's settings scored best\n{}\n"
    return head + yaml.safe_dump(patch, sort_keys=False, default_flow_style=False)


def tuner_for(name: str | None, refs: list[Any] | None = None) -> tuple[str, Tuner]:
    """The tuner ``name`` (with its settings from ``model.hyperparameter_optimization`` when listed there), else the
    first listed there, else :data:`DEFAULT_TUNER`."""
    refs = list(refs or [])
    chosen = next((r for r in refs if r.provider == name), None) if name else (refs[0] if refs else None)
    provider = name or (chosen.provider if chosen is not None else DEFAULT_TUNER)
    settings = dict(chosen.settings) if chosen is not None else {}
    return provider, registry().create(Category.TUNER, provider, settings)


# --- the embeddings cache shared by the chunkings' workspaces --------------------------------------------------
class EmbeddingsCache:
    """One SQLite file of chunk vectors by (model id, text hash), the layout of a workspace's ``embeddings`` table:
    :meth:`seed` copies it into a workspace before its run (the embed step then skips those texts), :meth:`keep`
    copies a workspace's new vectors back after. A workspace's table so holds every vector of the study (about
    1.5 kB each for a 384-d model): the chunks do not exist before the run, so what they will need is not known
    when the vectors are copied, and the embed step must find every text any chunking has embedded."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.engine = open_engine(self.path)
        embeddings.create(self.engine, checkfirst=True)

    @staticmethod
    def _copy(source: Any, target: Any, model_id: str | None) -> int:
        """Copy ``source``'s vectors (of ``model_id``, or all) that ``target`` lacks; returns how many."""

        def only(query: Any) -> Any:
            return query if model_id is None else query.where(embeddings.c.model_id == model_id)

        with target.connect() as conn:
            have = {(r[0], r[1]) for r in conn.execute(only(select(embeddings.c.model_id, embeddings.c.text_hash)))}
        copied = 0
        with source.connect() as src:
            rows = src.execution_options(yield_per=_COPY_ROWS).execute(only(select(embeddings)))
            for batch in rows.partitions(_COPY_ROWS):
                todo = [dict(r._mapping) for r in batch if (r.model_id, r.text_hash) not in have]
                if todo:
                    with target.begin() as conn:
                        conn.execute(insert(embeddings).prefix_with("OR IGNORE"), todo)
                    copied += len(todo)
        return copied

    def seed(self, workspace: Any, model_id: str) -> int:
        """Copy this model's cached vectors that ``workspace`` lacks into it; returns how many."""
        return self._copy(self.engine, workspace.engine, model_id)

    def keep(self, workspace: Any) -> int:
        """Copy ``workspace``'s vectors that the cache lacks into it; returns how many."""
        return self._copy(workspace.engine, self.engine, None)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(embeddings.c.text_hash)).all())

    def close(self) -> None:
        self.engine.dispose()


class _QueryMemo:
    """The project's embedder with each query embedded once for the whole study (trials repeat the queries)."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self._vectors: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        return str(self._embedder.model_id)

    def embed_query(self, text: str) -> Any:
        if text not in self._vectors:
            self._vectors[text] = self._embedder.embed_query(text)
        return self._vectors[text]

    def embed_documents(self, texts: list[str]) -> Any:
        return self._embedder.embed_documents(texts)

    def __getattr__(self, name: str) -> Any:  # dimension, max_tokens, model_dir…
        return getattr(self._embedder, name)


@dataclass
class _Index:
    folder: Path
    project: Any
    index_version: str
    built: dict[str, Any] = field(default_factory=dict)


class BeirObjective:
    """Scores configurations on subsets of a BEIR split's judged queries, indexing each chunking once.

    ``open_project(spec_path)`` loads a project (the CLI passes ``Project.load``; a test adds ``.use(embedder=…)``);
    ``settings`` are what :func:`~flightdeck.evaluation.beir.beir_spec` takes besides the chunking (``search``,
    ``embedding_model``, ``vector_database``).
    """

    sign = 1  # every BEIR objective is maximised

    def __init__(self, dataset: BeirDataset, root: Path, open_project: Callable[[Path], Any],
                 settings: dict[str, Any], base: Configuration, reporter: Any = None,
                 metric: str = "ndcg@10") -> None:
        self.dataset = dataset
        self.metric = metric
        self.root = Path(root)
        self.open_project = open_project
        self.settings = settings
        self.base = base
        self.reporter = reporter
        self.indexes_built: dict[str, _Index] = {}
        self.scored: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        self.evaluations: list[tuple[str, str]] = []  # (configuration key, split) in the order they were scored
        self._embedder: Any = None
        self._memo: _QueryMemo | None = None
        self._cache: EmbeddingsCache | None = None

    # configurations
    def configuration(self, params: dict[str, Any]) -> Configuration:
        """``params`` (space names) applied over the base configuration; invalid combinations raise ValueError."""
        from flightdeck.spec.models import SearchSettings

        chunking = dict(self.base.chunking)
        provider = params.get("chunker", chunking["provider"])
        if provider != chunking["provider"]:  # another chunker: its own defaults, the spec's size (the same meaning)
            other = registry().config_class(Category.CHUNKER, provider)
            shared = {"size": chunking["size"]} if "size" in chunking else {}
            chunking = {"provider": provider, **(other(**shared).model_dump() if other is not None else shared)}
        search = self.base.search.model_dump()
        for name, value in params.items():
            if name == "chunker":
                continue
            if name in CHUNKING_PARAMS:
                chunking[CHUNKING_PARAMS[name]] = value
            else:
                search[_search_field(name)] = value
        config_cls = registry().config_class(Category.CHUNKER, chunking["provider"])
        if config_cls is not None:
            config_cls(**{k: v for k, v in chunking.items() if k != "provider"})  # raises what the spec would say
        return Configuration(chunking, SearchSettings(**search))

    def spec_text(self, chunking: dict[str, Any]) -> str:
        return beir_spec(self.dataset, {**self.settings, "chunking": chunking})

    def folder(self, chunking: dict[str, Any]) -> Path:
        readable = "-".join(str(chunking.get(k, "")) for k in ("provider", "size", "overlap"))
        return self.root / f"{readable}-{stable_hash(chunking)[:8]}"

    def preflight(self, space: Space) -> None:
        """Check every value the space can reach (each list value, each range's ends) as ``flightdeck validate``
        would check it in the spec, before the first trial: ``k: [0]`` or a chunk size the embedding model cannot
        hold is said now, not at trial 7."""
        import itertools

        from flightdeck.models.tuners.base import Categorical
        from flightdeck.spec.loader import check_spec

        def reach(name: str) -> list[Any]:
            p = space[name]
            return list(p.choices) if isinstance(p, Categorical) else [p.low, p.high]

        for name in (n for n in space if n not in CHUNKING_PARAMS):  # retrieval.search's bounds and choices
            for value in reach(name):
                try:
                    self.configuration({name: value})
                except ValueError as exc:
                    raise FlightdeckError(f"model.tuning.space: {name} {value!r} is not a valid "
                                          f"{TUNABLE[name][1]}: {_first_error(exc)}") from None
        names = [n for n in space if n in CHUNKING_PARAMS]
        if not names:
            return
        values = [reach(n) for n in names]
        for combo in itertools.product(*values):
            params = dict(zip(names, combo, strict=True))
            try:
                config = self.configuration(params)
            except ValueError as exc:
                raise FlightdeckError(f"model.tuning.space: {params} cannot be tried: {_first_error(exc)}") from None
            _, problems = check_spec(self.root / "flightdeck.yaml", self.spec_text(config.chunking))
            if problems:
                raise FlightdeckError(f"model.tuning.space: {params} cannot be tried: "
                                      + "; ".join(p.message for p in problems))

    # indexes
    def cache(self) -> EmbeddingsCache:
        if self._cache is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._cache = EmbeddingsCache(self.root / "embeddings.db")
        return self._cache

    def index(self, chunking: dict[str, Any]) -> _Index:
        """The index of ``chunking``: its workspace's, built (or brought up to date) on first use."""
        key = stable_hash(chunking)
        if key in self.indexes_built:
            return self.indexes_built[key]
        folder = self.folder(chunking)
        folder.mkdir(parents=True, exist_ok=True)
        spec_path = folder / "flightdeck.yaml"
        text = self.spec_text(chunking)
        if not spec_path.is_file() or spec_path.read_text() != text:
            spec_path.write_text(text)
        project = self.open_project(spec_path)
        if self._embedder is not None:
            project.use(embedder=self._embedder)  # one model for every chunking
        embedder = project.embedder
        cache = self.cache()
        t0 = time.perf_counter()
        seeded = cache.seed(project.workspace, embedder.model_id)
        summary = project.run(self.reporter) if self.reporter is not None else project.run()
        if summary.status != "succeeded":
            raise FlightdeckError(f"{spec_path}: the index build {summary.status}: {summary.error or ''}")
        kept = cache.keep(project.workspace)
        counts = {s.step: s.counts for s in summary.steps}
        embed = counts.get("embed", {})
        index = _Index(folder, project, project.searcher.index_version(), {
            "seconds": round(time.perf_counter() - t0, 2), "embedded": embed.get("embedded", 0),
            "cached": embed.get("cached", 0), "seeded_from_cache": seeded, "added_to_cache": kept,
            "steps": {s.step: s.status for s in summary.steps}})
        self._embedder = embedder
        self.indexes_built[key] = index
        return index

    def searcher(self, config: Configuration) -> tuple[Any, _Index]:
        from flightdeck.retrieval.fusion import fusion_for
        from flightdeck.retrieval.keyword import keyword_index_for
        from flightdeck.retrieval.search import HybridSearcher

        index = self.index(config.chunking)
        project = index.project
        if self._memo is None:
            self._memo = _QueryMemo(project.embedder)
        ws = project.workspace
        return HybridSearcher(ws, self._memo, project.store_factory(), config.search,
                              keyword_index_for(config.search, ws, str(project.spec_path)),
                              fusion_for(config.search)), index

    # scores
    def scores(self, config: Configuration, qids: list[str], split: str) -> dict[str, dict[str, float]]:
        """Per query of ``qids`` (named ``split``): the three metrics of ``config``, computed once per split."""
        memo_key = (config.key, split)
        if memo_key in self.scored:
            return self.scored[memo_key]
        searcher, _ = self.searcher(config)
        run: dict[str, dict[str, float]] = {}
        for qid in qids:
            result = searcher.search(self.dataset.queries[qid])
            docs: dict[str, float] = {}
            for rank, hit in enumerate(result.hits):
                doc = hit.document_id.rsplit("#", 1)[-1]  # records are "<source>/<file>#<record id>"
                if doc not in docs:
                    docs[doc] = float(len(result.hits) - rank)  # decreasing: pytrec_eval ranks by score
            run[qid] = docs
        scores = per_query_scores({q: self.dataset.qrels[q] for q in qids}, run)
        self.scored[memo_key] = scores
        self.evaluations.append(memo_key)
        return scores

    def summary(self, config: Configuration, split: str) -> dict[str, float | None]:
        scores = self.scored[(config.key, split)]
        return {m: _mean(scores, m) for m in OBJECTIVES}

    def describe(self, config: Configuration) -> dict[str, Any]:
        return {"chunking": config.chunking, "search": config.search.model_dump()}

    def index_version(self, config: Configuration) -> str | None:
        return self.index(config.chunking).index_version

    def patch(self, best: Configuration) -> dict[str, Any]:
        return spec_patch(self.base, best)

    def artifacts(self, config: Configuration, split: str) -> dict[str, Path]:
        return {}

    def indexes(self) -> dict[str, Any]:
        return {key: {"folder": str(ix.folder), "index_version": ix.index_version, **ix.built}
                for key, ix in self.indexes_built.items()}

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        for index in self.indexes_built.values():
            index.project.workspace.close()


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e.get("msg", e)) for e in errors())
    return str(exc)


def _mean(scores: dict[str, dict[str, float]], metric: str) -> float:
    return round(sum(s[metric] for s in scores.values()) / len(scores), 5) if scores else 0.0


# --- the study ------------------------------------------------------------------------------------------------
@dataclass
class TuneReport:
    """What ``flightdeck tune`` did: every trial, the best, the holdout comparison and the spec patch.

    ``mode`` is ``beir`` (judged queries of a BEIR split) or ``set`` (the questions of an evaluation set);
    ``direction`` is ``maximise`` or ``minimise`` (the objective's). Trial values and the ``tune``/``holdout`` means
    are the objective's own values; the holdout ``gain`` is the improvement (best − baseline when maximised,
    baseline − best when minimised), with its paired bootstrap interval."""

    study_id: str
    dataset: str
    split: str
    tuner: str
    objective: str
    seed: int
    queries: dict[str, int]
    space: dict[str, Any]
    baseline: dict[str, Any]
    best: dict[str, Any]
    holdout: dict[str, Any]
    trials: list[dict[str, Any]]
    patch: dict[str, Any]
    patch_yaml: str
    patch_file: str
    indexes: dict[str, Any]
    seconds: float
    mode: str = "beir"
    direction: str = "maximise"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StudyObjective(Protocol):
    """What a study scores: configurations (a ``key`` each) built from a trial's params over ``base``, each scored
    per query or question of a part (``tune`` or ``holdout``), at most once per part."""

    base: Any
    metric: str  # the objective's name
    sign: int  # +1: maximised, -1: minimised

    def configuration(self, params: dict[str, Any]) -> Any: ...

    def scores(self, config: Any, ids: list[str], split: str) -> dict[str, dict[str, float]]:
        """Per id of ``ids``: the metrics measured (the objective's among them)."""
        ...

    def summary(self, config: Any, split: str) -> dict[str, float | None]:
        """The metrics of a trial's run: those of ``config`` scored on ``split``."""
        ...

    def describe(self, config: Any) -> dict[str, Any]:
        """The settings of ``config`` as the report and the trial's run show them."""
        ...

    def index_version(self, config: Any) -> str | None: ...

    def patch(self, best: Any) -> dict[str, Any]:
        """The spec keys ``best`` changes from the base, nested as in the spec."""
        ...

    def artifacts(self, config: Any, split: str) -> dict[str, Path]:
        """Files to keep with a trial's run (and hand to the trackers); may be empty."""
        ...

    def indexes(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _space_dict(space: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list | tuple) else v.model_dump()) for k, v in space.items()}


def track(runs: ExperimentRuns, run: Any, trackers: Any, files: dict[str, Path] | None = None) -> None:
    """Hand a finished run to each tracker of ``model.experiment_tracking`` (as ``flightdeck eval`` does): where it
    went is kept in the run's ``tracked``; a tracker that fails is recorded as ``error: …`` and stops nothing."""
    if not trackers:
        return
    for tracker in trackers:
        try:
            run.tracked[tracker.name] = tracker.log_run(run, dict(files or {}))
        except Exception as exc:  # noqa: BLE001 - the run is in the built-in table: a tracker that is down loses nothing
            run.tracked[tracker.name] = f"error: {type(exc).__name__}: {exc}"
    runs.finish(run)


def run_study(objective: StudyObjective, *, tuning: TuningSettings, tuner: Tuner, tuner_name: str, name: str,
              label: str, split: str, tune_ids: list[str], holdout_ids: list[str], runs: ExperimentRuns,
              spec_hash: str, study_params: dict[str, Any], patch_path: Path | None, patch_dir: Path,
              git_commit: str | None = None, eval_set: str | None = None, mode: str = "beir", noun: str = "queries",
              trackers: Any = (), on_trial: Callable[[Trial], None] | None = None) -> TuneReport:
    """The study both modes run: the baseline on the tune part, ``tuning.trials`` trials proposed by ``tuner``
    (each a ``trial`` run of ``runs``, handed to ``trackers`` too), the best and the baseline scored once on the
    holdout part with a paired bootstrap interval of the gain, and the spec patch written to ``patch_path`` (default
    ``<patch_dir>/<study id>.patch.yaml``). The study is a ``tune`` run. ``objective.close()`` is called at the end."""
    t_start = time.perf_counter()
    metric, sign = objective.metric, objective.sign
    space = space_from_settings(_space_dict(tuning.space), {n: t for n, (t, _) in TUNABLE.items()})
    base = objective.base
    study = runs.start("tune", name, spec_hash=spec_hash, git_commit=git_commit, eval_set=eval_set, params={
        "mode": mode, "tuner": tuner_name,
        "tuner_settings": getattr(getattr(tuner, "config", None), "model_dump", dict)(),
        "objective": metric, "direction": "maximise" if sign > 0 else "minimise", "trials": tuning.trials,
        "seed": tuning.seed, "holdout": tuning.holdout, "space": _space_dict(tuning.space), **study_params,
        "queries": {"tune": len(tune_ids), "holdout": len(holdout_ids)}, "baseline": objective.describe(base)})
    trial_runs: list[str] = []
    try:
        baseline_tune = objective.scores(base, tune_ids, "tune")

        def objective_fn(params: dict[str, Any]) -> float:
            params = _normal(params)
            trial = Trial(len(trial_runs), params)
            run = runs.start("trial", name, spec_hash=spec_hash, git_commit=git_commit, eval_set=eval_set,
                             params={"study": study.id, "number": trial.number, "params": params})
            trial_runs.append(run.id)
            t0 = time.perf_counter()
            files: dict[str, Path] = {}
            try:
                config = objective.configuration(params)
                scores = objective.scores(config, tune_ids, "tune")
                run.index_version = objective.index_version(config)
                run.params = {**run.params, **objective.describe(config)}
                run.metrics = {**objective.summary(config, "tune"), metric: _mean(scores, metric)}
                files = objective.artifacts(config, "tune")
                run.artifacts = {n: str(p) for n, p in files.items()}
                run.status = "succeeded"
                trial.value = run.metrics[metric]
                return sign * trial.value  # type: ignore[operator]  # tuners maximise
            except BaseException as exc:  # an interrupted trial is recorded as failed too, then the study stops
                run.status, run.error = "failed", f"{type(exc).__name__}: {_first_error(exc)}"
                trial.state, trial.error = "failed", run.error
                raise
            finally:
                runs.finish(run)
                track(runs, run, trackers, files)
                trial.seconds = round(time.perf_counter() - t0, 4)
                if on_trial is not None:
                    on_trial(trial)

        trials = tuner.optimize(space, objective_fn, tuning.trials, tuning.seed)
        best = best_trial(trials)  # on the signed values the tuner saw
        for trial in trials:
            trial.params = _normal(trial.params)
            if trial.value is not None:
                trial.value = round(sign * trial.value, 5)  # the objective's own value again
        if best is None:
            first = next((t.error for t in trials if t.error), "no trial ran")
            raise FlightdeckError(f"every one of {len(trials)} trials failed; the first: {first}")
        best_config = objective.configuration(best.params)
        held_best = objective.scores(best_config, holdout_ids, "holdout")
        same = best_config.key == base.key
        held_base = held_best if same else objective.scores(base, holdout_ids, "holdout")
        held_ids = [q for q in holdout_ids if q in held_best]  # those the objective applies to (a set's)
        gain = bootstrap_gain([sign * held_best[q][metric] for q in held_ids],
                              [sign * held_base[q][metric] for q in held_ids], tuning.seed)
        baseline_value = _mean(baseline_tune, metric)
        # recommended only when it beats the spec's own settings where it was chosen: on the tune part
        beats = best.value is not None and sign * best.value > sign * baseline_value and not same
        patch = objective.patch(best_config) if beats else {}
        holdout = {"queries": len(held_ids), "objective": metric,
                   "baseline": _mean(held_base, metric), "best": _mean(held_best, metric),
                   "baseline_metrics": {**objective.summary(base, "holdout"), metric: _mean(held_base, metric)},
                   "best_metrics": {**objective.summary(best_config, "holdout"), metric: _mean(held_best, metric)},
                   **gain}
        word = "lower" if sign < 0 else "higher"
        comment = (f"flightdeck tune {study.id} ({tuner_name}, {len(trials)} trials on {len(tune_ids)} {noun} of "
                   f"{label})\n{metric} ({word} is better) on {len(held_ids)} held-out {noun}: "
                   f"{holdout['baseline']:.4f} -> {holdout['best']:.4f} (gain {gain['gain']:+.4f}, 95% CI "
                   f"{gain['ci95'][0]:+.4f} .. {gain['ci95'][1]:+.4f})\n"
                   + ("merge these keys into the spec" if beats else
                      f"no trial beat the spec's settings on the tune part ({best.value:.4f} vs {baseline_value:.4f})"))
        text = patch_yaml(patch, comment)
        patch_path = Path(patch_path) if patch_path is not None else Path(patch_dir) / f"{study.id}.patch.yaml"
        patch_path.parent.mkdir(parents=True, exist_ok=True)
        patch_path.write_text(text)
        study.artifacts = {"patch": str(patch_path.resolve())}
        trial_rows = [{**t.to_dict(), "run_id": trial_runs[t.number] if t.number < len(trial_runs) else None}
                      for t in trials]
        study.metrics = {"tune_best": best.value, "tune_baseline": baseline_value,
                         "holdout_best": holdout["best"], "holdout_baseline": holdout["baseline"],
                         "holdout_gain": gain["gain"], "holdout_gain_ci95_low": gain["ci95"][0],
                         "holdout_gain_ci95_high": gain["ci95"][1]}
        study.params = {**study.params, "best": {"trial": best.number, "params": best.params},
                        "patch": patch, "trial_runs": trial_runs}
        study.index_version = objective.index_version(best_config)
        study.status = "succeeded"
        return TuneReport(
            study_id=study.id, dataset=label.rsplit("/", 1)[0] if mode == "beir" else label, split=split,
            tuner=tuner_name, objective=metric, seed=tuning.seed,
            queries={"tune": len(tune_ids), "holdout": len(holdout_ids)}, space=_space_dict(tuning.space),
            baseline={**objective.describe(base), "tune": baseline_value},
            best={"trial": best.number, "params": best.params, "tune": best.value, "beats_baseline": beats,
                  **objective.describe(best_config)},
            holdout=holdout, trials=trial_rows, patch=patch, patch_yaml=text, patch_file=str(patch_path),
            indexes=objective.indexes(), seconds=round(time.perf_counter() - t_start, 2), mode=mode,
            direction="maximise" if sign > 0 else "minimise")
    except BaseException as exc:
        study.status = "failed"
        study.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        runs.finish(study)
        if study.status == "succeeded":
            track(runs, study, trackers, {"patch.yaml": Path(study.artifacts["patch"])})
        objective.close()


def require_beir(tuning: TuningSettings) -> None:
    """Refuse what a BEIR split cannot tune or measure: an empty space, an answer setting, an objective of an
    evaluation set (each with what to do instead)."""
    if tuning.objective not in OBJECTIVES:
        raise FlightdeckError(f"objective {tuning.objective!r} is measured on an evaluation set (flightdeck tune "
                              f"--set NAME); a BEIR split's objective is one of {', '.join(OBJECTIVES)}")
    if not tuning.space:
        raise FlightdeckError("model.tuning.space is empty; give the settings to tune, e.g. model: {tuning: {space: "
                              "{fusion: [rrf, weighted], candidates: [50, 100, 200]}}}")
    try:
        refused_in_mode(tuning.space, "beir")
    except ValueError as exc:
        raise FlightdeckError(str(exc)) from None


def tune_beir(dataset: BeirDataset, *, tuning: TuningSettings, tuner: Tuner, tuner_name: str,
              base_chunking: dict[str, Any], base_search: Any, settings: dict[str, Any], root: Path,
              open_project: Callable[[Path], Any], runs: ExperimentRuns, spec_hash: str,
              git_commit: str | None = None, patch_path: Path | None = None, reporter: Any = None,
              on_trial: Callable[[Trial], None] | None = None, trackers: Any = ()) -> TuneReport:
    """Tune on ``dataset``'s judged queries: trials on the tune part, the best scored once on the holdout part
    beside the base configuration (the spec's ``base_chunking`` and ``base_search``), the gain with a paired 95 %
    bootstrap interval. Every trial is a ``trial`` run and the study a ``tune`` run of ``runs``; the spec patch is
    written to ``patch_path`` (default ``<root>/<study id>.patch.yaml``). ``root`` holds one workspace per chunking
    and the embeddings cache."""
    trec_eval()  # the scores need the eval extra: said before any index is built
    require_beir(tuning)
    space = space_from_settings(_space_dict(tuning.space), {n: t for n, (t, _) in TUNABLE.items()})
    tune_qids, holdout_qids = split_queries(list(dataset.queries), tuning.holdout)
    chunk_defaults = registry().config_class(Category.CHUNKER, base_chunking["provider"])
    chunking = dict(base_chunking)
    if chunk_defaults is not None:  # the effective size and overlap, so that the patch compares like with like
        chunking = {"provider": base_chunking["provider"],
                    **chunk_defaults(**{k: v for k, v in base_chunking.items() if k != "provider"}).model_dump()}
    base = Configuration(chunking, base_search)
    objective = BeirObjective(dataset, root, open_project, settings, base, reporter, tuning.objective)
    try:
        objective.preflight(space)
    except BaseException:
        objective.close()
        raise
    return run_study(objective, tuning=tuning, tuner=tuner, tuner_name=tuner_name,
                     name=f"beir:{dataset.root.name}/{dataset.split}", label=f"{dataset.root.name}/{dataset.split}",
                     split=dataset.split, tune_ids=tune_qids, holdout_ids=holdout_qids, runs=runs,
                     spec_hash=spec_hash, study_params={"dataset": str(dataset.root), "split": dataset.split},
                     patch_path=patch_path, patch_dir=Path(root), git_commit=git_commit, mode="beir",
                     trackers=trackers, on_trial=on_trial)


def describe_params(params: dict[str, Any]) -> str:
    """``chunk_size=128 fusion=rrf …`` for a line of output."""
    return " ".join(f"{k}={json.dumps(v)}" if isinstance(v, str) or v is None else f"{k}={v}"
                    for k, v in params.items())
