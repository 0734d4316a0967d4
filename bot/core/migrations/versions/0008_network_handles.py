"""pledgemakers.bluesky_handle and .linkedin_organization_id (mentioned in posts there)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bluesky_handle", sa.String(length=253), nullable=True))
        batch_op.add_column(
            sa.Column("linkedin_organization_id", sa.String(length=20), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("pledgemakers", schema=None) as batch_op:
        batch_op.drop_column("linkedin_organization_id")
        batch_op.drop_column("bluesky_handle")
