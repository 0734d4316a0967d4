"""Buttons where there are none: the consent question and the prompt's options, written out as
numbers on email and Matrix, answered by typing a number, the option's words or yes/no — and an
ordinary answer that merely starts with "yes" stays an answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.base import InboundEvent, OutboundMessage
from bot.channels.matrix.content import message_content
from bot.community import consent
from bot.core import choices
from bot.core.models import Consent, Contact, JourneyUpdate, OutboxMessage, Prompt, utcnow
from bot.core.models import InboundEvent as EventRow
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.inbound.inbox import store_events
from bot.service.app import App
from tests.conftest import TOKEN_ENV, write_config

GH = "gh-min-labour"
ANA = "ana@ministry.example"
CONSENT = [
    [
        {"text": "Yes, share it", "data": "pc:yes:7", "answer": "yes"},
        {"text": "Keep it private", "data": "pc:no:7", "answer": "no"},
    ]
]


@pytest.mark.parametrize(
    ("typed", "picked"),
    [
        ("1", "pc:yes:7"),
        ("[2]", "pc:no:7"),
        ("  keep it PRIVATE. ", "pc:no:7"),
        ("Oui !", "pc:yes:7"),
        ("sí", "pc:yes:7"),
        ("Non merci", "pc:no:7"),
        ("3", None),
        ("0", None),
        ("yes, we trained 40 inspectors in Kumasi last month", None),
        ("maybe", None),
    ],
)
def test_a_typed_answer_picks_an_option_or_none(typed: str, picked: str | None) -> None:
    assert choices.match(typed, CONSENT) == picked


def test_yes_picks_only_a_button_marked_as_the_yes() -> None:
    unmarked = [[{"text": "Share progress", "data": "pb:progress"}]]
    assert choices.match("yes", unmarked) is None
    assert choices.match("1", unmarked) == "pb:progress"


def test_matrix_writes_the_options_out_numbered() -> None:
    message = OutboundMessage(
        id=5,
        recipient="!room:x",
        text="May we <b>share</b> it?",
        parse_mode="HTML",
        buttons=CONSENT,
    )
    content = message_content(message)
    assert content["body"].endswith("[1] Yes, share it\n[2] Keep it private")
    assert "[1] Yes, share it<br>\n[2] Keep it private" in content["formatted_body"]


# -- in the conversation ----------------------------------------------------------------------------
@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    return write_config(tmp_path)


def bound(app: App) -> int:
    with app.db.session() as session:
        contact = Contact(pledgemaker_id=GH, channel="email", address=ANA, bound_at=utcnow())
        session.add(contact)
        session.flush()
        return contact.id


def sent(app: App, key: str, **planned: Any) -> OutboxMessage:
    """Queue a message to Ana and mark it sent, as the dispatcher would."""
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage(key, "email", ANA, **planned)])
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))
        assert row is not None
        row.state, row.sent_at, row.external_id = "sent", utcnow(), f"<{key}@x>"
        session.flush()
        session.expunge(row)
        return row


def say(app: App, text: str, reply_to: str | None = None) -> str:
    event = InboundEvent(key=f"k:{text}:{reply_to}", kind="message", chat_id=ANA, text=text)
    event.reply_to = reply_to
    with app.db.session() as session:
        store_events(session, "email", [event], None)
        number = session.scalar(select(EventRow.id).where(EventRow.event_key == event.key))
        return app.conversation().handle(session, "email", number, event, [])


def pending_update(app: App, contact_id: int) -> int:
    with app.db.session() as session:
        update = JourneyUpdate(
            pledgemaker_id=GH,
            contact_id=contact_id,
            pillar="act",
            kind="progress",
            source="reply",
            source_ref="event:test",
            text="We trained 40 labour inspectors.",
            moderation="pending",
            created_at=utcnow(),
        )
        session.add(update)
        session.flush()
        assert consent.ask(session, update, app.templates)
        question = session.scalar(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("consent:%"))
        )
        assert question is not None
        question.state, question.sent_at = "sent", utcnow()
        return update.id


def test_yes_by_email_to_the_consent_question_is_consent(app: App) -> None:
    update_id = pending_update(app, bound(app))
    with app.db.session() as session:
        question = session.scalar(select(OutboxMessage).where(OutboxMessage.buttons.is_not(None)))
        assert question is not None
        assert question.buttons[0][0]["answer"] == "yes"  # type: ignore[index]
        asked = str(question.id)
    assert say(app, "Yes!", reply_to=asked) == f"typed update {update_id}: consent yes"
    with app.db.session() as session:
        given = session.scalar(select(Consent))
        assert given is not None and (given.answer, given.journey_update_id) == ("yes", update_id)


def test_a_number_answers_the_last_message_even_without_quoting_it(app: App) -> None:
    update_id = pending_update(app, bound(app))
    assert say(app, "2") == f"typed update {update_id}: consent no"
    with app.db.session() as session:
        assert session.scalar(select(Consent.answer)) == "no"


def test_a_longer_text_or_an_answer_to_a_message_without_options_is_a_message(app: App) -> None:
    contact_id = bound(app)
    pending_update(app, contact_id)
    outcome = say(app, "yes, and we also opened two schools this month in the north")
    assert not outcome.startswith("typed"), outcome
    sent(app, "thanks:1", text="Thank you!")  # the last message now has no options
    assert not say(app, "1").startswith("typed")
    with app.db.session() as session:
        assert session.scalar(select(Consent)) is None


def test_a_prompts_options_by_number_ask_for_the_kind(app: App) -> None:
    contact_id = bound(app)
    buttons = [
        [{"text": "Share progress", "data": "pb:progress"}],
        [{"text": "Report a challenge", "data": "pb:challenge"}],
    ]
    message = sent(
        app,
        "followup:act:1",
        text="How is it going?",
        buttons=buttons,
        pledgemaker_id=GH,
        contact_id=contact_id,
        pillar="act",
    )
    outcome = say(app, "2", reply_to=str(message.id))
    assert outcome.startswith("typed prompt"), outcome
    with app.db.session() as session:
        assert session.scalar(select(Prompt.requested_kind)) == "challenge"
