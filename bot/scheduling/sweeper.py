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

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from bot.campaigns.base import audience_query, choose_contact, contacts_by_pledgemaker
from bot.campaigns.followup import FollowupCampaign, prompt
from bot.campaigns.spec import parse_duration
from bot.core.db import Database, rows_changed
from bot.core.localtime import parse_clock, to_utc
from bot.core.models import Cadence, JourneyUpdate, Pledgemaker, Prompt, Reply
from bot.delivery import outbox
from bot.text.templates import Templates

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
    rows = [
        {"campaign_id": spec.id, "pledgemaker_id": p.id, "next_due_at": first_slot(spec, p, now)}
        for p in missing
    ]
    for start in range(0, len(rows), BATCH):
        session.execute(insert(Cadence), rows[start : start + BATCH])
    return len(rows)


def forget_cadences(db: Database, campaign_id: str) -> int:
    """Drop a campaign's slots (its timing changed, or it is gone); the next sweep recomputes."""
    with db.session() as session:
        result = session.execute(delete(Cadence).where(Cadence.campaign_id == campaign_id))
        return rows_changed(result)


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
    members = audience_query(spec.audience).where(Pledgemaker.id.in_(ids))
    people = {p.id: p for p in session.scalars(members)}
    contacts = contacts_by_pledgemaker(session, ids, spec.channels)
    last_replies = last_replies_on_pillar(session, spec, ids)
    last_updates = latest_updates(session, spec, ids)
    planned = []
    for row in due:
        pledgemaker = people.get(row.pledgemaker_id)
        if pledgemaker is None:  # no longer in the audience (e.g. re-imported in another sector)
            session.delete(row)
            result.skip("left the audience")
            continue
        slot = moved_by_reply(
            spec, pledgemaker.timezone, row.next_due_at, last_replies.get(pledgemaker.id)
        )
        if slot > now:  # they answered after this slot was set: it is now `every` after that
            row.next_due_at = slot
            continue
        contact, why = choose_contact(contacts.get(pledgemaker.id, []), spec.channels)
        reason = skip_reason(spec, pledgemaker, slot, now, last_updates.get(pledgemaker.id))
        if reason is None and contact is not None:
            planned.append(prompt(spec, pledgemaker, contact, slot, templates))
        else:
            result.skip(reason or why)
        row.last_slot_at = slot
        row.next_due_at = following_slot(
            spec, pledgemaker.timezone, slot, now, last_replies.get(pledgemaker.id)
        )
    result.enqueued += outbox.enqueue(session, planned, campaign_id=spec.id)


def skip_reason(
    spec: FollowupCampaign,
    pledgemaker: Pledgemaker,
    slot: datetime,
    now: datetime,
    last_update: datetime | None,
) -> str | None:
    """Why this slot sends nothing, or None. Shared by the sweep and the preview."""
    day = local_day(slot, pledgemaker.timezone)
    if now - slot > spec.grace_period:
        return "missed (past grace)"
    if not spec.is_active_on(day):
        return "outside active window"
    if spec.is_blackout(day):
        return "blackout date"
    within = spec.skip_if_updated_within
    if within and last_update is not None and slot - last_update <= parse_duration(within):
        return "updated recently"
    return None


def following_slot(
    spec: FollowupCampaign, zone: str, slot: datetime, now: datetime, last_reply: datetime | None
) -> datetime:
    """The slot after ``slot``: ``every`` days on from it, or from the last reply if later."""
    base = local_day(slot, zone)
    if spec.relative_to == "last_reply" and last_reply is not None:
        base = max(base, local_day(last_reply, zone))
    every = parse_duration(spec.every or "1d")
    return next_slot_after(spec, zone, base + every, max(slot, now))


def moved_by_reply(
    spec: FollowupCampaign, zone: str, slot: datetime, last_reply: datetime | None
) -> datetime:
    """A ``last_reply`` cadence's slot, moved to ``every`` after their last answer if that is
    later. A slot is set when the prompt before it is planned, before they answer; the sweep
    (and the preview) move it when it comes due, so an answer costs no write of its own."""
    if spec.relative_to != "last_reply" or last_reply is None:
        return slot
    every = parse_duration(spec.every or "1d")
    after_reply = next_slot_after(spec, zone, local_day(last_reply, zone) + every, last_reply)
    return max(slot, after_reply)


def first_slot(spec: FollowupCampaign, pledgemaker: Pledgemaker, now: datetime) -> datetime:
    """A new audience member's first slot: ``first_after`` from the pledge, or the next one."""
    first_after = parse_duration(spec.first_after or spec.every or "1d")
    base = pledgemaker.pledge_date + first_after
    return next_slot_after(spec, pledgemaker.timezone, base, now)


def last_replies_on_pillar(
    session: Session, spec: FollowupCampaign, ids: list[str]
) -> dict[str, datetime]:
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


def latest_updates(session: Session, spec: FollowupCampaign, ids: list[str]) -> dict[str, datetime]:
    """When each pledgemaker last shared a journey update on this pillar (for skip_if_updated)."""
    if not spec.skip_if_updated_within:
        return {}
    rows = session.execute(
        select(JourneyUpdate.pledgemaker_id, func.max(JourneyUpdate.created_at))
        .where(JourneyUpdate.pledgemaker_id.in_(ids), JourneyUpdate.pillar == spec.pillar)
        .group_by(JourneyUpdate.pledgemaker_id)
    )
    return {pledgemaker_id: at for pledgemaker_id, at in rows if at is not None}
