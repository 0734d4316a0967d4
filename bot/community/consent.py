"""Consent to publish: asked in the pledgemaker's chat, recorded as who, when, which text, which
answer. "No" keeps an update private (it still counts in reports); /withdraw takes consent back.
Only updates with a "yes" for their current text may be amplified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from bot.core.models import (
    Consent,
    Contact,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Post,
    utcnow,
)
from bot.delivery import failures, outbox
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

BUTTON_PREFIX = "pc:"  # pc:yes:<update>:<text version>, pc:no:…, pc:withdraw:<update>
KEY_PREFIX = "consent:"  # the questions' idempotency keys


def published_text(update: JourneyUpdate) -> str:
    return update.edited_text or update.text


def credit_line(pledgemaker: Pledgemaker) -> str:
    """Their name, with their X handle when they have one."""
    handle = pledgemaker.handles.get("x")
    return f"{pledgemaker.name} ({handle})" if handle else pledgemaker.name


def ask(
    session: Session, update: JourneyUpdate, templates: Templates, *, edited: bool = False
) -> bool:
    """Ask the pledgemaker, in their chat, whether this update may be published as it reads now;
    returns whether they have a chat to be asked in (if not, staff record their agreement).

    Each question names the version of the text it shows (its hash, in the buttons' data), so an
    answer to an older one is never taken for the text as it reads now. Asking again while the
    latest question is already about this version (a replay) sends nothing; a version asked
    about before and since changed (X, Y, X again) is asked again.
    """
    contact = session.scalar(
        select(Contact)
        .where(Contact.pledgemaker_id == update.pledgemaker_id, Contact.status == "active")
        .order_by(Contact.bound_at.desc())
        .limit(1)
    )
    pledgemaker = session.get(Pledgemaker, update.pledgemaker_id)
    if contact is None or pledgemaker is None:
        return False
    language = contact.language or pledgemaker.language
    text = published_text(update)
    version = hash_text(text)
    asked = list(
        session.scalars(
            select(OutboxMessage.idempotency_key)
            .where(OutboxMessage.idempotency_key.startswith(f"{KEY_PREFIX}{update.id}:"))
            .order_by(OutboxMessage.id)
        )
    )
    if asked and asked[-1].split(":")[2] == version:
        return True  # the latest question is about this very text
    # Questions about earlier words not sent yet never will be: only this one is to be answered.
    session.execute(
        sql_update(OutboxMessage)
        .where(
            OutboxMessage.idempotency_key.in_(asked),
            OutboxMessage.state.in_(("pending", "retry_wait")),
        )
        .values(
            state="cancelled",
            last_error="cancelled: the text changed, a new question asks about it",
            failure_class=failures.ANSWERED,
        )
    )
    phrase = "consent_ask_edited" if edited else "consent_ask"
    buttons = [
        [
            {
                "text": templates.phrase("consent_yes", language),
                "data": f"{BUTTON_PREFIX}yes:{update.id}:{version}",
                "answer": "yes",  # where buttons are typed (email), "yes" picks it
            },
            {
                "text": templates.phrase("consent_no", language),
                "data": f"{BUTTON_PREFIX}no:{update.id}:{version}",
                "answer": "no",
            },
        ]
    ]
    question = PlannedMessage(
        # consent:<update>:<version>:<how many questions before it>
        idempotency_key=f"{KEY_PREFIX}{update.id}:{version}:{len(asked)}",
        channel=contact.channel,
        recipient=contact.address,
        text=templates.phrase(phrase, language, text=text, credit=credit_line(pledgemaker)),
        pledgemaker_id=pledgemaker.id,
        contact_id=contact.id,
        parse_mode="HTML",
        buttons=buttons,
    )
    outbox.enqueue(session, [question])
    return True


def text_changed(session: Session, update: JourneyUpdate, templates: Templates) -> None:
    """Their answer changed in their chat (a message added to it, one of its messages edited):
    a "yes" to other words than those to publish now no longer stands, and they are asked about
    these. A "no" stands: the update stays private, whatever it grows into."""
    if update.consent_to_publish is False:
        return
    if update.consent_to_publish:
        agreed = session.scalar(
            select(Consent.text_version)
            .where(Consent.journey_update_id == update.id, Consent.answer == "yes")
            .order_by(Consent.id.desc())
            .limit(1)
        )
        if agreed == published_text(update):
            return
        update.consent_to_publish = None
    ask(session, update, templates, edited=update.edited_text is not None)


def answers_current_text(update: JourneyUpdate, version: str) -> bool:
    """Whether an answer to the question about ``version`` of the text (its ``hash_text``) is
    an answer about the text as it reads now. Buttons sent before questions named their version
    (``version`` empty) asked about the pledgemaker's own words: they count only while no edit
    stands in for them."""
    if not version:
        return published_text(update) == update.text
    return version == hash_text(published_text(update))


def record(
    session: Session, update: JourneyUpdate, answer: str, contact: Contact | None
) -> Consent:
    pledgemaker = session.get(Pledgemaker, update.pledgemaker_id)
    consent = Consent(
        journey_update_id=update.id,
        pledgemaker_id=update.pledgemaker_id,
        contact_id=contact.id if contact else None,
        answer=answer,
        text_version=published_text(update),
        credit=credit_line(pledgemaker) if pledgemaker else None,
        created_at=utcnow(),
    )
    session.add(consent)
    update.consent_to_publish = answer == "yes"
    return consent


@dataclass
class Withdrawal:
    updates: int  # updates whose consent was taken back
    cancelled: int  # posts still queued: cancelled before they went out
    live: list[tuple[str, str, str]]  # posts already out: (channel, destination, post id)
    deleting: int = 0  # post parts queued for deletion through the platform's API


def withdraw(
    session: Session,
    pledgemaker_id: str,
    contact: Contact | None,
    deletable: frozenset[str] = frozenset(),
    only: int | None = None,
) -> Withdrawal:
    """Take back every "yes" of this pledgemaker: queued posts are cancelled; live ones are taken
    down on the ``deletable`` channels (where the comms team turned that on), else listed."""
    given = list(
        session.scalars(
            select(JourneyUpdate).where(
                JourneyUpdate.pledgemaker_id == pledgemaker_id,
                JourneyUpdate.consent_to_publish.is_(True),
                JourneyUpdate.id == only if only is not None else JourneyUpdate.id.is_not(None),
            )
        )
    )
    for update in given:
        record(session, update, "withdrawn", contact)
    posts = session.execute(
        select(OutboxMessage)
        .join(Post, Post.first_outbox_id == OutboxMessage.id)
        .where(Post.journey_update_id.in_([u.id for u in given]))
    ).scalars()
    cancelled, deleting, live = 0, 0, []
    for first in posts:
        if first.state in ("pending", "retry_wait"):
            # Later parts of its thread fail as "thread broken" at the next claim.
            first.state, first.last_error = "cancelled", "consent withdrawn"
            cancelled += 1
        elif first.state in ("sent", "sending") and first.channel in deletable:
            deleting += _take_down(session, first)
        elif first.state in ("sent", "sending"):
            live.append((first.channel, first.recipient, first.external_id or "?"))
    return Withdrawal(len(given), cancelled, live, deleting)


def _take_down(session: Session, first: OutboxMessage) -> int:
    """Queue the deletion of every sent part of the post that starts with ``first``."""
    prefix = first.idempotency_key.rsplit(":", 1)[0] + ":"
    parts = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.idempotency_key.startswith(prefix), OutboxMessage.state == "sent"
        )
    )
    deletions = [
        PlannedMessage(
            idempotency_key=f"delete:{part.id}",
            channel=part.channel,
            recipient=part.recipient,
            text=part.external_id or "",
            action="delete",
        )
        for part in parts
        if part.external_id
    ]
    return outbox.enqueue(session, deletions)


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
