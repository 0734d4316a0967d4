"""The dispatcher: claim due outbox rows, send them through their channel, record what happened.

Adapters raise typed errors; this module alone decides what they mean:
RateLimited → retry after the platform's delay (does not use up an attempt);
TransientError → retry with exponential backoff and jitter, ``failed`` after max_attempts;
RecipientGone → ``failed`` and the contact is marked gone; Rejected → ``failed`` at once.
Each outcome is committed as soon as it is known, so a crash leaves at most the messages that
were on the wire in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bot import outbox
from bot.aio import wait_any
from bot.channels.base import Channel
from bot.config import DispatcherSettings
from bot.db import Database
from bot.errors import DeliveryError, RateLimited, RecipientGone, TransientError
from bot.models import utcnow

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    base: float
    cap: float

    def delay(self, attempt: int) -> float:
        """Equal jitter: half the exponential step, plus a random share of the other half."""
        step = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        return step / 2 + random.uniform(0, step / 2)


class Dispatcher:
    def __init__(
        self, db: Database, channels: Mapping[str, Channel], settings: DispatcherSettings
    ) -> None:
        self.db = db
        self.channels = channels
        self.settings = settings
        self.backoff = Backoff(settings.backoff_base, settings.backoff_max)
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; finishes the sends already on the wire before returning."""
        while not stop.is_set():
            try:
                sent = await self.dispatch_once()
            except Exception:  # a database hiccup must not kill the process; try again shortly
                log.exception("dispatcher pass failed")
                sent = 0
            if sent == 0:
                self.wake.clear()
                await wait_any(stop, self.wake, timeout=self.settings.poll_interval)

    async def dispatch_once(self) -> int:
        """Claim one batch and deliver it; returns how many messages were claimed."""
        with self.db.session() as session:
            claimed = outbox.claim(
                session,
                channels=list(self.channels),
                limit=self.settings.batch_size,
                lease=timedelta(seconds=self.settings.lease_seconds),
            )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._deliver(item) for item in claimed))
        # Channel health: written once per batch, not per message (dispatch is the hot path).
        by_channel: dict[str, list[str | None]] = {}
        for item, outcome in zip(claimed, outcomes, strict=True):
            by_channel.setdefault(item.channel, []).append(outcome)
        with self.db.session() as session:
            for channel, results in by_channel.items():
                errors = [error for error in results if error is not None]
                if errors:
                    outbox.record_health(session, channel, error=errors[-1])
                if len(errors) < len(results):  # recorded last: it still works for some
                    outbox.record_health(session, channel)
        return len(claimed)

    async def _deliver(self, item: outbox.Claimed) -> str | None:
        """Send one message and commit its outcome; returns the platform error, if any."""
        message = item.message
        try:
            receipt = await self.channels[item.channel].send(message)
        except RateLimited as exc:
            self._retry(item, exc.retry_after, str(exc), counted=False)
            return str(exc)
        except TransientError as exc:
            if item.attempts >= self.settings.max_attempts:
                self._fail(item, f"gave up after {item.attempts} attempts: {exc}")
            else:
                delay = self.backoff.delay(item.attempts)
                self._retry(item, delay, str(exc), maybe_delivered=exc.maybe_delivered)
            return str(exc)
        except RecipientGone as exc:
            with self.db.session() as session:
                outbox.mark_failed(session, message.id, f"recipient_gone: {exc}")
                outbox.mark_contact_gone(session, item.channel, message.recipient)
            log.info("message %s: recipient gone (%s)", message.id, exc)
            return None  # the platform works; this recipient is gone
        except DeliveryError as exc:  # Rejected, or any other permanent refusal
            self._fail(item, f"rejected: {exc}")
            return None
        except Exception as exc:  # an adapter bug: keep the message, retry later, shout in the log
            log.exception("message %s: unexpected error from %s", message.id, item.channel)
            self._retry(item, self.backoff.delay(item.attempts), f"internal error: {exc!r}")
            return f"internal error: {exc!r}"
        with self.db.session() as session:
            outbox.mark_sent(session, message.id, receipt.external_id)
        return None

    def _retry(
        self,
        item: outbox.Claimed,
        delay: float,
        error: str,
        *,
        counted: bool = True,
        maybe_delivered: bool = False,
    ) -> None:
        at = utcnow() + timedelta(seconds=delay)
        with self.db.session() as session:
            outbox.mark_retry(
                session,
                item.message.id,
                at,
                error,
                counted=counted,
                maybe_delivered=maybe_delivered,
            )
        log.info("message %s: retry in %.1f s (%s)", item.message.id, delay, error)

    def _fail(self, item: outbox.Claimed, reason: str) -> None:
        with self.db.session() as session:
            outbox.mark_failed(session, item.message.id, reason)
        log.warning("message %s failed: %s", item.message.id, reason)
