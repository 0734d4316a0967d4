"""A thread on X survives a crash the instant X stored a part with links or a photo (issue 16).

X wraps every link in t.co in what it returns, and appends a t.co link to a post's media, so the
resend's duplicate-content 403 must be matched to the stored part by its text with the links
expanded (``entities.urls``), the media link set aside, and by the post it replies to — not by
the text as sent. Real tweepy, real HTTP, the X sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from pydantic import SecretStr
from sqlalchemy import select

from bot.channels.base import Media, OutboundMessage
from bot.channels.x.adapter import XChannel, is_same_post
from bot.channels.x.settings import XSettings
from bot.core.errors import Rejected
from bot.core.models import OutboxMessage
from bot.delivery import outbox
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from bot.settings.config import DispatcherSettings
from pledgebot_sandbox.x import XSandbox

LINKED = (
    "Read the report https://www.ilo.org/resource/news/cocoa-2024?lang=en&src=x and the "
    "summary at ilo.org/cocoa (3/5)"
)
PARTS = [
    "Ghana's cocoa communities: what changed in 2024 (1/5)",
    "Committees in 212 communities now refer children to school. (2/5)",
    LINKED,
    "Next: 40 more communities by June. (4/5)",
    "#EndChildLabour2021 (5/5)",
]
DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the clock ticks on from here


@pytest.fixture
async def sandbox() -> AsyncIterator[XSandbox]:
    x = XSandbox()
    await x.start()
    yield x
    await x.stop()


def connect(sandbox: XSandbox) -> XChannel:
    """A new adapter, as a process (re)started against the same X account would make."""
    secrets = {k: SecretStr(v) for k, v in sandbox.credentials.items()}
    settings = XSettings(enabled=True, api_base_url=sandbox.base_url, request_timeout=2)
    return XChannel(settings, secrets)


def enqueue_thread(
    app: App, parts: list[str] = PARTS, media: dict[int, Media] | None = None
) -> None:
    """The thread as the outbox holds it; ``media``: part index → the image that part carries."""
    keys = [f"thread:{n}" for n in range(1, len(parts) + 1)]
    media = media or {}
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage(
                    key,
                    "x",
                    "@timeline",
                    text,
                    follows=keys[n - 1] if n else None,
                    media=(media[n],) if n in media else (),
                )
                for n, (key, text) in enumerate(zip(keys, parts, strict=True))
            ],
        )


def rows(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        found = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        session.expunge_all()
    return found


async def killed_once_x_stored_part_three(app: App, sandbox: XSandbox) -> None:
    """Parts 1–2 go out; X stores part 3, and the process dies before it hears back."""
    channel = connect(sandbox)
    dispatcher = Dispatcher(app.db, {"x": channel}, DispatcherSettings())
    assert await dispatcher.dispatch_once() == 1
    assert await dispatcher.dispatch_once() == 1
    # X carries the post out at once, then its answer is held: the kill comes in between.
    sandbox.inject_fault("POST /2/tweets", delay=30, deliver=True)
    wire = asyncio.create_task(dispatcher.dispatch_once())
    deadline = time.monotonic() + 10
    while len(sandbox.posts()) < 3:
        assert time.monotonic() < deadline, "X never stored part 3"
        await asyncio.sleep(0.01)
    wire.cancel()  # kill -9: nothing after this line of the old process runs
    with contextlib.suppress(asyncio.CancelledError):
        await wire
    await channel.aclose()
    assert [row.state for row in rows(app)] == ["sent", "sent", "sending", "pending", "pending"]


async def restart_and_drain(app: App, sandbox: XSandbox) -> None:
    with app.db.session() as session:
        assert outbox.expire_leases(session) == 1  # what `pledgebot run` does at start
    channel = connect(sandbox)
    dispatcher = Dispatcher(app.db, {"x": channel}, DispatcherSettings())
    for _ in range(10):
        if not await dispatcher.dispatch_once():
            break
    await channel.aclose()


async def test_a_killed_thread_completes_when_the_part_in_flight_holds_links(
    app: App, sandbox: XSandbox
) -> None:
    with time_machine.travel(DAY, tick=True):
        enqueue_thread(app)
        await killed_once_x_stored_part_three(app, sandbox)
        stored = sandbox.posts()[2]
        # X stored part 3 with its links wrapped in t.co: its text is not what the bot sent.
        assert stored["sent_text"] == LINKED and stored["text"] != LINKED
        assert stored["text"].count("https://t.co/") == 2 and "ilo.org/" not in stored["text"]

        await restart_and_drain(app, sandbox)

    posts = sandbox.posts()
    assert [p["sent_text"] for p in posts] == PARTS, "5 of 5 parts on X, none twice"
    assert [p["in_reply_to_tweet_id"] for p in posts] == [None, *[p["id"] for p in posts[:-1]]]
    after = rows(app)
    assert [(r.state, r.last_error) for r in after] == [("sent", None)] * 5
    assert [r.external_id for r in after] == [p["id"] for p in posts]
    assert [r.possible_duplicate for r in after] == [False, False, True, False, False]
    # The resend of part 3 got X's duplicate 403, answered by one look at recent posts.
    assert sandbox.method_calls["POST /2/tweets"] == 6
    assert sandbox.method_calls["GET /2/users/{id}/tweets"] == 1


PICTURED = "Committee members in Assin Fosu with the new school register. (3/5)"


@pytest.mark.parametrize("part_three", [PICTURED, LINKED], ids=["photo", "photo-and-links"])
async def test_a_killed_thread_completes_when_the_part_in_flight_has_a_photo(
    app: App, sandbox: XSandbox, tmp_path: Path, part_three: str
) -> None:
    photo = tmp_path / "register.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    parts = [*PARTS[:2], part_three, *PARTS[3:]]
    with time_machine.travel(DAY, tick=True):
        enqueue_thread(app, parts, {2: Media(str(photo), "Eight people, a book")})
        await killed_once_x_stored_part_three(app, sandbox)
        stored = sandbox.posts()[2]
        # X stored part 3 with a t.co link to its photo at the end: not the text the bot sent.
        assert stored["sent_text"] == part_three and len(stored["media_ids"]) == 1
        media_link = stored["urls"][-1]
        assert "media_key" in media_link and stored["text"].endswith(" " + media_link["url"])

        await restart_and_drain(app, sandbox)

    posts = sandbox.posts()
    assert [p["sent_text"] for p in posts] == parts, "5 of 5 parts on X, none twice"
    assert [p["in_reply_to_tweet_id"] for p in posts] == [None, *[p["id"] for p in posts[:-1]]]
    after = rows(app)
    assert [(r.state, r.last_error) for r in after] == [("sent", None)] * 5
    assert [r.external_id for r in after] == [p["id"] for p in posts]
    assert [r.possible_duplicate for r in after] == [False, False, True, False, False]
    assert sandbox.method_calls["POST /2/tweets"] == 6
    assert sandbox.method_calls["GET /2/users/{id}/tweets"] == 1


async def test_a_duplicate_replying_elsewhere_is_not_taken_for_the_part_in_flight(
    sandbox: XSandbox,
) -> None:
    """The same words with the same links, but under another post: not this thread's part."""
    channel = connect(sandbox)
    first = (await channel.send(OutboundMessage(1, "@timeline", "Thread A (1/2)"))).external_id
    other = (await channel.send(OutboundMessage(2, "@timeline", "Thread B (1/2)"))).external_id
    await channel.send(OutboundMessage(3, "@timeline", LINKED, reply_to=first))
    resend = OutboundMessage(4, "@timeline", LINKED, reply_to=other, maybe_sent=True)
    with pytest.raises(Rejected, match="no recent post of ours matches it"):
        await channel.send(resend)
    assert len(sandbox.posts()) == 3
    await channel.aclose()


