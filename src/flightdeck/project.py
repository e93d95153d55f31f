"""The public Python API: everything the CLI does is a call on :class:`Project`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from flightdeck.pipeline.progress import NullReporter, Reporter
from flightdeck.pipeline.runner import Runner, RunSummary, stable_hash
from flightdeck.registry import Category, registry
from flightdeck.spec.loader import LoadedSpec, load_spec
from flightdeck.spec.resolve import resolve_env
from flightdeck.workspace import CURRENT_DATASET

__all__ = ["Project"]


class Project:
    """A spec and its workspace. ``Project.load()`` finds ``flightdeck.yaml`` in the current folder."""

    def __init__(self, loaded: LoadedSpec) -> None:
        self.loaded = loaded
        self.spec = loaded.spec

    @classmethod
    def load(cls, path: str | Path | None = None) -> Project:
        """Load and validate the spec at ``path`` (a file, or a folder holding flightdeck.yaml)."""
        return cls(load_spec(path))

    @property
    def spec_path(self) -> Path:
        return self.loaded.path

    @cached_property
    def workspace(self) -> Any:
        from flightdeck.workspace import Workspace

        return Workspace((self.loaded.base_dir / self.spec.workspace).resolve())

    # providers, built on first use -------------------------------------------------------------
    def provider_settings(self, ref: Any) -> dict[str, Any]:
        """The settings of a provider reference with ``${ENV}`` references resolved."""
        return resolve_env(ref.settings, where=f"{self.spec_path}")

    @cached_property
    def embedder(self) -> Any:
        ref = self.spec.retrieval.embedding_model
        settings = self._resolve_paths(Category.EMBEDDER, ref.provider, self.provider_settings(ref))
        return registry().create(Category.EMBEDDER, ref.provider, settings)

    def _resolve_paths(self, category: Category, provider: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Settings that are local paths (each config lists them in ``path_settings``) resolve from the spec's
        folder, not the current one; a remote model name such as Cohere's "embed-v4.0" is not a path. A config
        whose settings hold paths in another form (the file of a ``sqlite:///`` URL) resolves them itself, in
        its ``resolve_relative(settings, base_dir)``."""
        config_cls = registry().config_class(category, provider)
        for key in getattr(config_cls, "path_settings", ()):
            if settings.get(key):
                settings[key] = str(self.loaded.base_dir / Path(settings[key]).expanduser())
        resolve_relative = getattr(config_cls, "resolve_relative", None)
        if callable(resolve_relative):
            settings = resolve_relative(settings, self.loaded.base_dir)
        return settings

    def store_factory(self) -> Any:
        ref = self.spec.retrieval.vector_database
        settings = self._resolve_paths(Category.VECTOR_STORE, ref.provider, self.provider_settings(ref))
        return lambda: registry().create(Category.VECTOR_STORE, ref.provider, settings)

    def keyword_index(self) -> Any:
        """The keyword index that ``retrieval.search.keyword_index`` names; a new one per call (the index step and
        the searcher each hold their own: the step closes its server connection when it is done)."""
        from flightdeck.retrieval.keyword import keyword_index_for

        return keyword_index_for(self.spec.retrieval.search, self.workspace, str(self.spec_path))

    def fusion(self) -> Any:
        """The fusion that ``retrieval.search.fusion`` names."""
        from flightdeck.retrieval.fusion import fusion_for

        return fusion_for(self.spec.retrieval.search)

    @cached_property
    def tokenizer(self) -> Any:
        from flightdeck.data.tokenization import Tokenizer

        return Tokenizer.from_model_dir(self.embedder.model_dir)

    def source_bindings(self) -> list[Any]:
        from flightdeck.pipeline.steps import SourceBinding

        bindings = []
        labels: set[str] = set()
        for ref in self.spec.data.sources:
            if ref.provider == "synthetic":  # writes examples from the chunks (SynthesizeStep); reads no documents
                continue
            settings = self._resolve_paths(Category.SOURCE, ref.provider, self.provider_settings(ref))
            label = settings.pop("name", None)
            if "path" in settings:
                path = (self.loaded.base_dir / settings["path"]).resolve()
                settings["path"] = str(path)
                label = label or path.name
                base_uri = path.as_uri()
            else:
                base_uri = ref.provider
            label = label or ref.provider
            if label in labels:
                raise ValueError(f"two sources are both named {label!r}; give one a `name:` setting")
            labels.add(label)
            bindings.append(SourceBinding(label, base_uri, registry().create(Category.SOURCE, ref.provider,
                                                                             settings)))
        return bindings

    def steps(self) -> list[Any]:
        """The pipeline of this spec's use case (the RAG path: ingest, embed, index)."""
        build = registry().load(Category.USE_CASE, self.spec.scoping.use_case or "rag")
        return build(self)

    # the public verbs ---------------------------------------------------------------------------
    def run(self, reporter: Reporter | None = None) -> RunSummary:
        """Ingest, chunk, embed and index; unchanged steps are skipped.

        Raises :class:`~flightdeck.pipeline.runner.StepFailedError` (its ``summary`` says what the run did)
        when nothing was ingested or the failures pass ``data.failures``. Plugins that could not be loaded
        are warnings of the run (``summary.warnings``).
        """
        reporter = reporter or NullReporter()
        spec_hash = stable_hash(self.spec.model_dump())
        with self.workspace.writer_lock():
            steps = self.steps()  # builds the providers: every plugin has been loaded (or failed to) by now
            plugin_warnings = [("plugin", error) for error in registry().plugin_errors]
            return Runner(self.workspace, reporter, hooks=self.versioning_hooks()).run(steps, spec_hash,
                                                                                       plugin_warnings)

    def versioning_hooks(self) -> list[Any]:
        """The run hooks of the ``data.versioning`` providers (DVC/lakeFS snapshots, OpenLineage events)."""
        from flightdeck.data.versioning.base import build_hooks

        return build_hooks(self)

    # dataset versions and lineage (flightdeck.governance) ----------------------------------------
    def dataset_versions(self) -> list[Any]:
        """Every dataset version, oldest first (:class:`~flightdeck.governance.versions.DatasetVersion`)."""
        from flightdeck.governance.versions import list_versions

        return list_versions(self.workspace)

    def synthetic_sets(self) -> list[Any]:
        """Every synthetic set, oldest first (:class:`~flightdeck.data.synthetic_sets.SyntheticSet`)."""
        from flightdeck.data.synthetic_sets import list_sets

        return list_sets(self.workspace)

    def synthetic_examples(self, set_id: str | None = None) -> list[Any]:
        """The examples of synthetic set ``set_id`` (an id, a unique prefix or ``current``; default: the set of
        the last run), each with its source chunk (:class:`~flightdeck.data.synthetic_sets.SyntheticExample`)."""
        from flightdeck.data.synthetic_sets import set_examples

        return set_examples(self.workspace, set_id)

    def diff_datasets(self, a: str, b: str) -> Any:
        """Documents added, changed and removed from dataset version ``a`` to ``b`` (ids or unique prefixes)."""
        from flightdeck.governance.versions import diff_versions, resolve_version

        return diff_versions(self.workspace, resolve_version(self.workspace, a), resolve_version(self.workspace, b))

    def checkout_dataset(self, version: str, reporter: Reporter | None = None) -> Any:
        """Restore dataset version ``version`` and rebuild its index; the next ``run`` returns to the sources."""
        from flightdeck.governance.versions import checkout, resolve_version

        full = resolve_version(self.workspace, version)
        follow = [s for s in self.steps() if s.name in ("embed", "index")]
        with self.workspace.writer_lock():
            return checkout(self.workspace, full, follow, stable_hash(self.spec.model_dump()),
                            reporter or NullReporter(), hooks=self.versioning_hooks())

    def lineage(self, chunk_id: str) -> Any:
        """Where chunk ``chunk_id`` came from (:class:`~flightdeck.governance.lineage.ChunkLineage`)."""
        from flightdeck.governance.lineage import chunk_lineage

        return chunk_lineage(self.workspace, chunk_id)

    @cached_property
    def searcher(self) -> Any:
        from flightdeck.retrieval.search import HybridSearcher

        searcher = HybridSearcher(self.workspace, self.embedder, self.store_factory(), self.spec.retrieval.search,
                                  self.keyword_index(), self.fusion())
        searcher.transform = self.query_transformation
        return searcher

    @cached_property
    def query_transformation(self) -> Any:
        """The ``retrieval.query_transformation`` provider with the LLM generator attached, or None."""
        ref = self.spec.retrieval.query_transformation
        if ref is None:
            return None
        transform = registry().create(Category.QUERY_TRANSFORMATION, ref.provider, self.provider_settings(ref))
        transform.generator = self.generator
        return transform

    def search(self, query: str, k: int | None = None, mode: str | None = None,
               where: dict[str, Any] | None = None, transform: bool = True) -> Any:
        """Search the current index; returns a :class:`~flightdeck.retrieval.search.SearchResult`.

        ``where`` is a metadata filter such as ``{"lang": "en", "year": {"$gte": 2020}}`` (the language is
        described in :mod:`flightdeck.retrieval.filters`); it needs ``metadata_filtering`` in
        ``retrieval.system``.
        """
        if where:
            self.require_filtering()
        return self.searcher.search(query, k=k, mode=mode, where=where, transform=transform)

    def require_filtering(self) -> None:
        """Refuse metadata filters unless the spec turns them on (the feature is opt-in, like every option)."""
        from flightdeck.errors import SpecError, SpecProblem

        if "metadata_filtering" not in (self.spec.retrieval.system or []):
            raise SpecError([SpecProblem(str(self.spec_path), "retrieval.system",
                                         "a metadata filter was given, but metadata_filtering is not enabled; add "
                                         "it: retrieval: {system: [hybrid_search, metadata_filtering]}")])

    def split(self, name: str) -> list[str]:
        """Ids of the documents in split ``name`` (``train``, ``validation``, ``test``, ``fold-0``…) of the
        current dataset version, as recorded by the last run under ``data.splits``; sorted."""
        from sqlalchemy import select

        from flightdeck.errors import FlightdeckError
        from flightdeck.workspace.schema import dataset_splits

        version = self.workspace.get_state(CURRENT_DATASET)
        if not version:
            raise FlightdeckError(f"{self.spec_path}: no dataset version yet; run `flightdeck run` first")
        with self.workspace.engine.connect() as conn:
            rows = conn.execute(select(dataset_splits.c.document_id, dataset_splits.c.split)
                                .where(dataset_splits.c.dataset_version == version)).all()
        if not rows:
            raise FlightdeckError(f"dataset version {version[:12]} has no recorded splits; set data.splits in "
                                  f"{self.spec_path} (e.g. splits: train_validation_test) and run again")
        ids = sorted(d for d, s in rows if s == name)
        if not ids and name not in {s for _, s in rows}:
            raise FlightdeckError(f"no split {name!r} in dataset version {version[:12]}; "
                                  f"its splits: {', '.join(sorted({s for _, s in rows}))}")
        return ids

    @cached_property
    def generator(self) -> Any:
        ref = self.spec.model.generator
        settings = self._resolve_paths(Category.GENERATOR, ref.provider, self.provider_settings(ref))
        return registry().create(Category.GENERATOR, ref.provider, settings)

    def ask(self, question: str) -> Any:
        """Answer ``question`` from the documents, with numbered citations."""
        import time

        t0 = time.perf_counter()
        result = self.search(question, k=max(self.spec.retrieval.search.k, self.generator.config.top_chunks))
        answer = self.generator.answer(question, result.hits, self.embedder, result.index_version)
        answer.timings_ms = {**result.timings_ms, **answer.timings_ms,
                             "total": round((time.perf_counter() - t0) * 1000, 3)}
        return answer

    def checklist(self) -> Any:
        """The checklist with this spec's choices ticked and each option's status in this build."""
        from flightdeck.spec.report import checklist_report

        return checklist_report(self.spec)
