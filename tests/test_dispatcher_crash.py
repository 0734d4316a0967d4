"""A dispatcher whose run fails while sends are on the wire resends nothing it sent.

The database going away for a moment (a PostgreSQL restart or failover, SQLite locked past the
wait) used to end the dispatcher's run without waiting for its sends or recording the finished
ones; the supervisor's restart then resent every 'sending' row while the first sends were
still on the wire (SQLite), or after their lease (PostgreSQL): certain duplicates. Now a
channel-health note that cannot be written is only logged, and a run that fails for any reason
first waits for its sends and records them (trying again while the database is away, else at
the next run); the restart resends nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.channels.base import OutboundMessage, Receipt
from bot.cli import runner
from bot.core.models import ChannelState, OutboxMessage
from bot.delivery import dispatcher as dispatcher_module
from bot.delivery import outage, outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from tests.auxil.live import Live, eventually

CHATS = [7301, 7302, 7303, 7304, 7305, 7306]
SLOW = 3  # the first three sends answer only after SLOW_SECONDS
SLOW_SECONDS = 2.0  # longer than the supervisor's first restart pause (1 s)


def database_gone() -> OperationalError:
    return OperationalError(
        "UPDATE channel_state", {}, Exception("server closed the connection unexpectedly")
    )


def fail_first(calls: int, real: Callable[..., Any]) -> tuple[Callable[..., Any], list[int]]:
    """``real``, failing its next ``calls`` calls as a database that went away would."""
    failed: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(failed) < calls:
            failed.append(1)
            raise database_gone()
        return real(*args, **kwargs)

    return wrapper, failed


def queue(app: App, chats: list[int]) -> None:
    with app.db.session() as session:
        planned = [PlannedMessage(f"crash:{c}", "telegram", str(c), f"hello {c}") for c in chats]
        assert outbox.enqueue(session, planned) == len(chats)


def rows(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_a_health_note_the_database_refuses_stops_nothing_and_resends_nothing(
    live: Live, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for chat in CHATS:
        live.sandbox.add_chat(chat)
    await live.settle()
    await asyncio.sleep(1.1)  # a health note is due as soon as the first sends finish
    record_health, failed = fail_first(1, outage.record_health)
    monkeypatch.setattr(outage, "record_health", record_health)
    live.sandbox.inject_fault("sendMessage", delay=SLOW_SECONDS, times=SLOW)
    began = time.monotonic()
    queue(live.app, CHATS)
    # The fast half is recorded, its health note fails, the slow half is still on the wire.
    await eventually(lambda: failed, "the health note to fail")
    assert sum(row.state == "sending" for row in rows(live.app)) == SLOW
    await live.settle()
    # Every send of the first try has arrived by now (a resend would have arrived earlier).
    await asyncio.sleep(max(0.0, began + SLOW_SECONDS + 0.5 - time.monotonic()))
    assert live.sandbox.sent_counts() == {chat: 1 for chat in CHATS}, "each delivered once"
    assert [(r.state, r.attempts, r.possible_duplicate) for r in rows(live.app)] == [
        ("sent", 1, False)
    ] * len(CHATS)
    assert any("writing channel health failed" in r.getMessage() for r in caplog.records)
    assert not any("dispatcher failed" in r.getMessage() for r in caplog.records)
    # The note was kept and written once the database answered: `pledgebot status` has it.
    assert live.scalar(select(ChannelState.last_ok_at).where(ChannelState.channel == "telegram"))


class SlowChannel:
    """A platform whose first ``slow`` sends take ``SLOW_SECONDS``; it logs what arrived."""

    name = "telegram"

    def __init__(self, slow: int) -> None:
        self.slow = slow
        self.arrived: Counter[str] = Counter()
        self.started = 0

    async def send(self, message: OutboundMessage) -> Receipt:
        self.started += 1
        if self.started <= self.slow:
            await asyncio.sleep(SLOW_SECONDS)
        self.arrived[message.recipient] += 1
        return Receipt(external_id=f"m{message.id}")


@pytest.fixture
def roles(app: App) -> Iterator[runner.Roles]:
    """The dispatcher role of a `pledgebot worker`, its platform replaced by ``SlowChannel``;
    short leases, so on PostgreSQL a send left 'sending' would be taken up again in the test."""
    process = runner.Roles(app, {"dispatcher"})
    settings = app.config.dispatcher.model_copy(update={"lease_seconds": 1.5})
    channel = SlowChannel(SLOW)
    process.dispatcher = dispatcher_module.Dispatcher(app.db, {"telegram": channel}, settings)  # type: ignore[dict-item]
    yield process


@pytest.mark.parametrize("database_away_for", [0, 3, 12], ids=["up", "briefly", "past-retries"])
async def test_a_run_that_fails_with_sends_on_the_wire_records_them_and_resends_nothing(
    roles: runner.Roles,
    app: App,
    database_away_for: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any error out of the loop (here a bug, at the moment the database goes away for a
    number of tries): the supervisor restarts the dispatcher; every message arrives once."""
    channel = roles.dispatcher.channels["telegram"]
    assert isinstance(channel, SlowChannel)
    monkeypatch.setattr(dispatcher_module, "RECORD_RETRY_SECONDS", (0.05, 0.1, 0.2))
    real_mark_sent = outbox.mark_sent_many
    broken: list[bool] = []
    failed_writes: list[int] = []

    def mark_sent_many(*args: Any, **kwargs: Any) -> None:
        if broken and len(failed_writes) < database_away_for:
            failed_writes.append(1)
            raise database_gone()
        real_mark_sent(*args, **kwargs)

    monkeypatch.setattr(outbox, "mark_sent_many", mark_sent_many)
    real_due = dispatcher_module.HealthNotes.due

    def due(notes: dispatcher_module.HealthNotes, *, idle: bool) -> bool:
        # The first turn with the fast sends recorded and the slow ones on the wire.
        if not broken and sum(channel.arrived.values()) == len(CHATS) - SLOW:
            broken.append(True)
            raise RuntimeError("a bug in the loop")
        return real_due(notes, idle=idle)

    monkeypatch.setattr(dispatcher_module.HealthNotes, "due", due)
    queue(app, CHATS)
    stop = asyncio.Event()
    supervised = asyncio.create_task(runner.supervise("dispatcher", roles._dispatch, stop))
    try:
        await eventually(
            lambda: [row.state for row in rows(app)] == ["sent"] * len(CHATS),
            "every message to be recorded as sent",
        )
        await asyncio.sleep(0.3)  # a resend would go out now, at the latest
    finally:
        stop.set()
        await asyncio.wait_for(supervised, 10)
    assert broken, "the loop failed while sends were on the wire"
    assert len(failed_writes) == database_away_for
    assert channel.arrived == {str(chat): 1 for chat in CHATS}, "each delivered once"
    assert [(r.attempts, r.possible_duplicate) for r in rows(app)] == [(1, False)] * len(CHATS)
    messages = [r.getMessage() for r in caplog.records]
    assert any("dispatcher failed (RuntimeError: a bug in the loop)" in m for m in messages)
    kept = any("could not record the outcome of" in m for m in messages)
    assert kept == (database_away_for > len(dispatcher_module.RECORD_RETRY_SECONDS))
