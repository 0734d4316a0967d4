"""Firing a campaign: record the run once, plan it, enqueue its messages — one transaction.

A cron run is unique per (campaign, fire time): a restart, a DST double fire or a second process
firing the same instant finds the run already recorded and does nothing. A manual run
(``campaign fire``) is a new run on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.campaigns.base import Plan, RunContext
from bot.campaigns.registry import kind
from bot.campaigns.spec import CampaignBase
from bot.core.db import Database
from bot.core.models import Run
from bot.delivery import outbox
from bot.text.templates import Templates


@dataclass
class FireResult:
    run_id: int | None
    enqueued: int = 0
    planned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    already_fired: bool = False


def plan(spec: CampaignBase, run: RunContext, session: Session, templates: Templates) -> Plan:
    """What the run would send (reads only): previews and dry runs call this alone."""
    return kind(spec.kind).plan(spec, run, session, templates)


def fire(
    db: Database,
    templates: Templates,
    spec: CampaignBase,
    fire_time: datetime,
    *,
    trigger: str,
    only: str | None = None,
    destinations: Mapping[str, str] | None = None,
    media_dir: Path | None = None,
) -> FireResult:
    """Record the run once, plan it and enqueue its messages. ``media_dir``: where the run may
    write files it sends (``[media] dir``); without it a digest goes without its chart."""
    try:
        with db.session() as session:
            if session.scalar(
                select(Run.id).where(Run.campaign_id == spec.id, Run.fire_time == fire_time)
            ):
                return FireResult(run_id=None, already_fired=True)
            run = Run(campaign_id=spec.id, fire_time=fire_time, trigger=trigger)
            session.add(run)
            session.flush()
            prepare = kind(spec.kind).prepare
            if prepare is not None:  # a recorded run's writes before it plans (the digest's)
                prepare(session)
            context = RunContext(
                spec.id,
                fire_time,
                only,
                manual=trigger == "manual",
                destinations=destinations or {},
                media_dir=media_dir,
            )
            result = plan(spec, context, session, templates)
            enqueued = outbox.enqueue(session, result.messages, run_id=run.id, campaign_id=spec.id)
            run.planned = enqueued
            skipped = ", ".join(f"{why}: {n}" for why, n in sorted(result.skipped.items()))
            run.note = f"skipped {skipped}" if skipped else None
            return FireResult(run.id, enqueued, len(result.messages), result.skipped)
    except IntegrityError:  # another process recorded the same run between our check and insert
        return FireResult(run_id=None, already_fired=True)


def first_occurrence(instant: datetime) -> datetime:
    """The run key of a cron instant: in a repeated (fall-back) hour, its first occurrence, so
    the wall-clock time that happens twice is one run, not two."""
    return instant.replace(fold=0).astimezone(UTC)


def fire_times(trigger: BaseTrigger, *, after: datetime, until: datetime) -> list[datetime]:
    """Each instant the trigger fires in (after, until], as run keys (UTC, first occurrence)."""
    found: list[datetime] = []
    moment = trigger.get_next_fire_time(None, after.astimezone(UTC) + timedelta(microseconds=1))
    while moment is not None and moment.astimezone(UTC) <= until and len(found) < 10_000:
        key = first_occurrence(moment)
        if key > after and key not in found:
            found.append(key)
        # Step in UTC: local times in a repeated hour compare equal across the two folds.
        moment = trigger.get_next_fire_time(
            moment, moment.astimezone(UTC) + timedelta(microseconds=1)
        )
    return found


def last_fire_time(trigger: BaseTrigger, now: datetime, lookback: timedelta) -> datetime | None:
    """The latest run key ≤ now at which ``trigger`` fires, looking back at most ``lookback``."""
    found = fire_times(trigger, after=now - lookback - timedelta(microseconds=1), until=now)
    return found[-1] if found else None


def last_run_time(db: Database, campaign_id: str) -> datetime | None:
    with db.session() as session:
        return session.scalar(select(func.max(Run.fire_time)).where(Run.campaign_id == campaign_id))


def record_missed(db: Database, campaign_id: str, fire_time: datetime) -> None:
    """Record a run that was not fired (down past its grace): recorded once, never fired later."""
    try:
        with db.session() as session:
            if session.scalar(
                select(Run.id).where(Run.campaign_id == campaign_id, Run.fire_time == fire_time)
            ):
                return
            session.add(
                Run(
                    campaign_id=campaign_id,
                    fire_time=fire_time,
                    trigger="missed",
                    note="missed while pledgebot was down (past grace)",
                )
            )
    except IntegrityError:
        return
