"""Closing the loop: when a pledgemaker's update goes live, they hear it from us, with the link."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels import registry
from bot.core.db import Database
from bot.core.models import Contact, OutboxMessage, Pledgemaker, Post
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates


def post_link(channel: str, destination: str, external_id: str) -> str:
    """The public address of a post, or (for staff) what identifies it where there is none."""
    link = registry.spec(channel).public_link(destination, external_id)
    return link or f"{channel} post {external_id}"


def close_loop(db: Database, templates: Templates) -> int:
    """Thank the pledgemaker once per update that went live (with the first post that has a
    public link: an update posted on seven networks is one message, not seven); returns how
    many thank-yous were queued."""
    with db.session() as session:
        live = session.execute(
            select(Post, OutboxMessage.recipient, OutboxMessage.external_id)
            .join(OutboxMessage, Post.first_outbox_id == OutboxMessage.id)
            .where(Post.thanked.is_(False), OutboxMessage.state == "sent")
        ).all()
        thanks = []
        for post, destination, external_id in live:
            post.thanked = True
            link = registry.spec(post.channel).public_link(destination, external_id or "")
            if link is None:  # another network's post of the same update says it
                continue
            message = _thanks(session, post, link, templates)
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
        # Once per update (the key), whichever of its posts comes first.
        idempotency_key=(
            f"post-live:update:{post.journey_update_id}"
            if post.journey_update_id
            else f"post-live:{post.id}"
        ),
        channel=contact.channel,
        recipient=contact.address,
        text=templates.phrase("post_live", language, link=link, name=pledgemaker.name),
        pledgemaker_id=pledgemaker.id,
        contact_id=contact.id,
        parse_mode="HTML",
    )
