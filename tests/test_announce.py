"""Announcements: one message to an audience, in their language, on their channel, at their own
local hour; opt-outs, the pillar filter, no prompt opened, a repeated firing queues nothing new,
a manual firing goes at once, and the schedule file's errors name file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from bot.campaigns.announce import AnnounceCampaign, local_hour
from bot.channels.registry import plain_text_channels
from bot.core.models import Contact, JourneyUpdate, OutboxMessage, Pledgemaker, Prompt, utcnow
from bot.scheduling import runs
from bot.scheduling.schedules import load_schedules
from bot.service.app import App
from bot.text.templates import Templates
from tests.conftest import ROOT

FIRED = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)


def spec(**extra: object) -> AnnounceCampaign:
    return AnnounceCampaign.model_validate(
        {
            "id": "innovation-challenge",
            "kind": "announce",
            "template": "announce/innovation-challenge",
            "channels": ["telegram", "email"],
            **extra,
        }
    )


def bind(app: App, pledgemaker_id: str, address: str, **extra: object) -> None:
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id=pledgemaker_id,
                channel=str(extra.pop("channel", "telegram")),
                address=address,
                bound_at=utcnow(),
                **extra,
            )
        )


def people(app: App, language: str) -> list[Pledgemaker]:
    with app.db.session() as session:
        found = list(session.scalars(select(Pledgemaker).where(Pledgemaker.language == language)))
        session.expunge_all()
        return found


def queued(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_the_first_local_ten_oclock_after_the_firing() -> None:
    assert local_hour(FIRED, "10:00", "Africa/Accra") == datetime(2026, 12, 10, 10, tzinfo=UTC)
    assert local_hour(FIRED, "10:00", "Asia/Manila") == datetime(2026, 12, 11, 2, tzinfo=UTC)
    assert local_hour(FIRED, "10:00", "America/Lima") == datetime(2026, 12, 10, 15, tzinfo=UTC)
    assert local_hour(FIRED, "08:00", "UTC") == FIRED, "exactly now is not tomorrow"


@time_machine.travel(FIRED)  # a firing's hour in the past would go at once: run on its day
def test_each_gets_it_in_their_language_at_their_hour_and_nobody_is_asked(app: App) -> None:
    english, french = people(app, "en")[0], people(app, "fr")[0]
    bind(app, english.id, "701")
    bind(app, french.id, "contact@ong.example", channel="email")
    result = runs.fire(app.db, app.templates, spec(), FIRED, trigger="cron")
    assert result.enqueued == 2
    by_recipient = {m.recipient: m for m in queued(app)}
    assert by_recipient["701"].text.startswith("<b>The Innovation Challenge is open</b>")
    assert english.name in by_recipient["701"].text
    assert by_recipient["contact@ong.example"].text.startswith("<b>Le Défi de l’innovation")
    assert by_recipient["contact@ong.example"].channel == "email"
    for message, person in (
        (by_recipient["701"], english),
        (by_recipient["contact@ong.example"], french),
    ):
        assert message.next_attempt_at == local_hour(FIRED, "10:00", person.timezone)
        assert message.contact_id is not None, "opt-out is checked again when it is sent"
    with app.db.session() as session:
        assert session.scalars(select(Prompt)).all() == [], "an announcement awaits no answer"
    again = runs.fire(app.db, app.templates, spec(), FIRED, trigger="cron")
    assert again.enqueued == 0 and len(queued(app)) == 2


def test_opted_out_and_unreachable_are_skipped_and_counted(app: App) -> None:
    first, second, third = people(app, "en")[:3]
    bind(app, first.id, "701")
    bind(app, second.id, "702", status="stopped")
    result = runs.fire(
        app.db, app.templates, spec(audience={"language": ["en"]}), FIRED, trigger="cron"
    )
    assert result.enqueued == 1
    assert result.skipped["opted out"] == 1
    assert sum(result.skipped.values()) == len(people(app, "en")) - 1
    assert [m.recipient for m in queued(app)] == ["701"]
    assert third.id not in {m.pledgemaker_id for m in queued(app)}


def test_the_pillar_filter_keeps_those_who_shared_an_update_on_it(app: App) -> None:
    sharing, silent = people(app, "en")[:2]
    bind(app, sharing.id, "701")
    bind(app, silent.id, "702")
    with app.db.session() as session:
        session.add(
            JourneyUpdate(
                pledgemaker_id=sharing.id,
                pillar="scale_up",
                kind="progress",
                text="We now train inspectors in four more provinces.",
                source="import",
                source_ref="announce-test",
            )
        )
    result = runs.fire(app.db, app.templates, spec(pillar=["scale_up"]), FIRED, trigger="cron")
    assert [m.recipient for m in queued(app)] == ["701"]
    assert result.skipped["no update on the pillar"] == 1


def test_a_manual_firing_goes_at_once(app: App) -> None:
    person = people(app, "en")[0]
    bind(app, person.id, "701")
    now = utcnow()
    runs.fire(app.db, app.templates, spec(), now, trigger="manual", only=person.id)
    [message] = queued(app)
    assert message.next_attempt_at <= utcnow()


def test_schedule_errors_name_the_file_and_line(tmp_path: Path) -> None:
    from bot.core.errors import ScheduleError

    path = tmp_path / "announce.toml"
    path.write_text(
        '[[campaign]]\nid = "x-announce"\nkind = "announce"\n'
        'template = "announce/nowhere"\nevery = "30d"\nrelative_to = "pledge_date"\n',
        encoding="utf-8",
    )
    with pytest.raises(ScheduleError) as caught:
        load_schedules([path], Templates(ROOT / "templates", plain_text=plain_text_channels()))
    text = str(caught.value)
    assert f"{path}:" in text and "every" in text


def test_the_example_file_is_valid() -> None:
    example = ROOT / "schedules" / "announce.toml.example"
    found = load_schedules(
        [example], Templates(ROOT / "templates", plain_text=plain_text_channels())
    )
    assert found.get("innovation-challenge").spec.kind == "announce"
