"""``Window``: an allowance per fixed window, the way the platforms' rate limits count.

The window starts with its first use and the whole allowance comes back at once when it ends.
What is spent (requests, points, calls) and which headers tell it are each platform's: X's
``FixedWindow``, Bluesky's ``PointsWindow``, the Graph API's ``UsageWindow``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Window:
    """``limit`` units per fixed window of ``seconds``, read on ``clock``."""

    def __init__(self, limit: int, seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self._start: float | None = None
        self._used = 0

    def _roll(self) -> float:
        """The start of the window in force now (a new one once the last has ended)."""
        now = self.clock()
        if self._start is None or now >= self._start + self.seconds:
            self._start, self._used = now, 0
        return self._start

    def take(self, cost: int = 1) -> bool:
        """Use ``cost`` of the allowance; False (nothing used) when that much is not left."""
        self._roll()
        if self._used + cost > self.limit:
            return False
        self._used += cost
        return True

    def standing(self) -> tuple[int, float]:
        """How much of the allowance is used, and when the window ends (on ``clock``)."""
        start = self._roll()
        return self._used, start + self.seconds
