"""The X adapter end to end: real tweepy over HTTP, host rewritten after signing, the X sandbox."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.channels.base import Media, OutboundMessage
from bot.channels.text_split import split_thread, weighted_length
from bot.channels.x.adapter import XChannel
from bot.channels.x.settings import XSettings
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected
from bot.core.models import CampaignControl, OutboxMessage
from bot.delivery import outbox
from bot.delivery.alerts import Alerts
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from bot.settings.config import AlertSettings, DispatcherSettings
from pledgebot_sandbox.x import XSandbox


def png(path: Path) -> Path:
    """A real 1×1 PNG, written by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"\x00\xff\x00\x00"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
async def x() -> AsyncIterator[tuple[XSandbox, XChannel]]:
    sandbox = XSandbox(posts_per_window=5)
    await sandbox.start()
    secrets = {k: SecretStr(v) for k, v in sandbox.credentials.items()}
    channel = XChannel(
        XSettings(enabled=True, api_base_url=sandbox.base_url, request_timeout=2), secrets
    )
    yield sandbox, channel
    await channel.aclose()
    await sandbox.stop()


def message(text: str, **extra: object) -> OutboundMessage:
    return OutboundMessage(id=1, recipient="@timeline", text=text, **extra)  # type: ignore[arg-type]


async def test_a_long_update_becomes_a_reply_chain(x: tuple[XSandbox, XChannel]) -> None:
    sandbox, channel = x
    text = (
        "Community committees in 212 cocoa communities now refer children to school. " * 8
        + "#EndChildLabour2021"
    )
    parts = split_thread(text)
    assert len(parts) > 1 and all(weighted_length(p) <= 280 for p in parts)
    previous = None
    for part in parts:
        previous = (await channel.send(message(part, reply_to=previous))).external_id
    posts = sandbox.posts()
    assert [p["text"] for p in posts] == parts
    assert [p["in_reply_to_tweet_id"] for p in posts] == [None, *[p["id"] for p in posts[:-1]]]


async def test_media_goes_up_with_its_alt_text(
    x: tuple[XSandbox, XChannel], tmp_path: Path
) -> None:
    sandbox, channel = x
    image = png(tmp_path / "school.png")
    receipt = await channel.send(
        message("New school opened", media=(Media(str(image), "Children in class"),))
    )
    [post] = sandbox.posts()
    assert post["id"] == receipt.external_id and len(post["media_ids"]) == 1
    assert sandbox.media()[post["media_ids"][0]]["alt_text"] == "Children in class"


async def test_429_waits_until_the_reset(x: tuple[XSandbox, XChannel]) -> None:
    sandbox, channel = x
    for n in range(5):
        await channel.send(message(f"post {n}"))
    with pytest.raises(RateLimited) as caught:
        await channel.send(message("one too many"))
    assert 1 <= caught.value.retry_after <= 901  # until x-rate-limit-reset (whole seconds)
    assert len(sandbox.posts()) == 5


async def test_duplicate_is_rejected_unless_it_was_in_flight(x: tuple[XSandbox, XChannel]) -> None:
    sandbox, channel = x
    first = await channel.send(message("Same words"))
    with pytest.raises(Rejected, match="duplicate"):
        await channel.send(message("Same words"))
    again = await channel.send(message("Same words", maybe_sent=True))
    assert again.external_id == first.external_id and len(sandbox.posts()) == 1


async def test_revoked_token_is_channel_unauthorized(x: tuple[XSandbox, XChannel]) -> None:
    sandbox, channel = x
    sandbox.revoke_tokens()
    with pytest.raises(ChannelUnauthorized):
        await channel.send(message("hello"))


async def test_crash_after_x_accepted_neither_reposts_nor_breaks_the_thread(
    app: App, x: tuple[XSandbox, XChannel]
) -> None:
    """A row left 'sending' by a crash, which X had accepted: the resend finds the post."""
    sandbox, channel = x
    first = await channel.send(message("Part one (1/2)"))
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("thread:2", "x", "@timeline", "Part two (2/2)")])
    # The crash: X accepted part two, but the outcome was never recorded.
    await channel.send(message("Part two (2/2)", reply_to=first.external_id))
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
        row.state, row.claimed_until = "sending", row.created_at - timedelta(minutes=5)
    dispatcher = Dispatcher(app.db, {"x": channel}, DispatcherSettings())
    assert await dispatcher.dispatch_once() == 1
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
    assert (row.state, row.possible_duplicate) == ("sent", True)
    assert row.external_id == sandbox.posts()[1]["id"]
    assert len(sandbox.posts()) == 2, "not posted twice"


async def test_401_pauses_the_channel_and_alerts_staff(
    app: App, x: tuple[XSandbox, XChannel]
) -> None:
    sandbox, channel = x
    sandbox.revoke_tokens()
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage("post:1", "x", "@timeline", "hello"),
                PlannedMessage("post:2", "x", "@timeline", "world"),
            ],
        )
    alerts = Alerts(app.db, AlertSettings(telegram_chat_id=-100))
    dispatcher = Dispatcher(app.db, {"x": channel}, DispatcherSettings(), alerts)
    assert await dispatcher.dispatch_once() == 1  # one per recipient; then the channel is held
    assert await dispatcher.dispatch_once() == 0, "paused: not a retry loop"
    with app.db.session() as session:
        assert session.get(CampaignControl, "channel:x").paused
        states = {
            r.idempotency_key: (r.state, r.attempts)
            for r in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "x"))
        }
        [alert] = session.scalars(
            select(OutboxMessage.text).where(OutboxMessage.recipient == "-100")
        )
    assert states == {"post:1": ("retry_wait", 0), "post:2": ("pending", 0)}
    assert "pledgebot resume --channel x" in alert
