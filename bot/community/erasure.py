"""A pledgemaker's data on request: everything we hold, as one JSON document; and erasure.

Erasure blanks every word, address and file that came from or names them, and moves what is
left (ids, times, states, pillar, country) to a new random id, so the reports' anonymous counts
still add up. Their handles are deleted. Every queued message to any of their addresses (their
contacts', their handles' — the email and Matrix id the bot invites —, their invitations') is
cancelled and blanked — an invitation has no contact yet — their published posts taken down
where the channel allows it (else listed, to be removed by hand), and an import cannot bring
them back: the SHA-256 of their old id is kept. All in the caller's one transaction: all or
nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, and_, cast, delete, false, literal, or_, select, update
from sqlalchemy.orm import Session

from bot.community import consent
from bot.community.closing import post_link
from bot.community.row_models import HANDLE_COLUMNS
from bot.core.db import rows_changed
from bot.core.errors import UserInputError
from bot.core.models import (
    Base,
    Cadence,
    Consent,
    Contact,
    Handle,
    InboundEvent,
    InviteToken,
    JourneyUpdate,
    MatchSuggestion,
    OutboxMessage,
    Pledgemaker,
    Post,
    Prompt,
    Reply,
    utcnow,
)
from bot.core.staff_models import AuditEntry
from bot.delivery.alerts import Alerts
from bot.delivery.failures import ERASED
from bot.delivery.outbox import ERASED_RECIPIENT, OPEN_STATES

ERASED_NAME = "Erased pledgemaker"


def erased_ref(pledgemaker_id: str) -> str:
    return hashlib.sha256(pledgemaker_id.encode()).hexdigest()


def find(session: Session, pledgemaker_id: str) -> Pledgemaker:
    found = session.get(Pledgemaker, pledgemaker_id)
    if found is None or found.erased_at is not None:
        raise UserInputError(f"no pledgemaker with id {pledgemaker_id!r}")
    return found


# -- export ------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _record(row: Base, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        column.key: _plain(getattr(row, column.key))
        for column in row.__table__.columns
        if column.key not in skip
    }


def export_data(session: Session, pledgemaker_id: str) -> dict[str, Any]:
    """Everything held about one pledgemaker (a subject access request), newest last."""
    person = find(session, pledgemaker_id)
    contacts = list(
        session.scalars(select(Contact).where(Contact.pledgemaker_id == person.id).order_by("id"))
    )

    def rows(model: type[Base], column: Any) -> list[dict[str, Any]]:
        found = session.scalars(select(model).where(column == person.id).order_by("id"))
        return [_record(row) for row in found]

    messages = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.pledgemaker_id == person.id, OutboxMessage.contact_id.is_not(None))
        .order_by(OutboxMessage.id)
    )
    return {
        "exported_at": utcnow().isoformat(),
        "pledgemaker": {
            **_record(person, skip=("erased_at", "erased_ref")),
            **{column: person.handles.get(network) for column, network in HANDLE_COLUMNS.items()},
        },
        "contacts": [_record(c) for c in contacts],
        "invitations": [
            _record(i, skip=("token",))  # a live token is a key, not their data
            for i in session.scalars(
                select(InviteToken).where(InviteToken.pledgemaker_id == person.id)
            )
        ],
        "messages_sent_to_them": [
            {
                k: _plain(getattr(m, k))
                for k in ("id", "channel", "campaign_id", "text", "state", "created_at", "sent_at")
            }
            for m in messages
        ],
        "prompts": rows(Prompt, Prompt.pledgemaker_id),
        "replies": rows(Reply, Reply.pledgemaker_id),
        "journey_updates": rows(JourneyUpdate, JourneyUpdate.pledgemaker_id),
        "consents": rows(Consent, Consent.pledgemaker_id),
        "posts": rows(Post, Post.pledgemaker_id),
        "introductions": [
            _record(m, skip=("pair_key",))
            for m in session.scalars(
                select(MatchSuggestion).where(
                    or_(
                        MatchSuggestion.seeker_id == person.id,
                        MatchSuggestion.helper_id == person.id,
                    )
                )
            )
        ],
    }


# -- erasure -----------------------------------------------------------------------------------
@dataclass
class Erasure:
    new_id: str
    replies: int = 0
    updates: int = 0
    messages_cancelled: int = 0
    posts_taken_down: int = 0
    # Posts still online on channels where we cannot (or may not) delete: (channel, where, id).
    posts_left_online: list[tuple[str, str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # to delete once the erasure is committed


def erase(
    session: Session,
    pledgemaker_id: str,
    deletable: frozenset[str] = frozenset(),
    alerts: Alerts | None = None,
) -> Erasure:
    """Erase one pledgemaker's personal data (see the module's docstring). Posts that stay
    online are also raised as a staff alert, listed until someone acknowledges it."""
    person = find(session, pledgemaker_id)
    old = person.id
    new = f"erased-{secrets.token_hex(6)}"
    result = Erasure(new_id=new)
    # Take back publication first: that records "withdrawn" consents, blanked below.
    taken = consent.withdraw(session, old, None, deletable)
    result.posts_taken_down = taken.deleting
    result.posts_left_online = taken.live
    contacts = list(session.scalars(select(Contact).where(Contact.pledgemaker_id == old)))
    to_them = _to_their_addresses(session, person, contacts)
    result.messages_cancelled = rows_changed(
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.state.in_(OPEN_STATES), OutboxMessage.action == "send")
            .where(or_(to_them, OutboxMessage.contact_id.in_([c.id for c in contacts])))
            .values(
                state="cancelled",
                last_error="cancelled by staff: pledgemaker erased",
                failure_class=ERASED,
            )
        )
    )
    session.execute(  # whoever queued it, a message to them shows none of their address or words
        update(OutboxMessage)
        .where(to_them, OutboxMessage.action == "send")
        .values(recipient=ERASED_RECIPIENT, text="", media=[], buttons=None)
    )
    files = _files(session, old)

    session.add(
        Pledgemaker(
            id=new,
            name=ERASED_NAME,
            country=person.country,
            region=person.region,
            sector=person.sector,
            language=person.language,
            timezone=person.timezone,
            pledge_title="",
            pledge_text="",
            pledge_date=person.pledge_date,
            created_at=person.created_at,
            erased_at=utcnow(),
            erased_ref=erased_ref(old),
        )
    )
    session.flush()
    blank_text = {"text": "", "media": []}
    result.replies = _move(
        session, Reply, old, new, {**blank_text, "original_text": None, "chat_id": "erased"}
    )
    result.updates = _move(
        session,
        JourneyUpdate,
        old,
        new,
        {**blank_text, "edited_text": None, "moderation_note": None},
    )
    _move(session, Consent, old, new, {"text_version": "", "credit": None})
    _move(session, Prompt, old, new, {})
    _move(session, Post, old, new, {})
    # What we sent them: the words are blanked; the message's own record (when, state) stays.
    _move(session, OutboxMessage, old, new, {})
    session.execute(  # posts too: their words (a deletion's text is the post's id: kept)
        update(OutboxMessage)
        .where(OutboxMessage.pledgemaker_id == new, OutboxMessage.action == "send")
        .values(text="", media=[])
    )
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.pledgemaker_id == new, OutboxMessage.contact_id.is_not(None))
        .values(recipient=ERASED_RECIPIENT, buttons=None)
    )
    for contact in contacts:  # their chat's messages from before it was bound to them too
        session.execute(
            update(Reply)
            .where(Reply.channel == contact.channel, Reply.chat_id == contact.address)
            .values(text="", original_text=None, media=[], chat_id="erased")
        )
    for contact in contacts:  # what the platform sent us: the event keys hold the chat id too
        session.execute(
            update(InboundEvent)
            .where(InboundEvent.channel == contact.channel, InboundEvent.chat_id == contact.address)
            .values(
                chat_id="erased",
                payload={},
                event_key=literal("erased:", String) + cast(InboundEvent.id, String),
            )
        )
    for contact in contacts:
        contact.address = f"erased:{contact.id}"
        contact.status, contact.status_changed_at = "gone", utcnow()
        contact.language = None
    _move(session, Contact, old, new, {})
    session.execute(  # the audit log keeps what staff did, under the anonymous id
        update(AuditEntry).where(AuditEntry.target == old).values(target=new)
    )
    session.execute(delete(InviteToken).where(InviteToken.pledgemaker_id == old))
    session.execute(delete(Handle).where(Handle.pledgemaker_id == old))
    session.execute(delete(Cadence).where(Cadence.pledgemaker_id == old))
    session.execute(  # who they were matched with says who they are
        delete(MatchSuggestion).where(
            or_(MatchSuggestion.seeker_id == old, MatchSuggestion.helper_id == old)
        )
    )
    session.flush()
    session.execute(delete(Pledgemaker).where(Pledgemaker.id == old))
    session.flush()
    result.files = files
    if result.posts_left_online and alerts is not None:
        links = ", ".join(post_link(*post) for post in result.posts_left_online)
        alerts.raise_alert(
            f"erased:{new}",
            f"A pledgemaker was erased on request (now {new}); these posts of theirs are still "
            f"online: {links}. Remove them by hand.",
            session=session,
        )
    return result


def _to_their_addresses(session: Session, person: Pledgemaker, contacts: list[Contact]) -> Any:
    """Outbox rows whose recipient is one of their addresses: a contact's, a handle's (the email
    and Matrix id the bot invites), and each invitation's."""
    addresses = {(c.channel, c.address) for c in contacts}
    addresses |= set(person.handles.items())
    invited = select(InviteToken.channel, InviteToken.address).where(
        InviteToken.pledgemaker_id == person.id, InviteToken.address.is_not(None)
    )
    addresses |= {(channel, address) for channel, address in session.execute(invited)}
    if not addresses:
        return false()
    return or_(
        *(
            and_(OutboxMessage.channel == channel, OutboxMessage.recipient == address)
            for channel, address in sorted(addresses)
        )
    )


def _move(session: Session, model: type[Base], old: str, new: str, values: dict[str, Any]) -> int:
    # Every model moved here has the column; their common Base does not declare it.
    column = model.pledgemaker_id  # type: ignore[attr-defined]
    return rows_changed(
        session.execute(update(model).where(column == old).values(pledgemaker_id=new, **values))
    )


def _files(session: Session, pledgemaker_id: str) -> list[Path]:
    """The media files stored from this pledgemaker's messages."""
    found: list[Path] = []
    for model in (Reply, JourneyUpdate):
        column = model.pledgemaker_id
        for media in session.scalars(select(model.media).where(column == pledgemaker_id)):
            found += [Path(item["path"]) for item in media or [] if item.get("path")]
    return found


def delete_files(erasure: Erasure) -> int:
    """After the commit (a rolled-back erasure keeps its files): the media they sent."""
    deleted = 0
    for path in dict.fromkeys(erasure.files):
        try:
            path.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted
