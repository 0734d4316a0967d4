"""`schedules preview` shows exactly what the planners will do: compared with real sweeps/runs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import time_machine
from sqlalchemy import select

from bot.core.models import Contact, OutboxMessage, utcnow
from bot.scheduling import runs, sweeper
from bot.scheduling.preview import preview
from bot.service.app import App
from tests.auxil.cli import pledgebot

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def bind(app: App, *pairs: tuple[str, str]) -> None:
    with app.db.session() as session:
        for pledgemaker_id, chat in pairs:
            session.add(
                Contact(
                    pledgemaker_id=pledgemaker_id,
                    channel="telegram",
                    address=chat,
                    bound_at=utcnow(),
                )
            )


def test_cadence_preview_matches_what_the_sweeps_then_send(app: App) -> None:
    bind(app, ("gh-min-labour", "1"), ("ilo", "2"), ("cl-mintrab", "3"))
    spec = app.schedules().get("act-cadence").spec
    with app.db.session() as session:
        shown = preview(
            session, app.schedules(), app.templates, now=NOW, days=70, campaign_id="act-cadence"
        )
    expected = {(i.recipient, i.send_utc, i.text) for i in shown if not i.skipped}
    assert {r for r, _, _ in expected} == {"1", "2", "3"}
    sending = [i for i in shown if not i.skipped]
    assert not any(spec.is_blackout(i.send_local.date()) for i in sending)
    assert all(i.send_local.hour == 10 for i in sending), "10:00 in each pledgemaker's zone"
    with app.db.session() as session:
        sweeper.ensure_cadences(session, spec, NOW)
    moment = NOW
    while moment <= NOW + timedelta(days=70):  # what really happens, an hour at a time
        with time_machine.travel(moment, tick=False):
            sweeper.sweep(app.db, app.templates, spec, moment)
        moment += timedelta(hours=1)
    with app.db.session() as session:
        sent = {
            (row.recipient, row.next_attempt_at, row.text)
            for row in session.scalars(select(OutboxMessage))
        }
    assert sent == expected


def test_cron_preview_matches_a_real_run(app: App) -> None:
    bind(app, ("gh-min-labour", "1"), ("nz-supply-chain-centre", "4"))
    spec = (
        app.schedules()
        .get("inspire-checkin")
        .spec.model_copy(update={"quiet_hours": ["20:00-08:00"]})
    )
    schedules = app.schedules()
    schedules.campaigns["inspire-checkin"].spec = spec
    with app.db.session() as session:
        shown = preview(
            session, schedules, app.templates, now=NOW, days=60, campaign_id="inspire-checkin"
        )
    fire = shown[0].due_utc
    assert all(item.due_utc == fire for item in shown[:2])
    with time_machine.travel(fire, tick=False):
        runs.fire(app.db, app.templates, spec, fire, trigger="cron")
    with app.db.session() as session:
        sent = {(r.recipient, r.next_attempt_at) for r in session.scalars(select(OutboxMessage))}
    assert sent == {(i.recipient, i.send_utc) for i in shown if i.due_utc == fire and not i.skipped}
    assert [i.skipped for i in shown if i.due_utc == fire and i.skipped] == ["no contact 38"]
    night = [i for i in shown if i.send_utc != i.due_utc]
    assert night and all(i.send_local.hour == 8 for i in night), "held until 08:00 their time"


def test_preview_command_prints_json_and_writes_nothing(app: App, config_path: Path) -> None:
    bind(app, ("gh-min-labour", "1"))
    proc = pledgebot(
        config_path.parent,
        "schedules",
        "preview",
        "--days",
        "40",
        "--format",
        "json",
        "--campaign",
        "act-cadence",
        now=NOW,
    )
    assert proc.returncode == 0, proc.stderr
    [item] = json.loads(proc.stdout)
    assert item["pledgemaker"] == "gh-min-labour" and item["send_local"][11:16] == "10:00"
    assert item["time_zone"] == "Africa/Accra" and item["text"].startswith("<b>Act</b>")
    with app.db.session() as session:
        assert session.scalar(select(OutboxMessage.id)) is None
    bad = pledgebot(config_path.parent, "schedules", "preview", "--format", "xml")
    assert (bad.returncode, bad.stderr) == (1, "--format must be table or json (got 'xml')\n")


def test_post_preview_shows_rotation_lengths_and_threads_and_writes_nothing(app: App) -> None:
    from bot.core.models import JourneyUpdate, Post

    with app.db.session() as session:
        for n, pledgemaker_id in enumerate(("ilo", "gh-min-labour", "cl-mintrab")):
            session.add(
                JourneyUpdate(
                    pledgemaker_id=pledgemaker_id,
                    pillar="act",
                    kind="progress",
                    text=("A long story about our work. " * 12) if n == 0 else "Short news.",
                    moderation="approved",
                    consent_to_publish=True,
                    source="import",
                    source_ref=str(n),
                )
            )
    with app.db.session() as session:
        shown = preview(
            session,
            app.schedules(),
            app.templates,
            now=NOW,
            days=2,
            campaign_id="journeys",
            destinations={"x": "timeline"},
        )
    posts = [item for item in shown if not item.skipped]
    featured = list(dict.fromkeys(i.pledgemaker_id for i in posts))
    assert sorted(featured) == ["cl-mintrab", "gh-min-labour", "ilo"], "rotation across slots"
    thread = [i for i in posts if i.pledgemaker_id == "ilo"]
    assert len(thread) > 1 and all(i.length <= 280 for i in thread)
    assert any(i.skipped == "no approved, consented update waiting" for i in shown)
    with app.db.session() as session:
        assert session.scalar(select(Post.id)) is None
        assert session.scalar(select(OutboxMessage.id)) is None, "a preview writes nothing"


def test_the_sample_cadence_still_prompts_in_2028_and_keeps_its_holidays(
    app: App, config_path: Path
) -> None:
    """The sample schedules do not run out: no `until` in the past, holidays every year."""
    bind(app, ("gh-min-labour", "1"), ("ilo", "2"), ("cl-mintrab", "3"))
    late_2028 = datetime(2028, 11, 20, 6, 0, tzinfo=UTC)
    proc = pledgebot(
        config_path.parent,
        *("schedules", "preview", "--days", "90", "--format", "json"),
        *("--campaign", "act-cadence"),
        now=late_2028,
    )
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    assert {item["pledgemaker"] for item in items} == {"gh-min-labour", "ilo", "cl-mintrab"}
    spec = app.schedules().get("act-cadence").spec
    for year in (2028, 2031):  # the sample's holidays are every year's, not one year's
        assert spec.is_blackout(date(year, 12, 25)) and spec.is_blackout(date(year + 1, 1, 1))
    assert not spec.is_blackout(date(2028, 12, 24))
    assert not any(spec.is_blackout(date.fromisoformat(i["send_local"][:10])) for i in items)
