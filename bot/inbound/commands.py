"""Commands a pledgemaker sends (/start with an invitation, /stop, /withdraw, /language, /help)
and the invitation an unbound chat answers."""

from __future__ import annotations

from sqlalchemy import select

from bot.community import consent, contacts, invitations
from bot.community.closing import post_link
from bot.core.models import OutboxMessage
from bot.core.vocab import LANGUAGES
from bot.inbound.turn import Turn


def command(turn: Turn, name: str, argument: str) -> str:
    if name == "start":
        return start(turn, argument)
    if name == "stop":
        if turn.contact is not None and turn.contact.status != "stopped":
            turn.contact.status, turn.contact.status_changed_at = "stopped", turn.now
        turn.say("stopped")
        return "stop: opted out"
    if name == "withdraw":
        if turn.contact is None:
            return turn.onboarding()
        return withdraw(turn)
    if name == "language":
        if argument not in LANGUAGES:
            turn.say("language_unknown")
            return f"language: unknown {argument!r}"
        if turn.contact is None:
            turn.say(
                "onboarding",
                key=f"onboarding:{turn.channel}:{turn.event.chat_id}",
                language=argument,
            )
            return "language: unbound chat"
        turn.contact.language = argument
        turn.say("language_set", language=argument)
        return f"language: {argument}"
    if turn.contact is None:
        return turn.onboarding()
    turn.say("help")
    return f"help ({name})"


def start(turn: Turn, token: str) -> str:
    if token:
        if turn.contact is not None and contacts.used_by(turn.session, token, turn.event.chat_id):
            return start(turn, "")  # the same link opened twice: already connected
        contact = contacts.redeem(turn.session, token, turn.channel, turn.event.chat_id)
        if contact is None:
            turn.say("link_refused")
            return "start: invitation refused"
        turn.contact = contact
        turn.say("linked", name=turn.name())
        return f"start: bound to {contact.pledgemaker_id}"
    if turn.contact is None:
        return turn.onboarding()
    if turn.contact.status != "active":
        turn.contact.status, turn.contact.status_changed_at = "active", turn.now
        turn.say("welcome_back", name=turn.name())
        return "start: opted back in"
    turn.say("help")
    return "start: already active"


def invitation(turn: Turn) -> str | None:
    """The open invitation this unbound chat answers: one the bot sent to its address (a
    reply to the invitation mail; the invited Matrix user joining the room), or the
    invitation mail it replies to (a colleague answering a forwarded invitation)."""
    sender = str(turn.event.sender.get("id") or "")
    for address in dict.fromkeys(a for a in (turn.event.chat_id, sender) if a):
        invite = invitations.open_invite(turn.session, turn.channel, address)
        if invite is not None:
            return invite.token
    replied = turn.event.reply_to or ""
    if turn.names_outbox_id and replied.isdigit():
        key = turn.session.scalar(
            select(OutboxMessage.idempotency_key).where(
                OutboxMessage.id == int(replied), OutboxMessage.channel == turn.channel
            )
        )
        if key and key.startswith(invitations.KEY_PREFIX):
            return key.removeprefix(invitations.KEY_PREFIX)
    return None


def withdraw(turn: Turn, only: int | None = None) -> str:
    """Consent taken back (all updates, or ``only`` one): queued posts cancelled, live ones
    taken down where the comms team turned that on, the rest listed to staff."""
    assert turn.contact is not None
    result = consent.withdraw(
        turn.session, turn.contact.pledgemaker_id, turn.contact, turn.conv.deletable, only
    )
    turn.say("consent_withdrawn" if only is None else "consent_withdrawn_one")
    if result.live and turn.conv.alerts is not None:
        links = ", ".join(post_link(*post) for post in result.live)
        turn.conv.alerts.raise_alert(
            f"withdrawn:{turn.event_id}",
            f"{turn.contact.pledgemaker_id} withdrew consent; these posts are live: "
            f"{links}. Remove them if the campaign's policy says so.",
            session=turn.session,
        )
    return (
        f"withdraw: {result.updates} update(s), {result.cancelled} queued post(s) "
        f"cancelled, {result.deleting} part(s) being deleted, {len(result.live)} live"
    )
