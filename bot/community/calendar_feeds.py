"""Staff members' secret calendar feeds (``/calendar/<token>.ics``): one live token per user,
stored as its SHA-256 like a session's; a new one revokes the old, and a disabled user's feed
stops working."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.community.staff import token_hash
from bot.core.models import utcnow
from bot.core.staff_models import CalendarFeed, StaffUser


def new_feed(session: Session, user: StaffUser) -> str:
    """A fresh secret feed token for ``user``; any earlier one stops working."""
    revoke_feeds(session, user)
    token = secrets.token_urlsafe(24)
    session.add(CalendarFeed(token_hash=token_hash(token), user_id=user.id, created_at=utcnow()))
    return token


def revoke_feeds(session: Session, user: StaffUser) -> int:
    feeds = session.scalars(
        select(CalendarFeed).where(
            CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None)
        )
    ).all()
    for feed in feeds:
        feed.revoked_at = utcnow()
    return len(feeds)


def has_feed(session: Session, user: StaffUser) -> bool:
    return (
        session.scalar(
            select(CalendarFeed.token_hash).where(
                CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None)
            )
        )
        is not None
    )


def feed_owner(session: Session, token: str) -> StaffUser | None:
    """The active user whose live feed this token is; None for anything else."""
    if not token or len(token) > 100:
        return None
    return session.scalar(
        select(StaffUser)
        .join(CalendarFeed, CalendarFeed.user_id == StaffUser.id)
        .where(
            CalendarFeed.token_hash == token_hash(token),
            CalendarFeed.revoked_at.is_(None),
            StaffUser.disabled_at.is_(None),
        )
    )
