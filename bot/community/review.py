"""Moderation: the comms team approves, edits or rejects journey updates before any is published.

The pledgemaker's own words are never overwritten: an edit is kept beside them (``edited_text``).
An edit that changes their words needs their consent again: the bot asks them in their chat, or,
where they have none, staff record their agreement (who, when, how) before it can be published.
An update with media cannot be approved until every image has alt text.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bot.community import consent
from bot.core.errors import UserInputError
from bot.core.models import Consent, JourneyUpdate, utcnow
from bot.text.templates import Templates

STATES = ("pending", "approved", "rejected")
LATEST_ZONE = timedelta(hours=14)  # UTC+14 (Kiribati): the earth's first "today"


def get_update(session: Session, update_id: int) -> JourneyUpdate:
    update = session.get(JourneyUpdate, update_id)
    if update is None:
        raise UserInputError(f"no journey update {update_id} (see: pledgebot review --list)")
    return update


def listing_query(state: str | None, pillar: str = "") -> Select[tuple[JourneyUpdate]]:
    """Updates in ``state`` (default pending; "all"), oldest first: the queue's order."""
    if state is not None and state not in (*STATES, "all"):
        raise UserInputError(f"--state must be one of {', '.join(STATES)} or all (got {state!r})")
    query = select(JourneyUpdate).order_by(JourneyUpdate.created_at, JourneyUpdate.id)
    if state != "all":
        query = query.where(JourneyUpdate.moderation == (state or "pending"))
    if pillar:
        query = query.where(JourneyUpdate.pillar == pillar)
    return query


def listing(session: Session, state: str | None) -> list[JourneyUpdate]:
    return list(session.scalars(listing_query(state)))


def missing_alt_text(update: JourneyUpdate) -> int:
    return sum(1 for item in update.media or [] if not (item.get("alt_text") or "").strip())


def approve(session: Session, update_id: int) -> JourneyUpdate:
    update = get_update(session, update_id)
    if missing := missing_alt_text(update):
        raise UserInputError(
            f"update {update_id} has {missing} image(s) without alt text; add it first: "
            f"pledgebot review --alt-text {update_id} 'what the picture shows'"
        )
    update.moderation, update.moderated_at, update.moderation_note = "approved", utcnow(), None
    return update


def reject(session: Session, update_id: int, reason: str) -> JourneyUpdate:
    if not reason.strip():
        raise UserInputError("--reason is required to reject (it is kept for the record)")
    update = get_update(session, update_id)
    update.moderation, update.moderated_at, update.moderation_note = "rejected", utcnow(), reason
    return update


def edit(session: Session, update_id: int, text: str, templates: Templates) -> str:
    """Keep ``text`` beside the pledgemaker's words; returns how their agreement is sought.

    Whatever the update came from (their chat, an import), what they agreed to is no longer
    what would be published: consent is cleared until they agree again — ``ASKED`` in their
    chat where they have one, else ``TO_RECORD``: staff record who agreed, when and how
    (``record_agreement``). ``UNCHANGED`` when the text to publish is the same as before.
    """
    if not text.strip():
        raise UserInputError("--text must not be empty")
    update = get_update(session, update_id)
    # Locked, fresh: a "yes" being recorded for the text as it was finishes first (and is
    # cleared below), or waits and then finds the text changed.
    session.refresh(update, with_for_update=True)
    edited = text.strip() if text.strip() != update.text else None
    if edited == update.edited_text:
        return UNCHANGED
    update.edited_text = edited
    update.consent_to_publish = None
    # Back to their own words (``edited`` None), they are asked about them as about an answer.
    has_chat = consent.ask(session, update, templates, edited=edited is not None)
    return ASKED if has_chat else TO_RECORD


UNCHANGED, ASKED, TO_RECORD = "unchanged", "asked", "to record"
SAID = {
    UNCHANGED: "the text to publish is unchanged",
    ASKED: "the pledgemaker is asked to agree to it in their chat",
    TO_RECORD: (
        "the pledgemaker has no chat: it is published only once staff record their agreement "
        "(who agreed, when, how)"
    ),
}


def record_agreement(
    session: Session,
    update_id: int,
    *,
    agreed_by: str,
    agreed_on: date,
    how: str,
    recorded_by: str,
) -> Consent:
    """The pledgemaker agreed outside any chat (a call, a letter) to the update as it reads now."""
    update = get_update(session, update_id)
    if not agreed_by.strip() or not how.strip():
        raise UserInputError(
            "say who agreed (name and role) and how (a call, an email of 3 December…)"
        )
    if agreed_on > (utcnow() + LATEST_ZONE).date():  # "today" where the staff are, wherever
        raise UserInputError(f"the agreement's date {agreed_on} is in the future")
    if update.consent_to_publish:
        raise UserInputError(f"update {update_id}: the pledgemaker already agreed to this text")
    given = consent.record(session, update, "yes", None)
    given.recorded_by, given.agreed_by = recorded_by, agreed_by.strip()[:300]
    given.agreed_on, given.how = agreed_on, how.strip()[:500]
    return given


def set_alt_text(session: Session, update_id: int, alt_text: str) -> int:
    """Describe (or correct the description of) every image of the update; returns how many."""
    if not alt_text.strip():
        raise UserInputError("the alt text must not be empty")
    update = get_update(session, update_id)
    media = [dict(item) for item in update.media or []]
    for item in media:
        item["alt_text"] = alt_text.strip()
    update.media = media
    return len(media)
