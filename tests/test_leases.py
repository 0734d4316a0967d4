"""Workers sharing one database: a live dispatcher keeps the leases of its slow sends (another
worker never takes them over), and two workers counting failures on the same channels never
deadlock each other (PostgreSQL).

Unit tests with a fake channel (a send that takes longer than a lease), on both backends; the
crash suites in tests/reliability show the other half: a dead worker's leases do run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.base import OutboundMessage, Receipt
from bot.core.models import ChannelState, OutboxMessage
from bot.delivery import claiming, outage, outbox
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.delivery.sending import Outcome
from bot.service.app import App, build_app
from bot.settings.config import DispatcherSettings, load_config

LEASE = 0.4  # seconds; the send below takes four leases


class SlowChannel:
    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.done = asyncio.Event()

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def send(self, message: OutboundMessage) -> Receipt:
        await asyncio.sleep(4 * LEASE)  # a long rate-limit wait, or a slow platform
        self.sent.append(message.id)
        self.done.set()
        return Receipt(external_id=f"m{message.id}")


async def test_a_slow_send_keeps_its_lease_and_no_other_worker_claims_it(app: App) -> None:
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("slow:1", "telegram", "101", "hello")])
    channel = SlowChannel()
    settings = DispatcherSettings(lease_seconds=LEASE, poll_interval=0.05)
    dispatcher = Dispatcher(app.db, {"telegram": channel}, settings)  # type: ignore[dict-item]
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    taken_by_other: list[int] = []
    for _ in range(10):  # another worker looks every 0.15 s, past the first lease's end
        await asyncio.sleep(0.15)
        with app.db.session() as session:
            claimed = claiming.claim(
                session, channels=["telegram"], limit=10, lease=timedelta(seconds=LEASE)
            )
            taken_by_other += [item.message.id for item in claimed]
    await asyncio.wait_for(channel.done.wait(), timeout=10)
    stop.set()
    await running
    assert taken_by_other == [], "the live worker's lease was renewed"
    with app.db.session() as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert (row.state, row.possible_duplicate, row.attempts) == ("sent", False, 1)
    assert channel.sent == [row.id]


@pytest.fixture
def pg_app(config_path: Path, postgres_database: str) -> Iterator[App]:
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(
        text.replace('url = "sqlite:///pledgebot.db"', f'url = "{postgres_database}"'),
        encoding="utf-8",
    )
    app = build_app(load_config(config_path, required=True))
    app.db.upgrade()
    yield app
    app.close()


def test_two_workers_counting_failures_on_two_channels_do_not_deadlock(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker records a 5xx on both channels, its sends having finished in the opposite
    order to the other's. Both hold their first channel's row when they go on to the second
    (a barrier makes sure): locked in finishing order, PostgreSQL aborts one as a deadlock."""
    channels = ["telegram", "x"]
    with pg_app.db.session() as session:
        for channel in channels:
            outage.record_health(session, channel)
        planned = [PlannedMessage(f"dl:{i}", channels[i % 2], str(900 + i), "hi") for i in range(4)]
        outbox.enqueue(session, planned)
        ids = list(session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
    both_hold_one = threading.Barrier(2, timeout=1.5)
    noted: dict[int, int] = {}
    note_outcomes = outage.note_outcomes

    def note(session: Any, channel: str, **kwargs: Any) -> str | None:
        change = note_outcomes(session, channel, **kwargs)
        me = threading.get_ident()
        noted[me] = noted.get(me, 0) + 1
        if noted[me] == 1:  # this worker now holds its first channel's row
            # Broken: the other worker waits for this very row (locked in order).
            with contextlib.suppress(threading.BrokenBarrierError):
                both_hold_one.wait()
        return change

    monkeypatch.setattr(outage, "note_outcomes", note)

    def failed(message_id: int, channel: str) -> Outcome:
        item = claiming.Claimed(OutboundMessage(message_id, "900", "hi"), channel, 1)
        error = f"{channel}: Bad Gateway"
        return Outcome(item, "retry", retry_in=60, error=error, platform_error=error, outage=True)

    errors: list[BaseException] = []

    def worker(outcomes: list[Outcome]) -> None:
        dispatcher = Dispatcher(pg_app.db, {}, pg_app.config.dispatcher)
        try:
            dispatcher._settle_and_claim(outcomes, 0)
        except Exception as exc:
            errors.append(exc)

    first = [failed(ids[0], "x"), failed(ids[1], "telegram")]
    second = [failed(ids[2], "telegram"), failed(ids[3], "x")]
    threads = [threading.Thread(target=worker, args=(o,)) for o in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == [], "no worker's outcomes were lost to a deadlock"
    with pg_app.db.session() as session:
        counts = dict(
            session.execute(select(ChannelState.channel, ChannelState.consecutive_failures)).all()
        )
        states = set(session.scalars(select(OutboxMessage.state)))
    assert counts == {"telegram": 2, "x": 2}
    assert states == {"retry_wait"}
