"""APScheduler 3.x wiring: one job per cron campaign, in a memory job store built from the files.

What has fired lives in the database (``runs``), not in APScheduler: a job only computes the
instant it stands for and asks ``bot.scheduling.runs.fire`` to record and plan it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.campaigns.followup import FollowupCampaign
from bot.campaigns.reminders import remind
from bot.campaigns.spec import CampaignBase
from bot.community.closing import close_loop
from bot.core.db import Database
from bot.core.errors import ScheduleError
from bot.delivery import pauses
from bot.delivery.alerts import Alerts
from bot.scheduling import runs, sweeper
from bot.scheduling.schedules import ScheduleSet, schedule_files
from bot.text.templates import Templates

log = logging.getLogger(__name__)
SWEEP_SECONDS = 60  # how often cadences are swept; a slot goes out at most this late
MEMBERS_EVERY = timedelta(minutes=15)  # how often new audience members get a cadence
RELOAD_SECONDS = 5  # how often schedule files are checked for edits


class CampaignScheduler:
    def __init__(
        self,
        db: Database,
        templates: Templates,
        schedules: ScheduleSet,
        on_enqueued: Callable[[], None],
        *,
        alerts: Alerts | None = None,
        loader: Callable[[], ScheduleSet] | None = None,
        watched: list[Path] | None = None,
        prompt_ttl: timedelta = timedelta(days=7),
        destinations: Mapping[str, str] | None = None,
        media_dir: Path | None = None,
    ) -> None:
        self.db, self.templates, self.schedules = db, templates, schedules
        self.on_enqueued = on_enqueued
        self.alerts = alerts
        self.loader, self.watched = loader, watched or []
        self.prompt_ttl = prompt_ttl
        self.destinations: Mapping[str, str] = destinations or {}  # may carry post limits
        self.media_dir = media_dir  # where runs write files they send (the digest's chart)
        self.scheduler = AsyncIOScheduler(timezone=UTC, jobstores={"default": MemoryJobStore()})
        self._members_checked: datetime | None = None
        self._fingerprint = self._files_fingerprint()

    def start(self) -> None:
        now = datetime.now(UTC)
        # Jobs count from the instant catch-up counts to: one passing while it runs still fires.
        self._apply(self.schedules, previous=ScheduleSet(), after=now)
        self.catch_up(now)
        self.scheduler.add_job(
            self.sweep_cadences,
            trigger="interval",
            seconds=SWEEP_SECONDS,
            id="cadence-sweeper",
            next_run_time=datetime.now(UTC),  # at start too: catch up what fell due while down
            coalesce=True,
            max_instances=1,
        )
        if self.loader is not None:
            self.scheduler.add_job(
                self.reload,
                trigger="interval",
                seconds=RELOAD_SECONDS,
                id="schedule-reload",
                coalesce=True,
                max_instances=1,
            )
        self.scheduler.start()

    # -- jobs from the files, and hot reload ---------------------------------------------------
    def _apply(
        self, new: ScheduleSet, previous: ScheduleSet, after: datetime | None = None
    ) -> list[str]:
        """Make APScheduler's jobs match ``new``; only changed campaigns are touched."""
        changed = []
        for campaign_id in set(previous.campaigns) | set(new.campaigns):
            old, now = previous.campaigns.get(campaign_id), new.campaigns.get(campaign_id)
            if old is not None and now is not None and old.spec == now.spec:
                continue  # untouched: its next fire time stays as it was
            changed.append(campaign_id)
            if self.scheduler.get_job(campaign_id) is not None:
                self.scheduler.remove_job(campaign_id)
            spec = now.spec if now is not None else None
            trigger = spec.trigger() if spec is not None and spec.enabled else None
            if spec is None or trigger is None:
                continue
            self.scheduler.add_job(
                self.fire_due,
                trigger=trigger,
                args=[spec.id],
                id=spec.id,
                misfire_grace_time=int(spec.grace_period.total_seconds()) or 1,
                coalesce=True,
                max_instances=1,
                **({"next_run_time": trigger.get_next_fire_time(None, after)} if after else {}),
            )
            log.info("campaign %s scheduled: %s", spec.id, spec.when)
        self.schedules = new
        return sorted(changed)

    def _files_fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        files = schedule_files(self.watched)
        return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.exists())

    async def reload(self) -> list[str]:
        """Apply edited schedule files; an invalid edit keeps the last good schedule and alerts."""
        fingerprint = self._files_fingerprint()
        if fingerprint == self._fingerprint or self.loader is None:
            return []
        self._fingerprint = fingerprint
        try:
            new = self.loader()
        except ScheduleError as exc:
            text = "schedule edit NOT applied; still running the last good schedule:\n" + str(exc)
            digest = hashlib.sha256(str(exc).encode()).hexdigest()[:16]
            if self.alerts is not None:
                self.alerts.raise_alert(f"schedules:{digest}", text)
            return []
        previous = self.schedules
        changed = self._apply(new, previous=previous)
        for campaign_id in changed:
            old, now = previous.campaigns.get(campaign_id), new.campaigns.get(campaign_id)
            if (
                old is not None
                and old.spec.every
                and (now is None or _timing(now.spec) != _timing(old.spec))
            ):
                sweeper.forget_cadences(self.db, campaign_id)  # new rule: slots computed afresh
                self._members_checked = None
        if changed:
            log.info("schedules reloaded; changed: %s", ", ".join(changed))
        return changed

    def catch_up(self, now: datetime) -> None:
        """Runs missed while the bot was down: the latest fires if within grace; every other one
        is recorded as missed and staff are told. Only instants after the campaign's last recorded
        run count, so a new install does not report a year of misses."""
        for loaded in self.schedules.campaigns.values():
            spec = loaded.spec
            trigger = spec.trigger()
            if trigger is None or not spec.enabled or pauses.is_paused(self.db, spec.id):
                continue
            last = runs.last_run_time(self.db, spec.id)
            instants = runs.fire_times(trigger, after=last, until=now) if last else []
            latest = runs.last_fire_time(trigger, now, spec.grace_period)
            if latest is not None and latest not in instants and (last is None or latest > last):
                instants.append(latest)
            due = [t for t in instants if now - t <= spec.grace_period]
            missed = [t for t in instants if not due or t != due[-1]]
            for instant in missed:
                runs.record_missed(self.db, spec.id, instant)
            if missed and self.alerts is not None:
                self.alerts.raise_alert(
                    f"missed:{spec.id}:{missed[-1].isoformat()}",
                    f"campaign {spec.id}: {len(missed)} run(s) missed while pledgebot was down "
                    f"(last {missed[-1]:%Y-%m-%d %H:%M} UTC; only the latest within its grace of "
                    f"{spec.grace} fires); fire it by hand if it is still wanted: "
                    "pledgebot campaign fire " + spec.id,
                )
            due = [t for t in instants if now - t <= spec.grace_period]
            if due:
                result = runs.fire(
                    self.db,
                    self.templates,
                    spec,
                    due[-1],
                    trigger="catch-up",
                    destinations=self.destinations,
                    media_dir=self.media_dir,
                )
                if not result.already_fired:
                    log.info("campaign %s: missed run at %s fired now", spec.id, due[-1])
                    self.on_enqueued()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def sweep_cadences(self) -> None:
        """One pass: new audience members, the cadence slots that are due, due reminders.

        Runs in a worker thread: a big first pass must not stall the listener and dispatcher.
        """
        if await asyncio.to_thread(self._sweep_once, datetime.now(UTC)):
            self.on_enqueued()

    def _sweep_once(self, now: datetime) -> int:
        refresh = self._members_checked is None or now - self._members_checked >= MEMBERS_EVERY
        enqueued = 0
        for loaded in self.schedules.campaigns.values():
            spec = loaded.spec
            if not isinstance(spec, FollowupCampaign):  # only a follow-up has cadences, reminders
                continue
            if not spec.enabled or pauses.is_paused(self.db, spec.id):
                continue
            if spec.every:
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
            enqueued += remind(self.db, self.templates, spec, now, self.prompt_ttl)
        enqueued += close_loop(self.db, self.templates)
        if refresh:
            self._members_checked = now
        return enqueued

    async def fire_due(self, campaign_id: str) -> None:
        loaded = self.schedules.campaigns.get(campaign_id)
        if loaded is None:  # removed by a reload while its job was already due
            return
        spec = loaded.spec
        trigger = spec.trigger()
        now = datetime.now(UTC)
        fire_time = (
            runs.last_fire_time(trigger, now, spec.grace_period + timedelta(minutes=1))
            if trigger
            else None
        )
        if fire_time is None:
            return
        if pauses.is_paused(self.db, campaign_id):
            log.info("campaign %s is paused: run at %s not fired", campaign_id, fire_time)
            return
        # Coalesced or late (a slow catch-up, a blocked loop): the instants since the last
        # recorded run that this job never ran for are recorded as missed, not dropped.
        last = runs.last_run_time(self.db, campaign_id)
        if last is not None and trigger is not None:
            for skipped in runs.fire_times(
                trigger, after=last, until=fire_time - timedelta(microseconds=1)
            ):
                runs.record_missed(self.db, campaign_id, skipped)
        result = await asyncio.to_thread(  # planning a whole audience: off the event loop
            runs.fire,
            self.db,
            self.templates,
            spec,
            fire_time,
            trigger="cron",
            destinations=self.destinations,
            media_dir=self.media_dir,
        )
        if result.already_fired:
            log.info("campaign %s run at %s was already fired", campaign_id, fire_time)
            return
        log.info("campaign %s fired for %s: %d messages", campaign_id, fire_time, result.enqueued)
        self.on_enqueued()


def _timing(spec: CampaignBase) -> tuple[object, ...]:
    """What decides a cadence's slots; an edit to anything else keeps the slots as they are."""
    return (spec.relative_to, spec.first_after, spec.every, spec.at, spec.audience)
