"""A live dispatcher keeps the leases of its slow sends: another worker never takes them over.

A unit test with a fake channel (a send that takes longer than a lease), on both backends; the
crash suites in tests/reliability show the other half: a dead worker's leases do run out.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bot import outbox
from bot.app import App
from bot.campaigns.base import PlannedMessage
from bot.channels.base import OutboundMessage, Receipt
from bot.config import DispatcherSettings
from bot.dispatcher import Dispatcher
from bot.models import OutboxMessage

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
            claimed = outbox.claim(
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
