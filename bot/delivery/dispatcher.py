"""The dispatcher: claim due outbox rows, send them through their channel, record what happened.

What one send's result means (retry, fail, gone, pause the channel) is ``bot.delivery.sending``'s
to say; this module runs the sends and records their outcomes. ``down_after_failures`` transient
failures in a row across messages put the channel down (``outage.Breaker``): its other messages
wait without using attempts while one probe at a time tests it.

Outcomes are committed as soon as the loop turns (those that finished together in one
transaction), so a crash leaves at most the messages that were on the wire in flight.

A run that fails (the database gone mid-turn, a bug) first waits for the sends on the wire and
records every outcome — retrying briefly while the database is away — and keeps in memory what
it still could not record: the next run (``bot.cli.runner.supervise`` restarts it) records that
first. So a restart resends nothing that this process sent, or still has on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.channels.base import Channel
from bot.core.db import Database, one_line
from bot.core.logs import scrub
from bot.core.models import utcnow
from bot.delivery import claiming, outage, outbox
from bot.delivery.alerts import Alerts
from bot.delivery.failures import INTERNAL, TRANSIENT
from bot.delivery.sending import Outcome, Sender, log_failure
from bot.settings.config import DispatcherSettings

log = logging.getLogger(__name__)
GROUP_COMMIT_SECONDS = 0.02  # the longest a finished send waits to be recorded with others
# A run that stops or fails records what finished, trying again after these pauses while the
# database is away (a restart or failover, a lock); what is still unrecorded stays in memory.
RECORD_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


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

    def put_back(self, notes: Mapping[str, tuple[str | None, bool]]) -> None:
        """Notes that could not be written, under any taken since (which are newer)."""
        for channel, (error, worked) in notes.items():
            newer_error, newer_worked = self._notes.get(channel, (None, False))
            self._notes[channel] = (newer_error or error, newer_worked or worked)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        settings: DispatcherSettings,
        alerts: Alerts | None = None,
        on_gone: Callable[[Session, str, str], object] | None = None,
    ) -> None:
        self.db = db
        self.alerts = alerts
        # What an address that is gone for good means beyond its contact (the App passes
        # ``invitations.address_gone``: an invitation to it is closed too).
        self.on_gone = on_gone or outbox.mark_contact_gone
        self.channels = channels
        self.settings = settings
        self.sender = Sender(db, channels, settings, alerts)
        self.breaker = outage.Breaker(
            settings.down_after_failures, settings.probe_seconds, settings.backoff_max
        )
        self.wake = asyncio.Event()
        self._threads_checked = 0.0
        self._renewed = time.monotonic()
        # Kept across runs: a run that fails leaves its sends on the wire and its unrecorded
        # outcomes here, and the next run (the supervisor restarts it) carries on with them.
        self._in_flight: dict[asyncio.Task[Outcome], claiming.Claimed] = {}
        self._unsaved: list[Outcome] = []
        self._health = HealthNotes()
        self._failing = False  # the last settle-and-claim failed (logged once, not each turn)

    @property
    def carried(self) -> int:
        """Sends this dispatcher has on the wire or finished but not yet recorded."""
        return len(self._in_flight) + len(self._unsaved)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; finishes the sends already on the wire before returning.

        Up to ``batch_size`` sends are in flight, at most one per recipient, so a chat held to
        its per-chat rate never holds up the others. Outcomes are committed in groups, in the
        same transaction as the next claim, once a quarter of the window has finished or after
        ``GROUP_COMMIT_SECONDS``; a finished but unrecorded send keeps its slot, so what a crash
        can leave in flight stays ≤ ``batch_size``. Channel health is written at most once a
        second, best effort. Whatever ends the run, an error included, the sends on the wire
        are awaited and recorded first (see the module's docstring).
        """
        refill_at = max(1, self.settings.batch_size // 4)
        unsaved_since = time.monotonic()
        # ``wake`` also says a send finished or ``stop`` was set: one event to wait on, so a
        # turn of the loop costs no new task or future per send on the wire.
        stop_watch = asyncio.ensure_future(stop.wait())
        stop_watch.add_done_callback(self._nudge)
        try:
            while not stop.is_set():
                self._renew_leases()
                if not self._unsaved:
                    unsaved_since = time.monotonic()
                self._harvest()
                unsaved = self._unsaved
                # Finished but unrecorded sends still count as in flight: the bound at a crash.
                free = self.settings.batch_size - self.carried
                due = not self._in_flight or (
                    bool(unsaved)
                    and (
                        len(unsaved) >= refill_at
                        or time.monotonic() - unsaved_since >= GROUP_COMMIT_SECONDS
                    )
                )
                claimed: list[claiming.Claimed] = []
                if due:
                    try:
                        claimed = self._settle_and_claim(unsaved, free + len(unsaved))
                    except Exception as exc:  # a database hiccup must not kill the run: retry
                        self._failing = log_failure(
                            "recording outcomes / claiming from the outbox", exc, self._failing
                        )
                    else:
                        self._saved()
                        if self._failing:
                            log.warning("recording outcomes / claiming from the outbox works again")
                            self._failing = False
                for item in claimed:
                    self._start(item)
                if not claimed:
                    self.wake.clear()
                    await self._wait_for_wake(
                        GROUP_COMMIT_SECONDS if self._unsaved else self.settings.poll_interval
                    )
                if self._health.due(idle=not self._in_flight):
                    self._write_health()
        finally:
            stop_watch.cancel()
            await self._finish()

    def _start(self, item: claiming.Claimed) -> None:
        task = asyncio.create_task(self.sender.deliver(item))
        task.add_done_callback(self._nudge)
        self._in_flight[task] = item

    def _harvest(self) -> None:
        """Move the sends that finished from the wire to the outcomes to record."""
        for task in [task for task in self._in_flight if task.done()]:
            self._unsaved.append(self._outcome_of(task, self._in_flight.pop(task)))

    def _outcome_of(self, task: asyncio.Task[Outcome], item: claiming.Claimed) -> Outcome:
        """The send's outcome; a send that was cancelled or failed in our own code has an
        unknown one: it is sent again, flagged as a possible duplicate."""
        if not task.cancelled() and task.exception() is None:
            return task.result()
        exc = None if task.cancelled() else task.exception()
        why = "cancelled" if exc is None else repr(exc)
        log.error(
            "message %s: its send ended without an outcome (%s)", item.message.id, why, exc_info=exc
        )
        error = f"internal error: {why}"
        delay = self.sender.backoff.delay(item.attempts)
        return Outcome(item, "retry", retry_in=delay, error=error, maybe_delivered=True)

    def _saved(self) -> None:
        for outcome in self._unsaved:
            self._health.add(outcome.item.channel, outcome.platform_error)
        self._unsaved = []

    async def _finish(self) -> None:
        """Wait for the sends on the wire (their leases renewed), record every outcome —
        trying again while the database is away — and write the channel health. Raises
        nothing: what cannot be recorded yet is kept for the next run."""
        while self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self.settings.lease_seconds / 3)
            self._renew_leases()
            self._harvest()
        for pause in (*RECORD_RETRY_SECONDS, None):
            if not self._unsaved:
                break
            try:
                self._settle_and_claim(self._unsaved, 0)
            except Exception as exc:
                reason = scrub(one_line(str(exc)))
                if pause is None:
                    log.error(
                        "could not record the outcome of %d send(s) (%s): kept to record at "
                        "the next try; if the process ends first they are resent, counted as "
                        "possible duplicates",
                        len(self._unsaved),
                        reason,
                    )
                    break
                log.warning("recording sends failed (%s); trying again in %.2f s", reason, pause)
                await asyncio.sleep(pause)
            else:
                self._saved()
        self._write_health()

    def _renew_leases(self) -> None:
        """Every third of a lease, extend the leases of what is still on the wire here: a send
        that waits long (a rate limit, a slow platform, a busy machine) is not taken for the
        work of a dead process and sent again by another worker."""
        lease = self.settings.lease_seconds
        if time.monotonic() - self._renewed < lease / 3:
            return
        self._renewed = time.monotonic()
        ids = [item.message.id for item in self._in_flight.values()]
        ids += [outcome.item.message.id for outcome in self._unsaved]
        if not ids:
            return
        try:
            with self.db.session() as session:
                outbox.extend_leases(session, ids, utcnow() + timedelta(seconds=lease))
        except Exception as exc:  # the database is away: the leases run out, as if we died
            log_failure("extending the leases of messages on the wire", exc)

    def _nudge(self, _done: object) -> None:
        self.wake.set()

    async def _wait_for_wake(self, timeout: float) -> None:
        timer = asyncio.get_running_loop().call_later(timeout, self.wake.set)
        try:
            await self.wake.wait()
        finally:
            timer.cancel()

    async def dispatch_once(self) -> int:
        """Claim one batch, deliver it, record the outcomes; returns how many were claimed."""
        claimed = self._settle_and_claim([], self.settings.batch_size)
        for item in claimed:
            self._start(item)
        await self._finish()
        return len(claimed)

    def _settle_and_claim(self, outcomes: list[Outcome], limit: int) -> list[claiming.Claimed]:
        now = utcnow()
        with self.db.session() as session:
            sent = [(o.item.message.id, o.external_id or "") for o in outcomes if o.state == "sent"]
            outbox.mark_sent_many(session, sent, now)
            for outcome in outcomes:
                self._record(session, outcome, now)
            self._note_channels(session, outcomes, now)
            if not limit:
                return []
            check_threads = time.monotonic() - self._threads_checked >= 1.0
            if check_threads:
                self._threads_checked = time.monotonic()
            return claiming.claim(
                session,
                channels=list(self.channels),
                limit=limit,
                lease=timedelta(seconds=self.settings.lease_seconds),
                now=now,
                break_threads=check_threads,
                breaker=self.breaker,
            )

    def _note_channels(self, session: Session, outcomes: list[Outcome], now: datetime) -> None:
        """The breaker's count, per channel: in the same transaction as the outcomes and the
        next claim, so no worker claims for a channel that has just gone down."""
        per_channel: dict[str, tuple[int, bool]] = {}
        for outcome in outcomes:
            failures, worked = per_channel.get(outcome.item.channel, (0, False))
            # Worked: the platform answered (sent, or refused this one message for good).
            answered = outcome.state in ("sent", "failed", "gone") and outcome.failure not in (
                TRANSIENT,
                INTERNAL,
            )
            per_channel[outcome.item.channel] = (failures + outcome.outage, worked or answered)
        # In the channels' order: two workers locking two channels' rows (PostgreSQL) in the
        # order their sends happened to finish would deadlock.
        for channel, (failures, worked) in sorted(per_channel.items()):
            change = outage.note_outcomes(
                session, channel, failures=failures, worked=worked, breaker=self.breaker, now=now
            )
            if change == "up":
                log.warning("%s works again: its held messages are sent", channel)
            elif change == "down":
                text = (
                    f"{channel} failed {self.breaker.after} times in a row: it is held as down. "
                    f"Its messages wait (they use no attempts); one is sent as a probe at "
                    f"growing intervals, and the first that goes through resumes sending."
                )
                log.warning("%s", text)
                if self.alerts is not None:
                    self.alerts.raise_alert(f"down:{channel}", text, session=session)

    def _record(self, session: Session, outcome: Outcome, now: datetime) -> None:
        message_id = outcome.item.message.id
        if outcome.state == "retry":
            outbox.mark_retry(
                session,
                message_id,
                now + timedelta(seconds=outcome.retry_in),
                outcome.error or "",
                counted=outcome.counted,
                maybe_delivered=outcome.maybe_delivered,
            )
            log.info(
                "message %s: retry in %.1f s (%s)", message_id, outcome.retry_in, outcome.error
            )
        elif outcome.state in ("failed", "gone"):
            outbox.mark_failed(session, message_id, outcome.error or "", outcome.failure)
            if outcome.state == "gone":
                item = outcome.item
                self.on_gone(session, item.channel, item.message.recipient)
                log.info("message %s: %s", message_id, outcome.error)
            else:
                log.warning("message %s failed: %s", message_id, outcome.error)

    def _write_health(self) -> None:
        """For `pledgebot status`; best effort: notes that cannot be written now are kept for
        the next write, and sending goes on."""
        notes = self._health.take()
        if not notes:
            return
        try:
            with self.db.session() as session:
                for channel, (error, worked) in sorted(notes.items()):  # the lock order
                    if error is not None:
                        outage.record_health(session, channel, error=error)
                    if worked:  # recorded last: the channel still works for some messages
                        outage.record_health(session, channel)
        except Exception as exc:
            log.warning(
                "writing channel health failed (%s); trying again later",
                scrub(one_line(str(exc))),
            )
            self._health.put_back(notes)
