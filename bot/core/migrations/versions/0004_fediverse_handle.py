"""pledgemakers.fediverse_handle (@user@instance, mentioned in Mastodon posts)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fediverse_handle", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.drop_column("fediverse_handle")
