"""Reminders: a prompt left unanswered ``after`` a while is followed up, at most ``times`` times.

Swept with the cadences. Only open prompts still within their answer window are looked at, so
the cost follows the open prompts, not the audience. An answer (or "Not now") closes the prompt:
no further reminders are planned, and those queued but not yet sent are cancelled.

Reminders escalate: the template gets ``reminder`` (``number``, ``times``, ``last``: see
``followup.reminder_context``, which ``schedules check`` renders too), so the first is gentle,
a later one says it is the second (third…), and the last one says that after it the bot waits
for the next check-in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.campaigns.followup import FollowupCampaign, reminder_context
from bot.campaigns.spec import parse_duration
from bot.channels.registry import has_buttons
from bot.core.db import Database, rows_changed
from bot.core.models import Contact, OutboxMessage, Pledgemaker, Prompt
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates


def remind(
    db: Database, templates: Templates, spec: FollowupCampaign, now: datetime, ttl: timedelta
) -> int:
    """Plan the reminders of ``spec`` that are due at ``now``; returns how many were queued."""
    if spec.reminders is None:
        return 0
    every = parse_duration(spec.reminders.after)
    with db.session() as session:
        rows = session.execute(
            select(Prompt, OutboxMessage.sent_at, Pledgemaker, Contact)
            .join(OutboxMessage, Prompt.outbox_id == OutboxMessage.id)
            .join(Pledgemaker, Prompt.pledgemaker_id == Pledgemaker.id)
            .join(Contact, Prompt.contact_id == Contact.id)
            .where(
                Prompt.campaign_id == spec.id,
                Prompt.state == "open",
                Prompt.reminders_sent < spec.reminders.times,
                OutboxMessage.state == "sent",
                OutboxMessage.sent_at >= now - ttl,
                Contact.status == "active",
            )
        )
        planned = []
        for prompt, sent_at, pledgemaker, contact in rows:
            number = prompt.reminders_sent + 1
            if sent_at + every * number > now:
                continue
            language = contact.language or pledgemaker.language
            context = reminder_context(
                spec, pledgemaker, number, buttons=has_buttons(contact.channel)
            )
            text = templates.render(spec.reminders.template, language, **context)
            planned.append(
                PlannedMessage(
                    idempotency_key=f"{reminder_prefix(prompt.id)}{number}",
                    channel=contact.channel,
                    recipient=contact.address,
                    text=text,
                    pledgemaker_id=pledgemaker.id,
                    contact_id=contact.id,
                    parse_mode="HTML",
                    window=spec.send_window(pledgemaker.timezone),
                )
            )
            prompt.reminders_sent = number
        return outbox.enqueue(session, planned, campaign_id=spec.id)


def reminder_prefix(prompt_id: int) -> str:
    return f"reminder:{prompt_id}:"


def cancel_reminders(session: Session, prompt: Prompt) -> int:
    """The prompt is answered or snoozed: reminders not yet sent will not be. Their keys are
    known (one per reminder planned), so this is an index lookup, whatever the outbox's size."""
    if not prompt.reminders_sent:
        return 0
    keys = [f"{reminder_prefix(prompt.id)}{n}" for n in range(1, prompt.reminders_sent + 1)]
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.idempotency_key.in_(keys),
            OutboxMessage.state.in_(("pending", "retry_wait")),
        )
        .values(state="cancelled", last_error="prompt answered")
    )
    return rows_changed(result)
