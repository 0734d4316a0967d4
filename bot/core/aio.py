"""Small asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event, timeout: float | None) -> None:
    """Return when any event is set or the timeout passes."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
