"""The ``followup`` kind: a prompt on one pillar (Act / Inspire / Scale up) to each pledgemaker.

Idempotency key: (campaign, pledgemaker, due slot), so planning the same slot twice never
enqueues twice. Stopped and gone contacts are skipped here and again at send time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.campaigns.base import (
    Plan,
    PlannedMessage,
    RunContext,
    audience_query,
    choose_contact,
    contacts_by_pledgemaker,
)
from bot.errors import UserInputError
from bot.models import Pledgemaker
from bot.schedules import FollowupCampaign
from bot.templates import Templates

BUTTON_KINDS = ("progress", "challenge", "solution", "snooze")
BUTTON_PREFIX = "pb:"


def prompt_context(spec: FollowupCampaign, pledgemaker: Any) -> dict[str, Any]:
    """Everything a follow-up template may use."""
    return {"pledgemaker": pledgemaker, "pillar": spec.pillar, "campaign_id": spec.id}


def prompt_buttons(templates: Templates, language: str) -> list[list[dict[str, str]]]:
    def button(kind: str) -> dict[str, str]:
        return {"text": templates.phrase(f"button_{kind}", language), "data": BUTTON_PREFIX + kind}

    return [[button("progress"), button("challenge")], [button("solution"), button("snooze")]]


def plan(spec: FollowupCampaign, run: RunContext, session: Session, templates: Templates) -> Plan:
    if run.only is not None:
        pledgemaker = session.get(Pledgemaker, run.only)
        if pledgemaker is None:
            raise UserInputError(f"no pledgemaker with id {run.only!r}")
        pledgemakers = [pledgemaker]
    else:
        pledgemakers = list(session.scalars(audience_query(spec.audience)))
    contacts = contacts_by_pledgemaker(session, [p.id for p in pledgemakers], spec.channels)
    slot = run.fire_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    messages: list[PlannedMessage] = []
    skipped: dict[str, int] = {}
    for pledgemaker in pledgemakers:
        contact, why = choose_contact(contacts.get(pledgemaker.id, []), spec.channels)
        if contact is None:
            if run.only is not None:
                raise UserInputError(
                    f"pledgemaker {pledgemaker.id!r} cannot be reached on "
                    f"{', '.join(spec.channels)}: {why}"
                )
            skipped[why] = skipped.get(why, 0) + 1
            continue
        language = contact.language or pledgemaker.language
        messages.append(
            PlannedMessage(
                idempotency_key=f"followup:{spec.id}:{pledgemaker.id}:{slot}",
                channel=contact.channel,
                recipient=contact.address,
                text=templates.render(
                    spec.template_name(), language, **prompt_context(spec, pledgemaker)
                ),
                pledgemaker_id=pledgemaker.id,
                contact_id=contact.id,
                parse_mode="HTML",
                buttons=prompt_buttons(templates, language),
                pillar=spec.pillar,
            )
        )
    return Plan(messages, skipped)
