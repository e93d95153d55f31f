"""The OpenAI Responses and Assistants shapes (checklist 3.2, 3.3): the objects a key creates through them
(responses, conversations, assistants, threads, runs, and the state of an agent run paused on a client's tool call)
in ``openai_objects``, and the items of a conversation or the messages of a thread in ``openai_items``, each row
under the key that made it.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "openai_objects",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_index("ix_openai_objects_owner", "openai_objects", ["owner", "kind", "created_at"])
    op.create_index("ix_openai_objects_parent", "openai_objects", ["parent", "created_at"])
    op.create_table(
        "openai_items",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("container", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_index("ix_openai_items_container", "openai_items", ["container", "seq"])
    op.create_index("ix_openai_items_id", "openai_items", ["id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_openai_items_id", "openai_items")
    op.drop_index("ix_openai_items_container", "openai_items")
    op.drop_table("openai_items")
    op.drop_index("ix_openai_objects_parent", "openai_objects")
    op.drop_index("ix_openai_objects_owner", "openai_objects")
    op.drop_table("openai_objects")
