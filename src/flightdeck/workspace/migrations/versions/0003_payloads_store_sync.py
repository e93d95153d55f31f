"""Filterable chunk payloads (for metadata filters on the keyword index); what each live vector-store
collection holds (for incremental sync); the collection of each index version.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chunk_payloads",
        sa.Column("chunk_id", sa.String, sa.ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("payload", sa.JSON, nullable=False, comment="normalised, filterable metadata"),
        sa.Column("payload_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "store_sync",
        sa.Column("collection", sa.String, primary_key=True),
        sa.Column("chunk_id", sa.String, primary_key=True),
        sa.Column("entry_hash", sa.String(64), nullable=False, comment="hash of the vector's text and payload"),
    )
    op.add_column("index_versions", sa.Column("collection", sa.String, nullable=True,
                                              comment="the live collection of a non-versioned store"))


def downgrade() -> None:
    op.drop_column("index_versions", "collection")
    op.drop_table("store_sync")
    op.drop_table("chunk_payloads")
