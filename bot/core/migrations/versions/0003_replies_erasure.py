"""outbox.reply_to (a staff reply answers one of their messages), outbox by pledgemaker;
pledgemakers erased on request

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_to", sa.String(length=100), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_pledgemaker_id"), ["pledgemaker_id"], unique=False
        )
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("erased_ref", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_pledgemakers_erased_ref"), ["erased_ref"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pledgemakers_erased_ref"))
        batch_op.drop_column("erased_ref")
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_pledgemaker_id"))
        batch_op.drop_column("reply_to")
