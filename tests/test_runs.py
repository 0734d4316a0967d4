"""Runs are recorded once per (campaign, fire time); cron instants are computed on the campaign's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select

from bot.core.models import Contact, OutboxMessage, Run, utcnow
from bot.delivery import pauses
from bot.scheduling import runs
from bot.service.app import App


def bind(app: App, pledgemaker_id: str, chat: str) -> None:
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id=pledgemaker_id, channel="telegram", address=chat, bound_at=utcnow()
            )
        )


def test_a_cron_instant_fires_once_even_if_fired_again(app: App) -> None:
    bind(app, "gh-min-labour", "1")
    spec = app.schedules().get("act-checkin").spec
    instant = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    first = runs.fire(app.db, app.templates, spec, instant, trigger="cron")
    again = runs.fire(app.db, app.templates, spec, instant, trigger="cron")
    assert (first.enqueued, again.already_fired) == (1, True)
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_manual_fires_are_new_runs_each_time(app: App) -> None:
    bind(app, "gh-min-labour", "1")
    spec = app.schedules().get("act-checkin").spec
    a = runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual")
    b = runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual")
    assert a.run_id != b.run_id and a.enqueued == b.enqueued == 1


def test_audience_filter_and_skips_are_reported(app: App) -> None:
    import csv

    from tests.conftest import SAMPLE_CSV

    bind(app, "gh-min-labour", "1")  # a government: in scale-up's audience
    spec = app.schedules().get("scale-up-checkin").spec
    with SAMPLE_CSV.open(encoding="utf-8") as handle:
        audience = [r["id"] for r in csv.DictReader(handle) if r["sector"] in spec.audience.sector]
    fired = runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual")
    assert 1 < len(audience) < 40, "the sample must exercise the filter"
    assert fired.enqueued == 1
    assert fired.skipped == {"no contact": len(audience) - 1}


def test_last_fire_time_uses_the_campaign_time_zone() -> None:
    trigger = CronTrigger.from_crontab("0 10 1 * *", timezone="Europe/Zurich")
    now = datetime(2026, 12, 1, 9, 0, 5, tzinfo=UTC)  # 10:00:05 in Zurich (UTC+1 in winter)
    assert runs.last_fire_time(trigger, now, timedelta(hours=1)) == datetime(
        2026, 12, 1, 9, 0, tzinfo=UTC
    )
    assert runs.last_fire_time(trigger, now - timedelta(minutes=1), timedelta(hours=1)) is None


def test_paused_campaign_is_reported_paused(app: App) -> None:
    assert not pauses.is_paused(app.db, "act-checkin")
    pauses.set_paused(app.db, "*", True)
    assert pauses.is_paused(app.db, "act-checkin")
    pauses.set_paused(app.db, "*", False)
    pauses.set_paused(app.db, "act-checkin", True)
    assert pauses.is_paused(app.db, "act-checkin") and not pauses.is_paused(
        app.db, "inspire-checkin"
    )


async def test_scheduler_job_fires_the_current_cron_instant_once(app: App) -> None:
    from bot.scheduling.scheduler import CampaignScheduler

    bind(app, "gh-min-labour", "1")
    entry = '[[campaign]]\nid = "{}"\nkind = "followup"\npillar = "act"\ncron = "* * * * *"\n'
    path = app.config.path("schedules") / "every-minute.toml"
    path.write_text(entry.format("minutely") + entry.format("held"), encoding="utf-8")
    pauses.set_paused(app.db, "held", True)
    woken: list[bool] = []
    scheduler = CampaignScheduler(
        app.db, app.templates, app.schedules(), lambda: woken.append(True)
    )
    await scheduler.fire_due("minutely")
    await scheduler.fire_due("minutely")  # the same minute again: already recorded
    await scheduler.fire_due("held")
    with app.db.session() as session:
        fired = list(session.scalars(select(Run)))
    assert [r.campaign_id for r in fired] == ["minutely"], "once, and the paused one not at all"
    assert fired[0].trigger == "cron" and fired[0].fire_time.second == 0
    assert woken == [True]


async def test_scheduler_sweeps_due_cadences_and_skips_paused_ones(app: App) -> None:
    from bot.core.models import Cadence
    from bot.scheduling.scheduler import CampaignScheduler

    bind(app, "gh-min-labour", "1")
    entry = (
        '[[campaign]]\nid = "{}"\nkind = "followup"\npillar = "act"\n'
        'relative_to = "pledge_date"\nevery = "30d"\ngrace = "1d"\n'
        'audience = {{ sector = ["government"] }}\n'
    )
    path = app.config.path("schedules") / "cadences.toml"
    path.write_text(entry.format("monthly") + entry.format("held"), encoding="utf-8")
    pauses.set_paused(app.db, "held", True)
    woken: list[bool] = []
    scheduler = CampaignScheduler(
        app.db, app.templates, app.schedules(), lambda: woken.append(True)
    )
    await scheduler.sweep_cadences()  # first pass: every audience member gets a future slot
    with app.db.session() as session:
        members = session.scalar(select(func.count()).select_from(Cadence))
        session.get(Cadence, ("monthly", "gh-min-labour")).next_due_at = utcnow() - timedelta(
            minutes=5
        )
    assert members and woken == []
    await scheduler.sweep_cadences()
    with app.db.session() as session:
        queued = list(session.scalars(select(OutboxMessage.campaign_id)))
    assert queued == ["monthly"] and woken == [True]
