"""Closing the loop: when a pledgemaker's update goes live, they hear it from us, with the link."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox
from bot.campaigns.base import PlannedMessage
from bot.db import Database
from bot.models import Contact, OutboxMessage, Pledgemaker, Post
from bot.templates import Templates


def post_link(channel: str, destination: str, external_id: str) -> str:
    """The public address of a post."""
    if channel == "x":
        return f"https://x.com/i/web/status/{external_id}"
    if destination.startswith("@"):
        return f"https://t.me/{destination[1:]}/{external_id}"
    return f"https://t.me/c/{destination.removeprefix('-100')}/{external_id}"


def close_loop(db: Database, templates: Templates) -> int:
    """Thank the pledgemaker of every post that went out since the last pass; returns how many."""
    with db.session() as session:
        live = session.execute(
            select(Post, OutboxMessage.recipient, OutboxMessage.external_id)
            .join(OutboxMessage, Post.first_outbox_id == OutboxMessage.id)
            .where(Post.thanked.is_(False), OutboxMessage.state == "sent")
        ).all()
        thanks = []
        for post, destination, external_id in live:
            post.thanked = True
            message = _thanks(
                session, post, post_link(post.channel, destination, external_id or ""), templates
            )
            if message is not None:
                thanks.append(message)
        return outbox.enqueue(session, thanks)


def _thanks(session: Session, post: Post, link: str, templates: Templates) -> PlannedMessage | None:
    contact = session.scalar(
        select(Contact)
        .where(Contact.pledgemaker_id == post.pledgemaker_id, Contact.status == "active")
        .order_by(Contact.bound_at.desc())
        .limit(1)
    )
    pledgemaker = session.get(Pledgemaker, post.pledgemaker_id or "")
    if contact is None or pledgemaker is None:
        return None  # not reachable in chat (e.g. an imported update): nothing to say
    language = contact.language or pledgemaker.language
    return PlannedMessage(
        idempotency_key=f"post-live:{post.id}",
        channel=contact.channel,
        recipient=contact.address,
        text=templates.phrase("post_live", language, link=link, name=pledgemaker.name),
        pledgemaker_id=pledgemaker.id,
        contact_id=contact.id,
        parse_mode="HTML",
    )
