"""Alembic environment: migrations run on the connection pledgebot hands over (see bot.core.db)."""

from __future__ import annotations

from alembic import context

from bot.core.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic` run by hand
    raise SystemExit("run migrations through `pledgebot db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
