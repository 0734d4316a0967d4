"""The campaign calendar: planned and sent entries, the iCalendar feed and export."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import update
from starlette.testclient import TestClient

from bot.core.models import Contact, OutboxMessage, utcnow
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.service import calendar
from bot.service.app import App
from bot.web.app import build
from tests.auxil.cli import pledgebot
from tests.test_web_auth import signed_in

CHATS = {"ilo": "9101", "gh-min-labour": "9102", "ng-agri-union": "9103"}


def bind(app: App) -> None:
    with app.db.session() as session:
        for pledgemaker_id, chat in CHATS.items():
            session.add(Contact(pledgemaker_id=pledgemaker_id, channel="telegram", address=chat))


def parse(body: bytes) -> list[dict[str, str]]:
    events = Calendar.from_ical(body).walk("VEVENT")
    return [
        {
            "uid": str(e["UID"]),
            "summary": str(e["SUMMARY"]),
            "description": str(e["DESCRIPTION"]),
            "start": e.decoded("DTSTART"),
        }
        for e in events
    ]


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_planned_follow_ups_are_grouped_and_sent_posts_listed(app: App) -> None:
    bind(app)
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [PlannedMessage("cal:1", "x", "timeline", "Our journey: 40 inspectors trained")],
            campaign_id="journeys",
        )
        session.execute(update(OutboxMessage).values(state="sent", sent_at=utcnow()))
    now = utcnow()
    found = calendar.entries(app, now - timedelta(hours=1), now + timedelta(days=92))
    planned = [e for e in found if e.state == "planned"]
    assert planned, "the follow-ups of the next month are on the calendar"
    assert all(e.count <= len(CHATS) for e in planned)
    assert any(e.count == len(CHATS) for e in planned), "one entry for a quarterly run to all"
    assert all(e.texts and e.texts[0] for e in planned), "each shows a rendered message"
    sent = [e for e in found if e.state == "sent"]
    assert [(e.campaign, e.channel, e.texts) for e in sent] == [
        ("journeys", "x", ["Our journey: 40 inspectors trained"])
    ]
    events = parse(calendar.ics(found))
    assert len(events) == len(found)
    assert len({e["uid"] for e in events}) == len(events), "stable, distinct UIDs"
    assert all(e["start"].utcoffset() == timedelta(0) for e in events), "UTC times"
    assert any(e["summary"].startswith("Sent: journeys → x") for e in events)


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_secret_feed_is_readable_by_its_url_only_until_replaced_or_revoked(app: App) -> None:
    bind(app)
    viewer = signed_in(app, "viewer@example.org", "viewer")
    token = re.search(r'name="csrf" value="([^"]+)"', viewer.get("/calendar").text)
    assert token is not None
    made = viewer.post("/calendar/feed", data={"csrf": token.group(1)})
    url = re.search(r"http://testserver(/calendar/[A-Za-z0-9_-]+\.ics)", made.text)
    assert url is not None, made.text
    stranger = TestClient(build(app))  # a calendar app: no cookie
    response = stranger.get(url.group(1))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    assert parse(response.content), "the planned follow-ups are in the feed"
    viewer.post("/calendar/feed", data={"csrf": token.group(1)})  # replaced
    assert stranger.get(url.group(1)).status_code == 404
    assert stranger.get("/calendar/made-up-token.ics").status_code == 404
    viewer.post("/calendar/feed/revoke", data={"csrf": token.group(1)})
    page = viewer.get("/calendar").text
    assert "Create my feed URL" in page


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_the_calendar_page_shows_the_viewers_time_zone(app: App) -> None:
    bind(app)
    now = utcnow()
    first = calendar.entries(app, now, now + timedelta(days=92))[0]
    local = first.start.astimezone(ZoneInfo("Asia/Kolkata"))  # UTC+5:30: minutes shift too
    editor = signed_in(app, "editor@example.org", "editor")
    page = editor.get(f"/calendar?view=week&start={local.date()}&tz=Asia/Kolkata").text
    assert "times in Asia/Kolkata" in page
    assert f'<time datetime="{first.start.isoformat()}">{local:%H:%M}</time>' in page
    assert f"{first.campaign} → {first.channel}" in page
    fallback = editor.get("/calendar?tz=Not/AZone").text
    assert f"times in {app.config.timezone}" in fallback


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_export_ics_writes_a_valid_file(app: App, tmp_path: Path) -> None:
    bind(app)
    result = pledgebot(tmp_path, "schedules", "export-ics", "--days", "31", "-o", "plan.ics")
    assert result.returncode == 0, result.stderr
    assert parse((tmp_path / "plan.ics").read_bytes())
