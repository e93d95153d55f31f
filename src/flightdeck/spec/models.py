"""pydantic models of a spec, built from the checklist catalog section by section.

Each phase of the checklist is one top-level key; each section is one key of its phase, typed from the
catalog: a single-select section takes one option id, a multi-select section a list. Sections whose
options are concrete systems (sources, embedding model, vector database) take provider references: a bare
name or ``{provider: name, ...settings}``. A few keys that are not checklist sections carry settings
(``data.chunking``, ``data.cleaning``, ``data.failures``, ``retrieval.search``, ``retrieval.query_transformation``,
``model.generator``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from flightdeck.registry.categories import Category
from flightdeck.spec.agents import AgentSettings
from flightdeck.spec.audit import AuditSettings
from flightdeck.spec.automation import AutomationSettings
from flightdeck.spec.catalog import catalog
from flightdeck.spec.cleaning import CleaningSettings
from flightdeck.spec.evaluation import EVALUATION_FIELDS
from flightdeck.spec.mitigation import MitigationSettings
from flightdeck.spec.policies import PolicyStatement
from flightdeck.spec.releases import ApprovalPolicy
from flightdeck.spec.server import ServerSettings
from flightdeck.spec.tuning import TuningSettings

__all__ = [
    "ProviderRef",
    "SearchSettings",
    "FailureSettings",
    "Spec",
    "spec_model",
    "PROVIDER_SECTIONS",
    "SECTION_ALSO",
    "section_categories",
    "provider_category",
    "PROVIDER_SETTINGS",
    "EMBEDDED_DEFAULTS",
]

# Sections whose values name providers of a category (spec value == registry key == pip extra).
PROVIDER_SECTIONS: dict[str, Category] = {
    "data.sources": Category.SOURCE,
    "data.versioning": Category.VERSIONING,
    "data.splits": Category.SPLITTER,
    "retrieval.embedding_model": Category.EMBEDDER,
    "retrieval.vector_database": Category.VECTOR_STORE,
    "model.experiment_tracking": Category.TRACKER,
    "model.hyperparameter_optimization": Category.TUNER,
    "deployment.model_registry": Category.MODEL_REGISTRY,
    "agents.tools": Category.AGENT_TOOL,
    "agents.memory": Category.AGENT_MEMORY,
    "agents.orchestration": Category.ORCHESTRATION,
}
# Sections that also take providers of another category. The checklist lists synthetic data generation with
# the data sources (1.1), but it writes examples from the chunks instead of reading documents: a synthesizer.
SECTION_ALSO: dict[str, tuple[Category, ...]] = {"data.sources": (Category.SYNTHESIZER,)}


def section_categories(path: str) -> tuple[Category, ...]:
    """Every category whose providers section ``path`` takes, its own first (empty: not a provider section)."""
    own = PROVIDER_SECTIONS.get(path)
    return () if own is None else (own, *SECTION_ALSO.get(path, ()))


def provider_category(path: str, name: str) -> Category | None:
    """The category of provider ``name`` in section ``path``: another one of :data:`SECTION_ALSO` when that one
    registers the name, else the section's own (None: not a provider section)."""
    from flightdeck.registry.lookup import registry

    categories = section_categories(path)
    for other in categories[1:]:
        if name in registry().names(other):
            return other
    return categories[0] if categories else None


# Keys that are not checklist sections but hold one provider with its settings.
PROVIDER_SETTINGS: dict[str, Category] = {
    "data.chunking": Category.CHUNKER,
    "retrieval.query_transformation": Category.QUERY_TRANSFORMATION,
    "model.generator": Category.GENERATOR,
    "evaluation.judge": Category.GENERATOR,
    "agents.generator": Category.GENERATOR,
}

# The embedded stack: what an unset section means. Only options that are ready in this build.
EMBEDDED_DEFAULTS: dict[str, Any] = {
    "scoping.use_case": "rag",
    "scoping.objective": "retrieval_system",
    "data.preprocessing": ["cleaning_normalization", "tokenization", "chunking", "embedding_generation"],
    "data.chunking": "recursive",
    "retrieval.embedding_model": "sentence_transformers",
    "retrieval.vector_database": "faiss",
    "retrieval.system": ["hybrid_search"],
    "model.generator": "extractive",
}


def _as_ref(value: Any) -> Any:
    return {"provider": value} if isinstance(value, str) else value


