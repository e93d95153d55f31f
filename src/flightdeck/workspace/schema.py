"""Table definitions of the metadata DB (SQLAlchemy Core). Migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["metadata", "documents", "chunks", "embeddings", "runs", "step_runs", "dataset_versions",
           "index_versions", "chunk_payloads", "store_sync", "state", "dataset_version_documents",
           "document_signatures", "dataset_splits", "synthetic_sets", "synthetic_examples",
           "synthetic_generations", "api_keys", "traces", "eval_sets", "experiment_runs", "audit_log",
           "releases", "release_events", "release_aliases", "automation_cycles", "agent_messages",
           "agent_facts", "openai_objects", "openai_items"]

metadata = MetaData()

documents = Table(
    "documents", metadata,
    Column("id", String, primary_key=True, comment="<source label>/<path within the source>"),
    Column("source_uri", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("pipeline_hash", String(64), nullable=False, comment="hash of the parse/clean/chunk config"),
    Column("media_type", String, nullable=False),
    Column("title", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("run_id", String, nullable=False, comment="the run that last wrote it"),
)

chunks = Table(
    "chunks", metadata,
    Column("id", String, primary_key=True),
    Column("document_id", String, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("indexed_text", Text, nullable=False),
    Column("heading", Text, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("text_hash", String(64), nullable=False, comment="sha256 of indexed_text"),
    Column("metadata", JSON, nullable=False),
    Index("ix_chunks_document", "document_id", "ordinal"),
)

embeddings = Table(
    "embeddings", metadata,
    Column("model_id", String, primary_key=True),
    Column("text_hash", String(64), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False, comment="float32, little-endian"),
)

runs = Table(
    "runs", metadata,
    Column("id", String, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", String, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("summary", JSON),
)

step_runs = Table(
    "step_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String, ForeignKey("runs.id"), nullable=False),
    Column("step", String, nullable=False),
    Column("status", String, nullable=False, comment="running | succeeded | skipped | failed"),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("input_hash", String(64), nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("output_hash", String(64)),
    Column("counts", JSON),
    Column("error", Text),
    Index("ix_step_runs_step", "step", "status"),
)

dataset_versions = Table(
    "dataset_versions", metadata,
    Column("id", String(64), primary_key=True, comment="hash of the manifest"),
    Column("created_at", Float, nullable=False),
    Column("run_id", String, nullable=False),
    Column("manifest_artifact", String(64), nullable=False),
    Column("document_count", Integer, nullable=False),
)

index_versions = Table(
    "index_versions", metadata,
    Column("id", String(64), primary_key=True, comment="hash of the index artifact"),
    Column("created_at", Float, nullable=False),
    Column("run_id", String, nullable=False),
    Column("dataset_version", String(64), nullable=False),
    Column("embedder", String, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("store", String, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("index_artifact", String(64), nullable=False),
    Column("ids_artifact", String(64), nullable=False),
    Column("collection", String, nullable=True, comment="the live collection of a non-versioned store"),
)

chunk_payloads = Table(
    "chunk_payloads", metadata,
    Column("chunk_id", String, ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True),
    Column("payload", JSON, nullable=False, comment="normalised, filterable metadata"),
    Column("payload_hash", String(64), nullable=False),
)

store_sync = Table(
    "store_sync", metadata,
    Column("collection", String, primary_key=True),
    Column("chunk_id", String, primary_key=True),
    Column("entry_hash", String(64), nullable=False, comment="hash of the vector's text and payload"),
)

state = Table(
    "state", metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

# revision 0002
dataset_version_documents = Table(
    "dataset_version_documents", metadata,
    Column("dataset_version", String(64), primary_key=True),
    Column("document_id", String, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("chunks_artifact", String(64), comment="JSON of the document's chunks, content-addressed"),
)

document_signatures = Table(
    "document_signatures", metadata,
    Column("document_id", String, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("text_hash", String(64), nullable=False, comment="exact-duplicate key"),
    Column("minhash", LargeBinary, comment="near-duplicate signature"),
    Column("language", String(16)),
    Index("ix_document_signatures_text", "text_hash"),
)

dataset_splits = Table(
    "dataset_splits", metadata,
    Column("dataset_version", String(64), primary_key=True),
    Column("document_id", String, primary_key=True),
    Column("split", String, nullable=False, comment="train | validation | test, or fold-N"),
    Column("strategy", String, nullable=False),
)

# revision 0004
synthetic_sets = Table(
    "synthetic_sets", metadata,
    Column("id", String(64), primary_key=True,
           comment="hash of the dataset version, generator, config and examples"),
    Column("created_at", Float, nullable=False),
    Column("run_id", String, nullable=False),
    Column("dataset_version", String(64), nullable=False),
    Column("generator", String, nullable=False, comment="the generator's model id"),
    Column("config", JSON, nullable=False, comment="the synthetic settings and the generator's sampling settings"),
    Column("counts", JSON, nullable=False, comment="chunks, qa, paraphrase, dropped by reason"),
    Column("dropped", JSON, nullable=False, comment="every dropped item: chunk, kind, reason, text"),
)

synthetic_examples = Table(
    "synthetic_examples", metadata,
    Column("set_id", String(64), ForeignKey("synthetic_sets.id", ondelete="CASCADE"), primary_key=True),
    Column("ordinal", Integer, primary_key=True),
    Column("id", String(32), nullable=False, comment="hash of chunk id, kind and question"),
    Column("kind", String, nullable=False, comment="qa | paraphrase"),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("parent_question", Text, comment="the question a paraphrase rephrases"),
    Column("chunk_id", String, nullable=False, comment="the ground truth: the chunk the question was written from"),
    Column("document_id", String, nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("chunk_hash", String(64), nullable=False, comment="sha256 of the chunk's text"),
    Column("generation_key", String(64), nullable=False),
)

synthetic_generations = Table(
    "synthetic_generations", metadata,
    Column("key", String(64), primary_key=True, comment="hash of chunk hash, model, sampling and prompt settings"),
    Column("chunk_hash", String(64), nullable=False),
    Column("generator", String, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("result", JSON, nullable=False, comment="kept items and dropped items of one chunk"),
)


api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True, comment="the key's public id, also its prefix"),
    Column("name", String, nullable=True),
    Column("role", String, nullable=False),
    Column("key_hash", String(64), nullable=False, comment="SHA-256 of the whole key, hex"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)


traces = Table(
    "traces", metadata,
    Column("id", String(40), primary_key=True, comment="tr_<hex>: the id an answer carries"),
    Column("created_at", Float, nullable=False),
    Column("operation", String, nullable=False, comment="query, chat or batch"),
    Column("key_id", String(32), nullable=True, comment="the API key that asked (local: no key)"),
    Column("request_id", String(40), nullable=True),
    Column("conversation_id", String(64), nullable=True),
    Column("question", Text, nullable=False),
    Column("search_query", Text, nullable=True, comment="what was retrieved with, when not the question"),
    Column("answer", Text, nullable=True),
    Column("found", Integer, nullable=True),
    Column("index_version", String, nullable=True),
    Column("generator", String, nullable=True, comment="the generator's provider and model"),
    Column("details", JSON, nullable=False, comment="retrieved chunk ids and scores, citations, prompt "
                                                    "template and hash, flags, tokens, timings, error"),
    Index("ix_traces_conversation", "conversation_id", "created_at"),
    Index("ix_traces_key", "key_id", "created_at"),
)


# revision 0007
eval_sets = Table(
    "eval_sets", metadata,
    Column("id", String(64), primary_key=True, comment="sha256 of the set's canonical JSONL"),
    Column("name", String, nullable=False),
    Column("path", Text, nullable=False, comment="where it was read from, as the spec gives it"),
    Column("created_at", Float, nullable=False),
    Column("question_count", Integer, nullable=False),
    Column("counts", JSON, nullable=False, comment="answerable, unanswerable, by tag"),
    Column("artifact", String(64), nullable=False, comment="the canonical JSONL, content-addressed"),
)

experiment_runs = Table(
    "experiment_runs", metadata,
    Column("id", String(40), primary_key=True, comment="ev_<hex> (eval) or tu_<hex> (tune)"),
    Column("kind", String, nullable=False, comment="eval | tune | trial"),
    Column("name", String, nullable=False, comment="the evaluation set's name, or the study's"),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("status", String, nullable=False, comment="running | succeeded | failed"),
    Column("spec_hash", String(64), nullable=False),
    Column("git_commit", String(40), nullable=True, comment="HEAD of the spec's repository, when it is one"),
    Column("index_version", String(64), nullable=True, comment="the index version it measured"),
    Column("dataset_version", String(64), nullable=True),
    Column("eval_set", String(64), nullable=True, comment="eval_sets.id"),
    Column("params", JSON, nullable=False, comment="retrieval, generator and evaluation settings"),
    Column("metrics", JSON, nullable=False),
    Column("gates", JSON, nullable=False, comment="each gate, the measured value and whether it passed"),
    Column("passed", Integer, nullable=True, comment="1: every gate passed, 0: one was missed, null: no gates"),
    Column("artifacts", JSON, nullable=False, comment="name → artifact digest (per-question results, reports)"),
    Column("tracked", JSON, nullable=False, comment="tracker → where the run went (run id or URL), or its error"),
    Column("error", Text, nullable=True),
    Index("ix_experiment_runs_name", "kind", "name", "started_at"),
    Index("ix_experiment_runs_index", "index_version"),
)


# revision 0008
audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False, comment="1, 2, 3 … with no gap"),
    Column("at", Float, nullable=False, comment="unix time of the entry"),
    Column("actor", String, nullable=False, comment="key:<key id> for an API key, user:<OS user> for the CLI"),
    Column("action", String, nullable=False, comment="run.finished, key.created, release.promoted …"),
    Column("target", Text, nullable=False, comment="what it acted on: a run, key, document or release id"),
    Column("details", Text, nullable=False, comment="canonical JSON (sorted keys, no spaces): what is hashed"),
    Column("prev_hash", String(64), nullable=False, comment="the previous entry's hash (64 zeros for seq 1)"),
    Column("hash", String(64), nullable=False, comment="sha256 of prev_hash and the entry's canonical fields"),
    Column("signature", String(64), nullable=True, comment="HMAC-SHA256 of hash under a key kept outside"),
    Index("ix_audit_log_actor", "actor", "seq"),
    Index("ix_audit_log_action", "action", "seq"),
    Index("ix_audit_log_at", "at"),
)

releases = Table(
    "releases", metadata,
    Column("id", String(40), primary_key=True, comment="rel_<first 16 hex of the manifest's sha256>"),
    Column("number", Integer, nullable=False, unique=True, comment="1, 2, 3 … in the order created"),
    Column("created_at", Float, nullable=False),
    Column("created_by", String, nullable=False),
    Column("manifest", String(64), nullable=False, comment="the manifest artifact's sha256: the release's content"),
    Column("spec_hash", String(64), nullable=False),
    Column("dataset_version", String(64), nullable=True),
    Column("index_version", String(64), nullable=True),
    Column("eval_run", String(40), nullable=True, comment="the experiment run whose gates it carries"),
    Column("gates_passed", Integer, nullable=True, comment="1 every gate passed, 0 one missed, null no gates"),
    Column("stage", String, nullable=False, comment="candidate | staging | production | archived"),
    Column("summary", JSON, nullable=False, comment="what `release list` shows without reading the manifest"),
    Index("ix_releases_stage", "stage", "number"),
)

release_events = Table(
    "release_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", String(40), ForeignKey("releases.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String, nullable=False),
    Column("role", String, nullable=True, comment="the actor's role when it acted (an API key's, or admin)"),
    Column("event", String, nullable=False, comment="created | approved | rejected | promoted | rolled_back | ..."),
    Column("from_stage", String, nullable=True),
    Column("to_stage", String, nullable=True),
    Column("comment", Text, nullable=True),
    Column("details", JSON, nullable=False, comment="an override's reason, the gates missed, …"),
    Index("ix_release_events_release", "release_id", "id"),
)

release_aliases = Table(
    "release_aliases", metadata,
    Column("alias", String, primary_key=True, comment="a name a release is served or promoted by"),
    Column("release_id", String(40), ForeignKey("releases.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String, nullable=False),
)


# revision 0009
automation_cycles = Table(
    "automation_cycles", metadata,
    Column("id", String(40), primary_key=True, comment="cy_<16 hex>: the cycle"),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("trigger", String, nullable=False, comment="cron | watch | once"),
    Column("actor", String, nullable=False, comment="automation:<name>"),
    Column("status", String, nullable=False, comment="succeeded | waiting_for_approval | gates_failed | ..."),
    Column("audit_seq", Integer, nullable=True, comment="its audit entry (automation.cycle), while retention keeps it"),
    Column("details", JSON, nullable=False, comment="the cycle as `schedule --once --json` prints it"),
    Index("ix_automation_cycles_started", "started_at"),
)


# revision 0010
agent_messages = Table(
    "agent_messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True, comment="the order of the messages"),
    Column("scope", String(64), nullable=False, comment="sha256 of the scope (a user or key id)"),
    Column("conversation", Text, nullable=False),
    Column("role", String(16), nullable=False, comment="user | assistant"),
    Column("content", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_agent_messages_conversation", "scope", "conversation", "id"),
)

agent_facts = Table(
    "agent_facts", metadata,
    Column("id", String(40), primary_key=True, comment="16 hex digits"),
    Column("scope", String(64), nullable=False, comment="sha256 of the scope (a user or key id)"),
    Column("text", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("vector", LargeBinary, nullable=True, comment="float32 unit vector, when an embedder was given"),
    Column("dimension", Integer, nullable=True),
    Column("at", Float, nullable=False),
    Index("ix_agent_facts_scope", "scope", "at"),
)


# revision 0011: what a key creates through the OpenAI Responses and Assistants shapes (serving/openai_store.py)
openai_objects = Table(
    "openai_objects", metadata,
    Column("id", String(64), primary_key=True, comment="resp_…, conv_…, asst_…, thread_…, run_…, or a call id"),
    Column("kind", String(16), nullable=False, comment="response | conversation | assistant | thread | run | paused"),
    Column("owner", String(64), nullable=False, comment="the API key that made it (local: no key)"),
    Column("parent", String(64), nullable=True, comment="a run's thread"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("body", JSON, nullable=False, comment="the object as the API returns it, and what it keeps inside"),
    Index("ix_openai_objects_owner", "owner", "kind", "created_at"),
    Index("ix_openai_objects_parent", "parent", "created_at"),
)

openai_items = Table(
    "openai_items", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True, comment="the order of the items"),
    Column("id", String(64), nullable=False, comment="msg_…, fc_…, fs_…"),
    Column("container", String(64), nullable=False, comment="the conversation or thread"),
    Column("owner", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("body", JSON, nullable=False, comment="the item (a conversation's) or message (a thread's)"),
    Index("ix_openai_items_container", "container", "seq"),
    Index("ix_openai_items_id", "id", unique=True),
)
