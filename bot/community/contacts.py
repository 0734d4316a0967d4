"""Binding chats to pledgemakers: single-use, expiring, unguessable invitation tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.errors import UserInputError
from bot.core.models import Contact, InviteToken, Pledgemaker, utcnow

TOKEN_BYTES = 24  # 32 characters of A-Za-z0-9_- : within Telegram's 64-character start payload


def create_invite(
    session: Session,
    pledgemaker_id: str,
    channel: str,
    *,
    valid_for: timedelta = timedelta(days=30),
) -> InviteToken:
    if session.get(Pledgemaker, pledgemaker_id) is None:
        raise UserInputError(f"no pledgemaker with id {pledgemaker_id!r} (import them first)")
    now = utcnow()
    invite = InviteToken(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        pledgemaker_id=pledgemaker_id,
        channel=channel,
        created_at=now,
        expires_at=now + valid_for,
    )
    session.add(invite)
    return invite


def redeem(session: Session, token: str, channel: str, address: str) -> Contact | None:
    """Bind ``address`` with a valid token and use the token up; None if it is not valid."""
    invite = session.get(InviteToken, token[:64])
    now = utcnow()
    if invite is None or invite.channel != channel or invite.used_at is not None:
        return None
    if invite.expires_at <= now:
        return None
    invite.used_at, invite.used_by = now, address
    contact = session.scalar(
        select(Contact).where(Contact.channel == channel, Contact.address == address)
    )
    if contact is None:
        contact = Contact(
            pledgemaker_id=invite.pledgemaker_id, channel=channel, address=address, bound_at=now
        )
        session.add(contact)
    else:  # the chat moves to the pledgemaker of the newest invitation it used
        contact.pledgemaker_id, contact.bound_at = invite.pledgemaker_id, now
    contact.status, contact.status_changed_at = "active", now
    session.flush()
    return contact


def used_by(session: Session, token: str, address: str) -> bool:
    invite = session.get(InviteToken, token[:64])
    return invite is not None and invite.used_by == address
