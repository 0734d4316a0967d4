"""The scheduler: hot reload, missed runs after downtime, DST-repeated hours, alerts."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from bot.core.models import Contact, OutboxMessage, Run, utcnow
from bot.delivery.alerts import Alerts
from bot.scheduling import runs
from bot.scheduling.scheduler import CampaignScheduler
from bot.service.app import App
from bot.settings.config import AlertSettings

STAFF_CHAT = -100200300


def campaign(campaign_id: str, cron: str, grace: str = "1h") -> str:
    return (
        f'[[campaign]]\nid = "{campaign_id}"\nkind = "followup"\npillar = "act"\n'
        f'cron = "{cron}"\ntimezone = "Europe/London"\ngrace = "{grace}"\n'
    )


def write(path: Path, text: str) -> None:
    """Write and make sure the modification time moves, as an editor's save would."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


@pytest.fixture
def folder(app: App) -> Path:
    schedules = app.config.path("schedules")
    for old in schedules.glob("*.toml"):
        old.unlink()
    return schedules


@pytest.fixture
async def scheduler(app: App, folder: Path) -> AsyncIterator[CampaignScheduler]:
    write(folder / "a.toml", campaign("daily", "0 10 * * *") + campaign("weekly", "0 9 * * mon"))
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id="gb-supply-chain-desk",
                channel="telegram",
                address="1",
                bound_at=utcnow(),
            )
        )
    made = CampaignScheduler(
        app.db,
        app.templates,
        app.schedules(),
        lambda: None,
        alerts=Alerts(app.db, AlertSettings(telegram_chat_id=STAFF_CHAT)),
        loader=app.schedules,
        watched=[folder],
    )
    yield made
    made.shutdown()


def alerts(app: App) -> list[str]:
    with app.db.session() as session:
        return list(
            session.scalars(
                select(OutboxMessage.text).where(OutboxMessage.recipient == str(STAFF_CHAT))
            )
        )


async def test_valid_edit_changes_only_that_campaign_without_restart(
    app: App, folder: Path, scheduler: CampaignScheduler
) -> None:
    scheduler.start()
    weekly_before = scheduler.scheduler.get_job("weekly").next_run_time
    write(folder / "a.toml", campaign("daily", "0 11 * * *") + campaign("weekly", "0 9 * * mon"))
    assert await scheduler.reload() == ["daily"]
    assert scheduler.scheduler.get_job("daily").next_run_time.hour == 11
    assert scheduler.scheduler.get_job("weekly").next_run_time == weekly_before
    assert await scheduler.reload() == [], "unchanged files: nothing to do"


async def test_invalid_edit_keeps_the_last_good_schedule_and_alerts_once(
    app: App, folder: Path, scheduler: CampaignScheduler
) -> None:
    scheduler.start()
    daily_before = scheduler.scheduler.get_job("daily").next_run_time
    write(folder / "a.toml", campaign("daily", "0 10 * * *").replace("cron", "cronn"))
    assert await scheduler.reload() == []
    assert scheduler.scheduler.get_job("daily").next_run_time == daily_before
    assert scheduler.scheduler.get_job("weekly") is not None
    [alert] = alerts(app)
    assert "NOT applied" in alert and "a.toml:5: unknown field &#x27;cronn&#x27;" in alert
    write(folder / "a.toml", campaign("daily", "0 10 * * *").replace("cron", "cronn"))
    await scheduler.reload()
    assert len(alerts(app)) == 1, "the same broken edit is reported once"


