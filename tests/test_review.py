"""Moderation: approve, reject, edit (their words kept, their consent asked again), alt text."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.community import consent, review
from bot.core.errors import UserInputError
from bot.core.models import Contact, JourneyUpdate, OutboxMessage, utcnow
from bot.service.app import App
from tests.auxil.cli import pledgebot

WORDS = "We trained 120 labour inspectors."


def an_update(app: App, *, media: list[dict] | None = None, source: str = "reply") -> int:
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id="gh-min-labour", channel="telegram", address="77", bound_at=utcnow()
            )
        )
        update = JourneyUpdate(
            pledgemaker_id="gh-min-labour",
            pillar="act",
            kind="progress",
            text=WORDS,
            media=media or [],
            source=source,
            source_ref="t",
            consent_to_publish=True,
        )
        session.add(update)
        session.flush()
        return update.id


def test_an_edit_keeps_their_words_and_asks_their_consent_again(app: App) -> None:
    update_id = an_update(app)
    with app.db.session() as session:
        asked = review.edit(session, update_id, "We trained 120 inspectors in 2021.", app.templates)
        assert asked == review.ASKED
    with app.db.session() as session:
        update = session.get(JourneyUpdate, update_id)
        question = session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == "77"))
    assert (update.text, update.edited_text) == (WORDS, "We trained 120 inspectors in 2021.")
    assert update.consent_to_publish is None, "what they agreed to is not what would be published"
    assert "Our team suggests this wording" in question.text
    assert "We trained 120 inspectors in 2021." in question.text
    version = consent.hash_text("We trained 120 inspectors in 2021.")  # the text it asks about
    assert [b["data"] for b in question.buttons[0]] == [
        f"pc:yes:{update_id}:{version}",
        f"pc:no:{update_id}:{version}",
    ]


def test_images_need_alt_text_before_approval(app: App) -> None:
    update_id = an_update(app, media=[{"type": "photo", "path": "/m/1.jpg"}])
    with app.db.session() as session, pytest.raises(UserInputError, match="without alt text"):
        review.approve(session, update_id)
    with app.db.session() as session:
        assert review.set_alt_text(session, update_id, "Inspectors in a classroom") == 1
        review.approve(session, update_id)
    with app.db.session() as session:
        update = session.get(JourneyUpdate, update_id)
    assert update.moderation == "approved"
    assert update.media[0]["alt_text"] == "Inspectors in a classroom"


def test_review_commands(app: App, config_path: Path) -> None:
    update_id = an_update(app)
    folder = config_path.parent
    listed = pledgebot(folder, "review", "--list", COLUMNS="200")
    assert listed.returncode == 0 and WORDS[:40] in listed.stdout
    refused = pledgebot(folder, "review", "--reject", str(update_id))
    assert (refused.returncode, refused.stderr) == (
        1,
        "--reason is required to reject (it is kept for the record)\n",
    )
    done = pledgebot(folder, "review", "--reject", str(update_id), "--reason", "off topic")
    assert (done.returncode, done.stdout) == (0, f"rejected: {update_id}\n")
    with app.db.session() as session:
        update = session.get(JourneyUpdate, update_id)
    assert (update.moderation, update.moderation_note) == ("rejected", "off topic")
    missing = pledgebot(folder, "review", "--approve", "999")
    assert missing.stderr == "no journey update 999 (see: pledgebot review --list)\n"
    assert pledgebot(folder, "review").stderr.startswith("not a terminal")


def test_an_edited_import_is_published_only_once_their_agreement_is_recorded(
    app: App, config_path: Path
) -> None:
    """An imported update has no chat to ask in: the edit waits for staff to record who agreed,
    when and how — the feed never shows words the pledgemaker did not agree to."""
    from datetime import UTC, date, datetime

    from bot.core.models import Consent
    from bot.service import feed

    with app.db.session() as session:
        update = JourneyUpdate(
            pledgemaker_id="ilo",  # no chat
            pillar="act",
            kind="progress",
            text=WORDS,
            source="import",
            source_ref="row-7",
            consent_to_publish=True,
            moderation="approved",
        )
        session.add(update)
        session.flush()
        update_id = update.id
    with app.db.session() as session:
        assert [e.text for e in feed.entries(session)] == [WORDS]
    folder = config_path.parent
    edited = pledgebot(folder, "review", "--edit", str(update_id), "--text", "We trained 240.")
    assert edited.returncode == 0, edited.stderr
    assert "has no chat" in edited.stdout and "--record-agreement" in edited.stdout
    with app.db.session() as session:
        assert feed.entries(session) == [], "the staff's words are not theirs: not published"
        assert session.scalar(select(OutboxMessage.id)) is None, "no chat: nothing to send"
    vague = pledgebot(folder, "review", "--record-agreement", str(update_id), "--by", "Ama")
    assert (vague.returncode, vague.stderr) == (
        1,
        "say who agreed (name and role) and how (a call, an email of 3 December…)\n",
    )
    later = pledgebot(
        folder,
        *("review", "--record-agreement", str(update_id), "--by", "Ama Mensah, director"),
        *("--how", "phone call", "--on", "2026-12-10"),
        now=datetime(2026, 12, 8, 12, 0, tzinfo=UTC),
    )
    assert (later.returncode, later.stderr) == (
        1,
        "the agreement's date 2026-12-10 is in the future\n",
    )
    done = pledgebot(
        folder,
        *("review", "--record-agreement", str(update_id), "--by", "Ama Mensah, director"),
        *("--how", "phone call", "--on", "2026-12-07"),
        now=datetime(2026, 12, 8, 12, 0, tzinfo=UTC),
    )
    assert done.returncode == 0, done.stderr
    with app.db.session() as session:
        assert [e.text for e in feed.entries(session)] == ["We trained 240."]
        record = session.scalars(
            select(Consent).where(Consent.journey_update_id == update_id)
        ).one()
    assert (record.answer, record.text_version, record.contact_id) == (
        "yes",
        "We trained 240.",
        None,
    )
    assert (record.agreed_by, record.agreed_on, record.how) == (
        "Ama Mensah, director",
        date(2026, 12, 7),
        "phone call",
    )
    assert record.recorded_by.startswith("cli:")
