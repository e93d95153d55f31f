"""Synthetic data sets (data.sources: synthetic): immutable sets of examples with their source chunk, and the
per-chunk generation cache that lets a re-run skip the LLM for unchanged chunks.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "synthetic_sets",
        sa.Column("id", sa.String(64), primary_key=True,
                  comment="hash of the dataset version, generator, config and examples"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("dataset_version", sa.String(64), nullable=False),
        sa.Column("generator", sa.String, nullable=False, comment="the generator's model id"),
        sa.Column("config", sa.JSON, nullable=False,
                  comment="the synthetic settings and the generator's sampling settings"),
        sa.Column("counts", sa.JSON, nullable=False, comment="chunks, qa, paraphrase, dropped by reason"),
        sa.Column("dropped", sa.JSON, nullable=False, comment="every dropped item: chunk, kind, reason, text"),
    )
    op.create_table(
        "synthetic_examples",
        sa.Column("set_id", sa.String(64), sa.ForeignKey("synthetic_sets.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("ordinal", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(32), nullable=False, comment="hash of chunk id, kind and question"),
        sa.Column("kind", sa.String, nullable=False, comment="qa | paraphrase"),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("parent_question", sa.Text, comment="the question a paraphrase rephrases"),
        sa.Column("chunk_id", sa.String, nullable=False,
                  comment="the ground truth: the chunk the question was written from"),
        sa.Column("document_id", sa.String, nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("chunk_hash", sa.String(64), nullable=False, comment="sha256 of the chunk's text"),
        sa.Column("generation_key", sa.String(64), nullable=False),
    )
    op.create_table(
        "synthetic_generations",
        sa.Column("key", sa.String(64), primary_key=True,
                  comment="hash of chunk hash, model, sampling and prompt settings"),
        sa.Column("chunk_hash", sa.String(64), nullable=False),
        sa.Column("generator", sa.String, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("result", sa.JSON, nullable=False, comment="kept items and dropped items of one chunk"),
    )


def downgrade() -> None:
    op.drop_table("synthetic_generations")
    op.drop_table("synthetic_examples")
    op.drop_table("synthetic_sets")
