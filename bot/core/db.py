"""The database engine and sessions, and applying migrations.

SQLite (the default) runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe): a writer waits for the lock up front instead
of failing half-way when a reader upgrades: one-shot CLI commands can write while ``run`` is live.

What can go wrong with the database itself (unreachable, missing, not SQLite, read-only, at a
revision this code does not know) is a ``DatabaseProblem``: one line saying what and where.
``pledgebot db upgrade`` creates a missing PostgreSQL database (``upgrade(create=True)``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util.exc import CommandError
from sqlalchemy import CursorResult, Engine, Result, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from bot.core.errors import DatabaseProblem

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_RETRY_SECONDS = 0.2  # between tries of a one-shot command waiting for SQLite's lock
MAINTENANCE_DATABASES = ("postgres", "template1")  # where CREATE DATABASE can be sent from


def make_engine(url: str, *, busy_timeout_ms: int = 10_000) -> Engine:
    if not url.startswith("sqlite"):
        # Named per process, so `pledgebot status` and pg_stat_activity can say who leads.
        name = f"pledgebot pid {os.getpid()}"
        return create_engine(url, pool_pre_ping=True, connect_args={"application_name": name})
    if url.startswith("sqlite:///") and ":memory:" not in url:
        folder = Path(url.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            file = folder.exists() and not folder.is_dir()
            raise DatabaseProblem(
                f"cannot create {folder}, the folder of the SQLite database: "
                + ("a file has that name" if file else str(exc.strerror or exc))
            ) from None
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
        waiting = getattr(engine, "lock_patience", None)
        deadline = None
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if waiting is None or "locked" not in str(exc.orig):
                    raise
                now = time.monotonic()
                if deadline is None:  # each try already waited busy_timeout: say why we wait
                    deadline = now + waiting.seconds
                    waiting.notice()
                time.sleep(LOCK_RETRY_SECONDS)  # never a busy loop, even with busy_timeout 0
                if now >= deadline:
                    raise DatabaseProblem(
                        f"the SQLite database {engine.url.database} stayed locked by another "
                        f"process for "
                        f"{waiting.seconds + busy_timeout_ms / 1000:.0f} s; try again later"
                    ) from None

    return engine


@dataclass(frozen=True)
class LockPatience:
    """How long a one-shot command waits for SQLite's write lock beyond the busy timeout (a
    long import or a busy ``run`` may hold it), and what it says once when it starts waiting."""

    seconds: float
    notice: Callable[[], None]


class Database:
    """An engine plus a session factory; one per process, built in ``bot.service.app``."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def wait_for_lock(self, patience: LockPatience | None) -> None:
        """SQLite: a transaction that finds the database locked past the busy timeout waits on
        (saying so once) up to ``patience.seconds`` more, then fails with one line. ``None``:
        it fails after the busy timeout (a service, whose roles restart instead)."""
        # Our own attribute on the engine, read by its "begin" hook (SQLAlchemy declares none).
        self.engine.lock_patience = patience  # type: ignore[attr-defined]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self, *, create: bool = False) -> bool:
        """Apply every Alembic migration not yet applied (idempotent). With ``create``, a
        PostgreSQL database that does not exist yet is created first; returns whether it was.
        Raises ``DatabaseProblem`` (one line) when the database cannot be used."""
        created = False
        if create and self.engine.dialect.name == "postgresql" and self._missing():
            self._create()
            created = True
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._explained(), self.engine.connect() as connection:
            self._check_versioned(connection)
            connection.rollback()  # end the inspection's transaction: Alembic commits its own
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        return created

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """Database errors as one line naming the database; anything else passes through."""
        try:
            yield
        except CommandError as exc:
            found = str(exc).removeprefix("Can't locate revision identified by ")
            if found == str(exc):
                raise DatabaseProblem(f"cannot migrate {self.where}: {exc}") from None
            raise DatabaseProblem(
                f"{self.where} is at revision {found}, which this version of pledgebot "
                "does not know (was it migrated by a newer version?)"
            ) from None
        except DBAPIError as exc:
            raise DatabaseProblem(self.explain(exc)) from None

    def explain(self, exc: DBAPIError) -> str:
        """What a driver error says about this database, in one line."""
        detail = one_line(str(exc.orig))
        where = self.where
        if self.engine.dialect.name == "sqlite":
            path = self.engine.url.database or where
            if "file is not a database" in detail:
                return f"{path} is not a SQLite database (check [database] url)"
            if "unable to open database file" in detail or "readonly" in detail:
                return f"cannot write {where}: it and its folder must be writable ({detail})"
            return f"{where}: {detail}"
        if "does not exist" in detail and f'"{self.engine.url.database}"' in detail:
            return f"{where}: the database does not exist: create it with `pledgebot db upgrade`"
        if isinstance(exc, OperationalError):
            return f"cannot connect to the database {where}: {detail}"
        return f"database {where}: {detail}"

    def _check_versioned(self, connection: Any) -> None:
        """Tables of ours without Alembic's record of the schema: upgrading would fail half-way
        (a table already exists), so say what the database is instead."""
        from bot.core.models import Base

        tables = set(inspect(connection).get_table_names())
        ours = tables & set(Base.metadata.tables)
        if ours and "alembic_version" not in tables:
            shown = ", ".join(sorted(ours)[:3]) + (", …" if len(ours) > 3 else "")
            raise DatabaseProblem(
                f"{self.where} has pledgebot tables ({shown}) but no alembic_version "
                "table, so its schema version is unknown: use an empty database, or restore the "
                "one pledgebot made"
            )

    def _missing(self) -> bool:
        """Whether connecting fails only because the PostgreSQL database does not exist."""
        try:
            with self.engine.connect():
                return False
        except OperationalError as exc:
            if f'database "{self.engine.url.database}" does not exist' in str(exc.orig):
                return True
            raise DatabaseProblem(self.explain(exc)) from None

    def _create(self) -> None:
        """CREATE DATABASE from a maintenance database, outside a transaction."""
        url = self.engine.url
        quote = self.engine.dialect.identifier_preparer.quote_identifier
        statement = f"CREATE DATABASE {quote(url.database or '')}"
        last: DBAPIError | None = None
        for maintenance in MAINTENANCE_DATABASES:
            admin = create_engine(url.set(database=maintenance), isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.exec_driver_sql(statement)
                return
            except ProgrammingError as exc:
                if getattr(exc.orig, "sqlstate", None) == "42P04":  # created meanwhile
                    return
                if getattr(exc.orig, "sqlstate", None) == "42501":  # insufficient privilege
                    user = url.username or ""
                    owner = f" OWNER {quote(user)}"
                    raise DatabaseProblem(
                        f"{self.where}: the database does not exist and {user!r} may not "
                        f"create it: ask an administrator to run `{statement}"
                        f"{owner if user else ''};`, then `pledgebot db upgrade` again"
                    ) from None
                last = exc
            except OperationalError as exc:  # no such maintenance database: try the next
                last = exc
            finally:
                admin.dispose()
        assert last is not None
        raise DatabaseProblem(
            f"{self.where}: the database does not exist and could not be created "
            f"({one_line(str(last.orig))}): create it, then run `pledgebot db upgrade`"
        )

    @property
    def where(self) -> str:
        """The database as an error names it: a SQLite file's path, else the URL sans password."""
        if self.engine.dialect.name == "sqlite" and self.engine.url.database:
            return f"the SQLite database {self.engine.url.database}"
        return self.describe()

    def describe(self) -> str:
        """The URL without any password, for logs and summaries."""
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed. ``Session.execute`` is typed as returning a
    ``Result``; for those statements it is a ``CursorResult``, which counts them."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


def one_line(text: str) -> str:
    """A driver's message on one line: libpq writes "…refused\\n\\tIs the server running…" and
    "FATAL:  database …"."""
    parts = [" ".join(part.split()) for part in text.splitlines() if part.strip()]
    return " ".join(
        p if p[-1] in ".:;?!" or i == len(parts) - 1 else p + ";" for i, p in enumerate(parts)
    )
