"""SQLite's write lock held long by another process (a big import): `run` waits it out and goes
on — no role left dead while the process looks healthy — and a one-shot command waits, saying so."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.community.importer import import_pledgemakers
from bot.core.models import InboundEvent, Reply
from bot.service.app import App, build_app
from bot.settings.config import load_config
from pledgebot_sandbox import SandboxThread
from tests.auxil.cli import pledgebot
from tests.conftest import SAMPLE_CSV, TOKEN_ENV, only_on_demand_campaign, write_config
from tests.test_crash import Bot, bind_chats, wait_for

LOCK_SECONDS = 4.0  # far beyond the busy timeout below


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxThread, App]]:
    with SandboxThread(overall_rate=5000.0, chat_rate=1000.0, chat_burst=1000) as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        only_on_demand_campaign(tmp_path)
        config = write_config(tmp_path, base_url=sandbox.base_url)
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace(
                'url = "sqlite:///pledgebot.db"',
                'url = "sqlite:///pledgebot.db"\nbusy_timeout_ms = 300',
            ),
            encoding="utf-8",
        )
        app = build_app(load_config(config, required=True))
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)
        yield sandbox, app
        app.close()


def hold_write_lock(database: Path, seconds: float, held: threading.Event) -> None:
    """What a long import does: one write transaction open for ``seconds``."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    connection.execute("COMMIT")
    connection.close()


def count(app: App, model: type, *where: object) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_run_outlasts_a_long_write_lock_and_stops_cleanly(
    world: tuple[SandboxThread, App], tmp_path: Path
) -> None:
    sandbox, app = world
    chats = [6101, 6102, 6103]
    bind_chats(app, chats)
    bot = Bot(tmp_path, sandbox.token)
    bot.start()
    try:
        sandbox.push_message(chats[0], "before the import")
        wait_for(lambda: count(app, Reply) == 1, "the first message to be processed")
        held = threading.Event()
        locker = threading.Thread(
            target=hold_write_lock, args=(tmp_path / "pledgebot.db", LOCK_SECONDS, held)
        )
        locker.start()
        held.wait(5)
        for i in range(12):
            sandbox.push_message(chats[i % 3], f"during the import {i}")
            time.sleep(0.1)
        locker.join()
        wait_for(
            lambda: (
                count(app, Reply) == 13
                and count(app, InboundEvent, InboundEvent.processed_at.is_(None)) == 0
            ),
            "every message sent during the lock to be stored and processed",
            timeout=60,
        )
    finally:
        code = bot.terminate()
    log = (tmp_path / "run.log").read_text(encoding="utf-8")
    # run does not block its event loop waiting: the role that met the lock failed, was
    # logged and started again — and nothing was lost.
    flat = " ".join(log.split())  # the console log wraps long lines
    assert "failed (OperationalError" in flat and "restarting it in" in flat, log[-3000:]
    assert "Traceback" not in log
    assert code == 0, log[-2000:]


def test_a_one_shot_command_waits_for_the_lock_and_says_so(
    world: tuple[SandboxThread, App], tmp_path: Path
) -> None:
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(tmp_path / "pledgebot.db", 3.0, held))
    locker.start()
    held.wait(5)
    began = time.monotonic()
    done = pledgebot(tmp_path, "outbox", "list")
    locker.join()
    assert done.returncode == 0, done.stderr
    assert "waiting for the database: another pledgebot process is writing" in done.stderr
    assert time.monotonic() - began >= 2.5, "it waited for the lock rather than failing"


async def test_a_role_that_fails_is_logged_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever breaks a role (a lock held past any patience, a lost connection), it is not left
    dead while the process looks healthy: logged with its error, restarted after a pause."""
    import asyncio

    from sqlalchemy.exc import OperationalError

    from bot.cli import runner

    calls: list[float] = []
    stop = asyncio.Event()

    async def flaky(stop_event: asyncio.Event) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        stop_event.set()

    await asyncio.wait_for(runner.supervise("inbox", flaky, stop), 10)
    assert len(calls) == 3, "restarted after each failure"
    assert calls[2] - calls[1] > calls[1] - calls[0] >= 0.9, "the pause grows"
    failed = [r.getMessage() for r in caplog.records if "restarting it in" in r.getMessage()]
    assert len(failed) == 2 and "inbox failed (OperationalError: " in failed[0]
    assert "database is locked" in failed[0]
