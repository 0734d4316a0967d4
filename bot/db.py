"""The database engine and sessions, and applying migrations.

SQLite (the default) runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe): a writer waits for the lock up front instead
of failing half-way when a reader upgrades: one-shot CLI commands can write while ``run`` is live.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, busy_timeout_ms: int = 10_000) -> Engine:
    if not url.startswith("sqlite"):
        # Named per process, so `pledgebot status` and pg_stat_activity can say who leads.
        name = f"pledgebot pid {os.getpid()}"
        return create_engine(url, pool_pre_ping=True, connect_args={"application_name": name})
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below take over
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """An engine plus a session factory; one per process, built in ``bot.app``."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied (idempotent)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def describe(self) -> str:
        """The URL without any password, for logs and summaries."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
