"""pledgemakers.email and .matrix_id (where invitations are sent), invite_tokens.address (the
address an invitation was sent to: a message from it, or a join, redeems it)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("matrix_id", sa.String(length=255), nullable=True))
    with op.batch_alter_table("invite_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_invite_tokens_address", ["channel", "address"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invite_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_invite_tokens_address")
        batch_op.drop_column("address")
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.drop_column("matrix_id")
        batch_op.drop_column("email")
