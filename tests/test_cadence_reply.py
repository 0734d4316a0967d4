"""A ``relative_to = "last_reply"`` cadence, end to end on a moved clock: a real answer (a
Telegram message through the inbox, linked to the prompt) moves the next prompt to ``every``
after the answer, at the campaign's local hour — not ``every`` after the previous slot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from bot.campaigns.followup import FollowupCampaign
from bot.core.models import Cadence, OutboxMessage, Prompt, Reply, utcnow
from bot.scheduling import sweeper
from bot.scheduling.preview import preview
from bot.scheduling.schedules import LoadedCampaign, ScheduleSet
from tests.auxil.clocked import live_at
from tests.auxil.live import Live
from tests.auxil.specs import followup

NG = "ng-agri-union"  # Africa/Lagos: UTC+1 all year, so 10:00 local is 09:00 UTC
NOW = datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
async def clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, time_machine.Coordinates]]:
    async with live_at(NOW, tmp_path, monkeypatch) as running:
        yield running


def every_30_days_after_the_last_answer() -> FollowupCampaign:
    return followup(
        "act-after-reply",
        relative_to="last_reply",
        first_after="14d",
        every="30d",
        at="10:00",
        grace="6h",
        audience={"country": ["NG"]},
    )


def prompts_sent(live: Live) -> list[str]:
    return live.all(
        select(OutboxMessage.idempotency_key)
        .where(OutboxMessage.idempotency_key.startswith("followup:act-after-reply:"))
        .order_by(OutboxMessage.id)
    )


def key(slot: datetime) -> str:
    return f"followup:act-after-reply:{NG}:{slot:%Y-%m-%dT%H:%M:%S.%fZ}"


async def sweep_hourly(
    live: Live, spec: FollowupCampaign, traveller: time_machine.Coordinates, until: datetime
) -> list[datetime]:
    """The scheduler's cadence pass every hour on the hour up to ``until``; when it prompted.
    Back to back, the loop left alone unless a pass queued a prompt (``tests.auxil.clocked``)."""
    prompted = []
    at = utcnow().replace(minute=0, second=0, microsecond=0)
    while at < until:
        at += HOUR
        traveller.move_to(at)
        if sweeper.sweep(live.app.db, live.app.templates, spec, utcnow()).enqueued:
            prompted.append(at)
            await live.settle()
    return prompted


def calendar(live: Live, spec: FollowupCampaign, days: int) -> list[datetime]:
    """The slots ``schedules preview`` shows for the next ``days`` days."""
    schedules = ScheduleSet({spec.id: LoadedCampaign(spec, "act-after-reply.toml", 1)})
    with live.app.db.session() as session:
        items = preview(session, schedules, live.app.templates, now=utcnow(), days=days)
    return [item.due_utc for item in items if not item.skipped]


async def test_an_answer_moves_the_next_prompt_to_every_after_the_answer(
    clock: tuple[Live, time_machine.Coordinates],
) -> None:
    live, traveller = clock
    spec = every_30_days_after_the_last_answer()
    await live.bind(NG, 841)
    with live.app.db.session() as session:
        assert sweeper.ensure_cadences(session, spec, utcnow()) == 1
    first = live.scalar(select(Cadence.next_due_at))
    assert (first.hour, first.minute) == (9, 0), "10:00 in Lagos"
    assert NOW < first <= NOW + 30 * DAY

    assert await sweep_hourly(live, spec, traveller, first + HOUR) == [first]
    assert prompts_sent(live) == [key(first)]
    assert live.texts(841)[-1].startswith("<b>Act</b>")
    no_reply = first + 30 * DAY
    assert live.scalar(select(Cadence.next_due_at)) == no_reply, "30 days on, for now"

    # Five days later, at 15:40 in Lagos, they answer the prompt (quoting it).
    answered = first + 5 * DAY + timedelta(hours=5, minutes=40)
    traveller.move_to(answered)
    live.sandbox.push_message(
        841,
        "We trained 150 shop stewards in Ondo.",
        reply_to_message_id=live.last_prompt(841)["message_id"],
    )
    await live.settle()
    reply = live.scalar(select(Reply))
    assert reply.prompt_id == live.scalar(select(Prompt.id))
    assert abs(reply.received_at - answered) < timedelta(seconds=5)
    assert live.scalar(select(Prompt.state)) == "answered"

    moved = first + 35 * DAY  # 30 days after the day of the answer, at 10:00 in Lagos
    assert calendar(live, spec, 40) == [moved], "the calendar shows the moved slot"
    assert await sweep_hourly(live, spec, traveller, moved + 2 * HOUR) == [moved], (
        "no prompt 30 days after the previous slot; one 30 days after the answer"
    )
    assert prompts_sent(live) == [key(first), key(moved)]
    assert live.scalar(select(Cadence.next_due_at)) == moved + 30 * DAY, "no answer since"
