"""API keys (checklist 8.3): each stored as the SHA-256 of the key, never the key itself, with its role and its
expiry and revocation times.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True, comment="the key's public id, also its prefix"),
        sa.Column("name", sa.String, nullable=True, comment="what the key is for, as its creator said"),
        sa.Column("role", sa.String, nullable=False, comment="viewer, editor, approver or admin"),
        sa.Column("key_hash", sa.String(64), nullable=False, comment="SHA-256 of the whole key, hex"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True, comment="unset: the key does not expire"),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
