"""Platform rate limits, counted where every process sees them.

The buckets are pyrate-limiter's (sliding-window logs, checked and filled atomically): in this
process's memory by default — enough for one process, which is what SQLite allows — or in Redis
when several workers send (``[ratelimit] backend = "redis"``), so that Telegram's 30 messages a
second hold for the whole deployment, not per worker.

Why Redis rather than PostgreSQL: pyrate-limiter's PostgreSQL bucket is one table per bucket and
locks that table for every acquire (failing at once under contention), so a per-chat limit would
mean a table per chat. In Redis a bucket is one sorted set, checked and filled by one Lua script
in well under a millisecond; per-chat buckets expire when idle.

Besides buckets, a platform can tell us to hold off until a moment (X's ``x-rate-limit-reset``
when ``x-rate-limit-remaining`` reaches 0, or a 429): ``hold``/``held_for`` share that moment too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any

from pyrate_limiter import InMemoryBucket, Rate, RateItem
from pyrate_limiter.abstracts import AbstractBucket
from redis.exceptions import RedisError

from bot.errors import RateLimited

log = logging.getLogger(__name__)
MAX_BUCKETS = 10_000  # per process: the least recently used are forgotten (they are idle)
STORE_RETRY_SECONDS = 5.0  # Redis unreachable: messages wait this long, then try again
LEAK_EVERY = 200  # puts between removals of items older than the longest window


def per_second(rate: float) -> Rate:
    """``rate`` messages a second as a pyrate-limiter Rate (0.5/s is 1 per 2 s); a burst of up
    to ``rate`` may go at once, as the platforms' overall limits allow."""
    if rate >= 1:
        return Rate(round(rate), 1000)
    return spaced(rate)


def spaced(rate: float) -> Rate:
    """``rate`` a second, evenly spaced: one at a time (per-chat limits allow no burst)."""
    return Rate(1, max(1, round(1000 / rate)))


async def _resolve(value: Any) -> Any:
    while isawaitable(value):
        value = await value
    return value


@dataclass
class _Entry:
    bucket: AbstractBucket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one waiter per bucket at a time
    puts: int = 0


class Limits:
    """Named buckets, each with its own rates; ``acquire`` waits until the bucket admits one."""

    def __init__(
        self, redis_url: str | None = None, *, prefix: str = "pledgebot:ratelimit"
    ) -> None:
        self.redis_url, self.prefix = redis_url, prefix
        self._redis: Any = None
        self._buckets: OrderedDict[str, _Entry] = OrderedDict()
        self._held: dict[str, float] = {}

    @property
    def shared(self) -> bool:
        return self.redis_url is not None

    async def _client(self) -> Any:
        if self._redis is None:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(str(self.redis_url))
        return self._redis

    async def _entry(self, key: str, rates: list[Rate]) -> _Entry:
        entry = self._buckets.pop(key, None)
        if entry is None:
            if self.shared:
                from pyrate_limiter import RedisBucket

                bucket = await _resolve(
                    RedisBucket.init(rates, await self._client(), f"{self.prefix}:{key}")
                )
            else:
                bucket = InMemoryBucket(rates)
            entry = _Entry(bucket)
        self._buckets[key] = entry  # most recently used last
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return entry

    async def acquire(self, key: str, rates: list[Rate]) -> float:
        """Wait until bucket ``key`` admits one more; returns the seconds waited.

        If Redis cannot be reached, nothing is sent unchecked: ``RateLimited`` asks the
        dispatcher to try again shortly (without using up an attempt).
        """
        try:
            return await self._acquire(key, rates)
        except (OSError, RedisError) as exc:
            raise RateLimited(STORE_RETRY_SECONDS, f"rate-limit store unreachable: {exc}") from exc

    async def _acquire(self, key: str, rates: list[Rate]) -> float:
        waited = 0.0
        entry = await self._entry(key, rates)
        async with entry.lock:  # waiters in this process queue here, not in the store
            bucket = entry.bucket
            while True:
                item = RateItem(key, await _resolve(bucket.now()))
                if await _resolve(bucket.put(item)):
                    break
                pause = max(1, int(await _resolve(bucket.waiting(item)))) / 1000
                waited += pause
                await asyncio.sleep(pause)
            entry.puts += 1
            if entry.puts >= LEAK_EVERY:  # drop items older than the longest window
                entry.puts = 0
                await _resolve(bucket.leak(item.timestamp))
            if self.shared:  # an idle bucket disappears from Redis on its own
                window = max(rate.interval for rate in rates)
                await (await self._client()).pexpire(f"{self.prefix}:{key}", window + 1000)
        return waited

    async def hold(self, key: str, until: float) -> None:
        """Nothing goes out on ``key`` before ``until`` (a Unix time), in any process."""
        self._held[key] = max(until, self._held.get(key, 0.0))
        if self.shared:
            ttl = max(1, int((until - time.time()) * 1000))
            try:  # best effort: this process holds anyway; the others learn at their next 429
                await (await self._client()).set(f"{self.prefix}:hold:{key}", str(until), px=ttl)
            except (OSError, RedisError) as exc:
                log.warning("could not share the hold on %s (%s)", key, exc)

    async def held_for(self, key: str) -> float:
        """Seconds left of a hold on ``key`` (0 when free)."""
        until = self._held.get(key, 0.0)
        if self.shared:
            try:
                raw = await (await self._client()).get(f"{self.prefix}:hold:{key}")
            except (OSError, RedisError) as exc:
                unreachable = f"rate-limit store unreachable: {exc}"
                raise RateLimited(STORE_RETRY_SECONDS, unreachable) from exc
            until = max(until, float(raw) if raw else 0.0)
        return max(0.0, until - time.time())

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
