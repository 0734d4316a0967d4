"""The comms team's accounts: users and roles, passwords, sign-in sessions, and the audit log.

Passwords are hashed with argon2id (argon2-cffi's defaults, re-hashed when those change). A
session is a random token in an HttpOnly cookie; the database keeps only its SHA-256, so a
leaked database does not sign anyone in. Failed sign-ins are limited per address and per
client, counted in the database so that every ``pledgebot web`` process sees the same count.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.errors import UserInputError
from bot.models import AuditEntry, CalendarFeed, LoginAttempt, StaffSession, StaffUser, utcnow

ROLES = ("viewer", "editor", "admin")  # each can do what the ones before it can
SESSION_IDLE = timedelta(hours=12)
SESSION_LONGEST = timedelta(days=7)
FAILURES_ALLOWED = 5  # per address, and per client, within FAILURE_WINDOW
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 12

_hasher = PasswordHasher()


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise UserInputError(f"{email!r} is not an email address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserInputError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(session: Session, email: str, password: str, role: str, *, actor: str) -> StaffUser:
    email = normal_email(email)
    if role not in ROLES:
        raise UserInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    check_password(password)
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise UserInputError(f"a user {email} exists already (see `pledgebot users list`)")
    user = StaffUser(email=email, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    audit(session, actor, "user.add", email, f"role {role}")
    return user


def find_user(session: Session, email: str) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise UserInputError(f"no user {email} (see `pledgebot users list`)")
    return user


def set_role(session: Session, email: str, role: str, *, actor: str) -> None:
    if role not in ROLES:
        raise UserInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    user = find_user(session, email)
    audit(session, actor, "user.role", user.email, f"{user.role} -> {role}")
    user.role = role


def set_password(session: Session, email: str, password: str, *, actor: str) -> None:
    check_password(password)
    user = find_user(session, email)
    user.password_hash = _hasher.hash(password)
    session.execute(delete(StaffSession).where(StaffSession.user_id == user.id))
    audit(session, actor, "user.password", user.email, "sessions ended")


def disable(session: Session, email: str, *, actor: str) -> None:
    """The user can no longer sign in, and is signed out everywhere (their audit trail stays)."""
    user = find_user(session, email)
    user.disabled_at = utcnow()
    session.execute(delete(StaffSession).where(StaffSession.user_id == user.id))
    audit(session, actor, "user.disable", user.email, "")


# -- signing in --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignIn:
    user: StaffUser | None  # None: refused
    token: str = ""  # the cookie's value
    refused: str = ""  # why, in words for the sign-in page
    retry_after: int = 0  # seconds, when refused for too many failures


def sign_in(session: Session, email: str, password: str, client: str) -> SignIn:
    """Check the password; on success open a session. Too many recent failures (for this
    address or this client) refuse without looking at the password."""
    now = utcnow()
    email = email.strip().lower()[:254]
    since = now - FAILURE_WINDOW
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=1)))
    for column, value in ((LoginAttempt.email, email), (LoginAttempt.client, client[:64])):
        failures = session.scalars(
            select(LoginAttempt.at)
            .where(column == value, LoginAttempt.at >= since, LoginAttempt.succeeded.is_(False))
            .order_by(LoginAttempt.at)
        ).all()
        if len(failures) >= FAILURES_ALLOWED:
            wait = failures[-FAILURES_ALLOWED] + FAILURE_WINDOW - now
            return SignIn(None, refused="Too many failed sign-ins.", retry_after=_seconds(wait))
    user = session.scalar(select(StaffUser).where(StaffUser.email == email))
    ok = user is not None and user.disabled_at is None and _verify(user, password)
    session.add(LoginAttempt(email=email, client=client[:64], at=now, succeeded=ok))
    if not ok or user is None:
        return SignIn(None, refused="That email and password do not match an active account.")
    token = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=token_hash(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LONGEST,
        )
    )
    return SignIn(user, token=token)


def _verify(user: StaffUser, password: str) -> bool:
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds()) + 1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_for(session: Session, token: str) -> tuple[StaffSession, StaffUser] | None:
    """The live session behind a cookie, and its user; touches it (idle timeout)."""
    if not token or len(token) > 100:
        return None
    now = utcnow()
    found = session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffSession.user_id == StaffUser.id)
        .where(StaffSession.token_hash == token_hash(token))
    ).first()
    if found is None:
        return None
    staff_session, user = found
    stale = staff_session.last_seen_at + SESSION_IDLE < now
    if user.disabled_at is not None or staff_session.expires_at <= now or stale:
        session.delete(staff_session)
        return None
    if now - staff_session.last_seen_at > timedelta(minutes=1):  # not a write per request
        staff_session.last_seen_at = now
    return staff_session, user


def sign_out(session: Session, token: str) -> None:
    session.execute(delete(StaffSession).where(StaffSession.token_hash == token_hash(token)))


def audit(session: Session, actor: str, action: str, target: str, detail: str) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=target[:200], detail=detail))


def users(session: Session) -> list[tuple[StaffUser, datetime | None]]:
    """Every user, with when they last used the dashboard."""
    last = (
        select(StaffSession.user_id, func.max(StaffSession.last_seen_at).label("seen"))
        .group_by(StaffSession.user_id)
        .subquery()
    )
    rows = session.execute(
        select(StaffUser, last.c.seen)
        .outerjoin(last, last.c.user_id == StaffUser.id)
        .order_by(StaffUser.email)
    )
    return [(user, seen) for user, seen in rows.tuples()]


# -- calendar feeds --------------------------------------------------------------------------
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
