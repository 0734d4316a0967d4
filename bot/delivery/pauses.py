"""Pauses: a campaign (by id), every campaign (``*``) or a channel (``channel:<name>``,
``outbox.CHANNEL_PAUSE``) held by staff or by the dispatcher when a platform refuses its
credentials. Scheduled runs, sends and channels all read the same table."""

from __future__ import annotations

from sqlalchemy import select

from bot.core.db import Database
from bot.core.models import CampaignControl, utcnow


def is_paused(db: Database, campaign_id: str) -> bool:
    with db.session() as session:
        return bool(
            session.scalar(
                select(CampaignControl.campaign_id).where(
                    CampaignControl.campaign_id.in_((campaign_id, "*")), CampaignControl.paused
                )
            )
        )


def set_paused(db: Database, campaign_id: str, paused: bool) -> None:
    with db.session() as session:
        control = session.get(CampaignControl, campaign_id) or CampaignControl(
            campaign_id=campaign_id
        )
        control.paused, control.changed_at = paused, utcnow()
        session.add(control)