def x_post(text: str, urls: dict[str, str], reply_to: str | None = None) -> dict[str, object]:
    """X API v2 post data as the timeline returns it with entities and referenced_tweets."""
    post: dict[str, object] = {"id": "9", "text": text, "edit_history_tweet_ids": ["9"]}
    if urls:
        post["entities"] = {
            "urls": [{"url": tco, "expanded_url": url} for tco, url in urls.items()]
        }
    if reply_to is not None:
        post["referenced_tweets"] = [{"type": "replied_to", "id": reply_to}]
    return post


@pytest.mark.parametrize(
    ("stored", "urls", "reply_to", "same"),
    [
        # X's wrapping, escaping and whitespace are not a difference...
        (
            "Read https://t.co/AAAAAAAAAA &amp; see https://t.co/BBBBBBBBBB!",
            {
                "https://t.co/AAAAAAAAAA": "https://ILO.org/a/",
                "https://t.co/BBBBBBBBBB": "http://x.org",
            },
            "7",
            True,
        ),
        ("Read  https://t.co/AAAAAAAAAA &amp; see\nhttps://t.co/BBBBBBBBBB! ", {}, "7", True),
        # ...but other words, another link or another parent post are.
        (
            "Read https://t.co/AAAAAAAAAA &amp; saw https://t.co/BBBBBBBBBB!",
            {"https://t.co/AAAAAAAAAA": "https://ilo.org/a", "https://t.co/BBBBBBBBBB": "x.org"},
            "7",
            False,
        ),
        (
            "Read https://t.co/AAAAAAAAAA &amp; see https://t.co/BBBBBBBBBB!",
            {"https://t.co/AAAAAAAAAA": "https://ilo.org/b", "https://t.co/BBBBBBBBBB": "x.org"},
            "7",
            False,
        ),
        ("Read https://t.co/AAAAAAAAAA &amp; see https://t.co/BBBBBBBBBB!", {}, "8", False),
        ("Read https://t.co/AAAAAAAAAA &amp; see!", {}, "7", False),
    ],
)
def test_a_stored_post_is_recognised_through_what_x_changes(
    stored: str, urls: dict[str, str], reply_to: str, same: bool
) -> None:
    sent = "Read https://ilo.org/a & see x.org!"
    assert is_same_post(sent, "7", x_post(stored, urls, reply_to)) is same


