"""APScheduler 3.x wiring: one job per cron campaign, in a memory job store built from the files.

What has fired lives in the database (``runs``), not in APScheduler: a job only computes the
instant it stands for and asks ``bot.runs.fire`` to record and plan it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import runs, sweeper
from bot.db import Database
from bot.schedules import ScheduleSet
from bot.templates import Templates

log = logging.getLogger(__name__)
SWEEP_SECONDS = 60  # how often cadences are swept; a slot goes out at most this late
MEMBERS_EVERY = timedelta(minutes=15)  # how often new audience members get a cadence


class CampaignScheduler:
    def __init__(
        self,
        db: Database,
        templates: Templates,
        schedules: ScheduleSet,
        on_enqueued: Callable[[], None],
    ) -> None:
        self.db, self.templates, self.schedules = db, templates, schedules
        self.on_enqueued = on_enqueued
        self.scheduler = AsyncIOScheduler(timezone=UTC, jobstores={"default": MemoryJobStore()})
        self._members_checked: datetime | None = None

    def start(self) -> None:
        for loaded in self.schedules.campaigns.values():
            spec = loaded.spec
            trigger = spec.trigger()
            if trigger is None or not spec.enabled:
                continue
            self.scheduler.add_job(
                self.fire_due,
                trigger=trigger,
                args=[spec.id],
                id=spec.id,
                misfire_grace_time=int(spec.grace_period.total_seconds()) or 1,
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )
            log.info("campaign %s scheduled (%s %s)", spec.id, spec.cron, spec.timezone)
        if any(loaded.spec.every for loaded in self.schedules.campaigns.values()):
            self.scheduler.add_job(
                self.sweep_cadences,
                trigger="interval",
                seconds=SWEEP_SECONDS,
                id="cadence-sweeper",
                next_run_time=datetime.now(UTC),  # at start too: catch up what fell due while down
                coalesce=True,
                max_instances=1,
            )
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def sweep_cadences(self) -> None:
        """One pass over every cadence campaign: new audience members, then what is due."""
        now = datetime.now(UTC)
        refresh = self._members_checked is None or now - self._members_checked >= MEMBERS_EVERY
        enqueued = 0
        for loaded in self.schedules.campaigns.values():
            spec = loaded.spec
            if not spec.every or not spec.enabled or runs.is_paused(self.db, spec.id):
                continue
            if refresh:
                with self.db.session() as session:
                    sweeper.ensure_cadences(session, spec, now)
            result = sweeper.sweep(self.db, self.templates, spec, now)
            enqueued += result.enqueued
            if result.enqueued or result.skipped:
                log.info(
                    "cadence %s: %d prompts, skipped %s",
                    spec.id,
                    result.enqueued,
                    result.skipped or "none",
                )
        if refresh:
            self._members_checked = now
        if enqueued:
            self.on_enqueued()

    async def fire_due(self, campaign_id: str) -> None:
        spec = self.schedules.campaigns[campaign_id].spec
        trigger = spec.trigger()
        now = datetime.now(UTC)
        fire_time = (
            runs.last_fire_time(trigger, now, spec.grace_period + timedelta(minutes=1))
            if trigger
            else None
        )
        if fire_time is None:
            return
        if runs.is_paused(self.db, campaign_id):
            log.info("campaign %s is paused: run at %s not fired", campaign_id, fire_time)
            return
        result = runs.fire(self.db, self.templates, spec, fire_time, trigger="cron")
        if result.already_fired:
            log.info("campaign %s run at %s was already fired", campaign_id, fire_time)
            return
        log.info("campaign %s fired for %s: %d messages", campaign_id, fire_time, result.enqueued)
        self.on_enqueued()
