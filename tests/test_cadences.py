"""Cadence campaigns: one sweep over an indexed next_due_at, not one job per pledgemaker."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import time_machine
from sqlalchemy import func, insert, select

from bot.campaigns.followup import FollowupCampaign
from bot.core.models import Cadence, Contact, JourneyUpdate, OutboxMessage, Pledgemaker, utcnow
from bot.delivery import claiming
from bot.scheduling import runs, sweeper
from bot.service.app import App
from tests.auxil.specs import followup

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def cadence(**extra: object) -> FollowupCampaign:
    return followup(
        "monthly", relative_to="pledge_date", every="30d", at="10:00", grace="1d", **extra
    )


def crowd(app: App, size: int, due: int) -> None:
    """``size`` pledgemakers with contacts and cadences; ``due`` of them due before NOW."""
    people = [
        {
            "id": f"p{i:05d}",
            "name": f"Org {i}",
            "country": "GH",
            "region": "africa",
            "sector": "ngo",
            "language": "en",
            "timezone": "Africa/Accra",
            "pledge_title": "T",
            "pledge_text": "P",
            "pledge_date": date(2021, 5, 1),
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(size)
    ]
    with app.db.session() as session:
        session.execute(insert(Pledgemaker), people)
        session.execute(
            insert(Contact),
            [
                {
                    "pledgemaker_id": p["id"],
                    "channel": "telegram",
                    "address": str(10_000 + i),
                    "status": "active",
                    "bound_at": NOW,
                }
                for i, p in enumerate(people)
            ],
        )
        session.execute(
            insert(Cadence),
            [
                {
                    "campaign_id": "monthly",
                    "pledgemaker_id": p["id"],
                    "next_due_at": NOW - timedelta(hours=1) if i < due else NOW + timedelta(days=3),
                }
                for i, p in enumerate(people)
            ],
        )


def test_sweep_of_ten_thousand_plans_exactly_the_hundred_due_and_then_nothing(app: App) -> None:
    crowd(app, 10_000, due=100)
    spec = cadence()
    first = sweeper.sweep(app.db, app.templates, spec, NOW)
    again = sweeper.sweep(app.db, app.templates, spec, NOW)
    assert (first.enqueued, again.enqueued) == (100, 0)
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 100
        moved = session.scalar(select(func.min(Cadence.next_due_at)))
    assert moved > NOW, "each due slot moved on to the next local slot in the same transaction"


def test_next_slot_is_every_days_later_at_local_hour(app: App) -> None:
    crowd(app, 1, due=1)
    sweeper.sweep(app.db, app.templates, cadence(), NOW)
    with app.db.session() as session:
        row = session.scalar(select(Cadence))
    # Accra is UTC+0: the slot was 2026-06-01 11:00; the next is 30 days on, at 10:00 local.
    assert row.next_due_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_new_audience_members_get_their_next_slot_not_a_backlog(app: App) -> None:
    spec = cadence(audience={"sector": ["government"]})
    with app.db.session() as session:
        added = sweeper.ensure_cadences(session, spec, NOW)
    with app.db.session() as session:
        again = sweeper.ensure_cadences(session, spec, NOW)
        slots = list(session.scalars(select(Cadence.next_due_at)))
    assert added > 0 and again == 0
    assert all(NOW < slot <= NOW + timedelta(days=31) for slot in slots)


def test_skip_if_updated_within_and_past_grace(app: App) -> None:
    crowd(app, 3, due=3)
    with app.db.session() as session:
        session.add(
            JourneyUpdate(
                pledgemaker_id="p00000",
                pillar="act",
                kind="progress",
                text="done",
                source="import",
                source_ref="x",
                created_at=NOW - timedelta(days=2),
            )
        )
        session.get(Cadence, ("monthly", "p00001")).next_due_at = NOW - timedelta(days=3)
    result = sweeper.sweep(app.db, app.templates, cadence(skip_if_updated_within="21d"), NOW)
    assert result.enqueued == 1
    assert result.skipped == {"updated recently": 1, "missed (past grace)": 1}


@time_machine.travel(NOW)  # noon, clock ticking: inside the quiet span used below
def test_quiet_hours_hold_at_send_time_but_not_for_a_manual_fire(app: App) -> None:
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id="gh-min-labour", channel="telegram", address="1", bound_at=utcnow()
            )
        )
    spec = (
        app.schedules().get("act-checkin").spec.model_copy(update={"quiet_hours": ["00:00-23:59"]})
    )
    runs.fire(app.db, app.templates, spec, utcnow(), trigger="cron")
    manual = runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual")
    with app.db.session() as session:
        claimed = claiming.claim(
            session, channels=["telegram"], limit=10, lease=timedelta(minutes=1)
        )
        deferred = session.scalar(
            select(OutboxMessage).where(OutboxMessage.run_id != manual.run_id)
        )
    assert [c.message.idempotency_key for c in claimed] == [
        f"followup:act-checkin:gh-min-labour:{manual_slot(app, manual.run_id)}"
    ]
    assert deferred.state == "pending" and deferred.next_attempt_at > utcnow()


def manual_slot(app: App, run_id: int | None) -> str:
    from bot.core.models import Run

    with app.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return f"{run.fire_time:%Y-%m-%dT%H:%M:%S.%fZ}"


def test_a_pledgemaker_who_left_the_audience_is_no_longer_prompted(app: App) -> None:
    crowd(app, 2, due=2)
    with app.db.session() as session:
        session.get(Pledgemaker, "p00001").sector = "business"  # re-imported elsewhere
    result = sweeper.sweep(app.db, app.templates, cadence(audience={"sector": ["ngo"]}), NOW)
    assert (result.enqueued, result.skipped) == (1, {"left the audience": 1})
    with app.db.session() as session:
        assert session.get(Cadence, ("monthly", "p00001")) is None
