"""consents.recorded_by, .agreed_by, .agreed_on, .how: an agreement staff record for a pledgemaker

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recorded_by", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("agreed_by", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("agreed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("how", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("how")
        batch_op.drop_column("agreed_on")
        batch_op.drop_column("agreed_by")
        batch_op.drop_column("recorded_by")
