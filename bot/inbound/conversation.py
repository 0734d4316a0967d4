"""What an inbound event means: commands (``commands``), button presses (``buttons``), answers to
prompts and edits (``answers``), each handled as one ``Turn`` (``turn``).

Called by the inbox processor inside one transaction per event. Everything the bot says back
goes through the outbox with a key derived from the event, so finishing an interrupted event
after a crash never answers twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import InboundEvent
from bot.community import invitations
from bot.core import choices
from bot.core.models import Contact
from bot.delivery.alerts import Alerts
from bot.inbound import answers, buttons, commands
from bot.inbound.prefetch import ChunkFacts
from bot.inbound.turn import Turn
from bot.settings.config import ConversationSettings
from bot.text.templates import Templates

COMMAND = re.compile(r"^/([A-Za-z_]+)(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?$", re.S)


def parse_command(text: str) -> tuple[str, str] | None:
    match = COMMAND.match(text.strip())
    return (match.group(1).lower(), (match.group(2) or "").strip()) if match else None


@dataclass
class Conversation:
    templates: Templates
    settings: ConversationSettings
    alerts: Alerts | None = None
    deletable: frozenset[str] = frozenset()  # channels whose posts /withdraw takes down

    # -- entry point -----------------------------------------------------------------------------
    def handle(
        self,
        session: Session,
        channel: str,
        event_id: int,
        event: InboundEvent,
        media: list[dict[str, Any]],
        facts: ChunkFacts | None = None,
    ) -> str:
        """What the event means, done; returns the outcome recorded on the event. ``facts``:
        what the inbox processor read for the whole chunk (used if this is the chat's first
        event in it)."""
        if event.chat_type != "private":
            return "ignored: not a private chat"
        known = facts.take(channel, event.chat_id) if facts is not None else None
        if known is not None:
            contact = known.contact
        else:
            contact = session.scalar(
                select(Contact).where(Contact.channel == channel, Contact.address == event.chat_id)
            )
        if event.kind == "bounce":  # a mail server could not deliver to them
            if not event.raw.get("permanent"):
                return "bounce: temporary, ignored"
            if invitations.address_gone(session, channel, event.chat_id):
                return "bounce: invitation undeliverable, address marked gone"
            return "bounce: contact gone"
        turn = Turn(self, session, channel, event_id, event, contact, known)
        if event.kind == "button":
            return buttons.button(turn)
        if event.kind == "edit":
            return answers.edit(turn)
        # What a channel without commands found in the message: an email's "unsubscribe", the
        # invitation code in its subject.
        if event.raw.get("opt_out"):
            return commands.command(turn, "stop", "")
        invite = event.raw.get("invite")
        if isinstance(invite, dict):
            return commands.command(turn, "start", str(invite.get("token") or "") or "refused")
        if contact is None and event.kind in ("message", "join"):
            token = commands.invitation(turn)
            if token is not None:  # an answer to the invitation the bot sent them
                return commands.start(turn, token)
        if event.kind == "join":
            return "ignored: join of a bound chat" if contact else "ignored: join, not invited"
        command = parse_command(event.text) if not event.media else None
        if command is not None:
            return commands.command(turn, *command)
        if contact is not None and not event.media and choices.worth_looking(event.text):
            picked = buttons.choice(turn)
            if picked is not None:
                return picked
        return answers.message(turn, media)
