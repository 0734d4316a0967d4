"""outbox.failure_class, outbox.first_attempt_at; channel_state's outage breaker

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# How messages failed or cancelled before this migration were worded: their failure class, so
# `pledgebot outbox retry --failed` can resend an outage's failures from before the upgrade.
# Longest prefix first (an erasure's wording begins like a staff cancellation's).
LEGACY = (
    ("gave up after%", "transient"),
    ("rejected%", "rejected"),
    ("recipient_gone%", "recipient_gone"),
    ("contact_stopped%", "opted_out"),
    ("cancelled: the address unsubscribed%", "unsubscribed"),
    ("cancelled by staff: pledgemaker erased%", "erased"),
    ("cancelled by staff%", "cancelled_by_staff"),
    ("consent withdrawn%", "withdrawn"),
    ("prompt answered%", "answered"),
    ("thread broken%", "thread_broken"),
    ("internal error%", "internal"),
)


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure_class", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("first_attempt_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("channel_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("down_since", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("probe_at", sa.DateTime(), nullable=True))
    outbox = sa.table(
        "outbox",
        sa.column("state", sa.String),
        sa.column("last_error", sa.Text),
        sa.column("failure_class", sa.String),
    )
    for pattern, failure in LEGACY:
        op.execute(
            outbox.update()
            .where(
                outbox.c.state.in_(("failed", "cancelled")),
                outbox.c.failure_class.is_(None),
                outbox.c.last_error.like(pattern),
            )
            .values(failure_class=failure)
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_state", schema=None) as batch_op:
        batch_op.drop_column("probe_at")
        batch_op.drop_column("down_since")
        batch_op.drop_column("consecutive_failures")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("first_attempt_at")
        batch_op.drop_column("failure_class")
