"""Consent is to one version of the text: the question's buttons name it (its hash), and an answer
to an older question — tapped, or typed by email — records nothing once staff changed the words.

End to end through the inbox and conversation (python-telegram-bot over HTTP against the
sandbox), on a frozen, ticking clock; the email cases through the conversation directly.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import InboundEvent
from bot.community import consent, review
from bot.core.models import Consent, Contact, JourneyUpdate, OutboxMessage, utcnow
from bot.core.models import InboundEvent as EventRow
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.inbound.inbox import store_events
from bot.service import feed
from bot.service.app import App
from tests.auxil.clocked import live_at
from tests.auxil.live import Live

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday morning
GH = "gh-min-labour"  # English
CI = "ci-cocoa-coop"  # French
THEIRS = "We trained 12 labour inspectors."
OURS = "We trained 12 labour inspectors in 2026."
OURS_AGAIN = "In 2026 we trained 12 labour inspectors."


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    async with live_at(NOW, tmp_path, monkeypatch) as (running, _):
        yield running


async def answered(live: Live, pledgemaker: str, chat: int) -> JourneyUpdate:
    """Bound, prompted, answered with THEIRS: a pending update and its consent question."""
    await live.bind(pledgemaker, chat)
    await live.fire("act-checkin", to=pledgemaker)
    live.sandbox.push_message(chat, THEIRS)
    await live.settle()
    return live.scalar(select(JourneyUpdate))


def questions(live: Live, chat: int) -> list[dict[str, Any]]:
    """The consent questions in the chat, oldest first."""
    return [
        m
        for m in live.sandbox.sent_messages(chat)
        if any(b.startswith("pc:yes:") for b in buttons(m))
    ]


def buttons(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


async def edit(live: Live, update_id: int, text: str) -> str:
    with live.app.db.session() as session:
        outcome = review.edit(session, update_id, text, live.app.templates)
    await live.settle()
    return outcome


async def press_yes(live: Live, chat: int, question: dict[str, Any]) -> None:
    [yes] = [b for b in buttons(question) if b.startswith("pc:yes:")]
    live.sandbox.press_button(chat, question["message_id"], yes)
    await live.settle()


def publishable(live: Live, update_id: int) -> list[str]:
    """Approve it; what the public feed then shows."""
    with live.app.db.session() as session:
        review.approve(session, update_id)
    with live.app.db.session() as session:
        return [entry.text for entry in feed.entries(session)]


async def test_yes_under_the_question_before_an_edit_records_nothing(live: Live) -> None:
    update = await answered(live, GH, 601)
    assert await edit(live, update.id, OURS) == review.ASKED
    first, latest = questions(live, 601)
    assert THEIRS in first["text"] and OURS in latest["text"]
    assert all(len(data.encode()) <= 64 for data in buttons(first) + buttons(latest))

    await press_yes(live, 601, first)

    assert live.count(Consent) == 0, "they never saw the words that would be published"
    assert live.scalar(select(JourneyUpdate.consent_to_publish)) is None
    assert live.texts(601)[-1] == (
        "The text of this update has changed since that question, so we have not recorded "
        "your answer. Please answer the latest question about it."
    )
    assert len(questions(live, 601)) == 2, "the latest question already asks about OURS"
    assert publishable(live, update.id) == []

    await press_yes(live, 601, latest)
    given = live.scalar(select(Consent))
    assert (given.answer, given.text_version) == ("yes", OURS)
    assert live.texts(601)[-1].startswith("Thank you! Your update may be shared")
    with live.app.db.session() as session:
        assert [entry.text for entry in feed.entries(session)] == [OURS]


async def test_two_edits_in_a_row_only_the_last_question_counts(live: Live) -> None:
    update = await answered(live, GH, 602)
    await edit(live, update.id, OURS)
    await edit(live, update.id, OURS_AGAIN)
    _, second, third = questions(live, 602)
    await press_yes(live, 602, second)
    assert live.count(Consent) == 0
    assert live.texts(602)[-1].startswith("The text of this update has changed")
    await press_yes(live, 602, third)
    assert live.all(select(Consent.text_version)) == [OURS_AGAIN]
    assert publishable(live, update.id) == [OURS_AGAIN]


async def test_back_to_words_asked_about_before_asks_again(live: Live) -> None:
    """X, then Y, then X again: X is asked about again (staff are not told there is no chat),
    and the yes under the new question is consent to X."""
    update = await answered(live, GH, 603)
    assert await edit(live, update.id, OURS) == review.ASKED
    assert await edit(live, update.id, THEIRS) == review.ASKED
    first, _, again = questions(live, 603)
    assert again["text"].startswith("May we share this update publicly"), "their own words"
    assert THEIRS in again["text"] and buttons(again) == buttons(first)
    await press_yes(live, 603, again)
    assert live.all(select(Consent.text_version)) == [THEIRS]
    assert publishable(live, update.id) == [THEIRS]


async def test_the_refusal_is_in_their_language(live: Live) -> None:
    update = await answered(live, CI, 604)
    await edit(live, update.id, OURS)
    first, _ = questions(live, 604)
    await press_yes(live, 604, first)
    assert live.count(Consent) == 0
    assert live.texts(604)[-1].startswith("Le texte de cette mise à jour a changé")


async def test_a_button_sent_before_questions_named_their_version(live: Live) -> None:
    """``pc:yes:<id>`` asked about their own words: it counts while no edit stands in for them."""
    update = await answered(live, GH, 605)
    old_style = [[{"text": "Yes, share it", "data": f"pc:yes:{update.id}"}]]
    for key in ("old-question:1", "old-question:2"):
        with live.app.db.session() as session:
            contact = session.scalar(select(Contact))
            message = PlannedMessage(
                key, "telegram", "605", "May we?", contact_id=contact.id, buttons=old_style
            )
            outbox.enqueue(session, [message])
        await live.settle()
    before, after = live.sandbox.sent_messages(605)[-2:]

    await edit(live, update.id, OURS)
    await press_yes(live, 605, after)
    assert live.count(Consent) == 0, "an old button is about their words, not ours"
    assert live.texts(605)[-1].startswith("The text of this update has changed")

    await edit(live, update.id, THEIRS)
    await press_yes(live, 605, before)
    assert live.all(select(Consent.text_version)) == [THEIRS]


async def test_a_yes_before_their_answer_grew_does_not_stand(live: Live) -> None:
    """Their own words change too: a message added to the answer, or one of its messages
    edited, asks again — and a yes to the shorter text no longer publishes the longer one."""
    update = await answered(live, GH, 606)
    [first] = questions(live, 606)
    await press_yes(live, 606, first)
    assert live.scalar(select(JourneyUpdate.consent_to_publish)) is True
    live.sandbox.push_message(606, "And 30 more next month.")  # within the answer's window
    await live.settle()

    grown = f"{THEIRS}\n\nAnd 30 more next month."
    assert live.scalar(select(JourneyUpdate.text)) == grown
    assert live.scalar(select(JourneyUpdate.consent_to_publish)) is None
    _, latest = questions(live, 606)
    assert "And 30 more next month." in latest["text"]
    await press_yes(live, 606, first)
    assert live.scalar(select(JourneyUpdate.consent_to_publish)) is None
    assert live.texts(606)[-1].startswith("The text of this update has changed")
    await press_yes(live, 606, latest)
    assert live.all(select(Consent.text_version).order_by(Consent.id)) == [THEIRS, grown]
    assert publishable(live, update.id) == [grown]


async def test_their_edit_of_an_agreed_answer_asks_again(live: Live) -> None:
    await live.bind(GH, 607)
    await live.fire("act-checkin", to=GH)
    message_id = live.sandbox.push_message(607, THEIRS)
    await live.settle()
    [first] = questions(live, 607)
    await press_yes(live, 607, first)
    live.sandbox.push_edit(607, message_id, "We trained 120 labour inspectors.")
    await live.settle()
    assert live.scalar(select(JourneyUpdate.consent_to_publish)) is None
    _, latest = questions(live, 607)
    assert "We trained 120 labour inspectors." in latest["text"]
    assert latest["text"].startswith("May we share this update publicly")


# -- typed: email, where the buttons are numbered options under the mail ------------------------
ANA = "ana@ministry.example"


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def mailed_questions(app: App) -> list[int]:
    """Mark every queued consent question sent, as the dispatcher would; their ids."""
    with app.db.session() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.idempotency_key.startswith("consent:"))
            .order_by(OutboxMessage.id)
        ).all()
        for row in rows:
            if row.state == "pending":
                row.state, row.sent_at = "sent", utcnow()
        return [row.id for row in rows]


def mail(app: App, text: str, reply_to: int, session: Session | None = None) -> str:
    """Ana's mail ``text`` in reply to our message ``reply_to``, handled (in ``session``)."""
    if session is None:
        with app.db.session() as session:
            return mail(app, text, reply_to, session)
    event = InboundEvent(key=f"k:{text}:{reply_to}", kind="message", chat_id=ANA, text=text)
    event.reply_to = str(reply_to)
    store_events(session, "email", [event], None)
    number = session.scalar(select(EventRow.id).where(EventRow.event_key == event.key))
    return app.conversation().handle(session, "email", number, event, [])


