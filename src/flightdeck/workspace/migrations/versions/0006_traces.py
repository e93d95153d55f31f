"""Traces (checklist 7.1/7.4): one row per answer the server gave — the question, what was retrieved, the
prompt template's hash, the answer, tokens and timings, the index version and the key that asked.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("operation", sa.String, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(40), nullable=True),
        sa.Column("conversation_id", sa.String(64), nullable=True),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("search_query", sa.Text, nullable=True),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("found", sa.Integer, nullable=True),
        sa.Column("index_version", sa.String, nullable=True),
        sa.Column("generator", sa.String, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_traces_conversation", "traces", ["conversation_id", "created_at"])
    op.create_index("ix_traces_key", "traces", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_traces_key", "traces")
    op.drop_index("ix_traces_conversation", "traces")
    op.drop_table("traces")
