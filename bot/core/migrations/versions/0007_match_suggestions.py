"""match_suggestions: matchmaking's suggested introductions and their answers

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_key", sa.String(length=140), nullable=False),
        sa.Column("challenge_update_id", sa.Integer(), nullable=False),
        sa.Column("offer_update_id", sa.Integer(), nullable=False),
        sa.Column("seeker_id", sa.String(length=64), nullable=False),
        sa.Column("helper_id", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("seeker_answer", sa.String(length=8), nullable=True),
        sa.Column("helper_answer", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=254), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["challenge_update_id"],
            ["journey_updates.id"],
            name=op.f("fk_match_suggestions_challenge_update_id_journey_updates"),
        ),
        sa.ForeignKeyConstraint(
            ["offer_update_id"],
            ["journey_updates.id"],
            name=op.f("fk_match_suggestions_offer_update_id_journey_updates"),
        ),
        sa.ForeignKeyConstraint(
            ["seeker_id"],
            ["pledgemakers.id"],
            name=op.f("fk_match_suggestions_seeker_id_pledgemakers"),
        ),
        sa.ForeignKeyConstraint(
            ["helper_id"],
            ["pledgemakers.id"],
            name=op.f("fk_match_suggestions_helper_id_pledgemakers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_suggestions")),
        sa.UniqueConstraint("pair_key", name=op.f("uq_match_suggestions_pair_key")),
    )
    for column in ("challenge_update_id", "offer_update_id", "seeker_id", "helper_id", "state"):
        op.create_index(
            op.f(f"ix_match_suggestions_{column}"), "match_suggestions", [column], unique=False
        )


def downgrade() -> None:
    for column in ("challenge_update_id", "offer_update_id", "seeker_id", "helper_id", "state"):
        op.drop_index(op.f(f"ix_match_suggestions_{column}"), table_name="match_suggestions")
    op.drop_table("match_suggestions")