MEDIA = "https://t.co/MMMMMMMMMM"  # the link X appends to post 9's photo


@pytest.mark.parametrize(
    ("sent", "stored", "media_entity", "same"),
    [
        # The link to the post's own media is X's, not the bot's: set aside at the end...
        (
            "Read https://ilo.org/a",
            f"Read https://t.co/AAAAAAAAAA {MEDIA}",
            {"media_key": "3_1"},
            True,
        ),
        ("Photos from Assin Fosu", f"Photos from Assin Fosu {MEDIA}", {"media_key": "3_1"}, True),
        ("", MEDIA, {"media_key": "3_1"}, True),
        ("Photos from Assin Fosu", "Photos from Assin Fosu", {"media_key": "3_1"}, True),
        # ...known by its page too, when entities carry no media_key...
        ("Photos from Assin Fosu", f"Photos from Assin Fosu\n{MEDIA}", {}, True),
        # ...but a link to another post's photo is a link the bot sent, not X's,
        ("Photos from Assin Fosu", f"Photos from Assin Fosu {MEDIA}", {"post": "8"}, False),
        # and other words are other words.
        ("Photos from Assin", f"Photos from Assin Fosu {MEDIA}", {"media_key": "3_1"}, False),
    ],
)
def test_the_link_x_appends_to_a_photo_is_not_part_of_the_text(
    sent: str, stored: str, media_entity: dict[str, str], same: bool
) -> None:
    post = x_post(stored, {"https://t.co/AAAAAAAAAA": "https://ilo.org/a"}, "7")
    page = f"https://x.com/pledgebot/status/{media_entity.get('post', '9')}/photo/1"
    media = {"url": MEDIA, "expanded_url": page, "display_url": "pic.x.com/MMMMMMMMMM"}
    if "media_key" in media_entity:
        media["media_key"] = media_entity["media_key"]
    post["entities"]["urls"].append(media)  # type: ignore[index]
    assert is_same_post(sent, "7", post) is same


def test_a_link_the_bot_sent_to_a_photo_on_x_is_kept() -> None:
    """The part itself ends with a link to another post's photo: only X's own link goes."""
    sent = "See the register https://x.com/ilo/status/5/photo/1"
    stored = f"See the register https://t.co/CCCCCCCCCC {MEDIA}"
    urls = {"https://t.co/CCCCCCCCCC": "https://x.com/ilo/status/5/photo/1"}
    post = x_post(stored, urls, "7")
    post["entities"]["urls"].append(  # type: ignore[index]
        {
            "url": MEDIA,
            "expanded_url": "https://x.com/pledgebot/status/9/photo/1",
            "media_key": "3_1",
        }
    )
    assert is_same_post(sent, "7", post)
    assert not is_same_post("See the register", "7", post)
