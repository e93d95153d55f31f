"""The categories of providers; each one is a folder of the package (DESIGN.md §3)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Category"]


class Category(StrEnum):
    """What a provider is. The value is the word used in messages: ``Unknown vector_store 'x'``."""

    USE_CASE = "use_case"
    OBJECTIVE = "objective"
    LATENCY_TIER = "latency_tier"
    SOURCE = "source"
    SYNTHESIZER = "synthesizer"  # writes examples from the chunks (listed with data.sources in the checklist)
    PREPROCESSOR = "preprocessor"
    CHUNKER = "chunker"
    VERSIONING = "versioning"
    SPLITTER = "splitter"
    EMBEDDER = "embedder"
    VECTOR_STORE = "vector_store"
    KEYWORD_INDEX = "keyword_index"  # retrieval.search.keyword_index
    FUSION = "fusion"  # retrieval.search.fusion
    RETRIEVAL_FEATURE = "retrieval_feature"
    QUERY_TRANSFORMATION = "query_transformation"
    GENERATOR = "generator"
    SERVING_API = "serving_api"  # deployment.serving_apis: the transports of flightdeck serve
    ACCESS_CONTROL = "access_control"  # governance.access_control: API keys, roles
    MONITORING = "monitoring"  # monitoring.model_monitoring / logging: the server's metrics
    EVAL_METRIC = "eval_metric"  # evaluation.metrics: the metric families flightdeck eval measures
    VALIDATION = "validation"  # evaluation.validations: hallucination, safety, bias, drift, explainability
    TRACKER = "tracker"  # model.experiment_tracking: where runs are recorded
    TUNER = "tuner"  # model.hyperparameter_optimization: what proposes the settings of each tuning trial
    MODEL_GOVERNANCE = "model_governance"  # governance.model_governance: releases, approvals, audit, lineage
    RESPONSIBLE_AI = "responsible_ai"  # governance.responsible_ai: red-teaming, safety testing, bias monitoring
    EVAL_TOOL = "eval_tool"  # evaluation.tools: other evaluation frameworks' formats and checks
    LIFECYCLE = "lifecycle"  # improvement.future_proofing: dataset versions, automatic re-training and promotion
    MODEL_REGISTRY = "model_registry"  # deployment.model_registry: where releases are mirrored (MLflow, W&B…)
    AGENT_TOOL = "agent_tool"  # agents.tools: what an agent may call (search, SQL, a sandbox, the web, your code)
    AGENT_MEMORY = "agent_memory"  # agents.memory: where an agent's conversations and facts are kept
    AGENT_FRAMEWORK = "agent_framework"  # model.agent_frameworks: LangChain, LlamaIndex, CrewAI, OpenAI Assistants
    ORCHESTRATION = "orchestration"  # agents.orchestration: LangGraph runs the agent; Airflow & co. run the pipeline
