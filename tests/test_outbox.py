"""Claiming from the outbox: one message per chat at a time, in order; leases; opt-outs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.models import ChannelState, Contact, OutboxMessage, utcnow
from bot.delivery import claiming, outage, outbox, pauses
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from tests.auxil.cli import pledgebot

LEASE = timedelta(seconds=60)


def queue(app: App, *recipients: str) -> None:
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage(f"k{i}", "telegram", chat, f"to {chat} #{i}")
                for i, chat in enumerate(recipients)
            ],
        )


def claim(app: App, **kwargs: object) -> list[str]:
    with app.db.session() as session:
        found = claiming.claim(session, channels=["telegram"], limit=10, lease=LEASE, **kwargs)
    return [item.message.text for item in found]


def test_one_message_per_chat_per_claim_oldest_first(app: App) -> None:
    queue(app, "A", "A", "A", "B")
    assert claim(app) == ["to A #0", "to B #3"]
    assert claim(app) == [], "A's first is on the wire (leased); B's only message is taken"


def test_a_busy_chat_does_not_hold_up_the_others(app: App) -> None:
    queue(app, *["A"] * 20)
    assert claim(app) == ["to A #0"]
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage("b", "telegram", "B", "to B"),
                PlannedMessage("c", "telegram", "C", "to C"),
            ],
        )
    assert claim(app) == ["to B", "to C"], "A is on the wire; its backlog is passed over"


def test_expired_lease_is_claimed_again_and_flagged(app: App) -> None:
    queue(app, "A")
    assert claim(app) == ["to A #0"]
    assert claim(app) == [], "leased"
    later = utcnow() + LEASE + timedelta(seconds=1)
    assert claim(app, now=later) == ["to A #0"]
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
        assert (row.attempts, row.possible_duplicate) == (2, True)


def test_message_to_a_stopped_contact_fails_at_claim(app: App) -> None:
    with app.db.session() as session:
        contact = Contact(
            pledgemaker_id="ilo",
            channel="telegram",
            address="A",
            status="stopped",
            bound_at=utcnow(),
        )
        session.add(contact)
        session.flush()
        outbox.enqueue(session, [PlannedMessage("k", "telegram", "A", "hi", contact_id=contact.id)])
    assert claim(app) == []
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
        assert (row.state, row.last_error, row.attempts) == ("failed", "contact_stopped", 0)


def contact_at(app: App, channel: str, address: str, status: str) -> None:
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id="ilo",
                channel=channel,
                address=address,
                status=status,
                bound_at=utcnow(),
            )
        )


def test_a_message_without_a_contact_to_an_address_that_opted_out_is_never_sent(
    app: App,
) -> None:
    contact_at(app, "telegram", "U", "stopped")  # e.g. an invitee's one-click unsubscribe
    contact_at(app, "telegram", "B", "gone")  # bounced
    contact_at(app, "telegram", "R", "active")
    contact_at(app, "telegram", "S", "stopped")
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage("invite:u", "telegram", "U", "to U"),
                PlannedMessage("invite:b", "telegram", "B", "to B"),
                PlannedMessage("invite:r", "telegram", "R", "to R"),
                PlannedMessage("event:9:stopped", "telegram", "S", "you will hear no more"),
                PlannedMessage("k:erased", "telegram", outbox.ERASED_RECIPIENT, ""),
            ],
        )
    assert sorted(claim(app)) == ["to R", "you will hear no more"], (
        "an answer to their own /stop still goes"
    )
    with app.db.session() as session:
        rows = session.execute(
            select(OutboxMessage.recipient, OutboxMessage.state, OutboxMessage.failure_class)
        )
        outcome = {recipient: (state, failure) for recipient, state, failure in rows}
    assert outcome["U"] == ("failed", "opted_out")
    assert outcome["B"] == ("failed", "recipient_gone")
    assert outcome[outbox.ERASED_RECIPIENT] == ("failed", "erased")


def test_a_channel_that_is_down_gives_one_probe_when_due_and_none_while_staff_pause_it(
    app: App,
) -> None:
    queue(app, "A", "B", "C", "D")
    breaker = outage.Breaker(after=2, first_probe=30, max_probe=900)
    start = utcnow()

    def at(seconds: float) -> list[str]:
        return claim(app, now=start + timedelta(seconds=seconds), breaker=breaker)

    with app.db.session() as session:
        note = outage.note_outcomes(
            session, "telegram", failures=2, worked=False, breaker=breaker, now=start
        )
    assert note == "down"
    assert at(0) == [] and at(29) == [], "held until the first probe"
    assert at(30) == ["to A #0"]
    assert at(45) == [], "the next probe waits longer"
    pauses.set_paused(app.db, outbox.CHANNEL_PAUSE + "telegram", True)
    assert at(600) == [], "a staff pause holds the probe too"
    pauses.set_paused(app.db, outbox.CHANNEL_PAUSE + "telegram", False)
    assert at(600) == ["to A #0"], "the probe (its lease ran out: a worker died with it)"
    with app.db.session() as session:
        note = outage.note_outcomes(session, "telegram", failures=0, worked=True, breaker=breaker)
    assert note == "up"
    assert at(601) == ["to B #1", "to C #2", "to D #3"], "the first success lifts the hold"


def test_resume_lifts_an_outage_hold_at_once(app: App, config_path: Path) -> None:
    """Staff who know the platform is back need not wait for the next probe."""
    queue(app, "A", "B")
    breaker = outage.Breaker(after=2, first_probe=30, max_probe=900)
    start = utcnow()
    with app.db.session() as session:
        outage.note_outcomes(
            session, "telegram", failures=2, worked=False, breaker=breaker, now=start
        )
    assert claim(app, now=start + timedelta(seconds=1), breaker=breaker) == []
    done = pledgebot(config_path.parent, "resume", "--channel", "telegram")
    assert done.returncode == 0, done.stderr
    assert "outage hold is lifted" in done.stdout
    assert claim(app, now=start + timedelta(seconds=2), breaker=breaker) == ["to A #0", "to B #1"]
    again = pledgebot(config_path.parent, "resume", "--channel", "telegram")
    assert "outage hold" not in again.stdout, "nothing held: nothing said"


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_two_workers_noting_a_channels_first_health_at_once_both_succeed(app: App) -> None:
    """The first health note of a channel, written by two workers at the same moment: the row
    is made once and neither worker fails (a unique violation used to stop one of them)."""
    import threading

    first_in = threading.Event()
    errors: list[BaseException] = []

    def other_worker() -> None:
        first_in.wait(5)
        try:
            with app.db.session() as session:
                outage.record_health(session, "telegram", error="HTTP 502")
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=other_worker)
    thread.start()
    with app.db.session() as session:
        outage.record_health(session, "telegram")
        session.flush()
        first_in.set()
        thread.join(0.5)  # the other one now waits on our row
    thread.join(10)
    assert errors == []
    with app.db.session() as session:
        state = session.get(ChannelState, "telegram")
        assert state is not None and state.last_ok_at and state.last_error == "HTTP 502"
