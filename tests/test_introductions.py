"""Introductions: suggestions stored once per pair, the comms team's accept or decline, both
sides asked in their own chat and language, details exchanged only after two yeses, a no that
ends it without telling the other side, erasure, and the `pledgebot matches` commands.

Both database backends; answers go through the conversation as button presses (Telegram) and as
a typed "yes" (email)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.channels.base import InboundEvent
from bot.community import erasure, introductions
from bot.core.errors import UserInputError
from bot.core.models import (
    Contact,
    JourneyUpdate,
    MatchSuggestion,
    OutboxMessage,
    Pledgemaker,
    utcnow,
)
from bot.core.models import InboundEvent as EventRow
from bot.inbound.inbox import store_events
from bot.service.app import App
from tests.auxil.cli import pledgebot

GH = "gh-min-labour"  # Ghana, government, English
ILO = "ilo"  # Switzerland, UN agency, English
CHALLENGE = (
    "During the cocoa harvest many children drop out of school to work on their "
    "families' farms, and our teachers cannot keep them in class."
)
SOLUTION = (
    "We moved the school calendar around the cocoa harvest and run catch-up classes, so "
    "pupils who helped on the farms come back to school."
)
UNRELATED = "Our radio programme on the minimum age convention reached twelve provinces."


def update(app: App, pledgemaker_id: str, kind: str, text: str, **extra: Any) -> int:
    with app.db.session() as session:
        row = JourneyUpdate(
            pledgemaker_id=pledgemaker_id,
            pillar="act",
            kind=kind,
            text=text,
            source="import",
            source_ref=f"{pledgemaker_id}:{kind}:{uuid.uuid4()}",
            moderation=extra.pop("moderation", "pending"),
            created_at=utcnow(),
            **extra,
        )
        session.add(row)
        session.flush()
        return row.id


def bind(app: App, pledgemaker_id: str, channel: str, address: str, **extra: Any) -> None:
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id=pledgemaker_id,
                channel=channel,
                address=address,
                bound_at=utcnow(),
                **extra,
            )
        )


def other_pledgemaker(app: App, language: str = "en") -> str:
    with app.db.session() as session:
        return next(
            p.id
            for p in session.scalars(select(Pledgemaker).where(Pledgemaker.language == language))
            if p.id not in (GH, ILO)
        )


def suggested(app: App) -> list[MatchSuggestion]:
    with app.db.session() as session:
        made = introductions.refresh(session)
        session.expunge_all()
        return made


def sent_to(app: App, address: str) -> list[OutboxMessage]:
    with app.db.session() as session:
        query = select(OutboxMessage).where(OutboxMessage.recipient == address)
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def press(app: App, channel: str, chat: str, data: str) -> str:
    event = InboundEvent(key=f"b:{chat}:{data}", kind="button", chat_id=chat, button_data=data)
    return handle(app, channel, event)


def handle(app: App, channel: str, event: InboundEvent) -> str:
    with app.db.session() as session:
        store_events(session, channel, [event], None)
        number = session.scalar(select(EventRow.id).where(EventRow.event_key == event.key))
        return app.conversation().handle(session, channel, number, event, [])


@pytest.fixture
def pair(app: App) -> tuple[int, int]:
    """GH's challenge and ILO's solution to it, both reachable on Telegram."""
    challenge = update(app, GH, "challenge", CHALLENGE)
    solution = update(app, ILO, "solution", SOLUTION)
    bind(app, GH, "telegram", "501")
    bind(app, ILO, "telegram", "502")
    return challenge, solution


# -- suggestions ------------------------------------------------------------------------------------
def test_a_challenge_is_paired_with_a_solution_once_with_a_reason(
    app: App, pair: tuple[int, int]
) -> None:
    challenge, solution = pair
    update(app, other_pledgemaker(app), "progress", UNRELATED)
    update(app, GH, "solution", SOLUTION + " Our own district did it too.")  # never to themselves
    [made] = suggested(app)
    assert (made.challenge_update_id, made.offer_update_id) == (challenge, solution)
    assert (made.seeker_id, made.helper_id, made.state) == (GH, ILO, "suggested")
    assert made.reason.startswith("both on cocoa, agriculture and schooling")
    assert "International Labour Organization reported a solution" in made.reason
    assert suggested(app) == [], "a pair is suggested once"
    with app.db.session() as session:
        introductions.decline(session, made.id, "test")
    update(app, ILO, "solution", SOLUTION + " Now in three more regions.")
    assert suggested(app) == [], "a declined pair is remembered"


def test_a_challenge_has_three_open_suggestions_and_a_decline_makes_room(app: App) -> None:
    update(app, GH, "challenge", CHALLENGE)
    with app.db.session() as session:
        helpers = [
            p
            for p in session.scalars(
                select(Pledgemaker.id).where(Pledgemaker.language == "en").order_by("id")
            )
            if p != GH
        ][:5]
    for number, helper in enumerate(helpers):
        update(app, helper, "solution", f"{SOLUTION} Step {number}: catch-up classes again.")
    first = suggested(app)
    assert len(first) == 3 and suggested(app) == [], "three at a time, not three per refresh"
    with app.db.session() as session:
        introductions.decline(session, first[0].id, "test")
    [replacement] = suggested(app)
    assert replacement.helper_id not in {m.helper_id for m in first}


def test_only_the_same_language_and_not_rejected_updates_are_matched(app: App) -> None:
    update(app, GH, "challenge", CHALLENGE)
    update(app, ILO, "solution", SOLUTION, moderation="rejected")
    french = other_pledgemaker(app, "fr")
    update(
        app, french, "solution", "Nous avons adapté le calendrier scolaire à la récolte du cacao."
    )
    assert suggested(app) == []


# -- the comms team decides -------------------------------------------------------------------------
def test_accepting_asks_both_sides_in_their_own_language(app: App) -> None:
    with app.db.session() as session:
        query = select(Pledgemaker.id).where(Pledgemaker.language == "fr").order_by("id")
        french, helper = list(session.scalars(query))[:2]
    update(app, french, "challenge", "Pendant la récolte du cacao, les enfants quittent l'école.")
    update(
        app,
        helper,
        "solution",
        "Nous avons adapté le calendrier scolaire à la récolte du cacao et créé des classes "
        "de rattrapage.",
    )
    bind(app, french, "telegram", "601")
    bind(app, helper, "email", "contact@ong.example", language="es")
    [made] = suggested(app)
    with app.db.session() as session:
        introductions.accept(session, made.id, "editor@example.org", app.templates)
    [to_seeker] = sent_to(app, "601")
    [to_helper] = sent_to(app, "contact@ong.example")
    assert "Souhaitez-vous que nous vous mettions en relation" in to_seeker.text
    assert "¿Quiere que les pongamos en contacto?" in to_helper.text, "their chat's language"
    assert [b["data"] for b in to_seeker.buttons[0]] == [  # type: ignore[index]
        f"mi:yes:{made.id}",
        f"mi:no:{made.id}",
    ]
    with app.db.session() as session, pytest.raises(UserInputError, match="already asking"):
        introductions.accept(session, made.id, "editor@example.org", app.templates)


def test_nobody_is_asked_when_one_side_cannot_be_reached(app: App) -> None:
    update(app, GH, "challenge", CHALLENGE)
    update(app, ILO, "solution", SOLUTION)
    bind(app, GH, "telegram", "501")
    bind(app, ILO, "telegram", "502", status="stopped")
    [made] = suggested(app)
    with app.db.session() as session, pytest.raises(UserInputError, match="ilo has no active"):
        introductions.accept(session, made.id, "editor@example.org", app.templates)
    assert sent_to(app, "501") == []
    with app.db.session() as session:
        assert session.get(MatchSuggestion, made.id).state == "suggested"  # type: ignore[union-attr]


# -- their answers ----------------------------------------------------------------------------------
def accepted(app: App) -> int:
    [made] = suggested(app)
    with app.db.session() as session:
        introductions.accept(session, made.id, "editor@example.org", app.templates)
    return made.id


def test_two_yeses_exchange_names_pledges_and_contacts(app: App, pair: tuple[int, int]) -> None:
    number = accepted(app)
    with app.db.session() as session:
        session.get(Pledgemaker, ILO).handles["email"] = "partnerships@ilo.example"  # type: ignore[union-attr]
    assert press(app, "telegram", "501", f"mi:yes:{number}") == (
        f"introduction {number}: yes, waiting for the other side"
    )
    assert "If they agree too" in sent_to(app, "501")[-1].text
    assert press(app, "telegram", "502", f"mi:yes:{number}") == (
        f"introduction {number}: both yes, introduced"
    )
    to_gh, to_ilo = sent_to(app, "501")[-1].text, sent_to(app, "502")[-1].text
    assert to_gh.startswith("Meet International Labour Organization (Switzerland)")
    assert "partnerships@ilo.example" in to_gh and "https://www.ilo.org" in to_gh
    assert to_ilo.startswith("Meet Ministry of Employment") and "(Ghana)" in to_ilo
    with app.db.session() as session:
        row = session.get(MatchSuggestion, number)
        assert row is not None and (row.state, row.seeker_answer, row.helper_answer) == (
            "introduced",
            "yes",
            "yes",
        )
    assert press(app, "telegram", "502", f"mi:no:{number}").startswith("ignored:")


def test_a_no_ends_it_and_the_other_side_is_not_told(app: App, pair: tuple[int, int]) -> None:
    number = accepted(app)
    press(app, "telegram", "501", f"mi:yes:{number}")
    before = len(sent_to(app, "501"))
    assert press(app, "telegram", "502", f"mi:no:{number}") == f"introduction {number}: no"
    assert "we will not share your details" in sent_to(app, "502")[-1].text
    assert len(sent_to(app, "501")) == before, "the one who said yes hears nothing"
    assert all("Meet " not in m.text for m in sent_to(app, "501") + sent_to(app, "502"))


def test_a_typed_yes_by_email_answers_the_question(app: App) -> None:
    update(app, GH, "challenge", CHALLENGE)
    update(app, ILO, "solution", SOLUTION)
    bind(app, GH, "email", "ana@ministry.example")
    bind(app, ILO, "telegram", "502")
    number = accepted(app)
    with app.db.session() as session:
        question = session.scalar(
            select(OutboxMessage).where(OutboxMessage.recipient == "ana@ministry.example")
        )
        assert question is not None
        question.state, question.sent_at = "sent", utcnow()
        asked = str(question.id)
    event = InboundEvent(
        key="mail:1", kind="message", chat_id="ana@ministry.example", text="Yes", reply_to=asked
    )
    assert handle(app, "email", event) == (
        f"typed introduction {number}: yes, waiting for the other side"
    )


def test_a_button_for_someone_elses_introduction_is_ignored(
    app: App, pair: tuple[int, int]
) -> None:
    number = accepted(app)
    bind(app, other_pledgemaker(app), "telegram", "503")
    assert press(app, "telegram", "503", f"mi:yes:{number}") == "ignored: not their introduction"


def test_erasing_a_pledgemaker_forgets_their_introductions(app: App, pair: tuple[int, int]) -> None:
    accepted(app)
    with app.db.session() as session:
        exported = erasure.export_data(session, GH)
        assert [i["state"] for i in exported["introductions"]] == ["asking"]
        erasure.erase(session, GH)
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(MatchSuggestion)) == 0


# -- the commands -----------------------------------------------------------------------------------
def test_matches_list_accept_and_decline_from_the_command_line(
    app: App, config_path: Path, pair: tuple[int, int]
) -> None:
    folder = config_path.parent
    listed = pledgebot(folder, "matches", "list", "--json", token="1:T")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["seeker"], row["helper"], row["state"]) == (GH, ILO, "suggested")
    assert row["challenge_text"] == CHALLENGE and "1 suggestion(s) (1 new)" in listed.stderr
    accepted_ = pledgebot(folder, "matches", "accept", str(row["id"]), token="1:T")
    assert accepted_.returncode == 0, accepted_.stderr
    assert len(sent_to(app, "501")) == len(sent_to(app, "502")) == 1
    again = pledgebot(folder, "matches", "decline", str(row["id"]), token="1:T")
    assert (again.returncode, again.stderr) == (1, f"suggestion {row['id']} is already asking\n")
    unknown = pledgebot(folder, "matches", "accept", "999", token="1:T")
    assert unknown.returncode == 1 and "no match suggestion 999" in unknown.stderr
    bad = pledgebot(folder, "matches", "list", "--state", "maybe", token="1:T")
    assert bad.returncode == 1 and "--state must be one of" in bad.stderr
