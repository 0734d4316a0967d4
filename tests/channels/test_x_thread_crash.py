"""A thread on X survives a crash the instant X stored a part with links in it (issue 16).

X wraps every link in t.co in what it returns, so the resend's duplicate-content 403 must be
matched to the stored part by its text with the links expanded (``entities.urls``) and by the
post it replies to — not by the text as sent. Real tweepy, real HTTP, the X sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import time_machine
from pydantic import SecretStr
from sqlalchemy import select

from bot import outbox
from bot.app import App
from bot.campaigns.base import PlannedMessage
from bot.channels.base import OutboundMessage
from bot.channels.x import XChannel, XSettings, is_same_post
from bot.config import DispatcherSettings
from bot.dispatcher import Dispatcher
from bot.errors import Rejected
from bot.models import OutboxMessage
from bot.sandbox.x import XSandbox

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


def enqueue_thread(app: App) -> None:
    keys = [f"thread:{n}" for n in range(1, len(PARTS) + 1)]
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage(key, "x", "@timeline", text, follows=keys[n - 1] if n else None)
                for n, (key, text) in enumerate(zip(keys, PARTS, strict=True))
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
