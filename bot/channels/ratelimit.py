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

Turns (``Limits.turn``, used by Telegram) are stricter, because the platform counts *arrivals*:

- one clock for every process: Redis's ``TIME``, read inside the script that decides, not each
  sender's clock (pyrate-limiter 4.6's Redis stores take the timestamp from the client);
- paced, not bursty: each ``Pace`` is GCRA (pyrate-limiter's ``GCRA``, a leaky bucket kept as
  one "theoretical arrival time" per key), with no burst by default, so 27/s is one turn
  every 37 ms across the deployment, never 27 at once;
- all of a message's paces (its chat, its group, the bot) are taken together by one atomic
  script, and only when the request is about to go on the wire (see ``Turn.on_trace``): a
  message that waited for the bot's turn re-checks its chat's spacing in the same step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any

from pyrate_limiter import InMemoryBucket, Rate, RateItem
from pyrate_limiter.abstracts import AbstractBucket

from bot.core.errors import RateLimited
from bot.core.extras import needs

log = logging.getLogger(__name__)
MAX_BUCKETS = 10_000  # per process: the least recently used are forgotten (they are idle)
STORE_RETRY_SECONDS = 5.0  # Redis unreachable: messages wait this long, then try again
LEAK_EVERY = 200  # puts between removals of items older than the longest window
EARLY = 0.004  # seconds a paced turn may come before its time (see Pace)


def per_second(rate: float) -> Rate:
    """``rate`` messages a second as a pyrate-limiter Rate (0.5/s is 1 per 2 s); a burst of up
    to ``rate`` may go at once, as the platforms' overall limits allow."""
    if rate >= 1:
        return Rate(round(rate), 1000)
    return spaced(rate)


def spaced(rate: float) -> Rate:
    """``rate`` a second, evenly spaced: one at a time (per-chat limits allow no burst)."""
    return Rate(1, max(1, round(1000 / rate)))


# httpcore's trace events just before a request's first bytes are written, on an open connection.
WIRE_EVENTS = frozenset(
    {"http11.send_request_headers.started", "http2.send_request_headers.started"}
)

# GCRA over several keys at once, on Redis's clock (the multi-key form of pyrate-limiter's GCRA
# script). KEYS: one per pace. ARGV[1]: 1 to take a turn, 0 to ask only; then, per pace, its
# emission interval and tolerance (µs: how early a turn may come). Returns the µs until every
# pace admits one: 0 means admitted (and, with ARGV[1] = 1, taken on every key, else on none).
PACE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local every = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local allow_at = tat - tolerance
  if allow_at - now > wait then wait = allow_at - now end
  tats[i] = tat + every
end
if wait == 0 and ARGV[1] == '1' then
  for i, key in ipairs(KEYS) do
    local ttl = math.ceil((tats[i] - now) / 1000) + 1000
    redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl)
  end
