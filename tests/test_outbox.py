"""Claiming from the outbox: one message per chat at a time, in order; leases; opt-outs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import outbox
from bot.app import App
from bot.campaigns.base import PlannedMessage
from bot.models import Contact, OutboxMessage, utcnow

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
        found = outbox.claim(session, channels=["telegram"], limit=10, lease=LEASE, **kwargs)
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
