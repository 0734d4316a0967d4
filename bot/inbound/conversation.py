"""What an inbound event means: commands, button presses, answers to prompts, edits.

Called by the inbox processor inside one transaction per event. Everything the bot says back
goes through the outbox with a key derived from the event, so finishing an interrupted event
after a crash never answers twice.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.followup import BUTTON_KINDS, BUTTON_PREFIX
from bot.campaigns.reminders import cancel_reminders
from bot.channels.base import InboundEvent
from bot.community import consent, contacts, introductions, invitations
from bot.community.closing import post_link
from bot.core import choices
from bot.core.models import (
    Contact,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Prompt,
    Reply,
    utcnow,
)
from bot.core.vocab import LANGUAGES
from bot.delivery import outbox
from bot.delivery.alerts import Alerts
from bot.delivery.messages import PlannedMessage
from bot.inbound.prefetch import ChatFacts, ChunkFacts
from bot.settings.config import ConversationSettings
from bot.text.templates import Templates

# Channels whose events name the outbox message they answer (``reply_to`` = its id), not the
# platform's id of it: email, whose signed reply address carries our message's id.
NAMES_OUTBOX_ID = frozenset({"email"})
COMMAND = re.compile(r"^/([A-Za-z_]+)(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?$", re.S)
ACKNOWLEDGEMENTS = {
    "ok",
    "okay",
    "k",
    "kk",
    "thanks",
    "thank you",
    "thx",
    "ty",
    "great",
    "cool",
    "noted",
    "merci",
    "merci beaucoup",
    "d'accord",
    "daccord",
    "bien reçu",
    "gracias",
    "muchas gracias",
    "vale",
    "de acuerdo",
    "recibido",
    "yes",
    "oui",
    "sí",
    "si",
}


def parse_command(text: str) -> tuple[str, str] | None:
    match = COMMAND.match(text.strip())
    return (match.group(1).lower(), (match.group(2) or "").strip()) if match else None


def is_acknowledgement(event: InboundEvent) -> bool:
    """A bare "ok", "thanks", an emoji or a sticker: stored, but not an answer."""
    if event.media:
        return False
    if event.sticker and not event.text.strip():
        return True
    text = event.text.strip().lower().rstrip("!.… ")
    if not text:
        return True
    if text in ACKNOWLEDGEMENTS:
        return True
    return not any(unicodedata.category(ch)[0] in "LN" for ch in text)  # only emoji/punctuation


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
            return turn.button()
        if event.kind == "edit":
            return turn.edit()
        # What a channel without commands found in the message: an email's "unsubscribe", the
        # invitation code in its subject.
        if event.raw.get("opt_out"):
            return turn.command("stop", "")
        invite = event.raw.get("invite")
        if isinstance(invite, dict):
            return turn.command("start", str(invite.get("token") or "") or "refused")
        if contact is None and event.kind in ("message", "join"):
            token = turn.invitation()
            if token is not None:  # an answer to the invitation the bot sent them
                return turn.start(token)
        if event.kind == "join":
            return "ignored: join of a bound chat" if contact else "ignored: join, not invited"
        command = parse_command(event.text) if not event.media else None
        if command is not None:
            return turn.command(*command)
        if contact is not None and not event.media and choices.worth_looking(event.text):
            picked = turn.choice()
            if picked is not None:
                return picked
        return turn.message(media)


class Turn:
    """One event being handled: the helpers share its session, contact and reply keys."""

    def __init__(
        self,
        conv: Conversation,
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

    # -- saying things back ------------------------------------------------------------------
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

    # -- commands ----------------------------------------------------------------------------
    def command(self, name: str, argument: str) -> str:
        if name == "start":
            return self.start(argument)
        if name == "stop":
            if self.contact is not None and self.contact.status != "stopped":
                self.contact.status, self.contact.status_changed_at = "stopped", self.now
            self.say("stopped")
            return "stop: opted out"
        if name == "withdraw":
            if self.contact is None:
                return self.onboarding()
            return self.withdraw()
        if name == "language":
            if argument not in LANGUAGES:
                self.say("language_unknown")
                return f"language: unknown {argument!r}"
            if self.contact is None:
                self.say(
                    "onboarding",
                    key=f"onboarding:{self.channel}:{self.event.chat_id}",
                    language=argument,
                )
                return "language: unbound chat"
            self.contact.language = argument
            self.say("language_set", language=argument)
            return f"language: {argument}"
        if self.contact is None:
            return self.onboarding()
        self.say("help")
        return f"help ({name})"

    def start(self, token: str) -> str:
        if token:
            if self.contact is not None and contacts.used_by(
                self.session, token, self.event.chat_id
            ):
                return self.start("")  # the same link opened twice: already connected
            contact = contacts.redeem(self.session, token, self.channel, self.event.chat_id)
            if contact is None:
                self.say("link_refused")
                return "start: invitation refused"
            self.contact = contact
            self.say("linked", name=self.name())
            return f"start: bound to {contact.pledgemaker_id}"
        if self.contact is None:
            return self.onboarding()
        if self.contact.status != "active":
            self.contact.status, self.contact.status_changed_at = "active", self.now
            self.say("welcome_back", name=self.name())
            return "start: opted back in"
        self.say("help")
        return "start: already active"

    def invitation(self) -> str | None:
        """The open invitation this unbound chat answers: one the bot sent to its address (a
        reply to the invitation mail; the invited Matrix user joining the room), or the
        invitation mail it replies to (a colleague answering a forwarded invitation)."""
        sender = str(self.event.sender.get("id") or "")
        for address in dict.fromkeys(a for a in (self.event.chat_id, sender) if a):
            invite = invitations.open_invite(self.session, self.channel, address)
            if invite is not None:
                return invite.token
        replied = self.event.reply_to or ""
        if self.channel in NAMES_OUTBOX_ID and replied.isdigit():
            key = self.session.scalar(
                select(OutboxMessage.idempotency_key).where(
                    OutboxMessage.id == int(replied), OutboxMessage.channel == self.channel
                )
            )
            if key and key.startswith(invitations.KEY_PREFIX):
                return key.removeprefix(invitations.KEY_PREFIX)
        return None

    def onboarding(self) -> str:
        # One hint per chat, ever: the idempotency key makes a second one a no-op.
        self.say("onboarding", key=f"onboarding:{self.channel}:{self.event.chat_id}")
        return "unbound chat: onboarding hint"

    def withdraw(self, only: int | None = None) -> str:
        """Consent taken back (all updates, or ``only`` one): queued posts cancelled, live ones
        taken down where the comms team turned that on, the rest listed to staff."""
        assert self.contact is not None
        result = consent.withdraw(
            self.session, self.contact.pledgemaker_id, self.contact, self.conv.deletable, only
        )
        self.say("consent_withdrawn" if only is None else "consent_withdrawn_one")
        if result.live and self.conv.alerts is not None:
            links = ", ".join(post_link(*post) for post in result.live)
            self.conv.alerts.raise_alert(
                f"withdrawn:{self.event_id}",
                f"{self.contact.pledgemaker_id} withdrew consent; these posts are live: "
                f"{links}. Remove them if the campaign's policy says so.",
                session=self.session,
            )
        return (
            f"withdraw: {result.updates} update(s), {result.cancelled} queued post(s) "
            f"cancelled, {result.deleting} part(s) being deleted, {len(result.live)} live"
        )

    # -- buttons -----------------------------------------------------------------------------
    def button(self, data: str | None = None, message_id: str | None = None) -> str:
        """A button pressed (or, on a channel without buttons, its option typed: ``data`` and
        the id of the message it was under)."""
        data = data if data is not None else self.event.button_data or ""
        message_id = message_id if message_id is not None else self.event.message_id
        if data.startswith(consent.BUTTON_PREFIX):
            return self.consent_answer(data.removeprefix(consent.BUTTON_PREFIX))
        if data.startswith(introductions.BUTTON_PREFIX):
            return self.introduction_answer(data.removeprefix(introductions.BUTTON_PREFIX))
        kind = data.removeprefix(BUTTON_PREFIX)
        if not data.startswith(BUTTON_PREFIX) or kind not in BUTTON_KINDS:
            return f"ignored: unknown button {data!r}"
        if self.contact is None or self.contact.status != "active":
            return "ignored: button from an unbound or stopped chat"
        prompt = self.prompt_for(message_id)
        if prompt is None:
            return "ignored: button on a message that is not a prompt"
        if kind == "snooze":
            prompt.state, prompt.closed_at = "snoozed", self.now
            cancel_reminders(self.session, prompt)
            self.say("snoozed")
            return f"prompt {prompt.id}: snoozed"
        prompt.requested_kind = kind
        if prompt.state == "snoozed":
            prompt.state = "open"
        self.say(f"ask_{kind}")
        return f"prompt {prompt.id}: {kind} requested"

    def choice(self) -> str | None:
        """A short text that picks one of the options under the message it answers — the one
        it quotes, else the last one we sent this chat — handled as that button; None if it
        picks none (it is then an ordinary message)."""
        message = self.answered_message()
        if message is None or not message.buttons:
            return None
        data = choices.match(self.event.text, message.buttons)
        if data is None:
            return None
        ours = str(message.id) if self.channel in NAMES_OUTBOX_ID else message.external_id
        return "typed " + self.button(data, ours or "")

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
        if self.channel in NAMES_OUTBOX_ID:
            if not replied.isdigit():
                return None
            return self.session.scalar(sent.where(OutboxMessage.id == int(replied)))
        return self.session.scalar(sent.where(OutboxMessage.external_id == replied))

    def introduction_answer(self, data: str) -> str:
        said, _, number = data.partition(":")
        if said not in ("yes", "no") or not number.isdigit():
            return f"ignored: introduction button {data!r}"
        if self.contact is None or self.contact.status != "active":
            return "ignored: button from an unbound or stopped chat"
        return introductions.answer(
            self.session, int(number), self.contact.pledgemaker_id, said, self.conv.templates
        )

    def consent_answer(self, data: str) -> str:
        """``yes:<update>:<version>`` / ``no:…`` under a consent question (``version``: the
        hash of the text it showed; absent on buttons sent before questions carried it), or
        ``withdraw:<update>`` under the confirmation."""
        answer, _, rest = data.partition(":")
        update_id, _, version = rest.partition(":")
        update = (
            # Locked: an edit committed meanwhile is seen, one still running waits for this.
            self.session.get(
                JourneyUpdate, int(update_id), with_for_update=True, populate_existing=True
            )
            if update_id.isdigit()
            else None
        )
        if answer not in ("yes", "no", "withdraw") or update is None or self.contact is None:
            return f"ignored: consent button {data!r}"
        if update.pledgemaker_id != self.contact.pledgemaker_id:
            return "ignored: consent for another pledgemaker's update"
        if answer == "withdraw":  # the button under the confirmation: this update only
            return self.withdraw(only=update.id)
        if not consent.answers_current_text(update, version):
            # They answered about words that are no longer the ones to publish: nothing is
            # recorded, and the text as it reads now is what they are asked about.
            self.say("consent_text_changed")
            edited = update.edited_text is not None
            consent.ask(self.session, update, self.conv.templates, edited=edited)
            return f"update {update.id}: consent {answer} refused, its text has changed since"
        record = consent.record(self.session, update, answer, self.contact)
        if answer == "no":
            self.say("consent_declined")
            return f"update {update.id}: consent no"
        language = self.language()
        button = {
            "text": self.conv.templates.phrase("withdraw_button", language),
            "data": f"{consent.BUTTON_PREFIX}withdraw:{update.id}",
        }
        self.say("consent_given", credit=record.credit, buttons=[[button]])
        return f"update {update.id}: consent yes"

    # -- messages ----------------------------------------------------------------------------
    def message(self, media: list[dict[str, Any]]) -> str:
        if self.contact is None:
            return self.onboarding()
        reply = Reply(
            inbound_event_id=self.event_id,
            channel=self.channel,
            chat_id=self.event.chat_id,
            external_id=self.event.message_id or "",
            contact_id=self.contact.id,
            pledgemaker_id=self.contact.pledgemaker_id,
            text=self.event.text,
            media=media,
            media_group_id=self.event.media_group_id,
            acknowledgement=is_acknowledgement(self.event),
            received_at=self.at,
        )
        self.session.add(reply)
        if self.contact.status != "active":
            return "reply stored: contact has opted out"
        explicit = self.prompt_for(self.event.reply_to) if self.event.reply_to else None
        reply.prompt_id = explicit.id if explicit else None
        if reply.acknowledgement:
            return "reply stored: acknowledgement"
        pending = self.pending_updates()  # most messages come from a contact with none
        described = self.awaiting_description(pending)
        if described is not None and not media:
            return self.describe(described, reply)
        group = self.open_answer(explicit, pending)
        if group is not None:
            reply.prompt_id = group.prompt_id
            self.attach(reply, group)
            self.ask_description(group)
            consent.text_changed(self.session, group, self.conv.templates)
            return f"reply added to update {group.id}"
        prompt = explicit or self.latest_open_prompt()
        if prompt is None:
            return "reply stored: no open prompt"
        reply.prompt_id = prompt.id
        update = JourneyUpdate(
            pledgemaker_id=self.contact.pledgemaker_id,
            prompt_id=prompt.id,
            contact_id=self.contact.id,
            pillar=prompt.pillar,
            kind=prompt.requested_kind or "progress",
            source="reply",
            source_ref=f"event:{self.event_id}",
            moderation="pending",
            created_at=self.now,
        )
        self.session.add(update)
        self.attach(reply, update)
        prompt.state, prompt.closed_at = "answered", self.now
        cancel_reminders(self.session, prompt)
        self.say("thanks", key=f"thanks:{self.channel}:{self.event_id}", name=self.name())
        self.ask_description(update)
        consent.ask(self.session, update, self.conv.templates)
        return f"update {update.id} created for prompt {prompt.id}"

    # -- alt text for photos -----------------------------------------------------------------
    def ask_description(self, update: JourneyUpdate) -> None:
        """A photo needs a one-line description before it can be published: ask, once."""
        if any(item.get("path") and not item.get("alt_text") for item in update.media or []):
            self.say("ask_alt_text", key=f"alt-ask:{update.id}")

    def pending_updates(self) -> list[JourneyUpdate]:
        """This contact's updates still awaiting moderation, newest first (usually none)."""
        assert self.contact is not None
        if self.known is not None:
            return self.known.pending_updates
        return list(
            self.session.scalars(
                select(JourneyUpdate)
                .where(
                    JourneyUpdate.contact_id == self.contact.id,
                    JourneyUpdate.moderation == "pending",
                )
                .order_by(JourneyUpdate.id.desc())
            )
        )

    def awaiting_description(self, pending: list[JourneyUpdate]) -> JourneyUpdate | None:
        """This contact's latest pending update whose photo description we asked for, if the
        description is still missing. Only an update with photos is ever asked about."""
        for update in pending:
            if not update.media:
                continue
            asked = self.session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.idempotency_key == f"alt-ask:{update.id}"
                )
            )
            if asked is not None:
                return update if any(not m.get("alt_text") for m in update.media) else None
        return None

    def describe(self, update: JourneyUpdate, reply: Reply) -> str:
        """Their next message is the description: it becomes the photos' alt text."""
        text = " ".join(self.event.text.split())[:1000]
        update.media = [
            {**item, "alt_text": item.get("alt_text") or text} for item in update.media or []
        ]
        reply.prompt_id = update.prompt_id
        self.say("alt_text_thanks")
        return f"alt text for update {update.id}"

    def attach(self, reply: Reply, update: JourneyUpdate) -> None:
        """The reply joins the answer. It is the answer's newest reply, so the text and media
        grow by its own, just as ``refresh_update`` would recompute them."""
        self.session.flush()  # the ids of a new update and of the reply
        reply.journey_update_id = update.id
        update.last_reply_at = max(filter(None, [update.last_reply_at, reply.received_at]))
        update.text = "\n\n".join(part for part in (update.text or "", reply.text.strip()) if part)
        update.media = [*(update.media or []), *(reply.media or [])]

    def open_answer(
        self, explicit: Prompt | None, pending: list[JourneyUpdate]
    ) -> JourneyUpdate | None:
        """The answer this message continues: same album, or a reply minutes ago."""
        assert self.contact is not None
        window = timedelta(minutes=self.conv.settings.answer_window_minutes)
        if self.event.media_group_id:
            album = self.session.scalar(
                select(JourneyUpdate)
                .join(Reply, Reply.journey_update_id == JourneyUpdate.id)
                .where(
                    Reply.contact_id == self.contact.id,
                    Reply.media_group_id == self.event.media_group_id,
                )
            )
            if album is not None:
                return album
        answers = [u for u in pending if u.source == "reply" and u.last_reply_at is not None]
        latest = max(answers, key=lambda u: (u.last_reply_at, u.id), default=None)
        if latest is None or latest.last_reply_at is None:
            return None
        if self.at - latest.last_reply_at > window:
            return None
        if explicit is not None and latest.prompt_id != explicit.id:
            return None
        return latest

    # -- edits -------------------------------------------------------------------------------
    def edit(self) -> str:
        reply = self.session.scalar(
            select(Reply).where(
                Reply.channel == self.channel,
                Reply.chat_id == self.event.chat_id,
                Reply.external_id == (self.event.message_id or ""),
            )
        )
        if reply is None:
            return "ignored: edit of a message that is not a stored reply"
        if reply.original_text is None:
            reply.original_text = reply.text
        reply.text, reply.edited_at = self.event.text, self.now
        update = self.session.get(JourneyUpdate, reply.journey_update_id or -1)
        if update is None or update.moderation != "pending":
            return f"reply {reply.id} edited"
        refresh_update(self.session, update)
        consent.text_changed(self.session, update, self.conv.templates)
        return f"reply {reply.id} edited; update {update.id} refreshed"

    # -- prompts -----------------------------------------------------------------------------
    def prompt_for(self, message_id: str | None) -> Prompt | None:
        """The prompt a message answers: by the platform's id of our message, or — on a channel
        whose events name our outbox message (email's signed reply address) — by that id."""
        if message_id is None:
            return None
        if self.channel in NAMES_OUTBOX_ID:
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


def refresh_update(session: Session, update: JourneyUpdate) -> None:
    """An answer's text and media are those of its replies, in the order they came. The
    photos' descriptions (alt text, kept on the update) stay with their photos."""
    replies = list(
        session.scalars(
            select(Reply).where(Reply.journey_update_id == update.id).order_by(Reply.id)
        )
    )
    described = {
        item.get("file_unique_id"): item["alt_text"]
        for item in update.media or []
        if item.get("alt_text")
    }
    update.text = "\n\n".join(r.text.strip() for r in replies if r.text.strip())
    update.media = [
        {**item, "alt_text": described[key]}
        if (key := item.get("file_unique_id")) in described
        else item
        for r in replies
        for item in (r.media or [])
    ]
