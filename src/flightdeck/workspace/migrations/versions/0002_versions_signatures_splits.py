"""Dataset versions keep their documents (for diff and checkout); near-duplicate signatures; splits.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_version_documents",
        sa.Column("dataset_version", sa.String(64), primary_key=True),
        sa.Column("document_id", sa.String, primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("chunks_artifact", sa.String(64), comment="JSON of the document's chunks, content-addressed"),
    )
    op.create_table(
        "document_signatures",
        sa.Column("document_id", sa.String, primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False, comment="exact-duplicate key"),
        sa.Column("minhash", sa.LargeBinary, comment="near-duplicate signature"),
        sa.Column("language", sa.String(16)),
    )
    op.create_index("ix_document_signatures_text", "document_signatures", ["text_hash"])
    op.create_table(
        "dataset_splits",
        sa.Column("dataset_version", sa.String(64), primary_key=True),
        sa.Column("document_id", sa.String, primary_key=True),
        sa.Column("split", sa.String, nullable=False, comment="train | validation | test, or fold-N"),
        sa.Column("strategy", sa.String, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dataset_splits")
    op.drop_index("ix_document_signatures_text", "document_signatures")
    op.drop_table("document_signatures")
    op.drop_table("dataset_version_documents")
