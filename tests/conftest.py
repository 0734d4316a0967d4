"""Shared fixtures: a config on a temporary SQLite database, the sample data, the sandbox."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.community.importer import import_pledgemakers
from bot.service.app import App, build_app
from bot.settings.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "data" / "sample" / "pledgemakers.csv"
TOKEN_ENV = "PLEDGEBOT_TEST_TELEGRAM_TOKEN"


def write_config(
    folder: Path,
    *,
    base_url: str = "http://127.0.0.1:9/bot",
    extra: str = "",
    dashboard: str = "",
) -> Path:
    """A config.toml in ``folder`` using the repo's templates and a copy of its schedules."""
    schedules = folder / "schedules"
    if not schedules.exists():
        shutil.copytree(ROOT / "schedules", schedules)
        # The knowledge campaign's facts, relative to the config file like the schedules.
        shutil.copytree(ROOT / "data" / "knowledge", folder / "data" / "knowledge")
    path = folder / "config.toml"
    path.write_text(
        f"""
timezone = "UTC"
[database]
url = "sqlite:///pledgebot.db"
[paths]
templates = "{ROOT / "templates"}"
[media]
dir = "media"
[dashboard]
port = 0
{dashboard}
[dispatcher]
poll_interval = 0.05
backoff_base = 0.05
backoff_max = 0.5
max_attempts = 4
[channels.telegram]
enabled = true
token_env = "{TOKEN_ENV}"
base_url = "{base_url}"
poll_timeout = 1
request_timeout = 3
max_messages_per_second = 1000
max_messages_per_chat_per_second = 100
{extra}
""",
        encoding="utf-8",
    )
    return path


def only_on_demand_campaign(folder: Path) -> None:
    """schedules/ with one on-demand follow-up: no cron or cadence adds messages while a test
    counts them. Call before ``write_config`` (which then keeps this folder)."""
    (folder / "schedules").mkdir()
    (folder / "schedules" / "on-demand.toml").write_text(
        '[[campaign]]\nid = "act-checkin"\nkind = "followup"\npillar = "act"\n',
        encoding="utf-8",
    )


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    return write_config(tmp_path)


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path, required=True)


PG_ADMIN = "host=127.0.0.1 dbname=test"


def _postgres_database() -> str:
    """A fresh PostgreSQL database for one test (parallel workers never share one)."""
    import uuid

    import psycopg

    name = f"pledgebot_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI needs PostgreSQL at 127.0.0.1:5432 ({exc})") from exc
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({exc}); CI runs these")
    return name


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_url(database: str) -> str:
    return f"postgresql+psycopg://root@127.0.0.1:5432/{database}"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The URL of a fresh, migrated-on-demand PostgreSQL database, dropped afterwards."""
    database = _postgres_database()
    yield postgres_url(database)
    _drop_database(database)


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, config_path: Path) -> Iterator[App]:
    """The storage and campaign suites run on both backends (same models, same migrations);
    the config file names the same database, so CLI subprocesses in a test share it."""
    database = None
    if request.param == "postgresql":
        database = _postgres_database()
        url = postgres_url(database)
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(
            text.replace('url = "sqlite:///pledgebot.db"', f'url = "{url}"'), encoding="utf-8"
        )
    config = load_config(config_path, required=True)
    app = build_app(config)
    app.db.upgrade()
    with app.db.session() as session:
        import_pledgemakers(session, SAMPLE_CSV)
    yield app
    app.close()
    if database is not None:
        _drop_database(database)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(extra)
    return env


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from tests.auxil.live import start_live

    running = await start_live(tmp_path, monkeypatch)
    yield running
    await running.close()
    running.app.close()
    await running.sandbox.stop()
