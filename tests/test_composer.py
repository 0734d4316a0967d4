"""Posts written on the dashboard: preview per network, validation, scheduling through the
outbox (once per form), on the calendar; and end to end to the X and Telegram sandboxes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.core.models import OutboxMessage, Post
from bot.core.staff_models import AuditEntry
from bot.service.app import App
from pledgebot_sandbox.x import XSandbox
from tests.auxil.live import Live, eventually
from tests.test_amplify import CHANNEL_POSTS, world  # noqa: F401  (a fixture)
from tests.test_web_auth import signed_in

LONG = "We opened the first community learning centre in Kumasi today. " * 7
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def editor(app: App) -> TestClient:
    app.config.channels["telegram"]["post_chat_id"] = "@pledge_news"
    return signed_in(app, "editor@example.org", "editor")


def form(client: TestClient, **values: Any) -> dict[str, Any]:
    page = client.get("/posts/new").text
    found = {
        name: re.search(rf'name="{name}" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        for name in ("csrf", "nonce")
    }
    return {**found, "tz": "Europe/Paris", **values}


def queued(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        found = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        session.expunge_all()
    return found


def test_a_preview_shows_each_network_and_queues_nothing(editor: TestClient, app: App) -> None:
    answer = editor.post(
        "/posts/new", data=form(editor, text=LONG + " <b>&", action="preview", channels="telegram")
    )
    assert answer.status_code == 200 and "As each network will show it" in answer.text
    assert "telegram" in answer.text and "&lt;b&gt;&amp;amp;" not in answer.text
    assert "&lt;b&gt;&amp;" in answer.text, "the words shown as written, once escaped"
    assert queued(app) == []


def test_a_post_is_scheduled_once_at_its_time_and_shows_on_the_calendar(
    editor: TestClient, app: App
) -> None:
    when = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=2)).replace(
        hour=10, minute=30, second=0, microsecond=0
    )
    data = form(
        editor,
        text="Join our webinar on child labour in supply chains!",
        when=when.strftime("%Y-%m-%dT%H:%M"),
        channels="telegram",
        action="schedule",
    )
    first = editor.post("/posts/new", data=data, follow_redirects=False)
    again = editor.post("/posts/new", data=data)  # a double click
    assert first.status_code == 303 and "already scheduled" in again.text
    [message] = queued(app)
    assert (message.channel, message.recipient, message.campaign_id) == (
        "telegram",
        "@pledge_news",
        "manual",
    )
    assert message.next_attempt_at == when.astimezone(UTC)
    assert message.state == "pending" and message.parse_mode == "HTML"
    with app.db.session() as session:
        assert session.scalar(select(Post.campaign_id)) == "manual"
        assert (
            session.scalar(select(AuditEntry.actor).where(AuditEntry.action == "post.schedule"))
            == "editor@example.org"
        )
    week = editor.get("/calendar", params={"tz": "Europe/Paris", "start": when.date().isoformat()})
    assert "manual → telegram" in week.text and "queued" in week.text
    assert "Join our webinar" in week.text
    only = {"tz": "Europe/Paris", "start": when.date().isoformat()}
    on_x = editor.get("/calendar", params={**only, "channel": "x"}).text
    assert "manual → telegram" not in on_x
    manual = editor.get("/calendar", params={**only, "campaign": "manual"}).text
    assert "manual → telegram" in manual and "journeys → telegram" not in manual
    assert "&amp;campaign=manual" in manual, "Earlier/Later keep the filter"


def test_a_long_post_with_an_image_becomes_a_thread_on_x_with_the_image_first(
    editor: TestClient, app: App
) -> None:
    app.config.channels["x"] = {"enabled": True}
    answer = editor.post(
        "/posts/new",
        data=form(editor, text=LONG, channels="x", alt_text="Children in a classroom"),
        files={"image": ("class.png", PNG, "image/png")},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    parts = queued(app)
    assert len(parts) > 1 and all(p.channel == "x" for p in parts)
    assert parts[0].media[0]["alt_text"] == "Children in a classroom"
    assert parts[0].media[0]["path"].endswith(".png") and all(not p.media for p in parts[1:])
    assert [p.thread_parent_id for p in parts] == [None, *[p.id for p in parts[:-1]]]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"text": " "}, "Write the post&#39;s text."),
        ({"text": "Hi", "channels": ""}, "Choose at least one channel."),
        ({"text": "Hi", "when": "2020-01-01T10:00"}, "That time has passed"),
        ({"text": "Hi", "when": "tomorrow"}, "The time:"),
        ({"text": "Hi", "tz": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_a_bad_post_is_refused_with_its_reason_and_nothing_is_queued(
    editor: TestClient, app: App, values: dict[str, str], problem: str
) -> None:
    data = form(editor, **{"channels": "telegram", "action": "schedule", **values})
    answer = editor.post("/posts/new", data={k: v for k, v in data.items() if v != ""})
    assert answer.status_code == 400 and problem in answer.text
    assert queued(app) == []


def test_an_image_needs_alt_text_and_must_be_an_image(editor: TestClient, app: App) -> None:
    data = form(editor, text="Hi", channels="telegram", action="schedule")
    no_alt = editor.post("/posts/new", data=data, files={"image": ("a.png", PNG, "image/png")})
    assert no_alt.status_code == 400 and "Describe the image (alt text)" in no_alt.text
    not_image = editor.post(
        "/posts/new",
        data={**data, "alt_text": "a chart"},
        files={"image": ("a.png", b"MZ\x90\x00 not an image", "image/png")},
    )
    assert not_image.status_code == 400 and "must be a JPEG, PNG, GIF or WebP" in not_image.text
    assert queued(app) == []


async def test_a_post_goes_out_on_x_as_a_thread_and_on_the_telegram_channel(
    world: tuple[Live, XSandbox],  # noqa: F811
) -> None:
    live, x = world
    client = signed_in(live.app, "editor@example.org", "editor")
    answer = client.post(
        "/posts/new",
        data=form(client, text=LONG + " & <more>", channels=["x", "telegram"], action="schedule"),
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    await eventually(lambda: len(x.posts()) > 1, "the thread on X")
    await live.settle()
    posts = x.posts()
    assert [p["in_reply_to_tweet_id"] for p in posts] == [None, *[p["id"] for p in posts[:-1]]]
    assert posts[-1]["text"].startswith("& <more>") or "& <more>" in posts[-1]["text"]
    [channel_post] = live.sandbox.sent_messages(int(CHANNEL_POSTS))
    assert channel_post["plain_text"].endswith("& <more>"), "shown as written on Telegram"