def test_missed_run_fires_once_within_grace_and_none_outside(
    app: App, scheduler: CampaignScheduler
) -> None:
    spec = scheduler.schedules.get("daily").spec  # 10:00 London, grace 1h
    yesterday = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    runs.fire(app.db, app.templates, spec, yesterday, trigger="cron")
    down_until = datetime(2026, 12, 4, 10, 20, tzinfo=UTC)  # missed 2nd and 3rd; 4th in grace
    with time_machine.travel(down_until, tick=False):
        scheduler.catch_up(down_until)
        scheduler.catch_up(down_until)  # a second start: nothing more
    with app.db.session() as session:
        recorded = [
            (r.fire_time.day, r.trigger)
            for r in session.scalars(
                select(Run).where(Run.campaign_id == "daily").order_by(Run.fire_time)
            )
        ]
    assert recorded == [(1, "cron"), (2, "missed"), (3, "missed"), (4, "catch-up")]
    [alert] = alerts(app)
    assert "2 run(s) missed" in alert


def test_run_missed_beyond_grace_is_recorded_not_fired(
    app: App, scheduler: CampaignScheduler
) -> None:
    spec = scheduler.schedules.get("daily").spec
    runs.fire(app.db, app.templates, spec, datetime(2026, 12, 1, 10, tzinfo=UTC), trigger="cron")
    now = datetime(2026, 12, 2, 11, 30, tzinfo=UTC)  # 1h30 after the 2nd: past its 1h grace
    scheduler.catch_up(now)
    with app.db.session() as session:
        assert [r.trigger for r in session.scalars(select(Run).order_by(Run.fire_time))] == [
            "cron",
            "missed",
        ]
        assert (
            session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.recipient == "1", OutboxMessage.run_id == 2
                )
            )
            is None
        )


async def test_cron_in_a_repeated_dst_hour_fires_once(app: App, folder: Path) -> None:
    write(folder / "a.toml", campaign("night", "30 1 * * *", grace="2h"))
    made = CampaignScheduler(app.db, app.templates, app.schedules(), lambda: None)
    # Europe/London 2026-10-25: 01:30 happens at 00:30 UTC (BST) and again at 01:30 UTC (GMT).
    for instant in (
        datetime(2026, 10, 25, 0, 30, 1, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, 1, tzinfo=UTC),
    ):
        with time_machine.travel(instant, tick=False):
            await made.fire_due("night")
    with app.db.session() as session:
        fired = list(session.scalars(select(Run.fire_time).where(Run.campaign_id == "night")))
    assert fired == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]


def test_fire_times_step_through_a_repeated_hour() -> None:
    trigger = CronTrigger.from_crontab("*/30 1 * * *", timezone="Europe/London")
    found = runs.fire_times(
        trigger,
        after=datetime(2026, 10, 24, 23, tzinfo=UTC),
        until=datetime(2026, 10, 25, 3, tzinfo=UTC),
    )
    assert found == [
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    ]
    assert runs.last_fire_time(
        trigger, datetime(2026, 10, 25, 1, 45, tzinfo=UTC), timedelta(hours=2)
    ) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


async def test_editing_a_cadence_hour_moves_its_slots(app: App, folder: Path) -> None:
    from bot.core.models import Cadence

    cadence = (
        '[[campaign]]\nid = "monthly"\nkind = "followup"\npillar = "act"\n'
        'relative_to = "pledge_date"\nevery = "30d"\nat = "{}"\n'
        'audience = {{ sector = ["government"] }}\n'
    )
    write(folder / "c.toml", cadence.format("10:00"))
    made = CampaignScheduler(
        app.db, app.templates, app.schedules(), lambda: None, loader=app.schedules, watched=[folder]
    )
    await made.sweep_cadences()
    write(folder / "c.toml", cadence.format("15:00"))
    assert await made.reload() == ["monthly"]
    await made.sweep_cadences()
    with app.db.session() as session:
        slots = list(session.scalars(select(Cadence).where(Cadence.pledgemaker_id == "ilo")))
        hours = {
            c.next_due_at.hour
            for c in session.scalars(
                select(Cadence).where(Cadence.pledgemaker_id == "gh-min-labour")
            )
        }
    assert slots == [] and hours == {15}, "Accra is UTC+0: the new 15:00 local slot"
