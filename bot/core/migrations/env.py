"""Alembic environment: migrations run on the connection pledgebot hands over (see bot.core.db)."""

from __future__ import annotations

from alembic import context

from bot.core import models, staff_models  # noqa: F401  (its tables join Base.metadata)

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic` run by hand
    raise SystemExit("run migrations through `pledgebot db upgrade`")

context.configure(
    connection=connection,
    target_metadata=models.Base.metadata,  # every table, staff_models' too
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
