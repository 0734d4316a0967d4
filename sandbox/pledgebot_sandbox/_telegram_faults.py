"""Random faults for the Telegram sandbox, at seeded rates (scripted ones are
``pledgebot_sandbox._control``'s, as for every sandbox).

``FaultRates`` draws one ``Fault`` (or none) per call from a seeded ``random.Random``, so a run
with the same seed sees the same sequence of faults in the order the calls arrive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pledgebot_sandbox._control import Fault, ready
from pledgebot_sandbox._telegram_rules import ApiError

SERVER_ERRORS = (500, 502, 503)
# What a proxy in front of the Bot API answers when the backend never did: only a client that
# waits longer than ``timeout_delay`` sees it; the call was not carried out.
GATEWAY_TIMEOUT = ApiError(504, "Gateway Timeout")


@dataclass
class FaultRates:
    """Random faults for one method: each call draws at most one of them.

    ``server_error``, ``rate_limit`` and ``timeout`` are probabilities (summing to at most 1):
    a 500/502/503, a 429 with ``retry_after`` seconds, or an answer held for ``timeout_delay``
    seconds (longer than the client's read timeout, so the client gives up). A timed-out call is
    carried out first, before the hold, with probability ``timeout_delivered`` (drawn from the
    same generator): the message arrives although the client saw a timeout, as can happen with
    the real Telegram. Otherwise it is never carried out (a client still waiting after the hold
    gets 504 Gateway Timeout). Server errors and rate limits are never carried out.
    """

    server_error: float = 0.0
    rate_limit: float = 0.0
    timeout: float = 0.0
    retry_after: int = 1
    timeout_delay: float = 5.0
    timeout_delivered: float = 0.5
    seed: int | None = None
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("server_error", "rate_limit", "timeout", "timeout_delivered"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, not {value!r}")
        if self.total > 1.0 + 1e-9:
            raise ValueError("server_error + rate_limit + timeout must be at most 1")
        if isinstance(self.retry_after, bool) or int(self.retry_after) != self.retry_after:
            raise ValueError("retry_after is a whole number of seconds")
        if self.retry_after < 1:
            raise ValueError("retry_after must be at least 1 second")
        if self.timeout_delay <= 0:
            raise ValueError("timeout_delay must be positive")
        self.retry_after = int(self.retry_after)
        self.rng = random.Random(self.seed)

    @property
    def total(self) -> float:
        return self.server_error + self.rate_limit + self.timeout

    def draw(self) -> Fault | None:
        """The fault for the next call, or None: it is served normally."""
        roll = self.rng.random()
        if roll < self.server_error:
            status = self.rng.choice(SERVER_ERRORS)
            return Fault(ready(ApiError(status, _phrase(status))), None, False, "server_error")
        roll -= self.server_error
        if roll < self.rate_limit:
            text = f"Too Many Requests: retry after {self.retry_after}"
            error = ApiError(429, text, {"retry_after": self.retry_after})
            return Fault(ready(error), None, False, "rate_limit")
        roll -= self.rate_limit
        if roll < self.timeout:
            if self.rng.random() < self.timeout_delivered:
                return Fault(None, self.timeout_delay, True, "timeout")
            return Fault(ready(GATEWAY_TIMEOUT), self.timeout_delay, False, "timeout")
        return None


def _phrase(status: int) -> str:
    return {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
