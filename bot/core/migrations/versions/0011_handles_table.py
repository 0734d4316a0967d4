"""handles (pledgemaker, network, value) replace the six per-network columns of pledgemakers

Each non-empty value moves to a row named after its channel; the downgrade puts them back (a
network other than these six has no column to go back to: its rows are dropped with the table).

The columns are dropped with ``ALTER TABLE … DROP COLUMN`` on SQLite too (3.35 or newer), not in
batch mode: a batch copies the table and drops the old one, and with ``PRAGMA foreign_keys=ON``
(``bot.core.db``, on every connection, and a no-op inside the migration's transaction) that DROP
fails as soon as a contact, an update or a handle refers to a pledgemaker.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# network (the channel's registered name) → its former column, with the column's type
COLUMNS = {
    "x": ("x_handle", 32),
    "mastodon": ("fediverse_handle", 300),
    "email": ("email", 254),
    "matrix": ("matrix_id", 255),
    "bluesky": ("bluesky_handle", 253),
    "linkedin": ("linkedin_organization_id", 20),
}
DROP_COLUMN_SINCE = (3, 35, 0)  # SQLite's first version with ALTER TABLE … DROP COLUMN


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < DROP_COLUMN_SINCE:
        raise RuntimeError(
            f"this migration needs SQLite {'.'.join(map(str, DROP_COLUMN_SINCE))} or newer "
            f"(Python's sqlite3 has {sqlite3.sqlite_version})"
        )
    handles = op.create_table(
        "handles",
        sa.Column("pledgemaker_id", sa.String(length=64), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["pledgemaker_id"],
            ["pledgemakers.id"],
            name=op.f("fk_handles_pledgemaker_id_pledgemakers"),
        ),
        sa.PrimaryKeyConstraint("pledgemaker_id", "network", name=op.f("pk_handles")),
    )
    pledgemakers = sa.table("pledgemakers", sa.column("id", sa.String), *_columns())
    for network, (column, _) in COLUMNS.items():
        value = pledgemakers.c[column]
        op.execute(
            handles.insert().from_select(
                ["pledgemaker_id", "network", "value"],
                sa.select(pledgemakers.c.id, sa.literal(network, sa.String), value).where(
                    value.is_not(None), value != ""
                ),
            )
        )
    for column, _ in COLUMNS.values():
        op.drop_column("pledgemakers", column)


def downgrade() -> None:
    for column, length in COLUMNS.values():
        op.add_column("pledgemakers", sa.Column(column, sa.String(length=length), nullable=True))
    pledgemakers = sa.table("pledgemakers", sa.column("id", sa.String), *_columns())
    handles = sa.table(
        "handles",
        sa.column("pledgemaker_id", sa.String),
        sa.column("network", sa.String),
        sa.column("value", sa.String),
    )
    for network, (column, _) in COLUMNS.items():
        value = (
            sa.select(handles.c.value)
            .where(handles.c.pledgemaker_id == pledgemakers.c.id, handles.c.network == network)
            .scalar_subquery()
        )
        op.execute(pledgemakers.update().values({column: value}))
    op.drop_table("handles")


def _columns() -> list[sa.ColumnClause[str]]:
    return [sa.column(column, sa.String) for column, _ in COLUMNS.values()]
