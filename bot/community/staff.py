"""The comms team's accounts: users and roles, passwords, sign-in sessions, and the audit log.

Passwords are hashed with argon2id (argon2-cffi's defaults, re-hashed when those change). A
session is a random token in an HttpOnly cookie; the database keeps only its SHA-256, so a
leaked database does not sign anyone in.

Failed sign-ins are counted in the database, so that every ``pledgebot web`` process sees the
same count. Five within 15 minutes for one address *from one client* stop that client trying
that address for the rest of the window (and 20 from one client over every address stop that
client); nobody else is locked out, the owner included. A client is an IPv4 address, or an
IPv6 address's /64 prefix (``client_group``). Failures for one address from every client only
slow its sign-ins down (``backoff``: a few seconds at most). An unknown or disabled address is
checked against a dummy hash, so the answer takes as long as for a real account. An attempt is
counted before its password is checked, one at a time per client, so that parallel requests
cannot all slip under the limit; the check itself (argon2) runs with no transaction open.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from bot.core.coordination import lock_key
from bot.core.errors import UserInputError
from bot.core.models import utcnow
from bot.core.staff_models import AuditEntry, LoginAttempt, StaffSession, StaffUser

if TYPE_CHECKING:
    from bot.core.db import Database

ROLES = ("viewer", "editor", "admin")  # each can do what the ones before it can
SESSION_IDLE = timedelta(hours=12)
SESSION_LONGEST = timedelta(days=7)
FAILURES_ALLOWED = 5  # per (address, client) within FAILURE_WINDOW
CLIENT_FAILURES_ALLOWED = 20  # per client over every address (spraying one password around)
FAILURE_WINDOW = timedelta(minutes=15)
BACKOFF_AFTER = 10  # failures for one address from any clients before its sign-ins are slowed
BACKOFF_STEP = 0.5  # seconds more for each failure after that…
BACKOFF_MAX = 8.0  # …up to this: a slower sign-in, never a lock-out
MIN_PASSWORD = 12
MIN_SCORE = 3  # zxcvbn's 0-4: 3 is "safely unguessable: moderate protection from offline attacks"

_hasher = PasswordHasher()


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def normal_email(email: str) -> str:
    """The address as stored and signed in with: a valid address (email-validator: syntax
    and a domain that can receive mail; no DNS look-up), lower-cased."""
    from email_validator import EmailNotValidError, validate_email

    given = email.strip()
    try:
        checked = validate_email(given, check_deliverability=False)
    except EmailNotValidError as exc:
        raise UserInputError(f"{given!r} is not an email address: {exc}") from None
    return checked.normalized.lower()


def check_password(password: str, email: str = "") -> None:
    """Refuse a password that is easy to guess: short, one character repeated, containing the
    address's name part, on zxcvbn's list of the 30,000 most common passwords, or scored below
    ``MIN_SCORE`` by zxcvbn (which also knows words, names, keyboard runs, dates and l33t)."""
    if not password:
        raise UserInputError("the password is empty")
    if len(password) < MIN_PASSWORD:
        raise UserInputError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(set(password)) == 1:
        raise UserInputError("a password of one character repeated is easy to guess")
    name = email.partition("@")[0].lower()
    if len(name) >= 3 and name in password.lower():
        raise UserInputError(f"a password must not contain the address ({name!r})")
    if password.lower() in _common_passwords():
        raise UserInputError("that is one of the most common passwords; choose another")
    from zxcvbn import zxcvbn

    hints = [email, name, *re.split(r"[._+-]", name)] if email else []
    verdict = zxcvbn(password[:72], user_inputs=[h for h in hints if len(h) >= 3])
    if verdict["score"] < MIN_SCORE:
        feedback = verdict["feedback"]
        why = feedback["warning"] or " ".join(feedback["suggestions"]) or "too predictable"
        raise UserInputError(
            f"that password is easy to guess ({why.rstrip('.')}); "
            "three or four unrelated words make a strong one"
        )


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def add_user(session: Session, email: str, password: str, role: str, *, actor: str) -> StaffUser:
    email = normal_email(email)
    if role not in ROLES:
        raise UserInputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    check_password(password, email)
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
    user = find_user(session, email)
    check_password(password, user.email)
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


def sign_in(db: Database, email: str, password: str, client: str) -> SignIn:
    """Check the password; on success open a session. Too many recent failures for this
    address from this client (or from this client over every address) refuse without looking
    at the password. Every attempt that is checked costs one argon2 verification, whether or
    not the address is a user's, so the time taken tells nothing.

    Three steps, the first and last each a short transaction of its own: the attempt is counted
    and recorded as a failure (``_claim``, serialised per client, so parallel attempts count
    each other); the password is checked with no transaction open (argon2 takes most of a
    second: no lock is held meanwhile, and no pooled connection is taken); only a match then
    marks the attempt a success and opens the session. ``client`` is the address the request
    came from (see ``client_group``)."""
    now = utcnow()
    email, client = email.strip().lower()[:254], client_group(client)
    with db.session() as session:
        claim = _claim(session, email, client, now)
    if isinstance(claim, SignIn):
        return claim
    matches = _verify(claim.password_hash, password)
    if not matches or claim.user_id is None:
        return SignIn(None, refused=NO_MATCH)
    rehashed = _hasher.hash(password) if _hasher.check_needs_rehash(claim.password_hash) else None
    with db.session() as session:
        return _open_session(session, claim, rehashed, now)


NO_MATCH = "That email and password do not match an active account."


@dataclass(frozen=True)
class _Claim:
    """An attempt recorded (as failed) and what its password is to be checked against."""

    attempt_id: int
    user_id: int | None  # an active user's; None: refused whatever the password
    password_hash: str  # theirs, or a disabled user's, or ``dummy_hash()``


def _claim(session: Session, email: str, client: str, now: datetime) -> _Claim | SignIn:
    """Refuse if this client has failed too often; otherwise record the attempt as a failure
    (a success only once the password matches). Counting and recording are one step per
    client: SQLite's ``BEGIN IMMEDIATE`` serialises every writer, and on PostgreSQL a
    transaction-level advisory lock on the client serialises its claims (READ COMMITTED alone
    would let parallel requests all count the same few failures)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(lock_key(f"sign-in:{client}"))))
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=1)))
    limits = (
        (FAILURES_ALLOWED, LoginAttempt.email == email, LoginAttempt.client == client),
        (CLIENT_FAILURES_ALLOWED, LoginAttempt.client == client),
    )
    for allowed, *where in limits:
        failures = _failures(session, now, *where)
        if len(failures) >= allowed:
            wait = failures[-allowed] + FAILURE_WINDOW - now
            return SignIn(None, refused="Too many failed sign-ins.", retry_after=_seconds(wait))
    attempt = LoginAttempt(email=email, client=client, at=now, succeeded=False)
    session.add(attempt)
    user = session.scalar(select(StaffUser).where(StaffUser.email == email))
    session.flush()
    return _Claim(
        attempt_id=attempt.id,
        user_id=user.id if user is not None and user.disabled_at is None else None,
        password_hash=user.password_hash if user is not None else dummy_hash(),
    )


