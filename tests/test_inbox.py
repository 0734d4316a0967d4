"""The inbox processor's chunks: facts read once per chunk, and a failing event isolated.

These drive ``bot.inbound.inbox`` directly (events stored as the listener stores them, then
``Processor.process_pending``) on both backends; the end-to-end path through the sandbox Bot
API is covered by test_conversation.py and tests/reliability.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import String, cast, func, select, update

from bot.channels.base import InboundEvent
from bot.core.models import Contact, JourneyUpdate, OutboxMessage, Prompt, Reply, utcnow
from bot.core.models import InboundEvent as EventRow
from bot.inbound import answers
from bot.inbound.inbox import CHUNK, Processor, store_events
from bot.scheduling import runs
from bot.service.app import App

CHATS = {"ilo": "9001", "gh-min-labour": "9002", "ng-agri-union": "9003"}


def bind_all(app: App) -> None:
    with app.db.session() as session:
        for pledgemaker_id, chat_id in CHATS.items():
            session.add(Contact(pledgemaker_id=pledgemaker_id, channel="telegram", address=chat_id))


def prompt(app: App, pledgemaker_id: str) -> int:
    """A follow-up prompt sent to the pledgemaker a minute ago; returns the prompt's id."""
    spec = app.schedules().get("act-checkin").spec
    runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual", only=pledgemaker_id)
    with app.db.session() as session:
        session.execute(
            update(OutboxMessage).values(
                state="sent",
                sent_at=utcnow() - timedelta(minutes=1),
                external_id=cast(OutboxMessage.id, String),
            )
        )
        return session.scalars(
            select(Prompt.id).where(Prompt.pledgemaker_id == pledgemaker_id)
        ).one()


def message(chat_id: str, number: int, text: str) -> InboundEvent:
    return InboundEvent(
        key=f"msg:{chat_id}:{number}",
        kind="message",
        chat_id=chat_id,
        message_id=str(number),
        text=text,
        date=int(utcnow().timestamp()),
    )


def store(app: App, events: list[InboundEvent]) -> None:
    with app.db.session() as session:
        store_events(session, "telegram", events, cursor=None)


def process(app: App) -> int:
    processor = Processor(app.db, {}, app.conversation(), Path("unused-media"))
    return asyncio.run(processor.process_pending())


def count(app: App, model: type, *where: object) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_chats_second_message_in_a_chunk_continues_the_answer_its_first_began(app: App) -> None:
    bind_all(app)
    answered = prompt(app, "ilo")
    store(
        app,
        [
            message("9001", 1, "We trained 40 labour inspectors."),
            message("9002", 1, "Nothing was asked of us, but hello."),
            message("9001", 2, "And opened two drop-in centres."),
        ],
    )
    assert process(app) == 3
    with app.db.session() as session:
        updates = list(session.scalars(select(JourneyUpdate)))
        assert len(updates) == 1, (
            "the second message must join the first's answer, not open another"
        )
        assert (
            updates[0].text == "We trained 40 labour inspectors.\n\nAnd opened two drop-in centres."
        )
        assert session.get(Prompt, answered).state == "answered"  # type: ignore[union-attr]
        replies = {r.external_id + "@" + r.chat_id: r for r in session.scalars(select(Reply))}
        assert replies["2@9001"].journey_update_id == updates[0].id
        assert replies["1@9002"].journey_update_id is None  # no open prompt: stored, nothing else
        thanks = session.scalar(
            select(func.count()).where(OutboxMessage.idempotency_key.like("thanks:%"))
        )
        assert thanks == 1


def test_a_failing_event_is_marked_and_the_rest_of_its_chunk_stands(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    bind_all(app)
    real = answers.is_acknowledgement

    def breaks_on_boom(event: InboundEvent) -> bool:
        if event.text == "boom":
            raise ValueError("a bug met this message")
        return real(event)

    monkeypatch.setattr(answers, "is_acknowledgement", breaks_on_boom)
    chats = list(CHATS.values())
    events = [message(chats[n % 3], n, f"update number {n}") for n in range(CHUNK + 5)]
    events[7] = message(chats[7 % 3], 7, "boom")
    store(app, events)
    assert process(app) == CHUNK + 5
    assert count(app, Reply) == CHUNK + 4  # every other message stored, once
    with app.db.session() as session:
        failed = session.scalars(select(EventRow).where(EventRow.event_key == events[7].key)).one()
        assert failed.processed_at is not None  # it does not block the queue
        assert failed.outcome is not None and "a bug met this message" in failed.outcome
        stored = session.scalars(select(EventRow.outcome).where(EventRow.id != failed.id))
        assert all(o == "reply stored: no open prompt" for o in stored)
    assert process(app) == 0
    assert count(app, Reply) == CHUNK + 4
