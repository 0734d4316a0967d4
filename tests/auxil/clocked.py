"""pledgebot and its Telegram sandbox on a moved clock: the reminders and cadence tests travel
days ahead while the whole app runs, whatever day the tests run on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest
import time_machine

from tests.auxil.live import Live, start_live


@asynccontextmanager
async def live_at(
    when: datetime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, time_machine.Coordinates]]:
    """A running pledgebot whose clock starts at ``when`` and ticks; move it with the returned
    coordinates. time-machine moves ``time.monotonic`` too, so a jump expires the event loop's
    timers (a long poll in flight times out and is retried): jump between ``settle()`` calls,
    and run a series of passes hour by hour without yielding to the loop in between."""
    with time_machine.travel(when, tick=True) as traveller:
        live = await start_live(tmp_path, monkeypatch)
        try:
            yield live, traveller
        finally:
            await live.close()
            live.app.close()
            await live.sandbox.stop()
