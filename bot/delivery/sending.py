"""One send: a claimed message through its channel, and what the result means.

Adapters raise typed errors; this module alone says what they mean (the dispatcher records it):
RateLimited → retry after the platform's delay (does not use up an attempt);
TransientError → retry with exponential backoff (capped at ``backoff_max``) and jitter, for up
to ``retry_hours`` after the message's first try, then ``failed`` (class ``transient``: `pledgebot
outbox retry --failed` can resend it), counted towards putting the channel down
(``outage.Breaker``); ChannelUnauthorized → the channel is paused and staff alerted;
RecipientGone → ``failed`` and the contact is marked gone; Rejected → ``failed`` at once; an
error in our own code → retried like a transient one, and logged with its traceback.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from bot.channels import registry
from bot.channels.base import Channel, Deletes, Receipt
from bot.core.db import Database, one_line
from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)
from bot.core.logs import scrub
from bot.core.models import utcnow
from bot.delivery import claiming, outbox, pauses
from bot.delivery.alerts import Alerts
from bot.delivery.failures import GONE, INTERNAL, REJECTED, TRANSIENT
from bot.settings.config import DispatcherSettings

log = logging.getLogger(__name__)
MAX_DOUBLINGS = 60  # 2**60 times any base is past every cap; a larger power overflows a float


@dataclass
class Backoff:
    base: float
    cap: float

    def delay(self, attempt: int) -> float:
        """Equal jitter: half the exponential step, plus a random share of the other half."""
        step = min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), MAX_DOUBLINGS))
        return step / 2 + random.uniform(0, step / 2)


@dataclass
class Outcome:
    """What became of one send, to be committed with the others that finished alongside it."""

    item: claiming.Claimed
    state: str  # sent | retry | failed | gone
    external_id: str | None = None
    retry_in: float = 0.0
    error: str | None = None  # the reason recorded on the message
    counted: bool = True  # a retry that uses up an attempt
    maybe_delivered: bool = False
    platform_error: str | None = None  # for channel health: the platform itself failed
    failure: str | None = None  # failed: its class (bot.delivery.outbox: transient, rejected, …)
    outage: bool = False  # a transient failure: counts towards putting the channel down


class Sender:
    """Sends one claimed message through its channel; the ``Outcome`` says what to record."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        settings: DispatcherSettings,
        alerts: Alerts | None = None,
    ) -> None:
        self.db, self.channels, self.alerts = db, channels, alerts
        self.backoff = Backoff(settings.backoff_base, settings.backoff_max)
        self.retry_for = timedelta(hours=settings.retry_hours)
        self.max_attempts = settings.max_attempts

    async def deliver(self, item: claiming.Claimed) -> Outcome:
        """Send one message; the outcome says what to record (the caller commits it)."""
        message = item.message
        channel = self.channels[item.channel]
        try:
            if message.action == "delete":
                if not registry.spec(item.channel).can_delete:
                    raise Rejected(f"{item.channel} cannot delete posts")
                await cast(Deletes, channel).delete(message)
                receipt = Receipt(external_id=message.text)
            else:
                receipt = await channel.send(message)
        except RateLimited as exc:
            return self.retry(item, exc.retry_after, str(exc), counted=False)
        except TransientError as exc:
            given_up = self.give_up(item, str(exc), TRANSIENT)
            if given_up is not None:
                given_up.outage = True
                return given_up
            delay = self.backoff.delay(item.attempts)
            outcome = self.retry(item, delay, str(exc), maybe_delivered=exc.maybe_delivered)
            outcome.outage = True
            return outcome
        except ChannelUnauthorized as exc:
            # Every message would fail alike until staff renew the credentials: hold the channel.
            try:
                pauses.set_paused(self.db, outbox.CHANNEL_PAUSE + item.channel, True)
                if self.alerts is not None:
                    self.alerts.raise_alert(
                        f"unauthorized:{item.channel}",
                        f"{item.channel} refused our credentials ({exc}). Sending on "
                        f"{item.channel} is paused; renew them, then: "
                        f"pledgebot resume --channel {item.channel}",
                    )
            except Exception as failure:  # the database is away: the next refusal pauses it
                log_failure(f"pausing {item.channel} (its credentials were refused)", failure)
            return self.retry(item, 60, str(exc), counted=False)
        except RecipientGone as exc:  # the platform works; this recipient is gone
            return Outcome(item, "gone", error=f"recipient_gone: {exc}", failure=GONE)
        except DeliveryError as exc:  # Rejected, or any other permanent refusal
            return Outcome(item, "failed", error=f"rejected: {exc}", failure=REJECTED)
        except Exception as exc:  # an adapter bug: keep the message, retry later, shout in the log
            log.exception("message %s: unexpected error from %s", message.id, item.channel)
            error = f"internal error: {exc!r}"
            given_up = self.give_up(item, error, INTERNAL)
            if given_up is not None:
                return given_up
            return self.retry(item, self.backoff.delay(item.attempts), error)
        return Outcome(item, "sent", external_id=receipt.external_id)

    def give_up(self, item: claiming.Claimed, error: str, failure: str) -> Outcome | None:
        """``failed`` when the retry budget is spent (``retry_hours`` since the first try, or
        ``max_attempts`` if set); None while it may be tried again."""
        first = item.first_attempt_at
        spent = utcnow() - first if first is not None else timedelta(0)
        cap = self.max_attempts
        if spent < self.retry_for and (cap is None or item.attempts < cap):
            return None
        reason = f"gave up after {item.attempts} attempts in {_span(spent)}: {error}"
        if failure == INTERNAL:
            reason = f"{error} (gave up after {item.attempts} attempts in {_span(spent)})"
        return Outcome(item, "failed", error=reason, platform_error=error, failure=failure)

    @staticmethod
    def retry(
        item: claiming.Claimed,
        delay: float,
        error: str,
        *,
        counted: bool = True,
        maybe_delivered: bool = False,
    ) -> Outcome:
        return Outcome(
            item,
            "retry",
            retry_in=delay,
            error=error,
            counted=counted,
            maybe_delivered=maybe_delivered,
            platform_error=error,
        )


def log_failure(what: str, exc: Exception, again: bool = False) -> bool:
    """A database error as one line (the traceback with debug logging only); one that goes on
    (``again``) at debug level, so an outage does not flood the log. Returns True."""
    level = logging.DEBUG if again else logging.ERROR
    reason = scrub(one_line(str(exc)))
    debug = log.isEnabledFor(logging.DEBUG)
    log.log(level, "%s failed (%s: %s)", what, type(exc).__name__, reason, exc_info=debug)
    return True


def _span(spent: timedelta) -> str:
    """``45 s``, ``12 min``, ``26 h 5 min``."""
    seconds = int(spent.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
