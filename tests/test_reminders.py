"""Reminders end to end: sent after N days without an answer, at most M times; an answer stops them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot import runs
from bot.models import OutboxMessage, Prompt, utcnow
from bot.reminders import remind
from bot.schedules import FollowupCampaign
from tests.auxil.live import Live

GH = "gh-min-labour"
TTL = timedelta(days=14)


async def sent_days_ago(live: Live, days: float) -> None:
    with live.app.db.session() as session:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.campaign_id == "act-cadence",
                OutboxMessage.idempotency_key.startswith("followup:"),
            )
            .values(sent_at=utcnow() - timedelta(days=days))
        )


def daytime(live: Live) -> FollowupCampaign:
    """act-cadence without its quiet hours and blackout dates: the test may run at any hour."""
    spec = live.app.schedules().get("act-cadence").spec
    return spec.model_copy(update={"quiet_hours": [], "blackout": []})


def reminders(live: Live, chat: int) -> list[str]:
    return [t for t in live.texts(chat) if t.startswith("A gentle reminder")]


async def test_reminded_after_three_days_twice_at_most(live: Live) -> None:
    spec = daytime(live)  # reminders: after 3d, twice
    await live.bind(GH, 801)
    runs.fire(live.app.db, live.app.templates, spec, utcnow(), trigger="manual")
    await live.settle()
    await sent_days_ago(live, 2)
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0, "not yet"
    await sent_days_ago(live, 3.1)
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 1
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0, "once per step"
    await sent_days_ago(live, 6.1)
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 1
    await sent_days_ago(live, 12)
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0, "then stop"
    await live.settle()
    assert len(reminders(live, 801)) == 2


async def test_an_answer_cancels_queued_reminders_and_stops_new_ones(live: Live) -> None:
    spec = daytime(live)
    await live.bind(GH, 802)
    runs.fire(live.app.db, live.app.templates, spec, utcnow(), trigger="manual")
    await live.settle()
    runs.set_paused(live.app.db, "act-cadence", True)  # the reminder waits in the outbox
    await sent_days_ago(live, 3.1)
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 1
    live.sandbox.push_message(802, "We trained 40 inspectors this month.")
    await live.settle()
    runs.set_paused(live.app.db, "act-cadence", False)
    await live.settle()
    assert reminders(live, 802) == []
    assert live.scalar(select(Prompt.state)) == "answered"
    reminder = live.scalar(
        select(OutboxMessage).where(OutboxMessage.idempotency_key.startswith("reminder:"))
    )
    assert (reminder.state, reminder.last_error) == ("cancelled", "prompt answered")
    await sent_days_ago(live, 6.1)
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0
