"""Sending when the platform misbehaves: 429, 5xx, timeouts, blocked users, too-long messages.

End to end: the real python-telegram-bot client against the sandbox, which injects the faults.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select, update

from bot.channels.base import OutboundMessage, Receipt
from bot.core.errors import TransientError
from bot.core.models import Contact, OutboxMessage
from bot.delivery import outbox
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.delivery.sending import Backoff
from bot.service.app import App
from pledgebot_sandbox import TelegramSandbox
from tests.auxil.live import Live, eventually, start_live

GH = "gh-min-labour"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def prompt_row(live: Live) -> OutboxMessage:
    return live.scalar(select(OutboxMessage).where(OutboxMessage.campaign_id == "act-checkin"))


async def test_429_waits_retry_after_then_delivers_once(live: Live) -> None:
    await live.bind(GH, 601)
    live.sandbox.inject_fault("sendMessage", retry_after=1)
    await live.fire(to=GH)
    row = prompt_row(live)
    assert row.state == "sent"
    assert live.sandbox.rate_limited == 1
    assert row.attempts == 1, "a rate-limited try does not use up an attempt"
    assert (row.sent_at - row.created_at).total_seconds() >= 0.9, "retry_after was honoured"
    assert len([m for m in live.sandbox.sent_messages(601) if m.get("reply_markup")]) == 1


async def test_5xx_is_retried_with_backoff_until_delivered(live: Live) -> None:
    await live.bind(GH, 602)
    live.sandbox.inject_fault("sendMessage", status=500, times=2)
    await live.fire(to=GH)
    row = prompt_row(live)
    assert (row.state, row.attempts) == ("sent", 3)
    assert len([m for m in live.sandbox.sent_messages(602) if m.get("reply_markup")]) == 1


async def test_5xx_forever_fails_after_max_attempts_with_a_readable_reason(live: Live) -> None:
    await live.bind(GH, 603)
    live.sandbox.inject_fault("sendMessage", status=502, times=10)
    await live.fire(to=GH, settle=False)
    await eventually(lambda: prompt_row(live).state == "failed", "the prompt to fail")
    row = prompt_row(live)
    assert row.attempts == 4  # max_attempts in the test config
    assert row.last_error.startswith("gave up after 4 attempts in 0 s: Telegram: Bad Gateway")
    assert row.failure_class == "transient", "`pledgebot outbox retry --failed` may resend it"


async def test_timeout_is_retried_and_counted_as_possible_duplicate(live: Live) -> None:
    await live.bind(GH, 604)
    # The server carries the request out, then answers too late: the client times out.
    live.sandbox.inject_fault("sendMessage", delay=4.0, deliver=True)
    await live.fire(to=GH, settle=False)
    await eventually(lambda: prompt_row(live).state == "sent", "the prompt to be resent", 20)
    row = prompt_row(live)
    assert row.attempts == 2 and row.possible_duplicate
    prompts = [m for m in live.sandbox.sent_messages(604) if m.get("reply_markup")]
    assert len(prompts) == 2, "delivered twice: the one duplicate the outbox counted"


async def test_403_blocked_fails_and_marks_contact_gone(live: Live) -> None:
    await live.bind(GH, 605)
    live.sandbox.block(605)
    await live.fire(to=GH, settle=False)
    await eventually(lambda: prompt_row(live).state == "failed", "the prompt to fail")
    row = prompt_row(live)
    assert row.attempts == 1
    assert row.last_error.startswith("recipient_gone: Telegram: Forbidden: bot was blocked")
    assert live.scalar(select(Contact.status)) == "gone"
    fired = await live.fire("act-checkin")
    assert fired.skipped.get("contact gone") == 1


async def test_too_long_message_is_rejected_not_retried(live: Live) -> None:
    await live.bind(GH, 606)
    with live.app.db.session() as session:
        outbox.enqueue(
            session,
            [PlannedMessage("test:too-long", "telegram", "606", "x" * 4097, parse_mode="HTML")],
        )
    await live.settle()
    row = live.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == "test:too-long"))
    assert (row.state, row.attempts) == ("failed", 1)
    assert "too long" in row.last_error.lower()


async def test_enqueue_is_idempotent_per_key(live: Live) -> None:
    planned = [PlannedMessage("test:once", "telegram", "607", "hello")]
    with live.app.db.session() as session:
        assert outbox.enqueue(session, planned) == 1
    with live.app.db.session() as session:
        assert outbox.enqueue(session, planned + planned) == 0
    assert live.count(OutboxMessage, OutboxMessage.idempotency_key == "test:once") == 1


async def test_failing_start_up_calls_are_logged_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def break_start_up(sandbox: TelegramSandbox) -> None:
        sandbox.inject_fault("getMe", status=500)
        sandbox.inject_fault("setMyCommands", status=500)

    live = await start_live(tmp_path, monkeypatch, before_start=break_start_up)
    try:
        await live.bind(GH, 650)  # the loops run: the chat binds and gets its confirmation
        await live.fire(to=GH)
        assert prompt_row(live).state == "sent"
        assert live.sandbox.method_calls["getMe"] >= 1
    finally:
        await live.close()
        live.app.close()
        await live.sandbox.stop()


def test_the_backoff_of_a_message_tried_thousands_of_times_is_its_cap() -> None:
    backoff = Backoff(base=2.0, cap=900.0)
    for attempt in (1_025, 5_000, 10**9):  # 2.0 * 2 ** 1024 overflows a float
        assert 450.0 <= backoff.delay(attempt) <= 900.0, attempt


class BadGateway:
    name = "telegram"

    async def send(self, message: OutboundMessage) -> Receipt:
        raise TransientError("Telegram: Bad Gateway")


async def test_a_long_retry_budget_keeps_retrying_at_the_cap_and_the_dispatcher_lives(
    app: App,
) -> None:
    """A year of retries (``retry_hours``) allows thousands of attempts: the 5,000th failure
    waits ``backoff_max`` like the tenth, where the exponent used to overflow and kill the
    dispatcher."""
    settings = app.config.dispatcher.model_copy(
        update={
            "retry_hours": 24 * 365,
            "max_attempts": None,
            "backoff_base": 2.0,
            "backoff_max": 900.0,
        }
    )
    dispatcher = Dispatcher(app.db, {"telegram": BadGateway()}, settings)  # type: ignore[dict-item]
    with time_machine.travel(START, tick=True):
        with app.db.session() as session:
            outbox.enqueue(session, [PlannedMessage("test:patient", "telegram", "608", "hi")])
            session.execute(
                update(OutboxMessage).values(
                    attempts=4_999, first_attempt_at=START - timedelta(days=90)
                )
            )
        assert await dispatcher.dispatch_once() == 1
    with app.db.session() as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert (row.state, row.attempts, row.last_error) == (
        "retry_wait",
        5_000,
        "Telegram: Bad Gateway",
    )
    cap = settings.backoff_max
    wait = (row.next_attempt_at - START).total_seconds()
    assert cap / 2 <= wait <= cap + 5, wait
