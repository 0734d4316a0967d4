"""Introductions: matchmaking's suggestions, stored, and the consent of both sides.

1. ``refresh`` ranks every open challenge against other pledgemakers' solutions and progress
   (``bot.community.matchmaking``) and stores the best few per challenge as ``suggested``. A pair of
   pledgemakers is stored once, ever (``pair_key``), so a declined or finished pair is never
   suggested again.
2. The comms team accepts one (``accept``; CLI ``pledgebot matches accept ID``, dashboard) or
   declines it. Accepting asks each side, in their own chat and language, with Yes / No buttons
   (numbered options where there are none).
3. ``answer`` records each side's answer. Only when both said yes are the details exchanged: a
   message to each with the other's name, pledge and contact. A no ends it; the other side is
   not told (a plain "no" must not cost anyone face).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.core.errors import UserInputError
from bot.core.models import Contact, JourneyUpdate, MatchSuggestion, Pledgemaker, utcnow
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

if TYPE_CHECKING:
    from bot.community.matchmaking import Doc

BUTTON_PREFIX = "mi:"  # mi:yes:<suggestion id> / mi:no:<suggestion id>
OFFER_KINDS = ("solution", "progress")


def pair_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


# -- suggesting ------------------------------------------------------------------------------------
def documents(session: Session) -> tuple[list[Doc], list[Doc]]:
    """Challenges and offers to match: not rejected, from pledgemakers not erased, in the
    language their chat uses."""
    from bot.community import matchmaking  # scikit-learn and the stemmers: only when matching

    rows = session.execute(
        select(JourneyUpdate, Pledgemaker, Contact.language)
        .join(Pledgemaker, JourneyUpdate.pledgemaker_id == Pledgemaker.id)
        .outerjoin(Contact, JourneyUpdate.contact_id == Contact.id)
        .where(JourneyUpdate.moderation != "rejected", Pledgemaker.erased_at.is_(None))
        .order_by(JourneyUpdate.id)
    )
    challenges, offers = [], []
    for update, person, chat_language in rows:
        doc = matchmaking.Doc(
            id=str(update.id),
            pledgemaker_id=person.id,
            organisation=person.name,
            country=person.country,
            region=person.region,
            sector=person.sector,
            language=chat_language or person.language,
            pillar=update.pillar,
            kind=update.kind,
            text=update.edited_text or update.text,
        )
        if update.kind == "challenge":
            challenges.append(doc)
        elif update.kind in OFFER_KINDS:
            offers.append(doc)
    return challenges, offers


def refresh(session: Session, *, per_challenge: int = 3) -> list[MatchSuggestion]:
    """Store new suggestions; returns them. A challenge has at most ``per_challenge`` open
    ones (suggested, asking or introduced): declining one makes room for the next best on the
    next refresh. Pairs already stored (any state) are never suggested again."""
    from bot.community import matchmaking

    known = set(session.scalars(select(MatchSuggestion.pair_key)))
    open_ones = Counter(
        session.scalars(
            select(MatchSuggestion.challenge_update_id).where(
                MatchSuggestion.state.in_(("suggested", "asking", "introduced"))
            )
        )
    )
    challenges, offers = documents(session)
    challenges = [c for c in challenges if open_ones[int(c.id)] < per_challenge]
    skip = frozenset((a, b) for a, _, b in (key.partition("|") for key in known))
    ranked = matchmaking.rank(challenges, offers, top=per_challenge, skip=skip)
    made: list[MatchSuggestion] = []
    for challenge in challenges:
        room = per_challenge - open_ones[int(challenge.id)]
        for suggestion in ranked.get(challenge.id, [])[:room]:
            key = pair_key(challenge.pledgemaker_id, suggestion.offer.pledgemaker_id)
            if key in known:  # two challenges of one pledgemaker found the same partner
                continue
            known.add(key)
            row = MatchSuggestion(
                pair_key=key,
                challenge_update_id=int(challenge.id),
                offer_update_id=int(suggestion.offer.id),
                seeker_id=challenge.pledgemaker_id,
                helper_id=suggestion.offer.pledgemaker_id,
                score=suggestion.score,
                reason=suggestion.reason,
                topics=suggestion.topics,
                state="suggested",
            )
            session.add(row)
            made.append(row)
    session.flush()
    return made


@dataclass
class Listed:
    suggestion: MatchSuggestion
    seeker: Pledgemaker
    helper: Pledgemaker
    challenge: JourneyUpdate
    offer: JourneyUpdate


def listing(session: Session, states: tuple[str, ...] = ("suggested",)) -> list[Listed]:
    rows = session.scalars(
        select(MatchSuggestion)
        .where(MatchSuggestion.state.in_(states))
        .order_by(MatchSuggestion.score.desc(), MatchSuggestion.id)
    )
    found = []
    for row in rows:
        parts = [
            session.get(Pledgemaker, row.seeker_id),
            session.get(Pledgemaker, row.helper_id),
            session.get(JourneyUpdate, row.challenge_update_id),
            session.get(JourneyUpdate, row.offer_update_id),
        ]
        if all(part is not None for part in parts):
            # all() does not narrow the list for mypy: here no part is None.
            found.append(Listed(row, *parts))  # type: ignore[arg-type]
    return found


# -- the comms team's decision ---------------------------------------------------------------------
def find(session: Session, suggestion_id: int) -> MatchSuggestion:
    row = session.get(MatchSuggestion, suggestion_id)
    if row is None:
        raise UserInputError(f"no match suggestion {suggestion_id} (see `pledgebot matches list`)")
    return row


def decline(session: Session, suggestion_id: int, actor: str) -> MatchSuggestion:
    row = find(session, suggestion_id)
    if row.state != "suggested":
        raise UserInputError(f"suggestion {suggestion_id} is already {row.state}")
    row.state, row.decided_by, row.decided_at = "declined", actor, utcnow()
    return row


def accept(
    session: Session, suggestion_id: int, actor: str, templates: Templates
) -> MatchSuggestion:
    """Ask both sides. Refused (nothing asked) if either cannot be reached."""
    row = find(session, suggestion_id)
    if row.state != "suggested":
        raise UserInputError(f"suggestion {suggestion_id} is already {row.state}")
    sides = [(row.seeker_id, row.helper_id, "seeker"), (row.helper_id, row.seeker_id, "helper")]
    asks = []
    for own, other, role in sides:
        contact = active_contact(session, own)
        if contact is None:
            raise UserInputError(f"{own} has no active chat contact: they cannot be asked")
        asks.append(_ask(session, row, contact, own, other, role, templates))
    outbox.enqueue(session, asks)
    row.state, row.decided_by, row.decided_at = "asking", actor, utcnow()
    return row


def active_contact(session: Session, pledgemaker_id: str) -> Contact | None:
    return session.scalar(
        select(Contact)
        .where(Contact.pledgemaker_id == pledgemaker_id, Contact.status == "active")
        .order_by(Contact.bound_at.desc())
        .limit(1)
    )


def _ask(
    session: Session,
    row: MatchSuggestion,
    contact: Contact,
    own: str,
    other: str,
    role: str,
    templates: Templates,
) -> PlannedMessage:
    from bot.community import matchmaking

    me, them = session.get(Pledgemaker, own), session.get(Pledgemaker, other)
    assert me is not None and them is not None
    language = contact.language or me.language
    about = [matchmaking.label(t, language) for t in row.topics[:2]]
    text = templates.phrase(
        f"intro_ask_{role}",
        language,
        other=them.name,
        country=_country(them.country, language),
        topics=" · ".join(about),
    )
    buttons = [
        [
            {
                "text": templates.phrase("intro_yes", language),
                "data": f"{BUTTON_PREFIX}yes:{row.id}",
                "answer": "yes",
            },
            {
                "text": templates.phrase("intro_no", language),
                "data": f"{BUTTON_PREFIX}no:{row.id}",
                "answer": "no",
            },
        ]
    ]
    return PlannedMessage(
        idempotency_key=f"intro-ask:{row.id}:{own}",
        channel=contact.channel,
        recipient=contact.address,
        text=text,
        pledgemaker_id=own,
        contact_id=contact.id,
        parse_mode="HTML",
        buttons=buttons,
    )


def _country(code: str, language: str) -> str:
    from babel import Locale

    return str(Locale(language).territories.get(code.upper(), code))


# -- their answers ---------------------------------------------------------------------------------
def answer(
    session: Session, suggestion_id: int, pledgemaker_id: str, said: str, templates: Templates
) -> str:
    """Record one side's yes or no; returns what happened (for the event's outcome)."""
    row = session.get(MatchSuggestion, suggestion_id)
    if row is None or pledgemaker_id not in (row.seeker_id, row.helper_id):
        return "ignored: not their introduction"
    if row.state != "asking":
        return f"ignored: introduction {suggestion_id} is {row.state}"
    if row.seeker_id == pledgemaker_id:
        row.seeker_answer = said
    else:
        row.helper_answer = said
    contact = active_contact(session, pledgemaker_id)
    if said == "no":
        row.state, row.closed_at = "ended", utcnow()
        _say(session, contact, pledgemaker_id, "intro_no_thanks", f"intro-no:{row.id}", templates)
        return f"introduction {row.id}: no"
    if row.seeker_answer == "yes" and row.helper_answer == "yes":
        row.state, row.closed_at = "introduced", utcnow()
        _introduce(session, row, templates)
        return f"introduction {row.id}: both yes, introduced"
    _say(session, contact, pledgemaker_id, "intro_yes_thanks", f"intro-yes:{row.id}", templates)
    return f"introduction {row.id}: yes, waiting for the other side"


def _say(
    session: Session,
    chat: Contact | None,
    pledgemaker_id: str,
    phrase: str,
    key: str,
    templates: Templates,
    **context: Any,
) -> None:
    person = session.get(Pledgemaker, pledgemaker_id)
    if chat is None or person is None:
        return
    language = chat.language or person.language
    outbox.enqueue(
        session,
        [
            PlannedMessage(
                idempotency_key=f"{key}:{pledgemaker_id}",
                channel=chat.channel,
                recipient=chat.address,
                text=templates.phrase(phrase, language, **context),
                pledgemaker_id=pledgemaker_id,
                contact_id=chat.id,
                parse_mode="HTML",
            )
        ],
    )


def _introduce(session: Session, row: MatchSuggestion, templates: Templates) -> None:
    for own, other in ((row.seeker_id, row.helper_id), (row.helper_id, row.seeker_id)):
        them = session.get(Pledgemaker, other)
        me = session.get(Pledgemaker, own)
        contact = active_contact(session, own)
        if them is None or me is None:
            continue
        language = (contact.language if contact else None) or me.language
        _say(
            session,
            contact,
            own,
            "intro_made",
            f"intro-made:{row.id}",
            templates,
            other=them.name,
            country=_country(them.country, language),
            title=them.pledge_title,
            contact=contact_line(session, them),
        )


def contact_line(session: Session, person: Pledgemaker) -> str:
    """How to reach them, from what they gave us: email, Matrix id, website, handles."""
    handles = person.handles
    ways = [handles.get("email"), handles.get("matrix"), person.website, handles.get("x")]
    email = session.scalar(
        select(Contact.address).where(
            Contact.pledgemaker_id == person.id,
            Contact.channel == "email",
            Contact.status == "active",
        )
    )
    found = [w for w in dict.fromkeys([email, *ways]) if w]
    return " · ".join(found) if found else person.name


def involving(session: Session, pledgemaker_id: str) -> list[MatchSuggestion]:
    return list(
        session.scalars(
            select(MatchSuggestion).where(
                or_(
                    MatchSuggestion.seeker_id == pledgemaker_id,
                    MatchSuggestion.helper_id == pledgemaker_id,
                )
            )
        )
    )
