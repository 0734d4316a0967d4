"""Per-pledgemaker cadences ("every 30 days after the last reply, at 10:00 their time").

Not one APScheduler job per pledgemaker: one ``cadences`` row per (campaign, pledgemaker) with an
indexed ``next_due_at``, swept by one periodic job. A sweep reads only rows that are due, in
batches of ``BATCH`` per transaction, and in that same transaction enqueues each prompt
(idempotency key: campaign, pledgemaker, slot) and moves ``next_due_at`` to the next local slot.
Its cost follows the number due, not the audience size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import outbox
from bot.campaigns.base import audience_query, choose_contact, contacts_by_pledgemaker
from bot.campaigns.followup import prompt
from bot.db import Database
from bot.localtime import parse_clock, to_utc
from bot.models import Cadence, JourneyUpdate, Pledgemaker, Prompt, Reply
from bot.schedules import FollowupCampaign, parse_duration
from bot.templates import Templates

BATCH = 1000


@dataclass
class SweepResult:
    enqueued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def local_day(instant: datetime, zone: str) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()


def next_slot_after(spec: FollowupCampaign, zone: str, base: date, after: datetime) -> datetime:
    """The first slot ``base + k·every`` (k ≥ 0) at the campaign's hour, local, after ``after``."""
    every = parse_duration(spec.every or "1d")
    at = parse_clock(spec.at)
    day = base
    slot = to_utc(day, at, zone)
    if slot <= after:  # jump close in one step, then walk: no loop over years of slots
        steps = (local_day(after, zone) - base).days // every.days
        day = base + timedelta(days=max(steps, 0) * every.days)
        slot = to_utc(day, at, zone)
        while slot <= after:
            day += every
            slot = to_utc(day, at, zone)
    return slot


def ensure_cadences(session: Session, spec: FollowupCampaign, now: datetime) -> int:
    """Give every pledgemaker in the audience who has none a first slot; returns how many.

    The first slot is ``first_after`` from the pledge date (or ``every`` if not set), then every
    ``every``; a pledge made long ago starts at its next slot from now, not with a backlog.
    """
    known = select(Cadence.pledgemaker_id).where(Cadence.campaign_id == spec.id)
    missing = session.scalars(
        audience_query(spec.audience).where(Pledgemaker.id.not_in(known))
    ).all()
    first_after = parse_duration(spec.first_after or spec.every or "1d")
    for pledgemaker in missing:
        base = pledgemaker.pledge_date + first_after
        session.add(
            Cadence(
                campaign_id=spec.id,
                pledgemaker_id=pledgemaker.id,
                next_due_at=next_slot_after(spec, pledgemaker.timezone, base, now),
            )
        )
    return len(missing)


def sweep(db: Database, templates: Templates, spec: FollowupCampaign, now: datetime) -> SweepResult:
    """Plan every slot of ``spec`` that is due at ``now``; run again, it plans nothing new."""
    result = SweepResult()
    while True:
        with db.session() as session:
            due = list(
                session.scalars(
                    select(Cadence)
                    .where(Cadence.campaign_id == spec.id, Cadence.next_due_at <= now)
                    .order_by(Cadence.next_due_at)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            if due:
                _plan_batch(session, templates, spec, due, now, result)
        if len(due) < BATCH:
            return result


def _plan_batch(
    session: Session,
    templates: Templates,
    spec: FollowupCampaign,
    due: list[Cadence],
    now: datetime,
    result: SweepResult,
) -> None:
    ids = [row.pledgemaker_id for row in due]
    people = {p.id: p for p in session.scalars(select(Pledgemaker).where(Pledgemaker.id.in_(ids)))}
    contacts = contacts_by_pledgemaker(session, ids, spec.channels)
    last_replies = _last_replies(session, spec, ids)
    recently_updated = _recently_updated(session, spec, ids, now)
    planned = []
    for row in due:
        pledgemaker = people[row.pledgemaker_id]
        slot, zone = row.next_due_at, pledgemaker.timezone
        contact, why = choose_contact(contacts.get(pledgemaker.id, []), spec.channels)
        if now - slot > spec.grace_period:
            result.skip("missed (past grace)")
        elif not spec.is_active_on(local_day(slot, zone)):
            result.skip("outside active window")
        elif local_day(slot, zone) in spec.blackout:
            result.skip("blackout date")
        elif pledgemaker.id in recently_updated:
            result.skip("updated recently")
        elif contact is None:
            result.skip(why)
        else:
            planned.append(prompt(spec, pledgemaker, contact, slot, templates))
        row.last_slot_at = slot
        base = local_day(slot, zone)
        if spec.relative_to == "last_reply" and pledgemaker.id in last_replies:
            base = max(base, local_day(last_replies[pledgemaker.id], zone))
        every = parse_duration(spec.every or "1d")
        row.next_due_at = next_slot_after(spec, zone, base + every, max(slot, now))
    result.enqueued += outbox.enqueue(session, planned, campaign_id=spec.id)


def _last_replies(session: Session, spec: FollowupCampaign, ids: list[str]) -> dict[str, datetime]:
    """When each pledgemaker last answered a prompt on this campaign's pillar."""
    if spec.relative_to != "last_reply":
        return {}
    rows = session.execute(
        select(Reply.pledgemaker_id, func.max(Reply.received_at))
        .join(Prompt, Reply.prompt_id == Prompt.id)
        .where(Reply.pledgemaker_id.in_(ids), Prompt.pillar == spec.pillar)
        .group_by(Reply.pledgemaker_id)
    )
    return {pledgemaker_id: at for pledgemaker_id, at in rows if at is not None}


def _recently_updated(
    session: Session, spec: FollowupCampaign, ids: list[str], now: datetime
) -> set[str]:
    if not spec.skip_if_updated_within:
        return set()
    since = now - parse_duration(spec.skip_if_updated_within)
    return set(
        session.scalars(
            select(JourneyUpdate.pledgemaker_id).where(
                JourneyUpdate.pledgemaker_id.in_(ids),
                JourneyUpdate.pillar == spec.pillar,
                JourneyUpdate.created_at >= since,
            )
        )
    )
