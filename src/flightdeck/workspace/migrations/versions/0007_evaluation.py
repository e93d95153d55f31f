"""Evaluation (checklist 3.4, 4): the evaluation sets, stored by content hash, and the experiment runs table —
one row per `flightdeck eval` (later `tune`) run with its params, metrics, gates, spec hash and git commit,
attached to the index version it measured.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_sets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("question_count", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("artifact", sa.String(64), nullable=False),
    )
    op.create_table(
        "experiment_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("git_commit", sa.String(40), nullable=True),
        sa.Column("index_version", sa.String(64), nullable=True),
        sa.Column("dataset_version", sa.String(64), nullable=True),
        sa.Column("eval_set", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("gates", sa.JSON, nullable=False),
        sa.Column("passed", sa.Integer, nullable=True),
        sa.Column("artifacts", sa.JSON, nullable=False),
        sa.Column("tracked", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_experiment_runs_name", "experiment_runs", ["kind", "name", "started_at"])
    op.create_index("ix_experiment_runs_index", "experiment_runs", ["index_version"])


def downgrade() -> None:
    op.drop_index("ix_experiment_runs_index", "experiment_runs")
    op.drop_index("ix_experiment_runs_name", "experiment_runs")
    op.drop_table("experiment_runs")
    op.drop_table("eval_sets")
