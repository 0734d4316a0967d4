"""Posting held for every process until a platform says it may go on.

A 429 names a moment before which the account may not post; so does an answer that reports its
rate-limit window spent (X's ``x-rate-limit-remaining: 0``, Bluesky's write points, Graph's usage
headers). ``Limits.hold`` keeps that moment where every worker sees it, and ``unless_held`` runs
one send (or delete) under it: refused at once while the hold lasts, instead of each process
spending a request to learn it again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.channels.ratelimit import Limits
from bot.core.errors import RateLimited

T = TypeVar("T")


async def unless_held(
    limits: Limits,
    key: str,
    act: Callable[[], Awaitable[T]],
    *,
    refusal: str,
    spent_until: Callable[[], float | None] | None = None,
) -> T:
    """Run ``act`` unless posting on ``key`` is held.

    While held: ``RateLimited`` with ``refusal`` (a format string of ``wait``, the seconds left).
    A ``RateLimited`` from ``act`` holds ``key`` until its retry time. ``spent_until``, asked
    once ``act`` is over (whatever its outcome): the Unix time the answers it read say the
    window is spent until, or None."""
    wait = await limits.held_for(key)
    if wait > 0:
        raise RateLimited(wait, refusal.format(wait=wait))
    try:
        return await act()
    except RateLimited as exc:
        await limits.hold(key, time.time() + exc.retry_after)
        raise
    finally:
        until = spent_until() if spent_until is not None else None
        if until is not None:
            await limits.hold(key, until)