def _open_session(session: Session, claim: _Claim, rehashed: str | None, now: datetime) -> SignIn:
    """The password matched: mark the attempt a success and open a session, unless the user
    was disabled or given a new password while it was being checked."""
    user = session.get(StaffUser, claim.user_id, with_for_update=True)
    if user is None or user.disabled_at is not None or user.password_hash != claim.password_hash:
        return SignIn(None, refused=NO_MATCH)
    session.execute(
        update(LoginAttempt).where(LoginAttempt.id == claim.attempt_id).values(succeeded=True)
    )
    if rehashed is not None:
        user.password_hash = rehashed
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


def client_group(host: str) -> str:
    """The client that sign-in limits count for a request's address: an IPv4 address as it
    is, an IPv6 address by its /64 prefix (one subscriber's or one site's network: an attacker
    rotating addresses within it is one client), an IPv4-mapped IPv6 address as the IPv4 one,
    anything else (a name) as given, at most 64 characters."""
    try:
        address = ipaddress.ip_address(host.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def backoff(session: Session, email: str) -> float:
    """Seconds a sign-in for ``email`` waits before its password is checked: none until
    ``BACKOFF_AFTER`` failures for it (from any clients) within the window, then
    ``BACKOFF_STEP`` more per failure, at most ``BACKOFF_MAX``. It slows a guesser spread over
    many clients without ever shutting the owner out."""
    failures = (
        session.scalar(
            select(func.count()).where(
                LoginAttempt.email == email.strip().lower()[:254],
                LoginAttempt.at >= utcnow() - FAILURE_WINDOW,
                LoginAttempt.succeeded.is_(False),
            )
        )
        or 0
    )
    if failures < BACKOFF_AFTER:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_STEP * (failures - BACKOFF_AFTER + 1))


def _failures(session: Session, now: datetime, *where: ColumnElement[bool]) -> list[datetime]:
    return list(
        session.scalars(
            select(LoginAttempt.at)
            .where(
                *where, LoginAttempt.at >= now - FAILURE_WINDOW, LoginAttempt.succeeded.is_(False)
            )
            .order_by(LoginAttempt.at)
        )
    )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def dummy_hash() -> str:
    """What an unknown address's password is checked against: a hash of a random secret made
    with the same parameters as real ones, so the check takes as long."""
    return _hasher.hash(secrets.token_urlsafe(32))


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
