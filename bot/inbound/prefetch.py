"""What a chunk of inbound events needs to know, read for the whole chunk in four queries.

Handling a message asks the database: which contact (and pledgemaker) is this chat, which of
the contact's updates are still pending moderation, and which of its prompts is open. Asked
one event at a time that is several round trips per message; here they are asked once per
chunk.

The answers hold for the **first** event of each chat in the chunk only: handling it may change
them (a /start binds the chat, an answer closes the prompt and creates a pending update), so a
chat's later events in the same chunk ask the database again, which sees those changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import Contact, JourneyUpdate, OutboxMessage, Pledgemaker, Prompt


@dataclass
class ChatFacts:
    """One chat's answers, as the chunk began."""

    contact: Contact | None
    pending_updates: list[JourneyUpdate] = field(default_factory=list)  # newest first
    open_prompt: Prompt | None = None


@dataclass
class ChunkFacts:
    chats: dict[tuple[str, str], ChatFacts] = field(default_factory=dict)
    # Held here because the session's identity map holds its objects only weakly.
    pledgemakers: list[Pledgemaker] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        session: Session,
        chats: Iterable[tuple[str, str]],
        *,
        now: datetime,
        prompt_ttl_days: float,
    ) -> ChunkFacts:
        """``chats``: (channel, chat id) pairs. Four queries, whatever the chunk's size; the
        pledgemakers are loaded into the session, where ``Session.get`` finds them."""
        wanted = set(chats)
        facts = cls({chat: ChatFacts(None) for chat in wanted})
        by_channel: dict[str, list[str]] = {}
        for channel, chat_id in wanted:
            by_channel.setdefault(channel, []).append(chat_id)
        contacts: dict[int, ChatFacts] = {}
        for channel, addresses in by_channel.items():
            for contact in session.scalars(
                select(Contact).where(Contact.channel == channel, Contact.address.in_(addresses))
            ):
                chat = facts.chats[(channel, contact.address)]
                chat.contact = contact
                contacts[contact.id] = chat
        if not contacts:
            return facts
        pledgemakers = {chat.contact.pledgemaker_id for chat in contacts.values() if chat.contact}
        facts.pledgemakers = list(
            session.scalars(select(Pledgemaker).where(Pledgemaker.id.in_(pledgemakers)))
        )
        for update in session.scalars(
            select(JourneyUpdate)
            .where(JourneyUpdate.contact_id.in_(contacts), JourneyUpdate.moderation == "pending")
            .order_by(JourneyUpdate.id.desc())
        ):
            if update.contact_id is not None:
                contacts[update.contact_id].pending_updates.append(update)
        oldest = now - timedelta(days=prompt_ttl_days)
        for prompt in session.scalars(  # oldest first, so the latest one is kept
            select(Prompt)
            .join(OutboxMessage, Prompt.outbox_id == OutboxMessage.id)
            .where(
                Prompt.contact_id.in_(contacts),
                Prompt.state == "open",
                OutboxMessage.state == "sent",
                OutboxMessage.sent_at >= oldest,
            )
            .order_by(OutboxMessage.sent_at, Prompt.id)
        ):
            contacts[prompt.contact_id].open_prompt = prompt
        return facts

    def take(self, channel: str, chat_id: str) -> ChatFacts | None:
        """The chat's facts the first time it is asked; None after (ask the database)."""
        return self.chats.pop((channel, chat_id), None)
