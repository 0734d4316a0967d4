"""Erasure stops every queued message to any of the pledgemaker's addresses — an email
invitation has no contact yet — and leaves none of their addresses or words in the outbox."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.community import erasure, invitations
from bot.core.models import Contact, OutboxMessage, Pledgemaker
from bot.delivery import claiming, outbox, resend
from bot.delivery.messages import PlannedMessage
from bot.service.app import App

ADDRESS = "minister@labour.example.gh"
LEASE = timedelta(seconds=60)


def test_erasing_a_pledgemaker_cancels_and_blanks_their_queued_invitation(app: App) -> None:
    with app.db.session() as session:
        person = session.get(Pledgemaker, "gh-min-labour")
        assert person is not None
        person.handles["email"] = ADDRESS
        session.flush()
        queued = invitations.send(session, app.templates, [person.id], "email")
        assert queued.queued == [(person.id, ADDRESS)]
        # Their Telegram chat: the bot's answers to what they say there carry no contact.
        session.add(Contact(pledgemaker_id=person.id, channel="telegram", address="8800"))
        outbox.enqueue(session, [PlannedMessage("event:5:help", "telegram", "8800", "Hi")])
        outbox.enqueue(session, [PlannedMessage("other", "email", "else@example.org", "Hi")])
    with app.db.session() as session:
        done = erasure.erase(session, "gh-min-labour")
    assert done.messages_cancelled == 2

    with app.db.session() as session:
        rows = {row.idempotency_key: row for row in session.scalars(select(OutboxMessage))}
        theirs = [row for key, row in rows.items() if key != "other"]
        assert [(r.state, r.failure_class, r.recipient, r.text) for r in theirs] == [
            ("cancelled", "erased", "erased", ""),
            ("cancelled", "erased", "erased", ""),
        ]
        everything = [(r.recipient, r.text) for r in rows.values()]
        assert ADDRESS not in str(everything) and "8800" not in str(everything)
        assert rows["other"].state == "pending", "someone else's message goes"
        claimed = claiming.claim(session, channels=["email", "telegram"], limit=10, lease=LEASE)
        assert [c.message.recipient for c in claimed] == ["else@example.org"]
        invite_id = next(r.id for k, r in rows.items() if k.startswith(invitations.KEY_PREFIX))
        assert resend.retry_one(session, invite_id) == "the pledgemaker was erased"
