"""The ``followup`` kind: a prompt on one pillar (Act / Inspire / Scale up) to each pledgemaker.

Idempotency key: (campaign, pledgemaker, due slot), so planning the same slot twice never
enqueues twice. Stopped and gone contacts are skipped here and again at send time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.campaigns.base import Plan, RunContext, reachable
from bot.campaigns.schedule_models import FollowupCampaign
from bot.channels.registry import has_buttons
from bot.core.models import Contact, Pledgemaker
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

BUTTON_KINDS = ("progress", "challenge", "solution", "snooze")
BUTTON_PREFIX = "pb:"


def prompt_context(
    spec: FollowupCampaign, pledgemaker: Any, *, buttons: bool = True
) -> dict[str, Any]:
    """Everything a follow-up template may use. ``buttons``: the channel shows real buttons
    (false on email and Matrix, where the options are listed as numbers to answer with)."""
    return {
        "pledgemaker": pledgemaker,
        "pillar": spec.pillar,
        "campaign_id": spec.id,
        "buttons": buttons,
    }


def prompt_buttons(templates: Templates, language: str) -> list[list[dict[str, str]]]:
    def button(kind: str) -> dict[str, str]:
        return {"text": templates.phrase(f"button_{kind}", language), "data": BUTTON_PREFIX + kind}

    return [[button("progress"), button("challenge")], [button("solution"), button("snooze")]]


def prompt(
    spec: FollowupCampaign,
    pledgemaker: Pledgemaker,
    contact: Contact,
    slot: datetime,
    templates: Templates,
    *,
    manual: bool = False,
) -> PlannedMessage:
    """The prompt for one pledgemaker's slot. Key: (campaign, pledgemaker, due slot)."""
    language = contact.language or pledgemaker.language
    return PlannedMessage(
        idempotency_key=f"followup:{spec.id}:{pledgemaker.id}:{slot:%Y-%m-%dT%H:%M:%S.%fZ}",
        channel=contact.channel,
        recipient=contact.address,
        text=templates.render(
            spec.template_name(),
            language,
            **prompt_context(spec, pledgemaker, buttons=has_buttons(contact.channel)),
        ),
        pledgemaker_id=pledgemaker.id,
        contact_id=contact.id,
        parse_mode="HTML",
        buttons=prompt_buttons(templates, language),
        pillar=spec.pillar,
        window=None if manual else spec.send_window(pledgemaker.timezone),
    )


def plan(spec: FollowupCampaign, run: RunContext, session: Session, templates: Templates) -> Plan:
    """One run (cron or manual): a prompt to everyone in the audience, or to ``run.only``."""
    found, skipped = reachable(spec, run, session)
    messages = [
        prompt(spec, pledgemaker, contact, run.fire_time, templates, manual=run.manual)
        for pledgemaker, contact in found
    ]
    return Plan(messages, skipped)
