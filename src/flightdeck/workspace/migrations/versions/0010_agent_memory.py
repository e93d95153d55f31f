"""Agent memory (checklist 6.2): the built-in memory's conversations (``agent_messages``) and long-term facts
(``agent_facts``), each row under the sha256 of its scope (a user or key id).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("conversation", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_agent_messages_conversation", "agent_messages", ["scope", "conversation", "id"])
    op.create_table(
        "agent_facts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=True),
        sa.Column("dimension", sa.Integer, nullable=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_agent_facts_scope", "agent_facts", ["scope", "at"])


def downgrade() -> None:
    op.drop_index("ix_agent_facts_scope", "agent_facts")
    op.drop_table("agent_facts")
    op.drop_index("ix_agent_messages_conversation", "agent_messages")
    op.drop_table("agent_messages")
