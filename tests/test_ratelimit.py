"""Rate limits hold for the whole deployment: buckets in Redis are shared by every process,
and a platform's "wait until" (X's window) is shared too. In-memory buckets for one process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.channels.base import OutboundMessage
from bot.channels.telegram import TelegramChannel, TelegramSettings
from bot.channels.x import XChannel, XSettings
from bot.errors import RateLimited
from bot.ratelimit import Limits, Rate, per_second
from bot.sandbox import TelegramSandbox
from bot.sandbox.x import XSandbox

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI needs Redis at 127.0.0.1:6379 ({exc})") from exc
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({exc}); CI runs these")
    finally:
        await client.aclose()
    yield REDIS_URL


def most_in_any_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    return max(
        sum(1 for other in stamps[i:] if other < start + window) for i, start in enumerate(stamps)
    )


def test_rates_per_second_become_whole_counts_per_interval() -> None:
    assert (per_second(30).limit, per_second(30).interval) == (30, 1000)
    assert (per_second(0.5).limit, per_second(0.5).interval) == (1, 2000)


async def test_a_bucket_admits_no_more_than_its_rate_in_any_window() -> None:
    limits = Limits()
    stamps: list[float] = []

    async def one() -> None:
        await limits.acquire("bucket", [Rate(3, 1000)])
        stamps.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(7)))
    assert len(stamps) == 7
    assert most_in_any_window(stamps, 0.95) <= 3  # a little slack for clock granularity


async def test_two_processes_sharing_redis_share_one_budget(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    first, second = Limits(redis_url, prefix=prefix), Limits(redis_url, prefix=prefix)
    stamps: list[float] = []

    async def one(limits: Limits) -> None:
        await limits.acquire("telegram:all", [Rate(4, 1000)])
        stamps.append(time.monotonic())

    await asyncio.gather(*(one(limits) for limits in [first, second] * 5))
    await first.aclose()
    await second.aclose()
    assert len(stamps) == 10
    assert most_in_any_window(stamps, 0.95) <= 4  # not 4 per process


async def test_a_hold_set_by_one_process_is_seen_by_another(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    first, second = Limits(redis_url, prefix=prefix), Limits(redis_url, prefix=prefix)
    await first.hold("x:1:post", time.time() + 30)
    assert 25 < await second.held_for("x:1:post") <= 30
    assert await second.held_for("x:2:post") == 0
    await first.aclose()
    await second.aclose()


async def _blast(limits: list[Limits], sandbox: TelegramSandbox, chats: list[int]) -> None:
    settings = TelegramSettings(enabled=True, base_url=sandbox.base_url, max_messages_per_second=20)
    channels = [
        TelegramChannel(settings, {"token": SecretStr(sandbox.token)}, limits=each)
        for each in limits
    ]

    async def send(channel: TelegramChannel, chat: int) -> None:
        with contextlib.suppress(RateLimited):
            await channel.send(OutboundMessage(id=chat, recipient=str(chat), text="hello"))

    await asyncio.gather(*(send(channels[i % len(channels)], chat) for i, chat in enumerate(chats)))
    for channel in channels:
        await channel.aclose()


async def test_telegram_workers_with_shared_limits_never_hit_the_platform_limit(
    redis_url: str,
) -> None:
    """Two workers at 20/s each would send 40/s; Telegram (here 25/s) would answer 429."""
    sandbox = TelegramSandbox(overall_rate=25, chat_rate=100, chat_burst=100)
    await sandbox.start()
    chats = list(range(5000, 5060))
    for chat in chats:
        sandbox.add_chat(chat)
    try:
        separate = [Limits(), Limits()]
        await _blast(separate, sandbox, chats[:30])
        assert sandbox.rate_limited > 0  # per-process buckets: the deployment exceeds the limit
        await asyncio.sleep(1.5)  # let the sandbox's bucket refill
        before = sandbox.rate_limited
        prefix = f"test:{uuid.uuid4().hex}"
        shared = [Limits(redis_url, prefix=prefix), Limits(redis_url, prefix=prefix)]
        await _blast(shared, sandbox, chats[30:])
        for each in shared:
            await each.aclose()
        assert sandbox.rate_limited == before
        assert sandbox.method_calls["sendMessage"] == 60  # one request per message, 429s included
    finally:
        await sandbox.stop()


async def test_x_window_used_up_in_one_process_holds_every_process(redis_url: str) -> None:
    sandbox = XSandbox(posts_per_window=2)
    await sandbox.start()
    secrets = {k: SecretStr(v) for k, v in sandbox.credentials.items()}
    settings = XSettings(enabled=True, api_base_url=sandbox.base_url, request_timeout=2)
    prefix = f"test:{uuid.uuid4().hex}"
    limits = [Limits(redis_url, prefix=prefix), Limits(redis_url, prefix=prefix)]
    first, second = (XChannel(settings, secrets, limits=each) for each in limits)
    try:
        await first.send(OutboundMessage(id=1, recipient="timeline", text="one"))
        await first.send(OutboundMessage(id=2, recipient="timeline", text="two"))
        posts_tried = sandbox.method_calls["POST /2/tweets"]
        with pytest.raises(RateLimited) as caught:
            await second.send(OutboundMessage(id=3, recipient="timeline", text="three"))
        assert caught.value.retry_after > 800  # until the 15-minute window resets
        assert sandbox.method_calls["POST /2/tweets"] == posts_tried  # no request spent on a 429
        assert sandbox.rate_limited == 0
    finally:
        for channel in (first, second):
            await channel.aclose()
        for each in limits:
            await each.aclose()
        await sandbox.stop()


async def test_a_per_chat_rate_above_one_a_second_is_spaced_not_a_burst() -> None:
    from bot.ratelimit import spaced

    limits = Limits()
    stamps: list[float] = []
    for _ in range(4):
        await limits.acquire("chat:1", [spaced(10)])
        stamps.append(time.monotonic())
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.09  # 10 a second, one every 100 ms: never two at once


async def test_an_unreachable_redis_holds_sending_instead_of_sending_unchecked() -> None:
    limits = Limits("redis://127.0.0.1:9/0")  # nothing listens on port 9
    with pytest.raises(RateLimited, match="rate-limit store unreachable") as caught:
        await limits.acquire("telegram:all", [Rate(30, 1000)])
    assert caught.value.retry_after > 0
    await limits.aclose()
