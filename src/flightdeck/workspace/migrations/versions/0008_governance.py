"""Governance (checklist 5.4, 8.1): the hash-chained audit log, releases, their history (reviews, stage changes,
overrides) and their aliases.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "seq"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "releases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("number", sa.Integer, nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("manifest", sa.String(64), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("dataset_version", sa.String(64), nullable=True),
        sa.Column("index_version", sa.String(64), nullable=True),
        sa.Column("eval_run", sa.String(40), nullable=True),
        sa.Column("gates_passed", sa.Integer, nullable=True),
        sa.Column("stage", sa.String, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
    )
    op.create_index("ix_releases_stage", "releases", ["stage", "number"])
    op.create_table(
        "release_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.String(40), sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("role", sa.String, nullable=True),
        sa.Column("event", sa.String, nullable=False),
        sa.Column("from_stage", sa.String, nullable=True),
        sa.Column("to_stage", sa.String, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_release_events_release", "release_events", ["release_id", "id"])
    op.create_table(
        "release_aliases",
        sa.Column("alias", sa.String, primary_key=True),
        sa.Column("release_id", sa.String(40), sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("release_aliases")
    op.drop_index("ix_release_events_release", "release_events")
    op.drop_table("release_events")
    op.drop_index("ix_releases_stage", "releases")
    op.drop_table("releases")
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_index("ix_audit_log_action", "audit_log")
    op.drop_index("ix_audit_log_actor", "audit_log")
    op.drop_table("audit_log")
