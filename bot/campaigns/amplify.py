"""The ``amplify`` kind: each posting slot publishes one approved, consented journey update.

Fair rotation: every pledgemaker with something to show is featured before anyone is featured
twice; no organisation more than ``max_per_org_per_month`` times a calendar month; among equals,
the pillar and region least seen in recent posts, then the oldest waiting update. A post too
long for X becomes a numbered thread (each part replies to the one before, through the outbox).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns import posts
from bot.campaigns.base import (
    SAMPLE_PLEDGEMAKER,
    SAMPLE_UPDATE,
    Kind,
    Plan,
    RunContext,
    TemplateCheck,
    audience_query,
    line_of,
)
from bot.campaigns.spec import CampaignBase
from bot.channels.base import Media
from bot.community.consent import credit_line, published_text
from bot.core.models import JourneyUpdate, OutboxMessage, Pledgemaker, Post
from bot.core.vocab import PILLAR_NAMES
from bot.text.templates import Templates

RECENT = 10  # posts looked at for pillar and region balance


class AmplifyCampaign(CampaignBase):
    """Approved, consented journey updates posted to X and a Telegram channel: one update per
    posting slot, in fair rotation."""

    cadence_refused: ClassVar[str | None] = (
        "an amplify campaign posts in slots: use cron, interval or once"
    )
    kind: Literal["amplify"]
    template: str = "amplify"  # templates/amplify/<channel>.<language>.j2
    hashtags: list[str] = Field(default_factory=list)
    max_per_org_per_month: int = Field(default=2, ge=1)

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"#\w+", value):
                raise ValueError(f"{value!r} is not a hashtag like '#EndChildLabour2021'")
        return values


def post_context(
    spec: AmplifyCampaign, update: JourneyUpdate, pledgemaker: Any, language: str = "en"
) -> dict[str, Any]:
    """Everything an amplify template may use; ``pillar`` is named in the post's language."""
    return {
        "update": update,
        "text": published_text(update),
        "pledgemaker": pledgemaker,
        "credit": credit_line(pledgemaker),
        "pillar": PILLAR_NAMES.get(language, PILLAR_NAMES["en"]).get(update.pillar, update.pillar),
        "hashtags": " ".join(spec.hashtags),
    }


def live_posts(campaign_id: str) -> Any:
    """Posts of the campaign that went out or still may (not failed, not cancelled)."""
    first = select(OutboxMessage.id).where(OutboxMessage.state.not_in(("failed", "cancelled")))
    return select(Post).where(Post.campaign_id == campaign_id, Post.first_outbox_id.in_(first))


def choose(
    session: Session, spec: AmplifyCampaign, at: datetime
) -> tuple[JourneyUpdate, Pledgemaker] | None:
    """The update this slot features, by the rotation rules; None when nobody is eligible.

    The rules read narrow rows (ids, pillar, region, times), not ORM objects: a campaign has
    thousands of approved updates and posts, and the calendar plans every slot of a week."""
    post = live_posts(spec.id).subquery()
    published = session.execute(
        select(
            post.c.id,
            post.c.journey_update_id,
            post.c.pledgemaker_id,
            post.c.created_at,
            post.c.pillar,
            post.c.region,
        ).order_by(post.c.id)
    ).all()
    featured: Counter[str] = Counter()
    this_month: Counter[str] = Counter()
    seen: set[int] = set()
    month = (at.astimezone(UTC).year, at.astimezone(UTC).month)
    for _, update_id, pledgemaker_id, created_at, _, _ in published:
        if update_id in seen:
            continue  # one update posted on two channels is one feature
        seen.add(update_id or -1)
        featured[pledgemaker_id or ""] += 1
        made = created_at.astimezone(UTC)
        if (made.year, made.month) == month:
            this_month[pledgemaker_id or ""] += 1
    recent = published[-RECENT:]
    pillars = Counter(row.pillar for row in recent)
    regions = Counter(row.region for row in recent)
    members = audience_query(spec.audience).with_only_columns(Pledgemaker.id)
    candidates = session.execute(
        select(
            JourneyUpdate.id,
            JourneyUpdate.pillar,
            JourneyUpdate.created_at,
            Pledgemaker.id.label("pledgemaker_id"),
            Pledgemaker.region,
        )
        .join(Pledgemaker, JourneyUpdate.pledgemaker_id == Pledgemaker.id)
        .where(
            JourneyUpdate.moderation == "approved",
            JourneyUpdate.consent_to_publish.is_(True),
            JourneyUpdate.pledgemaker_id.in_(members),
            JourneyUpdate.id.not_in(seen or {-1}),
        )
    ).all()
    eligible = [
        row for row in candidates if this_month[row.pledgemaker_id] < spec.max_per_org_per_month
    ]
    if not eligible:
        return None
    best = min(
        eligible,
        key=lambda row: (
            featured[row.pledgemaker_id],
            pillars[row.pillar],
            regions[row.region],
            row.created_at,
            row.id,
        ),
    )
    update = session.get(JourneyUpdate, best.id)
    pledgemaker = session.get(Pledgemaker, best.pledgemaker_id)
    assert update is not None and pledgemaker is not None
    return update, pledgemaker


def plan(spec: AmplifyCampaign, run: RunContext, session: Session, templates: Templates) -> Plan:
    chosen = choose(session, spec, run.fire_time)
    if chosen is None:
        return Plan([], {"no approved, consented update waiting": 1})
    update, pledgemaker = chosen
    context = post_context(spec, update, pledgemaker, pledgemaker.language)
    media = tuple(Media.from_json(m) for m in update.media or [] if m.get("path"))
    return posts.plan_post(
        kind="amplify",
        campaign_id=spec.id,
        channels=spec.channels,
        template=spec.template,
        language=pledgemaker.language,
        context=context,
        run=run,
        templates=templates,
        media=media,
        pledgemaker_id=pledgemaker.id,
        # created_at: the slot the post fills (monthly caps count by the slot's month).
        post={
            "journey_update_id": update.id,
            "pillar": update.pillar,
            "region": pledgemaker.region,
            "created_at": run.fire_time,
        },
    )


def samples(spec: AmplifyCampaign, where: Mapping[str, int]) -> list[TemplateCheck]:
    """Each channel's post template, with a sample update."""
    # The samples stand in for the ORM rows: the same attributes, no database.
    context = post_context(spec, SAMPLE_UPDATE, SAMPLE_PLEDGEMAKER)  # type: ignore[arg-type]
    line = line_of(where, "template", "channels")
    return [TemplateCheck(f"{spec.template}/{channel}", line, context) for channel in spec.channels]


KIND = Kind(AmplifyCampaign, plan, samples)
