"""The comms team's view of pledgemakers: a filtered list, one pledgemaker's whole story (their
conversation, updates and posts), a reply from staff, and invitation links in bulk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from bot.channels import registry
from bot.community.contacts import create_invite
from bot.core.errors import UserInputError
from bot.core.models import (
    Contact,
    InviteToken,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Post,
    Reply,
    utcnow,
)
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage

CONTACT_FILTERS = ("none", "active", "stopped", "gone")
# The longest reply staff may write (the dashboard's reply box): shorter still where the
# channel's own limit on one message is (its spec's text_limit).
DEFAULT_REPLY_LIMIT = 4096


@dataclass(frozen=True)
class Filters:
    text: str = ""  # in the id, name or pledge title
    country: str = ""
    sector: str = ""
    contact: str = ""  # one of CONTACT_FILTERS, or "" for any


def listing_query(filters: Filters) -> Select[tuple[Pledgemaker]]:
    query = select(Pledgemaker).where(Pledgemaker.erased_at.is_(None))
    if filters.text:
        like = f"%{filters.text.lower()}%"
        query = query.where(
            or_(
                func.lower(Pledgemaker.id).like(like),
                func.lower(Pledgemaker.name).like(like),
                func.lower(Pledgemaker.pledge_title).like(like),
            )
        )
    if filters.country:
        query = query.where(Pledgemaker.country == filters.country.upper())
    if filters.sector:
        query = query.where(Pledgemaker.sector == filters.sector)
    if filters.contact == "none":
        query = query.where(
            ~select(Contact.id).where(Contact.pledgemaker_id == Pledgemaker.id).exists()
        )
    elif filters.contact in CONTACT_FILTERS:
        query = query.where(
            select(Contact.id)
            .where(Contact.pledgemaker_id == Pledgemaker.id, Contact.status == filters.contact)
            .exists()
        )
    return query.order_by(Pledgemaker.id)


@dataclass
class Listed:
    pledgemaker: Pledgemaker
    contacts: list[Contact]
    updates: int
    last_reply_at: datetime | None


def listing(
    session: Session, filters: Filters, *, after: str = "", limit: int = 100
) -> tuple[list[Listed], int]:
    """One page of pledgemakers (ids after ``after``) with their contacts; and the total."""
    query = listing_query(filters)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    if after:
        query = query.where(Pledgemaker.id > after)
    people = list(session.scalars(query.limit(limit)))
    ids = [p.id for p in people]
    contacts: dict[str, list[Contact]] = {}
    for contact in session.scalars(
        select(Contact).where(Contact.pledgemaker_id.in_(ids)).order_by(Contact.id)
    ):
        contacts.setdefault(contact.pledgemaker_id, []).append(contact)
    updates = dict(
        session.execute(
            select(JourneyUpdate.pledgemaker_id, func.count())
            .where(JourneyUpdate.pledgemaker_id.in_(ids))
            .group_by(JourneyUpdate.pledgemaker_id)
        )
        .tuples()
        .all()
    )
    replied = dict(
        session.execute(
            select(Reply.pledgemaker_id, func.max(Reply.received_at))
            .where(Reply.pledgemaker_id.in_(ids))
            .group_by(Reply.pledgemaker_id)
        )
        .tuples()
        .all()
    )
    return [
        Listed(p, contacts.get(p.id, []), updates.get(p.id, 0), replied.get(p.id)) for p in people
    ], total


# -- one pledgemaker -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Said:
    """One line of the conversation: theirs (a reply) or ours (a message to their chat)."""

    at: datetime
    ours: bool
    channel: str
    text: str
    state: str  # ours: the outbox state; theirs: "received" or "edited"
    reply_id: int | None = None  # theirs: the reply a staff answer can quote
    media: tuple[dict[str, Any], ...] = ()
    original_text: str | None = None


def conversation(session: Session, pledgemaker_id: str, limit: int = 200) -> list[Said]:
    """Their replies and what went to their chats, oldest first (the newest ``limit``)."""
    replies = session.scalars(
        select(Reply)
        .where(Reply.pledgemaker_id == pledgemaker_id)
        .order_by(Reply.id.desc())
        .limit(limit)
    )
    sent = session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.pledgemaker_id == pledgemaker_id,
            OutboxMessage.contact_id.is_not(None),
            OutboxMessage.action == "send",
        )
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    said = [
        Said(
            at=r.received_at,
            ours=False,
            channel=r.channel,
            text=r.text,
            state="edited" if r.edited_at else "received",
            reply_id=r.id,
            media=tuple(r.media or ()),
            original_text=r.original_text,
        )
        for r in replies
    ] + [
        Said(at=m.sent_at or m.created_at, ours=True, channel=m.channel, text=m.text, state=m.state)
        for m in sent
    ]
    return sorted(said, key=lambda s: s.at)[-limit:]


def posts(session: Session, pledgemaker_id: str) -> list[tuple[Post, OutboxMessage]]:
    return list(
        session.execute(
            select(Post, OutboxMessage)
            .join(OutboxMessage, Post.first_outbox_id == OutboxMessage.id)
            .where(Post.pledgemaker_id == pledgemaker_id)
            .order_by(Post.id.desc())
        ).tuples()
    )


def open_invites(session: Session, pledgemaker_id: str | None = None) -> list[InviteToken]:
    """Invitations not used yet and not expired, newest first."""
    query = select(InviteToken).where(
        InviteToken.used_at.is_(None), InviteToken.expires_at > utcnow()
    )
    if pledgemaker_id is not None:
        query = query.where(InviteToken.pledgemaker_id == pledgemaker_id)
    return list(session.scalars(query.order_by(InviteToken.created_at.desc())))


def invite_many(
    session: Session, ids: list[str], channel: str, valid_for: timedelta
) -> list[InviteToken]:
    """A fresh single-use invitation for each pledgemaker (all or none: unknown ids refused)."""
    known = set(
        session.scalars(
            select(Pledgemaker.id).where(Pledgemaker.id.in_(ids), Pledgemaker.erased_at.is_(None))
        )
    )
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UserInputError(
            f"no pledgemaker with id {', '.join(map(repr, unknown[:5]))} (import them first)"
        )
    return [create_invite(session, i, channel, valid_for=valid_for) for i in dict.fromkeys(ids)]


def uninvited(session: Session, channel: str) -> list[str]:
    """Pledgemakers with no active contact on ``channel`` and no open invitation to it."""
    bound = select(Contact.pledgemaker_id).where(
        Contact.channel == channel, Contact.status == "active"
    )
    invited = select(InviteToken.pledgemaker_id).where(
        InviteToken.channel == channel,
        InviteToken.used_at.is_(None),
        InviteToken.expires_at > utcnow(),
    )
    query = select(Pledgemaker.id).where(
        Pledgemaker.erased_at.is_(None),
        Pledgemaker.id.not_in(bound),
        Pledgemaker.id.not_in(invited),
    )
    return list(session.scalars(query.order_by(Pledgemaker.id)))


# -- a reply from staff ----------------------------------------------------------------------------
def queue_reply(
    session: Session, pledgemaker_id: str, reply_id: int, text: str, nonce: str
) -> int | None:
    """Queue ``text`` to the chat of their reply ``reply_id``, quoting it (the same thread).

    The form's ``nonce`` is the idempotency key: a double click queues it once. Returns the
    outbox id, or None when that nonce was already queued."""
    text = text.strip()
    if not text:
        raise UserInputError("the reply is empty")
    reply = session.get(Reply, reply_id)
    if reply is None or reply.pledgemaker_id != pledgemaker_id or reply.contact_id is None:
        raise UserInputError(f"no message {reply_id} of this pledgemaker to answer")
    contact = session.get(Contact, reply.contact_id)
    assert contact is not None
    if contact.status != "active":
        said = "opted out (STOP)" if contact.status == "stopped" else "blocked the bot or left"
        raise UserInputError(f"they {said} on {contact.channel}: a message would not reach them")
    limit = min(registry.spec(contact.channel).text_limit, DEFAULT_REPLY_LIMIT)
    if len(text) > limit:
        raise UserInputError(
            f"the reply has {len(text)} characters; {contact.channel} takes {limit}"
        )
    key = f"staff-reply:{nonce}"
    queued = outbox.enqueue(
        session,
        [
            PlannedMessage(
                idempotency_key=key,
                channel=contact.channel,
                recipient=contact.address,
                text=text,
                pledgemaker_id=pledgemaker_id,
                contact_id=contact.id,
                reply_to=reply.external_id,
            )
        ],
    )
    if not queued:
        return None
    return session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key))
