"""The assembly: the one place that turns a spec, the registry and a workspace into components and steps.

Every provider is built here from its spec entry (``${ENV}`` references resolved, relative paths taken from the
spec's folder) and receives what it needs through its constructor: the semantic chunker its embedder and the
query transformations their generator (``Flavor.takes``), the ingest step the dataset snapshots the versioning
hooks record into. Nothing is attached to a component after it is built, and nothing here knows
:class:`~flightdeck.project.Project`, which sits above and calls this.

Components are built on first use and kept: loading a spec builds nothing, and the embedding model is loaded
once per assembly.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightdeck.core import RunHook, Step
from flightdeck.data.manifest import SourceBinding
from flightdeck.data.versioning.base import DatasetSnapshots, VersioningContext, observers_first
from flightdeck.errors import FlightdeckError
from flightdeck.registry import Category, Registry, registry
from flightdeck.spec.loader import LoadedSpec
from flightdeck.spec.models import ProviderRef, provider_category
from flightdeck.spec.resolve import resolve_env
from flightdeck.workspace import UPLOADS_LABEL, Workspace

if TYPE_CHECKING:
    from flightdeck.data.synthetic import Synthesizer
    from flightdeck.data.tokenization import Tokenizer
    from flightdeck.models.generators.base import Generator
    from flightdeck.retrieval.embedders.base import Embedder
    from flightdeck.retrieval.fusion import Fusion
    from flightdeck.retrieval.keyword import KeywordIndex
    from flightdeck.retrieval.query_transform import QueryTransformation
    from flightdeck.retrieval.search import HybridSearcher
    from flightdeck.retrieval.stores.base import VectorStore

__all__ = ["Assembly"]

SOURCES = "data.sources"  # the spec section of the sources (and of the synthesizer, see spec.models.SECTION_ALSO)


class Assembly:
    """The components and steps of one loaded spec over its workspace."""

    def __init__(self, loaded: LoadedSpec, workspace: Workspace, providers: Registry | None = None,
                 index_version: str | None = None) -> None:
        self.loaded = loaded
        self.index_version = index_version  # searched instead of the workspace's current index (a release's)
        self.spec = loaded.spec
        self.workspace = workspace
        self.providers = providers or registry()
        # Shared by the versioning hooks (they record) and the ingest step (it writes them into the version).
        self.snapshots = DatasetSnapshots()

    # Components a caller may supply instead of the spec's (a fake embedder in a test, a model already loaded).
    REPLACEABLE = ("embedder", "tokenizer", "generator", "query_transformation", "searcher", "agent_model")

    def use(self, **components: Any) -> None:
        """Use these components instead of building them from the spec (before anything uses them).

        ``use(embedder=FakeEmbedder())`` makes every step and the searcher built afterwards get the fake.
        """
        unknown = sorted(set(components) - set(self.REPLACEABLE))
        if unknown:
            raise TypeError(f"cannot replace {', '.join(unknown)}; replaceable: {', '.join(self.REPLACEABLE)}")
        built = [name for name in ("searcher", "query_transformation", "answer_embedder")
                 if name in vars(self) and name not in components]
        if built:
            raise FlightdeckError(f"replace components before {built[0]} is built: it already holds the old ones")
        vars(self).update(components)  # the cached properties read their value from here

    @property
    def where(self) -> str:
        """The spec file, for messages."""
        return str(self.loaded.path)

    # settings -------------------------------------------------------------------------------------
    def settings(self, ref: ProviderRef) -> dict[str, Any]:
        """The settings of a provider reference with ``${ENV}`` references resolved."""
        return resolve_env(ref.settings, where=self.where)

    def provider_settings(self, category: Category, ref: ProviderRef) -> dict[str, Any]:
        """A provider's resolved settings with its local paths taken from the spec's folder.

        Settings that are local paths (each config lists them in ``path_settings``) resolve from the spec's
        folder, not the current one; a remote model name such as Cohere's "embed-v4.0" is not a path. A config
        whose settings hold paths in another form (the file of a ``sqlite:///`` URL) resolves them itself, in
        its ``resolve_relative(settings, base_dir)``.
        """
        settings = self.settings(ref)
        config_cls = self.providers.config_class(category, ref.provider)
        base_dir = self.loaded.base_dir
        for key in getattr(config_cls, "path_settings", ()):
            if settings.get(key):
                settings[key] = str(base_dir / Path(settings[key]).expanduser())
        resolve_relative = getattr(config_cls, "resolve_relative", None)
        if callable(resolve_relative):
            settings = resolve_relative(settings, base_dir)
        return settings

    def build(self, category: Category, ref: ProviderRef, settings: dict[str, Any] | None = None) -> Any:
        """The provider of ``ref``, given the components its flavor ``takes`` (the embedder, the generator)."""
        if settings is None:
            settings = self.provider_settings(category, ref)
        return self.providers.create(category, ref.provider, settings, provide=self._component)

    def _component(self, name: str) -> Any:
        if name == "embedder":
            return self.embedder
        if name == "generator":
            return self.generator
        if name == "search":  # the agent's file_search tool: this assembly's searcher (a release's index, pinned)
            return self.searcher.search
        if name == "workspace":  # the agent's memory keeps its tables there
            return self.workspace
        raise FlightdeckError(f"a provider asks for the component {name!r}, which the assembly does not make "
                              "(it makes: embedder, generator, search, workspace)")

    # retrieval --------------------------------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        return self.build(Category.EMBEDDER, self.spec.retrieval.embedding_model)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        from flightdeck.data.tokenization import Tokenizer

        return Tokenizer.from_model_dir(self.embedder.model_dir)

    def vector_store_factory(self) -> Callable[[], VectorStore]:
        """A function that opens a new instance of the configured vector store (each reader opens its own)."""
        ref = self.spec.retrieval.vector_database
        settings = self.provider_settings(Category.VECTOR_STORE, ref)
        return lambda: self.providers.create(Category.VECTOR_STORE, ref.provider, settings)

    def keyword_index(self) -> KeywordIndex:
        """The keyword index that ``retrieval.search.keyword_index`` names; a new one per call (the index step and
        the searcher each hold their own: the step closes its server connection when it is done)."""
        from flightdeck.retrieval.keyword import keyword_index_for

        return keyword_index_for(self.spec.retrieval.search, self.workspace, self.where, self.providers)

    def fusion(self) -> Fusion:
        """The fusion that ``retrieval.search.fusion`` names."""
        from flightdeck.retrieval.fusion import fusion_for

        return fusion_for(self.spec.retrieval.search, self.providers)

    @cached_property
    def query_transformation(self) -> QueryTransformation | None:
        """The ``retrieval.query_transformation`` provider, built with the generator; None when unset."""
        ref = self.spec.retrieval.query_transformation
        return None if ref is None else self.build(Category.QUERY_TRANSFORMATION, ref, self.settings(ref))

    @cached_property
    def searcher(self) -> HybridSearcher:
        from flightdeck.retrieval.search import HybridSearcher

        return HybridSearcher(self.workspace, self.embedder, self.vector_store_factory(), self.spec.retrieval.search,
                              self.keyword_index(), self.fusion(), transform=self.query_transformation,
                              pinned_version=self.index_version)

    # generation -------------------------------------------------------------------------------------
    @cached_property
    def generator(self) -> Generator:
        return self.build(Category.GENERATOR, self.spec.model.generator)

    @cached_property
    def answer_embedder(self) -> Embedder:
        """The embedder handed to the generator: document vectors read from the workspace when stored (the
        extractive answerer's sentences), so a question embeds only itself."""
        from flightdeck.retrieval.embedders.cache import StoredVectorsEmbedder

        return StoredVectorsEmbedder(self.embedder, self.workspace)  # type: ignore[return-value]

    # agents -----------------------------------------------------------------------------------------
    @cached_property
    def agent_model(self) -> Any:
        """The model an agent thinks with: ``agents.generator``, else ``model.generator`` when it is an LLM, else
        the packaged local one (``llama_cpp``)."""
        ref = self.spec.agents.generator
        if ref is not None:
            return self.build(Category.GENERATOR, ref)
        if callable(getattr(self.generator, "complete_json", None)):
            return self.generator
        return self.build(Category.GENERATOR, ProviderRef(provider="llama_cpp"))

    @cached_property
    def agent_memory(self) -> Any:
        """The first memory of ``agents.memory`` (default: ``builtin``, the workspace's tables): the agent's
        conversations and facts."""
        refs = self.spec.agents.memory or [ProviderRef(provider="builtin")]
        return self.build(Category.AGENT_MEMORY, refs[0])

    @cached_property
    def agent_runner(self) -> Any:
        """What runs the agent when ``agents.orchestration`` names ``langgraph`` (its graph, checkpointed); None:
        flightdeck's own loop."""
        ref = next((r for r in self.spec.agents.orchestration or () if r.provider == "langgraph"), None)
        return None if ref is None else self.build(Category.ORCHESTRATION, ref)

    def agent_tools(self) -> list[Any]:
        """The tools of ``agents.tools``, in the spec's order (a provider may give several: sql_database gives
        sql_schema and sql_query)."""
        tools: list[Any] = []
        for ref in self.spec.agents.tools or ():
            built = self.build(Category.AGENT_TOOL, ref)
            tools.extend(built if isinstance(built, list | tuple) else [built])
        return tools

    # data -------------------------------------------------------------------------------------------
    def source_bindings(self) -> list[SourceBinding]:
        """The document sources of ``data.sources``, each with the label its document ids start with."""
        bindings = []
        labels: set[str] = set()
        for ref in self.spec.data.sources:
            if provider_category(SOURCES, ref.provider) != Category.SOURCE:  # the synthesizer reads no documents
                continue
            settings = self.provider_settings(Category.SOURCE, ref)
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
            bindings.append(SourceBinding(label, base_uri, self.build(Category.SOURCE, ref, settings)))
        uploads = self.workspace.uploads_folder
        if uploads.is_dir() and any(p.is_file() for p in uploads.iterdir()):
            # documents uploaded to the server (POST /v1/documents) are one more files source
            if UPLOADS_LABEL in labels:
                raise ValueError(f"a source is named {UPLOADS_LABEL!r}, the name of the server's uploaded "
                                 "documents; give it another `name:`")
            ref = ProviderRef(provider="files")
            bindings.append(SourceBinding(UPLOADS_LABEL, uploads.resolve().as_uri(),
                                          self.build(Category.SOURCE, ref, {"path": str(uploads.resolve())})))
        return bindings

    def synthesizer(self) -> Synthesizer | None:
        """The synthesizer listed in ``data.sources`` (it writes examples from the chunks), or None.

        Validation allows one."""
        for ref in self.spec.data.sources:
            if provider_category(SOURCES, ref.provider) == Category.SYNTHESIZER:
                settings = self.settings(ref)
                settings.pop("name", None)
                synthesizer: Synthesizer = self.build(Category.SYNTHESIZER, ref, settings)
                return synthesizer
        return None

    def versioning_hooks(self) -> list[RunHook]:
        """The run hooks of the ``data.versioning`` providers (DVC/lakeFS snapshots, OpenLineage events)."""
        refs = self.spec.data.versioning or ()
        if not refs:
            return []
        context = VersioningContext(self.spec.project, self.loaded.base_dir, self.workspace,
                                    tuple(self.source_bindings()), self.snapshots)
        return observers_first([self.build(Category.VERSIONING, ref, self.settings(ref)).hook(context)
                                for ref in refs])

    def trackers(self) -> list[Any]:
        """The trackers of ``model.experiment_tracking`` (MLflow, W&B, TensorBoard, Neptune), beside the built-in
        runs table that every run goes to."""
        return [self.build(Category.TRACKER, ref) for ref in (self.spec.model.experiment_tracking or ())]

    def model_registries(self) -> list[Any]:
        """The registries of ``deployment.model_registry`` (MLflow, W&B, SageMaker, Vertex AI) that mirror every
        release; each one's ``model_name`` defaults to the spec's project name."""
        registries = []
        for ref in self.spec.deployment.model_registry or ():
            settings = self.provider_settings(Category.MODEL_REGISTRY, ref)
            settings.setdefault("model_name", self.spec.project)
            registries.append(self.build(Category.MODEL_REGISTRY, ref, settings))
        return registries

    # the pipeline -----------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        """The pipeline of the spec's use case (the RAG path: ingest, (synthesize,) embed, index)."""
        build = self.providers.load(Category.USE_CASE, self.spec.scoping.use_case or "rag")
        steps: list[Step] = build(self)
        return steps