def edited_by_mail(app: App) -> tuple[int, int, int]:
    """Ana answered THEIRS, was asked about it by mail, then about OURS: the update's id and
    the two questions'."""
    with app.db.session() as session:
        contact = Contact(pledgemaker_id=GH, channel="email", address=ANA, bound_at=utcnow())
        session.add(contact)
        session.flush()
        update = JourneyUpdate(
            pledgemaker_id=GH,
            contact_id=contact.id,
            pillar="act",
            kind="progress",
            source="reply",
            source_ref="event:mail",
            text=THEIRS,
            moderation="pending",
            created_at=utcnow(),
        )
        session.add(update)
        session.flush()
        assert consent.ask(session, update, app.templates)
        update_id = update.id
    [first] = mailed_questions(app)
    with app.db.session() as session:
        assert review.edit(session, update_id, OURS, app.templates) == review.ASKED
    _, latest = mailed_questions(app)
    return update_id, first, latest


@pytest.mark.usefixtures("frozen")
def test_a_typed_yes_answers_the_question_it_replies_to(app: App) -> None:
    update_id, first, latest = edited_by_mail(app)

    outcome = mail(app, "Yes", reply_to=first)
    assert outcome == f"typed update {update_id}: consent yes refused, its text has changed since"
    with app.db.session() as session:
        assert session.scalar(select(Consent)) is None
        assert session.get(JourneyUpdate, update_id).consent_to_publish is None
        said = session.scalars(select(OutboxMessage.text).order_by(OutboxMessage.id)).all()
    assert said[-1].startswith("The text of this update has changed")

    assert mail(app, "1", reply_to=latest) == f"typed update {update_id}: consent yes"
    with app.db.session() as session:
        given = session.scalars(select(Consent)).one()
    assert (given.answer, given.text_version) == ("yes", OURS)


