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
        settings = self.provider_settings(ref)
        if settings.get("model"):
            settings["model"] = str((self.loaded.base_dir / settings["model"]).expanduser())
        return registry().create(Category.EMBEDDER, ref.provider, settings)

    def store_factory(self) -> Any:
        ref = self.spec.retrieval.vector_database
        settings = self.provider_settings(ref)
        return lambda: registry().create(Category.VECTOR_STORE, ref.provider, settings)

    @cached_property
    def tokenizer(self) -> Any:
        from flightdeck.data.tokenization import Tokenizer

        return Tokenizer.from_model_dir(self.embedder.model_dir)

    def source_bindings(self) -> list[Any]:
        from flightdeck.pipeline.steps import SourceBinding

        bindings = []
        labels: set[str] = set()
        for ref in self.spec.data.sources:
            settings = self.provider_settings(ref)
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
        """Ingest, chunk, embed and index; unchanged steps are skipped."""
        reporter = reporter or NullReporter()
        spec_hash = stable_hash(self.spec.model_dump())
        with self.workspace.writer_lock():
            return Runner(self.workspace, reporter).run(self.steps(), spec_hash)

    @cached_property
    def searcher(self) -> Any:
        from flightdeck.retrieval.search import HybridSearcher

        return HybridSearcher(self.workspace, self.embedder, self.store_factory(), self.spec.retrieval.search)

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> Any:
        """Search the current index; returns a :class:`~flightdeck.retrieval.search.SearchResult`."""
        return self.searcher.search(query, k=k, mode=mode)

    @cached_property
    def generator(self) -> Any:
        ref = self.spec.model.generator
        return registry().create(Category.GENERATOR, ref.provider, self.provider_settings(ref))

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
