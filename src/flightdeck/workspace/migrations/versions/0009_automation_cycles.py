"""Lifecycle automation (checklist 9.3): each recorded cycle of ``flightdeck schedule``, kept apart from the audit log
so that the audit log's retention never erases the automation's history.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automation_cycles",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("trigger", sa.String, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("audit_seq", sa.Integer, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_automation_cycles_started", "automation_cycles", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_automation_cycles_started", "automation_cycles")
    op.drop_table("automation_cycles")