@pytest.mark.usefixtures("frozen")
def test_an_edit_made_while_a_yes_is_being_recorded_clears_it(app: App) -> None:
    """Staff edit OURS again while Ana's yes to OURS is being recorded: whichever commits
    first, the update does not end up agreed to with words she never saw."""
    update_id, _, latest = edited_by_mail(app)
    outcomes: list[str] = []

    def staff_edit() -> None:
        with app.db.session() as session:
            outcomes.append(review.edit(session, update_id, OURS_AGAIN, app.templates))

    staff = threading.Thread(target=staff_edit)
    with app.db.session() as session:
        assert mail(app, "yes", latest, session) == f"typed update {update_id}: consent yes"
        staff.start()
        staff.join(0.5)
        assert staff.is_alive(), "the edit waits for the yes being recorded"
    staff.join(15)
    assert outcomes == [review.ASKED]
    with app.db.session() as session:
        update = session.get(JourneyUpdate, update_id)
        assert (update.edited_text, update.consent_to_publish) == (OURS_AGAIN, None)
        assert session.scalars(select(Consent.text_version)).all() == [OURS]
        review.approve(session, update_id)
        assert feed.entries(session) == []


@pytest.mark.usefixtures("frozen")
def test_a_yes_given_while_an_edit_is_being_saved_answers_the_old_words(app: App) -> None:
    """Ana's yes to OURS comes while staff are saving another edit: it waits, then finds the
    words changed and records nothing."""
    update_id, _, latest = edited_by_mail(app)
    outcomes: list[str] = []

    def ana_says_yes() -> None:
        outcomes.append(mail(app, "yes", latest))

    ana = threading.Thread(target=ana_says_yes)
    with app.db.session() as session:
        assert review.edit(session, update_id, OURS_AGAIN, app.templates) == review.ASKED
        ana.start()
        ana.join(0.5)
        assert ana.is_alive(), "the yes waits for the edit being saved"
    ana.join(15)
    assert outcomes == [
        f"typed update {update_id}: consent yes refused, its text has changed since"
    ]
    with app.db.session() as session:
        update = session.get(JourneyUpdate, update_id)
        assert (update.edited_text, update.consent_to_publish) == (OURS_AGAIN, None)
        assert session.scalar(select(Consent)) is None


@pytest.mark.usefixtures("frozen")
def test_a_question_not_sent_yet_about_earlier_words_never_is(app: App) -> None:
    update_id, *_ = edited_by_mail(app)
    with app.db.session() as session:
        assert review.edit(session, update_id, OURS_AGAIN, app.templates) == review.ASKED
        assert review.edit(session, update_id, THEIRS, app.templates) == review.ASKED
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.state, OutboxMessage.text)
            .where(OutboxMessage.idempotency_key.startswith("consent:"))
            .order_by(OutboxMessage.id)
        ).all()
    assert [state for _, state, _ in rows] == ["sent", "sent", "cancelled", "pending"]
    assert THEIRS in rows[-1].text, "only the question about the words as they are now goes out"
