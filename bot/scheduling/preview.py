"""`pledgebot schedules preview`: who gets what, when, without sending or writing anything.

It walks the same functions the real planners use — ``runs.plan`` for cron runs; the sweeper's
``first_slot``, ``skip_reason`` and ``following_slot`` for cadences; ``followup.prompt`` for
the text; the send window for quiet hours — so the preview and the real sends cannot disagree.

What it prints is what the recipient reads: a message rendered for Telegram's HTML parse mode
shows ``l'Emploi``, not ``l&#39;Emploi`` (the stored text keeps its escaping), and its length is
the one the channel counts against its limit.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.base import RunContext, audience_query, choose_contact, contacts_by_pledgemaker
from bot.campaigns.followup import FollowupCampaign, prompt
from bot.campaigns.spec import CampaignBase
from bot.channels import registry
from bot.core.models import Cadence
from bot.delivery import outbox
from bot.scheduling import runs, sweeper
from bot.scheduling.schedules import ScheduleSet
from bot.text.templates import Templates


def readable(channel: str, text: str) -> str:
    """The text as its recipient reads it: HTML entities decoded where the templates escaped
    them (every channel whose spec's markup is HTML)."""
    return text if registry.spec(channel).markup == "plain" else html.unescape(text)


def channel_length(channel: str, text: str) -> int:
    """A message's length as its channel counts it (its spec's measure: X weighted, Bluesky
    graphemes, Telegram after its HTML parse mode, …)."""
    return registry.spec(channel).length()(text)


@dataclass(frozen=True)
class PreviewItem:
    campaign_id: str
    pledgemaker_id: str
    due_utc: datetime  # the slot or fire time
    send_utc: datetime  # after quiet hours and blackout dates
    zone: str
    channel: str = ""
    recipient: str = ""
    text: str = ""
    skipped: str = ""  # why nothing is sent for this slot

    @property
    def send_local(self) -> datetime:
        return self.send_utc.astimezone(ZoneInfo(self.zone))

    @property
    def shown(self) -> str:
        """The text as the recipient reads it (``text`` is as stored and sent)."""
        return readable(self.channel, self.text)

    @property
    def length(self) -> int:
        """As the channel counts it against its limit (X weighted, Telegram after parsing…)."""
        return channel_length(self.channel, self.text) if self.text else 0

    def to_record(self) -> dict[str, str | int]:
        return {
            "campaign": self.campaign_id,
            "pledgemaker": self.pledgemaker_id,
            "due_utc": self.due_utc.isoformat(),
            "send_utc": self.send_utc.isoformat(),
            "send_local": self.send_local.isoformat(),
            "time_zone": self.zone,
            "channel": self.channel,
            "recipient": self.recipient,
            "text": self.shown,
            "skipped": self.skipped,
            "length": self.length,
        }


def preview(
    session: Session,
    schedules: ScheduleSet,
    templates: Templates,
    *,
    now: datetime,
    days: int,
    campaign_id: str | None = None,
    destinations: Mapping[str, str] | None = None,
) -> list[PreviewItem]:
    end = now + timedelta(days=days)
    specs = (
        [schedules.get(campaign_id).spec]
        if campaign_id
        else [loaded.spec for loaded in schedules.campaigns.values() if loaded.spec.enabled]
    )
    items: list[PreviewItem] = []
    for spec in specs:
        # A follow-up shows each prompt at its recipient's own hour (a cadence, or after quiet
        # hours); any other kind, slot by slot as its planner fills them.
        if not isinstance(spec, FollowupCampaign):
            items.extend(_posts(session, spec, templates, now, end, destinations or {}))
        elif spec.every:
            items.extend(_cadence(session, spec, templates, now, end))
        elif spec.trigger() is not None:
            items.extend(_runs(session, spec, templates, now, end))
    return sorted(items, key=lambda item: (item.send_utc, item.campaign_id, item.pledgemaker_id))


def _runs(
    session: Session, spec: FollowupCampaign, templates: Templates, now: datetime, end: datetime
) -> list[PreviewItem]:
    trigger = spec.trigger()
    assert trigger is not None
    items: list[PreviewItem] = []
    for fire in runs.fire_times(trigger, after=now, until=end):  # the scheduler's own instants
        plan = runs.plan(spec, RunContext(spec.id, fire), session, templates)
        if plan.skipped:  # who is left out of this run, and why ("no contact 38")
            why = ", ".join(f"{reason} {n}" for reason, n in sorted(plan.skipped.items()))
            items.append(PreviewItem(spec.id, "", fire, fire, spec.timezone, skipped=why))
        for message in plan.messages:
            window = message.window
            assert window is not None  # cron runs always carry the recipient's window
            items.append(
                PreviewItem(
                    spec.id,
                    message.pledgemaker_id or "",
                    fire,
                    window.next_allowed(fire),
                    window.zone,
                    message.channel,
                    message.recipient,
                    message.text,
                )
            )
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return items


def _posts(
    session: Session,
    spec: CampaignBase,
    templates: Templates,
    now: datetime,
    end: datetime,
    destinations: Mapping[str, str],
) -> list[PreviewItem]:
    """Posting slots, as they would really be filled: each slot is planned and enqueued inside a
    savepoint (so rotation sees the slots before it), then everything is rolled back."""
    trigger = spec.trigger()
    if trigger is None:
        return []
    items: list[PreviewItem] = []
    savepoint = session.begin_nested()
    try:
        for fire in runs.fire_times(trigger, after=now, until=end):
            plan = runs.plan(
                spec, RunContext(spec.id, fire, destinations=destinations), session, templates
            )
            outbox.enqueue(session, plan.messages, campaign_id=spec.id)
            for message in plan.messages:
                items.append(
                    PreviewItem(
                        spec.id,
                        message.pledgemaker_id or "",
                        fire,
                        fire,
                        spec.timezone,
                        message.channel,
                        message.recipient,
                        message.text,
                    )
                )
            if not plan.messages:
                reason = ", ".join(plan.skipped) or "nothing to post"
                items.append(PreviewItem(spec.id, "", fire, fire, spec.timezone, skipped=reason))
    finally:
        savepoint.rollback()
    return items


def _cadence(
    session: Session, spec: FollowupCampaign, templates: Templates, now: datetime, end: datetime
) -> list[PreviewItem]:
    people = list(session.scalars(audience_query(spec.audience)))
    ids = [p.id for p in people]
    slots = dict(
        session.execute(
            select(Cadence.pledgemaker_id, Cadence.next_due_at).where(
                Cadence.campaign_id == spec.id
            )
        )
        .tuples()
        .all()
    )
    contacts = contacts_by_pledgemaker(session, ids, spec.channels)
    replies = sweeper.last_replies_on_pillar(session, spec, ids)
    updates = sweeper.latest_updates(session, spec, ids)
    items: list[PreviewItem] = []
    for pledgemaker in people:
        zone = pledgemaker.timezone
        slot = slots.get(pledgemaker.id) or sweeper.first_slot(spec, pledgemaker, now)
        slot = sweeper.moved_by_reply(spec, zone, slot, replies.get(pledgemaker.id))
        contact, why = choose_contact(contacts.get(pledgemaker.id, []), spec.channels)
        while slot <= end:
            reason = sweeper.skip_reason(
                spec, pledgemaker, slot, max(slot, now), updates.get(pledgemaker.id)
            )
            if reason is None and contact is not None:
                message = prompt(spec, pledgemaker, contact, slot, templates)
                assert message.window is not None
                items.append(
                    PreviewItem(
                        spec.id,
                        pledgemaker.id,
                        slot,
                        message.window.next_allowed(slot),
                        zone,
                        message.channel,
                        message.recipient,
                        message.text,
                    )
                )
            else:
                items.append(
                    PreviewItem(spec.id, pledgemaker.id, slot, slot, zone, skipped=reason or why)
                )
            slot = sweeper.following_slot(spec, zone, slot, slot, replies.get(pledgemaker.id))
    return items
