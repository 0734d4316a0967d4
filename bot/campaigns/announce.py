"""Announcements (kind ``announce``): one message to an audience, in each pledgemaker's language,
on their chat channel, at their own local hour — "the Innovation Challenge is open" to everyone,
a ratification reminder to the pledgemakers of two countries.

The same guarantees as a follow-up prompt: the same audience filters (plus ``pillar``: those who
shared an update on it), the first active contact in the campaign's channel order, opt-outs
(a stopped contact is skipped, and a message queued before someone stops is never sent),
quiet hours and blackout dates re-checked at send time, rate limits, and the preview
(``schedules preview`` plans it through this code). But nothing waits for a reply: no prompt
is opened, so a reply is stored like any message and no reminder follows.

Each message waits for the recipient's next ``at`` (default 10:00) in their time zone, counted
from the firing: a firing at 08:00 UTC reaches Accra at 10:00 the same day and Manila at 10:00
the next. A manual ``campaign fire`` sends at once, like a manual follow-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.base import (
    SAMPLE_PLEDGEMAKER,
    Kind,
    Plan,
    RunContext,
    TemplateCheck,
    line_of,
    reachable,
)
from bot.campaigns.spec import CampaignBase
from bot.core.localtime import parse_clock, to_utc
from bot.core.models import Contact, JourneyUpdate, Pledgemaker
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates


class AnnounceCampaign(CampaignBase):
    """One message to an audience, in their language, at their local ``at``, awaiting no
    answer."""

    cadence_refused: ClassVar[str | None] = (
        "an announcement goes out when the campaign fires: use once, cron or interval "
        "(or fire it by hand)"
    )
    kind: Literal["announce"]
    template: str  # templates/<template>.<language>.j2, e.g. "announce/innovation-challenge"
    pillar: list[Literal["act", "inspire", "scale_up"]] = Field(default_factory=list)


def plan(spec: AnnounceCampaign, run: RunContext, session: Session, templates: Templates) -> Plan:
    found, skipped = reachable(spec, run, session)
    if spec.pillar and run.only is None:
        shared = set(
            session.scalars(
                select(JourneyUpdate.pledgemaker_id)
                .where(JourneyUpdate.pillar.in_(spec.pillar))
                .distinct()
            )
        )
        kept = [(p, c) for p, c in found if p.id in shared]
        if len(kept) < len(found):
            skipped["no update on the pillar"] = len(found) - len(kept)
        found = kept
    slot = f"{run.fire_time:%Y-%m-%dT%H:%M:%S.%fZ}"
    messages = [
        message(spec, pledgemaker, contact, run, templates, slot) for pledgemaker, contact in found
    ]
    return Plan(messages, skipped)


def message(
    spec: AnnounceCampaign,
    pledgemaker: Pledgemaker,
    contact: Contact,
    run: RunContext,
    templates: Templates,
    slot: str,
) -> PlannedMessage:
    language = contact.language or pledgemaker.language
    return PlannedMessage(
        idempotency_key=f"announce:{spec.id}:{pledgemaker.id}:{slot}",
        channel=contact.channel,
        recipient=contact.address,
        text=templates.render(
            spec.template, language, pledgemaker=pledgemaker, campaign_id=spec.id
        ),
        pledgemaker_id=pledgemaker.id,
        contact_id=contact.id,  # opt-outs apply up to the moment of sending
        parse_mode="HTML",
        window=None if run.manual else spec.send_window(pledgemaker.timezone),
        not_before=None if run.manual else local_hour(run.fire_time, spec.at, pledgemaker.timezone),
    )


def local_hour(fired: datetime, at: str, zone: str) -> datetime:
    """The first ``at`` in ``zone`` at or after the firing (UTC)."""
    clock = parse_clock(at)
    # The local date is the UTC date or a neighbour of it: try them in order.
    for offset in (-1, 0, 1, 2):
        moment = to_utc(fired.date() + timedelta(days=offset), clock, zone)
        if moment >= fired:
            return moment
    raise AssertionError("unreachable: a day later is always after the firing")


def samples(spec: AnnounceCampaign, where: Mapping[str, int]) -> list[TemplateCheck]:
    """Its template, for a sample pledgemaker."""
    sample = {"pledgemaker": SAMPLE_PLEDGEMAKER, "campaign_id": spec.id}
    return [TemplateCheck(spec.template, line_of(where, "template"), sample)]


KIND = Kind(AnnounceCampaign, plan, samples, messages_audience=True)