end
return wait
"""


@dataclass(frozen=True)
class Pace:
    """One turn every ``every`` seconds on ``key``; after a quiet spell, ``burst`` at once.

    A turn may also come ``EARLY`` seconds before its time: a waiter wakes a little late (timer
    and round-trip delays), and without that tolerance each lateness would be lost for good,
    pacing below the rate. It adds at most one turn in a window of any length.
    """

    key: str
    every: float
    burst: int = 1

    @property
    def tolerance_us(self) -> int:
        return (self.burst - 1) * self.every_us + round(EARLY * 1_000_000)

    @classmethod
    def per_second(cls, key: str, rate: float, *, headroom: float = 0.0) -> Pace:
        """``rate`` a second, evenly spaced, a ``headroom`` share (e.g. 0.1) below it."""
        return cls(key, 1 / (rate * (1 - headroom)))

    @property
    def every_us(self) -> int:
        return max(1, math.ceil(self.every * 1_000_000))


class Turn:
    """A message's turn on its paces, taken (all at once) as its request goes on the wire."""

    def __init__(self, limits: Limits, paces: list[Pace], locks: contextlib.AsyncExitStack) -> None:
        self.limits, self.paces, self._locks = limits, paces, locks
        self.taken = False
        self.waited = 0.0  # seconds waited when taking (another process took the slot first)
        self.error: RateLimited | None = None

    async def take(self) -> None:
        if self.taken:
            return
        try:
            while (wait := await self.limits._try(self.paces, take=True)) > 0:
                self.waited += wait
                await asyncio.sleep(wait)
        except RateLimited as exc:
            self.error = exc  # an HTTP client wraps what a hook raises: the caller re-raises this
            raise
        self.taken = True
        await self._locks.aclose()  # the next message of this process may now queue for a turn

    async def on_trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's ``trace`` request extension: the turn is taken right before the request's
        headers are written, once its connection is open — opening a first connection (TCP,
        TLS) happens before the turn, not between the turn and the platform."""
        if event in WIRE_EVENTS:
            await self.take()


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
        # What "the store cannot be reached" raises: Redis's own errors too when it is the
        # store (the redis extra; counting in memory needs no Redis library).
        self._unreachable: tuple[type[Exception], ...] = (OSError,)
        if redis_url is not None:
            with needs("redis", "[ratelimit] backend is redis but its library is not installed"):
                from redis.exceptions import RedisError
            self._unreachable = (OSError, RedisError)
        self._buckets: OrderedDict[str, _Entry] = OrderedDict()
        self._held: dict[str, float] = {}
        self._tats: OrderedDict[str, int] = OrderedDict()  # in memory: GCRA state, µs
        self._locks: OrderedDict[str, asyncio.Lock] = OrderedDict()
        self._pace_script: Any = None

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
        except self._unreachable as exc:
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

    @contextlib.asynccontextmanager
    async def turn(self, paces: Sequence[Pace]) -> AsyncIterator[Turn]:
        """Wait until each pace would admit one more — queued behind this process's other
        waiters on it, taking nothing yet — and yield the ``Turn`` to take on the wire.

        The order of ``paces`` is the order of waiting: put a message's own (its chat's) first,
        so that a chat still inside its second does not hold the bot's queue. Whatever waited,
        ``Turn.take`` checks every pace again and takes all or none, on one clock.
        """
        async with contextlib.AsyncExitStack() as locks:
            for pace in paces:
                await locks.enter_async_context(self._lock(pace.key))
                while True:
                    wait = await self._try([pace], take=False)
                    if wait <= 0:
                        break
                    await asyncio.sleep(wait)
            yield Turn(self, list(paces), locks)

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.pop(key, None) or asyncio.Lock()
        self._locks[key] = lock  # most recently used last
        if len(self._locks) > MAX_BUCKETS:
            self._locks.popitem(last=False)
        return lock

    async def _try(self, paces: Sequence[Pace], *, take: bool) -> float:
        """Seconds until every pace admits one; at 0 the turn is taken if ``take``."""
        if not self.shared:
            return self._try_here(paces, take=take)
        try:
            client = await self._client()
            if self._pace_script is None:
                self._pace_script = client.register_script(PACE_LUA)
            keys = [f"{self.prefix}:pace:{pace.key}" for pace in paces]
            args = [int(take)]
            args += [n for pace in paces for n in (pace.every_us, pace.tolerance_us)]
            wait_us = await self._pace_script(keys=keys, args=args)
        except self._unreachable as exc:
            raise RateLimited(STORE_RETRY_SECONDS, f"rate-limit store unreachable: {exc}") from exc
        return int(wait_us) / 1_000_000

    def _try_here(self, paces: Sequence[Pace], *, take: bool) -> float:
        """``PACE_LUA`` for one process, on its monotonic clock."""
        now = time.monotonic_ns() // 1000
        wait, tats = 0, []
        for pace in paces:
            tat = max(self._tats.get(pace.key, 0), now)
            wait = max(wait, tat - pace.tolerance_us - now)
            tats.append(tat + pace.every_us)
        if wait == 0 and take:
            for pace, tat in zip(paces, tats, strict=True):
                self._tats.pop(pace.key, None)
                self._tats[pace.key] = tat
            while len(self._tats) > MAX_BUCKETS:  # the least recently used are idle by now
                self._tats.popitem(last=False)
        return wait / 1_000_000

    async def hold(self, key: str, until: float) -> None:
        """Nothing goes out on ``key`` before ``until`` (a Unix time), in any process."""
        self._held[key] = max(until, self._held.get(key, 0.0))
        if self.shared:
            ttl = max(1, int((until - time.time()) * 1000))
            try:  # best effort: this process holds anyway; the others learn at their next 429
                await (await self._client()).set(f"{self.prefix}:hold:{key}", str(until), px=ttl)
            except self._unreachable as exc:
                log.warning("could not share the hold on %s (%s)", key, exc)

    async def held_for(self, key: str) -> float:
        """Seconds left of a hold on ``key`` (0 when free)."""
        until = self._held.get(key, 0.0)
        if self.shared:
            try:
                raw = await (await self._client()).get(f"{self.prefix}:hold:{key}")
            except self._unreachable as exc:
                unreachable = f"rate-limit store unreachable: {exc}"
                raise RateLimited(STORE_RETRY_SECONDS, unreachable) from exc
            until = max(until, float(raw) if raw else 0.0)
        return max(0.0, until - time.time())

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
