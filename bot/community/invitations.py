"""Invitations the bot sends itself, on the channels where it may write first.

Telegram and X do not let a bot open a conversation: there the campaign team hands out a link
(``contacts.create_invite`` + the adapter's ``invite_link``). By email and on Matrix the bot can
write to an address it was given — the pledgemaker's handle there (the ``email`` or
``matrix_id`` column of pledgemakers.csv) — so it sends the invitation through the outbox like
any message (rate limits, retries, the calendar):

- **email**: a mail asking them to confirm. Replying to it, or opening the confirmation link on
  the dashboard (``/join/<token>``, when ``[dashboard] public_url`` is set), binds the address;
  silence binds nothing, and the invitation expires.
- **Matrix**: the adapter opens a direct room and invites their user id; joining the room binds it.

The invitation remembers its address (``InviteToken.address``): a message from that address (or
a join, on Matrix) redeems it, so nobody has to copy a code. An address that opted out, or whose
mail bounced, is never invited again by a bulk run; a pledgemaker already connected on the
channel is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.channels.registry import spec
from bot.community.contacts import create_invite
from bot.core.errors import UserInputError
from bot.core.models import Contact, Handle, InviteToken, Pledgemaker, utcnow
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

# The channels where the bot writes first, to the pledgemaker's handle there (their address).
INVITES_ON = ("email", "matrix")
KEY_PREFIX = "invite:"  # the outbox idempotency key of an invitation: "invite:<token>"


@dataclass
class Invitations:
    queued: list[tuple[str, str]] = field(default_factory=list)  # (pledgemaker id, address)
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def sends_invitations(channel: str) -> bool:
    return channel in INVITES_ON


def join_url(public_url: str | None, token: str) -> str | None:
    return f"{public_url.rstrip('/')}/join/{token}" if public_url else None


def send(
    session: Session,
    templates: Templates,
    ids: list[str],
    channel: str,
    *,
    valid_for: timedelta = timedelta(days=30),
    public_url: str | None = None,
) -> Invitations:
    """Queue an invitation to each pledgemaker's address on ``channel``; returns what was
    queued and who was skipped, and why. Unknown ids are refused before anything is queued."""
    if channel not in INVITES_ON:
        raise UserInputError(
            f"the bot cannot write first on {channel}: use an invitation link "
            f"(channels it can invite on: {', '.join(sorted(INVITES_ON))})"
        )
    people = {
        p.id: p
        for p in session.scalars(
            select(Pledgemaker)
            .where(Pledgemaker.id.in_(ids), Pledgemaker.erased_at.is_(None))
            .options(selectinload(Pledgemaker.handle_rows))
        )
    }
    unknown = [i for i in ids if i not in people]
    if unknown:
        raise UserInputError(
            f"no pledgemaker with id {', '.join(map(repr, unknown[:5]))} (import them first)"
        )
    contacts = list(session.scalars(select(Contact).where(Contact.channel == channel)))
    result = Invitations()
    for pledgemaker_id in dict.fromkeys(ids):
        person = people[pledgemaker_id]
        address = person.handles.get(channel)
        theirs = [c for c in contacts if c.pledgemaker_id == person.id or c.address == address]
        reason = _why_not(session, channel, address, theirs)
        if reason is not None:
            result.skipped[reason].append(person.id)
            continue
        assert address is not None
        invite = create_invite(session, person.id, channel, valid_for=valid_for)
        invite.address = address
        message = PlannedMessage(
            idempotency_key=KEY_PREFIX + invite.token,
            channel=channel,
            recipient=address,
            text=templates.phrase(
                f"invite_{channel}",
                person.language,
                name=person.name,
                title=person.pledge_title,
                link=join_url(public_url, invite.token) or "",
                until=invite.expires_at.date(),
            ),
            pledgemaker_id=person.id,
            parse_mode="HTML",
        )
        outbox.enqueue(session, [message])
        result.queued.append((person.id, address))
    return result


def _why_not(
    session: Session, channel: str, address: str | None, contacts: list[Contact]
) -> str | None:
    """Why this pledgemaker gets no invitation now, or None. ``contacts``: theirs on the
    channel, and any other pledgemaker's at the same address."""
    if not address:
        return f"no {spec(channel).handle} on record"
    statuses = {c.status for c in contacts}
    if "stopped" in statuses:
        return "opted out"
    if "gone" in statuses:
        return "address unreachable (bounced or left)"
    if statuses:
        return "already connected"
    if open_invite(session, channel, address) is not None:
        return "invitation already open"
    return None


def open_invite(session: Session, channel: str, address: str) -> InviteToken | None:
    """The newest unused, unexpired invitation sent to ``address`` on ``channel``."""
    return session.scalar(
        select(InviteToken)
        .where(
            InviteToken.channel == channel,
            InviteToken.address == address,
            InviteToken.used_at.is_(None),
            InviteToken.expires_at > utcnow(),
        )
        .order_by(InviteToken.created_at.desc())
        .limit(1)
    )


def everyone(session: Session, channel: str) -> list[str]:
    """Every pledgemaker with an address for ``channel`` and no contact on it yet."""
    bound = select(Contact.pledgemaker_id).where(Contact.channel == channel)
    query = (
        select(Pledgemaker.id)
        .join(Handle, (Handle.pledgemaker_id == Pledgemaker.id) & (Handle.network == channel))
        .where(Pledgemaker.erased_at.is_(None), Pledgemaker.id.not_in(bound))
    )
    return list(session.scalars(query.order_by(Pledgemaker.id)))


def address_gone(session: Session, channel: str, address: str) -> bool:
    """Mail to ``address`` bounced for good (or the Matrix user left): its contact is marked
    gone; if it was an invitation's address, the address is recorded as gone for that
    pledgemaker (a bulk run will not write to it again) and the invitation closed. True in
    that case."""
    outbox.mark_contact_gone(session, channel, address)
    invite = open_invite(session, channel, address)
    if invite is None:
        return False
    now = utcnow()
    invite.expires_at = now
    session.add(
        Contact(
            pledgemaker_id=invite.pledgemaker_id,
            channel=channel,
            address=address,
            status="gone",
            bound_at=now,
            status_changed_at=now,
        )
    )
    return True
