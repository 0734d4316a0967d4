"""The ``followup`` kind: a prompt on one pillar (Act / Inspire / Scale up) to each pledgemaker.

Its ``[[campaign]]`` model (with ``reminders``), the prompt and its planning. A follow-up fires as
a whole (cron, interval, once, by hand) or on a cadence per pledgemaker (``every`` +
``relative_to``: ``bot.scheduling.sweeper``); its reminders are ``bot.campaigns.reminders``.

Idempotency key: (campaign, pledgemaker, due slot), so planning the same slot twice never
enqueues twice. Stopped and gone contacts are skipped here and again at send time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
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
from bot.campaigns.spec import CampaignBase, Strict, parse_duration
from bot.channels.registry import has_buttons
from bot.core.models import Contact, Pledgemaker
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

BUTTON_KINDS = ("progress", "challenge", "solution", "snooze")
BUTTON_PREFIX = "pb:"


class Reminders(Strict):
    """``reminders = { … }``: how a prompt left unanswered is followed up."""

    after: str = "3d"  # no answer this long after the prompt (or the last reminder): remind
    times: int = Field(default=1, ge=1, le=5)
    template: str = "followup/reminder"

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        parse_duration(value)
        return value


class FollowupCampaign(CampaignBase):
    """Pillar-based prompts to the campaign's audience."""

    cadence_refused: ClassVar[str | None] = None  # every + relative_to: the sweeper's
    kind: Literal["followup"]
    pillar: Literal["act", "inspire", "scale_up"]
    template: str = ""
    # The base's None, widened: only a follow-up reminds (pydantic validates the override).
    reminders: Reminders | None = None  # type: ignore[assignment]

    def template_name(self) -> str:
        return self.template or f"followup/{self.pillar}"


@dataclass(frozen=True)
class Reminder:
    """Which reminder this is, for its template: ``{{ reminder.number }}`` of
    ``{{ reminder.times }}``; ``{{ reminder.last }}`` when no other will follow."""

    number: int
    times: int

    @property
    def last(self) -> bool:
        return self.number >= self.times


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


def reminder_context(
    spec: FollowupCampaign, pledgemaker: Any, number: int, *, buttons: bool = True
) -> dict[str, Any]:
    """Everything a reminder template may use: the prompt's context and ``reminder``."""
    assert spec.reminders is not None
    context = prompt_context(spec, pledgemaker, buttons=buttons)
    context["reminder"] = Reminder(number, spec.reminders.times)
    return context


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


def samples(spec: FollowupCampaign, where: Mapping[str, int]) -> list[TemplateCheck]:
    """The prompt, and the first and last reminder (their templates say something different)."""
    context = prompt_context(spec, SAMPLE_PLEDGEMAKER)
    checks = [TemplateCheck(spec.template_name(), line_of(where, "template"), context)]
    if spec.reminders is not None:
        line = line_of(where, "reminders")
        for number in sorted({1, spec.reminders.times}):
            sample = reminder_context(spec, SAMPLE_PLEDGEMAKER, number)
            checks.append(TemplateCheck(spec.reminders.template, line, sample))
    return checks


KIND = Kind(FollowupCampaign, plan, samples, messages_audience=True)
