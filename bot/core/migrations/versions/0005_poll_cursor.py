"""channel_state.poll_cursor: a chat channel's cursor that is not an integer (Matrix, IMAP)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channel_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("poll_cursor", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_state", schema=None) as batch_op:
        batch_op.drop_column("poll_cursor")