class ProviderRef(BaseModel):
    """A provider chosen by name, with its settings (validated later by the provider's config class)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    provider: str

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _ref_schema(names: list[str] | None = None) -> dict[str, Any]:
    # The JSON Schema of what a user may write: a bare name or {provider: name, ...settings}. Without it the
    # schema would describe only the object form and editors would flag `vector_database: faiss`.
    name: dict[str, Any] = {"type": "string", **({"enum": names} if names else {})}
    obj = {"type": "object", "properties": {"provider": name}, "required": ["provider"],
           "additionalProperties": True}
    return {"anyOf": [name, obj]}


def _provider_value(names: list[str] | None = None) -> Any:
    return Annotated[ProviderRef, BeforeValidator(_as_ref), WithJsonSchema(_ref_schema(names))]


ProviderValue = _provider_value()


def _default_ref(name: str) -> ProviderRef:
    # pydantic does not validate defaults, so a default must already be a ProviderRef (not a dict).
    return ProviderRef(provider=name)


_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_PG_URL = re.compile(r"^postgres(?:ql)?(?:\+[A-Za-z0-9_]+)?://", re.IGNORECASE)
_TS_CONFIG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class SearchSettings(BaseModel):
    """How ``search`` and ``ask`` retrieve: the mode, the depth of each retriever and the fusion."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    k: int = Field(10, ge=1, le=1000, description="hits returned")
    candidates: int = Field(200, ge=1, le=10000, description="hits taken from each retriever before fusion")
    keyword_index: Literal["bm25", "fts5", "postgres"] = Field(
        "bm25", description="bm25: a static BM25 index per index version (bm25s; milliseconds at a million "
        "chunks); fts5: SQLite FTS5 only (no extra dependency, slow beyond ~10k chunks); postgres: PostgreSQL "
        "full-text search (tsvector, GIN index, ts_rank_cd) in one table per workspace on the server at "
        "keyword_url, synced incrementally by `flightdeck run`")
    keyword_url: str | None = Field(
        None, description="keyword_index postgres: the PostgreSQL URL, ${ENV} references resolved at use, e.g. "
        "\"${KB_PG_URL}\" or postgresql://user:${PGPASSWORD}@db:5432/kb")
    keyword_language: str = Field(
        "english", description="keyword_index postgres: the text search configuration (stemming, stop words), "
        "e.g. english, simple, german")
    # The defaults (weighted fusion, 1:1, 200 candidates) were chosen on SciFact's train split only
    # (benchmarks/tune_hybrid.py, BENCHMARKS.md): nDCG@10 0.736 against 0.722 for RRF k=60 over 100.
    fusion: Literal["rrf", "weighted"] = Field(
        "weighted", description="weighted: weighted min-max-normalised scores; rrf: weighted reciprocal rank")
    rrf_k: int = Field(60, ge=1, description="reciprocal-rank-fusion constant")
    keyword_weight: float = Field(1.0, ge=0, description="weight of the BM25 ranks (or scores) in the fusion")
    vector_weight: float = Field(1.0, ge=0, description="weight of the vector ranks (or scores) in the fusion")

    @field_validator("keyword_url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v and v.strip() and not _ENV_REF.search(v) and not _PG_URL.match(v):  # blank: refused as missing below
            raise ValueError("keyword_url must be a PostgreSQL URL, e.g. postgresql://user:${PGPASSWORD}@db:5432/kb "
                             "or \"${KB_PG_URL}\"")
        return v

    @field_validator("keyword_language")
    @classmethod
    def _ts_config_name(cls, v: str) -> str:
        if not _TS_CONFIG.match(v):
            raise ValueError(f"keyword_language {v!r} is not a text search configuration name; use one such as "
                             "english, simple or german (SELECT cfgname FROM pg_ts_config lists the server's)")
        return v

    @field_validator("keyword_index", "fusion", mode="before")
    @classmethod
    def _registered(cls, v: Any, info: Any) -> Any:
        # Each field names a provider of the registry category of the same name: an unknown name gets the
        # registry's message, which lists the available ones.
        if isinstance(v, str):
            from flightdeck.errors import UnknownProviderError
            from flightdeck.registry.lookup import registry

            try:
                registry().get(Category(info.field_name), v)
            except UnknownProviderError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _postgres_needs_url(self) -> SearchSettings:
        if self.keyword_index == "postgres" and not (self.keyword_url or "").strip():
            raise ValueError("keyword_index: postgres needs keyword_url, the PostgreSQL server that holds the "
                             "keyword index; add e.g. keyword_url: \"${KB_PG_URL}\" under retrieval.search")
        return self


class FailureSettings(BaseModel):
    """``data.failures``: how many items may fail to be ingested before ``flightdeck run`` fails.

    Whatever these say, a run fails when the dataset holds no document after it (every item failed, or the
    sources listed none). ``max_count``: the run fails when more items than this failed; ``max_share``: when
    more than this share of the items the sources listed failed (0.05 = 5 %). Unset: no limit. A run that
    trips a limit keeps the documents that were ingested (recorded in a dataset version), but the embed and
    index steps do not run, so the index stays the last good one until a run passes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_count: int | None = Field(None, ge=0, description="fail the run when more items than this failed")
    max_share: float | None = Field(None, ge=0.0, le=1.0,
                                    description="fail the run when more than this share of the items failed")


_PHASE_EXTRA_FIELDS: dict[str, dict[str, tuple[Any, Any]]] = {
    "data": {"chunking": (ProviderValue, _default_ref(EMBEDDED_DEFAULTS["data.chunking"])),
             "cleaning": (CleaningSettings, CleaningSettings()),
             "failures": (FailureSettings, FailureSettings())},
    "retrieval": {"search": (SearchSettings, SearchSettings()),
                  # unset: queries are searched as written; set, it needs query_transformation in system
                  "query_transformation": (ProviderValue | None, None)},
    "model": {"generator": (ProviderValue, _default_ref(EMBEDDED_DEFAULTS["model.generator"])),
              # what `flightdeck tune` optimises (spec/tuning.py); model.hyperparameter_optimization names the tuner
              "tuning": (TuningSettings, TuningSettings())},
    "deployment": {"server": (ServerSettings, ServerSettings())},
    "governance": {"policies": (list[PolicyStatement], []),
                   "audit": (AuditSettings, AuditSettings()),  # the audit log's key, anchor, retention (spec/audit.py)
                   # what a release needs before promotion (spec/releases.py)
                   "approvals": (ApprovalPolicy, ApprovalPolicy()),
                   # checks an answer passes before it is returned (spec/mitigation.py)
                   "hallucination_mitigation": (MitigationSettings, MitigationSettings())},
    # evaluation.judge: the generator that judges answers for llm_as_a_judge (unset: the project's own LLM, else
    # the packaged local model)
    "evaluation": {**EVALUATION_FIELDS, "judge": (ProviderValue | None, None)},
    # when the lifecycle runs by itself: cron, watch, and what a cycle does (spec/automation.py; flightdeck schedule)
    "improvement": {"automation": (AutomationSettings, AutomationSettings())},
    # the agent's instructions and budget (spec/agents.py) and the model it thinks with (unset: model.generator when
    # it is an LLM, else the packaged local one); agents.tools names its tools
    "agents": {"agent": (AgentSettings, AgentSettings()), "generator": (ProviderValue | None, None)},
}


def _section_field(path: str, option_ids: list[str], multi: bool) -> tuple[Any, Any]:
    default = EMBEDDED_DEFAULTS.get(path)
    if path in PROVIDER_SECTIONS:
        from flightdeck.registry.lookup import registry

        names = list(dict.fromkeys([*option_ids, *(n for c in section_categories(path) for n in registry().names(c))]))
        value = _provider_value(names)
        if multi:
            return list[value], [_default_ref(v) for v in default or []]  # type: ignore[valid-type]
        return value | None, _default_ref(default) if default is not None else None
    choice = Literal[tuple(option_ids)]  # type: ignore[valid-type]
    if multi:
        return list[choice], list(default or [])
    return choice | None, default


@lru_cache(maxsize=1)
def spec_model() -> type[BaseModel]:
    """The ``Spec`` model class, built once from the catalog."""
    cfg = ConfigDict(frozen=True, extra="forbid")
    phase_fields: dict[str, Any] = {}
    for phase in catalog().phases:
        fields: dict[str, Any] = {}
        for section in phase.sections:
            tp, default = _section_field(section.path, section.option_ids, section.multi)
            fields[section.key] = (tp, Field(default, description=section.heading))
        for name, (tp, default) in _PHASE_EXTRA_FIELDS.get(phase.key, {}).items():
            fields[name] = (tp, default)
        model = create_model(f"{phase.key.title()}Phase", __config__=cfg, __doc__=phase.heading, **fields)
        phase_fields[phase.key] = (model, Field(default_factory=model, description=phase.heading))
    return create_model(
        "Spec",
        __config__=cfg,
        __doc__="A flightdeck spec: the filled-in AI Engineering Master Workflow Checklist.",
        project=(str, Field(..., min_length=1, description="the project's name")),
        workspace=(str, Field(".flightdeck", description="workspace folder, relative to the spec")),
        **phase_fields,
    )


class Spec:  # pragma: no cover - typing helper only
    """Typing alias: instances of :func:`spec_model` (phases as attributes)."""
