"""One inbound event being handled (a ``Turn``): its session, chat and contact, and how the bot
answers in that chat — through the outbox, with a key derived from the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels import registry
from bot.channels.base import InboundEvent
from bot.core.models import Contact, OutboxMessage, Pledgemaker, Prompt, utcnow
from bot.core.vocab import LANGUAGES
from bot.delivery import outbox
from bot.delivery.alerts import Alerts
from bot.delivery.messages import PlannedMessage
from bot.inbound.prefetch import ChatFacts
from bot.settings.config import ConversationSettings
from bot.text.templates import Templates


class Conversing(Protocol):
    """What every turn of a conversation shares (``bot.inbound.conversation.Conversation``)."""

    templates: Templates
    settings: ConversationSettings
    alerts: Alerts | None
    deletable: frozenset[str]  # channels whose posts /withdraw takes down


class Turn:
    """One event being handled: the helpers share its session, contact and reply keys."""

    def __init__(
        self,
        conv: Conversing,
        session: Session,
        channel: str,
        event_id: int,
        event: InboundEvent,
        contact: Contact | None,
        known: ChatFacts | None = None,
    ) -> None:
        self.conv, self.session, self.channel = conv, session, channel
        self.event_id, self.event, self.contact, self.known = event_id, event, contact, known
        self.now = utcnow()
        self.at = datetime.fromtimestamp(event.date, UTC) if event.date else self.now
        # Its events name the outbox message they answer (``reply_to`` = its id), not the
        # platform's id of it: email, whose signed reply address carries our message's id.
        self.names_outbox_id = registry.spec(channel).replies_name_outbox_id

    def language(self) -> str:
        if self.contact is not None:
            if self.contact.language:
                return self.contact.language
            pledgemaker = self.session.get(Pledgemaker, self.contact.pledgemaker_id)
            if pledgemaker is not None:
                return pledgemaker.language
        code = str(self.event.sender.get("language_code") or "")[:2]
        return code if code in LANGUAGES else "en"

    def say(
        self,
        phrase: str,
        *,
        key: str | None = None,
        language: str | None = None,
        buttons: list[list[dict[str, str]]] | None = None,
        **context: Any,
    ) -> None:
        text = self.conv.templates.phrase(phrase, language or self.language(), **context)
        planned = PlannedMessage(
            idempotency_key=key or f"event:{self.event_id}:{phrase}",
            channel=self.channel,
            recipient=self.event.chat_id,
            text=text,
            pledgemaker_id=self.contact.pledgemaker_id if self.contact else None,
            parse_mode="HTML",
            buttons=buttons,
        )
        outbox.enqueue(self.session, [planned])

    def name(self) -> str:
        if self.contact is None:
            return ""
        pledgemaker = self.session.get(Pledgemaker, self.contact.pledgemaker_id)
        return pledgemaker.name if pledgemaker else ""

    def onboarding(self) -> str:
        # One hint per chat, ever: the idempotency key makes a second one a no-op.
        self.say("onboarding", key=f"onboarding:{self.channel}:{self.event.chat_id}")
        return "unbound chat: onboarding hint"

    def prompt_for(self, message_id: str | None) -> Prompt | None:
        """The prompt a message answers: by the platform's id of our message, or — on a channel
        whose events name our outbox message (email's signed reply address) — by that id."""
        if message_id is None:
            return None
        if self.names_outbox_id:
            if not message_id.isdigit():
                return None
            ours = OutboxMessage.id == int(message_id)
        else:
            ours = OutboxMessage.external_id == message_id
        return self.session.scalar(
            select(Prompt)
            .join(OutboxMessage, Prompt.outbox_id == OutboxMessage.id)
            .where(
                OutboxMessage.channel == self.channel,
                OutboxMessage.recipient == self.event.chat_id,
                ours,
            )
        )

    def answered_message(self) -> OutboxMessage | None:
        sent = select(OutboxMessage).where(
            OutboxMessage.channel == self.channel,
            OutboxMessage.recipient == self.event.chat_id,
            OutboxMessage.state == "sent",
        )
        replied = self.event.reply_to
        if not replied:
            latest = sent.order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
            return self.session.scalar(latest.limit(1))
        if self.names_outbox_id:
            if not replied.isdigit():
                return None
            return self.session.scalar(sent.where(OutboxMessage.id == int(replied)))
        return self.session.scalar(sent.where(OutboxMessage.external_id == replied))

    def latest_open_prompt(self) -> Prompt | None:
        assert self.contact is not None
        if self.known is not None:
            return self.known.open_prompt
        oldest = self.now - timedelta(days=self.conv.settings.prompt_ttl_days)
        return self.session.scalar(
            select(Prompt)
            .join(OutboxMessage, Prompt.outbox_id == OutboxMessage.id)
            .where(
                Prompt.contact_id == self.contact.id,
                Prompt.state == "open",
                OutboxMessage.state == "sent",
                OutboxMessage.sent_at >= oldest,
            )
            .order_by(OutboxMessage.sent_at.desc(), Prompt.id.desc())
            .limit(1)
        )
