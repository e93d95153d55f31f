"""The first tables: documents, chunks (+ FTS5 on SQLite), embeddings cache, runs, versions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("pipeline_hash", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String, nullable=False),
    )
    op.create_table(
        "chunks",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("document_id", sa.String, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("indexed_text", sa.Text, nullable=False),
        sa.Column("heading", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
    )
    op.create_index("ix_chunks_document", "chunks", ["document_id", "ordinal"])
    op.create_table(
        "embeddings",
        sa.Column("model_id", sa.String, primary_key=True),
        sa.Column("text_hash", sa.String(64), primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON),
    )
    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("step", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("output_hash", sa.String(64)),
        sa.Column("counts", sa.JSON),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_step_runs_step", "step_runs", ["step", "status"])
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("manifest_artifact", sa.String(64), nullable=False),
        sa.Column("document_count", sa.Integer, nullable=False),
    )
    op.create_table(
        "index_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("dataset_version", sa.String(64), nullable=False),
        sa.Column("embedder", sa.String, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("store", sa.String, nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("index_artifact", sa.String(64), nullable=False),
        sa.Column("ids_artifact", sa.String(64), nullable=False),
    )
    op.create_table(
        "state",
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        # BM25 keyword index; kept in step with `chunks` inside the same transactions.
        op.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5("
                   "chunk_id UNINDEXED, indexed_text, tokenize='porter unicode61')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    for table in ("state", "index_versions", "dataset_versions", "step_runs", "runs", "embeddings",
                  "chunks", "documents"):
        op.drop_table(table)
