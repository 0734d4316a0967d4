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
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bot import outbox, runs
from bot.alerts import Alerts
from bot.channels.base import Channel, Receipt
from bot.config import DispatcherSettings
from bot.db import Database
from bot.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)
from bot.models import utcnow

log = logging.getLogger(__name__)
Sending = asyncio.Task[str | None]  # one send on the wire; its result is the error, if any


@dataclass
class Backoff:
    base: float
    cap: float

    def delay(self, attempt: int) -> float:
        """Equal jitter: half the exponential step, plus a random share of the other half."""
        step = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        return step / 2 + random.uniform(0, step / 2)


class HealthNotes:
    """Outcomes since the last write, per channel: the latest error, and whether any send worked."""

    def __init__(self) -> None:
        self._notes: dict[str, tuple[str | None, bool]] = {}
        self._written = time.monotonic()

    def add(self, channel: str, error: str | None) -> None:
        last_error, worked = self._notes.get(channel, (None, False))
        self._notes[channel] = (error or last_error, worked or error is None)

    def due(self, *, idle: bool) -> bool:
        return bool(self._notes) and (idle or time.monotonic() - self._written >= 1.0)

    def take(self) -> dict[str, tuple[str | None, bool]]:
        notes, self._notes, self._written = self._notes, {}, time.monotonic()
        return notes


class Dispatcher:
    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        settings: DispatcherSettings,
        alerts: Alerts | None = None,
    ) -> None:
        self.db = db
        self.alerts = alerts
        self.channels = channels
        self.settings = settings
        self.backoff = Backoff(settings.backoff_base, settings.backoff_max)
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; finishes the sends already on the wire before returning.

        Up to ``batch_size`` sends are in flight, at most one per recipient, so a chat held to
        its per-chat rate never holds up the others. Free slots are refilled in groups (a claim
        is a write transaction) and channel health is written at most once a second.
        """
        in_flight: dict[Sending, outbox.Claimed] = {}
        refill_at = max(1, self.settings.batch_size // 2)
        health = HealthNotes()
        while not stop.is_set():
            free = self.settings.batch_size - len(in_flight)
            claimed: list[outbox.Claimed] = []
            if free >= refill_at or not in_flight:
                try:
                    busy = {item.message.recipient for item in in_flight.values()}
                    claimed = self._claim(free, busy)
                except Exception:  # a database hiccup must not kill the process; try again soon
                    log.exception("claiming from the outbox failed")
            for item in claimed:
                in_flight[asyncio.create_task(self._deliver(item))] = item
            if not claimed:
                self.wake.clear()
                waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self.wake)]
                await asyncio.wait(
                    [*in_flight, *waiters],
                    timeout=self.settings.poll_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in waiters:
                    waiter.cancel()
            for task in [task for task in in_flight if task.done()]:
                health.add(in_flight.pop(task).channel, task.result())
            if health.due(idle=not in_flight):
                self._write_health(health)
        if in_flight:
            await asyncio.wait(in_flight)
            for task, item in in_flight.items():
                health.add(item.channel, task.result())
        self._write_health(health)

    async def dispatch_once(self) -> int:
        """Claim one batch, deliver it, return how many were claimed (for tests and benches)."""
        claimed = self._claim(self.settings.batch_size, set())
        results = await asyncio.gather(*(self._deliver(item) for item in claimed))
        health = HealthNotes()
        for item, result in zip(claimed, results, strict=True):
            health.add(item.channel, result)
        self._write_health(health)
        return len(claimed)

    def _claim(self, limit: int, busy: set[str]) -> list[outbox.Claimed]:
        with self.db.session() as session:
            return outbox.claim(
                session,
                channels=list(self.channels),
                limit=limit,
                lease=timedelta(seconds=self.settings.lease_seconds),
                skip_recipients=busy,
            )

    def _write_health(self, health: HealthNotes) -> None:
        notes = health.take()
        if not notes:
            return
        with self.db.session() as session:
            for channel, (error, worked) in notes.items():
                if error is not None:
                    outbox.record_health(session, channel, error=error)
                if worked:  # recorded last: the channel still works for some messages
                    outbox.record_health(session, channel)

    async def _deliver(self, item: outbox.Claimed) -> str | None:
        """Send one message and commit its outcome; returns the platform error, if any."""
        message = item.message
        channel = self.channels[item.channel]
        try:
            if message.action == "delete":
                if not hasattr(channel, "delete"):
                    raise Rejected(f"{item.channel} cannot delete posts")
                await channel.delete(message)
                receipt = Receipt(external_id=message.text)
            else:
                receipt = await channel.send(message)
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
        except ChannelUnauthorized as exc:
            # Every message would fail alike until staff renew the credentials: hold the channel.
            runs.set_paused(self.db, outbox.CHANNEL_PAUSE + item.channel, True)
            self._retry(item, 60, str(exc), counted=False)
            if self.alerts is not None:
                self.alerts.raise_alert(
                    f"unauthorized:{item.channel}",
                    f"{item.channel} refused our credentials ({exc}). Sending on {item.channel} "
                    f"is paused; renew them, then: pledgebot resume --channel {item.channel}",
                )
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
