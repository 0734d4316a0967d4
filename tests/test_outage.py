"""Telegram unreachable for hours: the real python-telegram-bot client against the sandbox
answering every sendMessage with a 5xx, the dispatcher's clock moved by time-machine instead
of sleeping for hours.

A channel that keeps failing is held as down (one row every worker reads): its messages wait
without using attempts while one probe at a time tests it at growing intervals; the first
success lifts the hold and the backlog goes out. A message is given up only after a day
(``retry_hours``), and `pledgebot outbox retry --failed` sends it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from bot.core.models import OutboxMessage
from bot.core.staff_models import StaffAlert
from bot.delivery import outbox
from bot.delivery.alerts import Alerts
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.service.app import App, build_app
from bot.service.status import collect
from bot.settings.config import load_config
from pledgebot_sandbox import TelegramSandbox
from tests.auxil.cli import pledgebot
from tests.conftest import (
    TOKEN_ENV,
    _drop_database,
    _postgres_database,
    postgres_url,
    write_config,
)

START = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
CHATS = [701, 702, 703, 704, 705, 706]
DOWN_AFTER = 3


@dataclass
class World:
    app: App
    sandbox: TelegramSandbox
    folder: Path
    workers: list[Dispatcher]

    def queue(self, *chats: int) -> None:
        with self.app.db.session() as session:
            outbox.enqueue(
                session,
                [PlannedMessage(f"t:{c}", "telegram", str(c), f"hello {c}") for c in chats],
            )

    def rows(self) -> list[OutboxMessage]:
        with self.app.db.session() as session:
            return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))

    def requests(self) -> int:
        return self.sandbox.method_calls["sendMessage"]

    def health(self) -> str:
        return collect(self.app)["channel telegram"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    sandbox = TelegramSandbox(overall_rate=1000.0, chat_rate=100.0, chat_burst=100)
    await sandbox.start()
    monkeypatch.setenv(TOKEN_ENV, sandbox.token)
    path = write_config(tmp_path, base_url=sandbox.base_url)
    # The shipped retry policy (2 s doubling to 15 min, for a day), a quicker breaker.
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "backoff_base = 0.05\nbackoff_max = 0.5\nmax_attempts = 4\n",
        f"backoff_base = 2\nbackoff_max = 900\nretry_hours = 24\n"
        f"down_after_failures = {DOWN_AFTER}\nprobe_seconds = 30\n",
    )
    database = None
    if request.param == "postgresql":
        database = _postgres_database()
        text = text.replace('url = "sqlite:///pledgebot.db"', f'url = "{postgres_url(database)}"')
    path.write_text(text, encoding="utf-8")
    app = build_app(load_config(path, required=True))
    assert app.config.dispatcher.backoff_max == 900
    app.db.upgrade()
    channels = app.enabled_channels()
    await channels["telegram"].start()
    alerts = Alerts(app.db, app.config.alerts)
    # Two workers sharing the database, as two `pledgebot worker` processes would.
    workers = [Dispatcher(app.db, channels, app.config.dispatcher, alerts) for _ in range(2)]
    for sandbox_chat in CHATS:
        sandbox.add_chat(sandbox_chat)
    try:
        yield World(app, sandbox, tmp_path, workers)
    finally:
        await channels["telegram"].aclose()
        app.close()
        await sandbox.stop()
        if database is not None:
            _drop_database(database)


async def both_workers(world: World) -> int:
    claimed = await asyncio.gather(*(w.dispatch_once() for w in world.workers))
    return sum(claimed)


async def test_a_channel_down_for_hours_is_probed_not_hammered_then_everything_arrives(
    world: World,
) -> None:
    world.sandbox.set_fault_rates("sendMessage", server_error=1.0)  # Telegram is down
    with time_machine.travel(START, tick=True) as clock:
        world.queue(*CHATS)
        assert await world.workers[0].dispatch_once() == len(CHATS)
        assert world.requests() == len(CHATS)
        assert world.health().startswith("DOWN since 2026-06-12 09:00 UTC (6 failures in a row")
        with world.app.db.session() as session:
            alert = session.scalar(select(StaffAlert.text))
        assert alert is not None and "telegram failed 3 times in a row" in alert

        # Four hours of outage, both workers trying every ten minutes.
        for _ in range(24):
            clock.shift(timedelta(minutes=10))
            before = world.requests()
            await both_workers(world)
            assert world.requests() - before <= 1, "one probe at a time, in any worker"
        probes = world.requests() - len(CHATS)
        assert 10 <= probes <= 24, probes  # the interval grows from 30 s, at most 15 min
        rows = world.rows()
        assert {row.state for row in rows} == {"retry_wait"}, "nothing given up after 4 hours"
        assert sum(row.attempts for row in rows) == world.requests(), "only probes use attempts"
        assert "DOWN since" in world.health()

        world.sandbox.set_fault_rates("sendMessage")  # Telegram is back
        clock.shift(timedelta(minutes=15))  # the longest wait between probes
        assert await both_workers(world) == 1, "the probe"
        assert world.health().startswith("ok (last success 2026-06-12 13:")
        await both_workers(world)
        await both_workers(world)
    assert [row.state for row in world.rows()] == ["sent"] * len(CHATS)
    assert world.sandbox.sent_counts() == {chat: 1 for chat in CHATS}, "each once"


async def test_a_failure_is_retried_for_a_day_then_given_up_and_retry_failed_resends_it(
    world: World,
) -> None:
    world.sandbox.set_fault_rates("sendMessage", server_error=1.0)
    with time_machine.travel(START, tick=True) as clock:
        world.queue(CHATS[0])
        await world.workers[0].dispatch_once()
        for hour in range(1, 24):
            clock.shift(timedelta(hours=1))
            await world.workers[0].dispatch_once()
            (row,) = world.rows()
            assert row.state == "retry_wait", f"given up after {hour} h"
        clock.shift(timedelta(hours=1, minutes=1))
        await world.workers[0].dispatch_once()
        (row,) = world.rows()
        assert row.state == "failed" and row.failure_class == "transient"
        assert row.last_error.startswith(f"gave up after {row.attempts} attempts in 24 h 1 min")
        assert row.attempts <= 30, "bounded"

        world.sandbox.set_fault_rates("sendMessage")
        done = pledgebot(
            world.folder,
            "outbox",
            "retry",
            "--failed",
            "--channel",
            "telegram",
            token=world.sandbox.token,
            now=START + timedelta(hours=24, minutes=2),
        )
        assert done.returncode == 0, done.stderr
        assert "to be sent again: 1" in done.stdout
        clock.shift(timedelta(minutes=15))  # the channel's next probe
        await world.workers[0].dispatch_once()
    (row,) = world.rows()
    assert row.state == "sent"
    assert world.sandbox.sent_counts() == {CHATS[0]: 1}
