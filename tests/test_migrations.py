"""The Alembic migrations build exactly the schema the models describe, and re-running is a no-op."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.core.db import Database
from bot.core.models import Base


def test_migrations_match_the_models_and_upgrade_is_idempotent(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'schema.db'}")
    db.upgrade()
    db.upgrade()  # `run` and every command upgrade at start: a second time changes nothing
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    db.dispose()
    assert differences == [], "a model changed without a migration"
