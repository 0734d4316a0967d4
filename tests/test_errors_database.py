"""Database problems a new user meets: one line saying what is wrong and where, never
'internal error: XError(…)'. A URL that cannot work is a configuration error (exit 2, with its
line); a database that cannot be reached, opened or migrated exits 1. `db upgrade` creates a
missing PostgreSQL database."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auxil.cli import pledgebot
from tests.conftest import PG_ADMIN, write_config

DATABASES = "sqlite:///pledgebot.db or postgresql+psycopg://user@host/database"


def with_url(folder: Path, url: str) -> Path:
    path = write_config(folder)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('url = "sqlite:///pledgebot.db"', f'url = "{url}"'), "utf-8")
    return path


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert "internal error" not in proc.stderr
    [line] = proc.stderr.splitlines()
    return line


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "not a url",
            f"config.toml:4: database.url: not a database URL; write {DATABASES} (got 'not a url')",
            id="not-a-url",
        ),
        pytest.param(
            "mysql://staff:hunter2@db.example.org/pledges",
            "config.toml:4: database.url: pledgebot runs on SQLite or PostgreSQL, not 'mysql': "
            f"write {DATABASES} (got 'mysql://staff:***@db.example.org/pledges')",
            id="mysql-password-hidden",
        ),
        pytest.param(
            "mysql://staff:hun/ter@2@db.example.org/pledges",
            "config.toml:4: database.url: pledgebot runs on SQLite or PostgreSQL, not 'mysql': "
            f"write {DATABASES} (got 'mysql://staff:***@db.example.org/pledges')",
            id="password-with-slash-and-at-hidden",
        ),
        pytest.param(
            "postgresql://staff@db.example.org/pledges",
            f"config.toml:4: database.url: its driver (psycopg2) is not installed: write "
            f"{DATABASES} (got 'postgresql://staff@db.example.org/pledges')",
            id="driver-not-installed",
        ),
    ],
)
def test_a_url_that_cannot_work_is_a_config_error_on_its_line(
    tmp_path: Path, url: str, expected: str
) -> None:
    with_url(tmp_path, url)
    assert one_line(pledgebot(tmp_path, "status"), 2) == expected
    assert "hunter2" not in expected and "ter@2" not in expected


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_postgresql_on_a_closed_port_is_one_line_naming_the_server(tmp_path: Path) -> None:
    port = closed_port()
    with_url(tmp_path, f"postgresql+psycopg://staff:hunter2@127.0.0.1:{port}/pledges")
    line = one_line(pledgebot(tmp_path, "status"), 1)
    assert line.startswith(
        f"cannot connect to the database postgresql+psycopg://staff:***@127.0.0.1:{port}/pledges: "
    )
    assert "Connection refused; Is the server running" in line, "libpq's \\n\\t made readable"
    assert "hunter2" not in line


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    with_url(tmp_path, "sqlite:///notes.db")
    (tmp_path / "notes.db").write_text("my notes, not a database\n", encoding="utf-8")
    line = one_line(pledgebot(tmp_path, "status"), 1)
    assert line == f"{tmp_path / 'notes.db'} is not a SQLite database (check [database] url)"
    assert (tmp_path / "notes.db").read_text(encoding="utf-8") == "my notes, not a database\n"


def test_a_database_folder_that_cannot_be_made(tmp_path: Path) -> None:
    """The folder in the URL is a file (a read-only folder fails alike, for a user not root)."""
    with_url(tmp_path, "sqlite:///data.db/pledgebot.db")
    (tmp_path / "data.db").write_text("", encoding="utf-8")
    line = one_line(pledgebot(tmp_path, "status"), 1)
    assert line == (
        f"cannot create {tmp_path / 'data.db'}, the folder of the SQLite database: "
        "a file has that name"
    )


def test_a_database_at_an_unknown_revision(tmp_path: Path) -> None:
    write_config(tmp_path)
    assert pledgebot(tmp_path, "db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "pledgebot.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    line = one_line(pledgebot(tmp_path, "status"), 1)
    assert line == (
        f"the SQLite database {tmp_path / 'pledgebot.db'} is at revision '0099_from_the_future', "
        "which this version of pledgebot does not know (was it migrated by a newer version?)"
    )


def test_tables_without_alembic_version(tmp_path: Path) -> None:
    write_config(tmp_path)
    assert pledgebot(tmp_path, "db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "pledgebot.db") as db:
        db.execute("DROP TABLE alembic_version")
    line = one_line(pledgebot(tmp_path, "db", "upgrade"), 1)
    assert line == (
        f"the SQLite database {tmp_path / 'pledgebot.db'} has pledgebot tables (audit_log, "
        "cadences, calendar_feeds, …) but no alembic_version table, so its schema version is "
        "unknown: use an empty database, or restore the one pledgebot made"
    )


# -- PostgreSQL: `db upgrade` creates the database ------------------------------------------------
@pytest.fixture
def pg_admin() -> Iterator[object]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI needs PostgreSQL at 127.0.0.1:5432 ({exc})") from exc
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({exc}); CI runs these")
    with admin:
        yield admin


def test_db_upgrade_creates_a_missing_postgresql_database(tmp_path: Path, pg_admin: object) -> None:
    name = f"pledgebot_new_{uuid.uuid4().hex[:10]}"
    url = f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    with_url(tmp_path, url)
    try:
        missing = one_line(pledgebot(tmp_path, "status"), 1)
        assert (
            missing == f"{url}: the database does not exist: create it with `pledgebot db upgrade`"
        )

        created = pledgebot(tmp_path, "db", "upgrade")
        assert (created.returncode, created.stdout) == (0, ""), created.stderr
        assert created.stderr == f"database created and up to date: {url}\n"
        exists = pg_admin.execute(  # type: ignore[attr-defined]
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        assert exists == (1,)
        again = pledgebot(tmp_path, "db", "upgrade")
        assert (again.returncode, again.stderr) == (0, f"database is up to date: {url}\n")
        assert pledgebot(tmp_path, "status").returncode == 0
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]


def test_db_upgrade_without_the_right_to_create_says_what_to_run(
    tmp_path: Path, pg_admin: object
) -> None:
    role = f"pledgebot_nocreate_{uuid.uuid4().hex[:8]}"
    name = f"pledgebot_new_{uuid.uuid4().hex[:10]}"
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')  # type: ignore[attr-defined]
    try:
        url = f"postgresql+psycopg://{role}@127.0.0.1:5432/{name}"
        with_url(tmp_path, url)
        line = one_line(pledgebot(tmp_path, "db", "upgrade"), 1)
        assert line == (
            f"{url}: the database does not exist and {role!r} may not create it: ask an "
            f'administrator to run `CREATE DATABASE "{name}" OWNER "{role}";`, then '
            "`pledgebot db upgrade` again"
        )
        exists = pg_admin.execute(  # type: ignore[attr-defined]
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        assert exists is None
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        pg_admin.execute(f'DROP ROLE IF EXISTS "{role}"')  # type: ignore[attr-defined]
