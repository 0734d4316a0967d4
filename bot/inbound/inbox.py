"""The inbox: store every inbound event before acknowledging it, then process what is stored.

Listener: poll the channel → insert the new events (deduplicated on the platform's own identity
of the event, not on Telegram's ``update_id``, which may restart) and the new poll cursor in one
transaction → only then poll again, which is what acknowledges the batch to Telegram.

Processor: take unprocessed events in arrival order; fetch media first (outside the transaction,
idempotent), then handle each event and mark it processed, ``CHUNK`` events per transaction
(redone with a savepoint per event if any of them fails). A crash before the commit leaves
them unprocessed; the next start finishes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from bot.channels.base import ChatChannel, InboundEvent
from bot.core.aio import wait_any
from bot.core.db import Database
from bot.core.errors import DeliveryError
from bot.core.models import ChannelState, utcnow
from bot.core.models import InboundEvent as EventRow
from bot.delivery.outage import record_health
from bot.inbound.conversation import Conversation
from bot.inbound.prefetch import ChunkFacts

log = logging.getLogger(__name__)
CHUNK = 50  # events per transaction at first; then as many as fit in CHUNK_SECONDS
CHUNK_LIMITS = (5, 200)
CHUNK_SECONDS = 0.05  # a chunk holds up the loop (polling, sending) no longer than this
YIELD_SECONDS = 0.001  # between chunks: time for the listener to store (and acknowledge) more
PAUSE_SHARE = 0.25  # and at least a quarter of the chunk's own time: the write lock is free ≥ 20 %


def store_events(
    session: Session, channel: str, events: list[InboundEvent], cursor: int | str | None
) -> list[InboundEvent]:
    """Insert events not seen before and remember the cursor; returns the new events."""
    keys = [event.key for event in events]
    seen = (
        set(
            session.scalars(
                select(EventRow.event_key).where(
                    EventRow.channel == channel, EventRow.event_key.in_(keys)
                )
            )
        )
        if keys
        else set()
    )
    fresh: list[InboundEvent] = []
    for event in events:
        if event.key not in seen:
            seen.add(event.key)
            fresh.append(event)
    if fresh:
        now = utcnow()
        session.execute(
            insert(EventRow),
            [
                {
                    "channel": channel,
                    "event_key": event.key,
                    "kind": event.kind,
                    "chat_id": event.chat_id,
                    "update_id": event.update_id,
                    "payload": event.to_record(),
                    "received_at": now,
                }
                for event in fresh
            ],
        )
    state = record_health(session, channel)
    if isinstance(cursor, str):  # each channel gets back the cursor it gave
        state.poll_cursor, state.poll_offset = cursor, None
    else:
        state.poll_offset, state.poll_cursor = cursor, None
    return fresh


class Listener:
    def __init__(self, db: Database, channel: ChatChannel, on_stored: asyncio.Event) -> None:
        self.db = db
        self.channel = channel
        self.on_stored = on_stored

    def _cursor(self) -> int | str | None:
        with self.db.session() as session:
            state = session.get(ChannelState, self.channel.name)
            if state is None:
                return None
            return state.poll_cursor if state.poll_cursor is not None else state.poll_offset

    async def run(self, stop: asyncio.Event) -> None:
        cursor = self._cursor()
        failures = 0
        while not stop.is_set():
            poll = asyncio.ensure_future(self.channel.poll(cursor))
            halt = asyncio.ensure_future(stop.wait())
            await asyncio.wait([poll, halt], return_when=asyncio.FIRST_COMPLETED)
            halt.cancel()
            if not poll.done():  # stopping: an unacknowledged batch is simply served again later
                poll.cancel()
                break
            try:
                events, next_cursor = poll.result()
            except DeliveryError as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                log.warning(
                    "polling %s failed (%s); again in %.1f s", self.channel.name, exc, delay
                )
                with self.db.session() as session:
                    record_health(session, self.channel.name, error=str(exc))
                await wait_any(stop, timeout=delay)
                continue
            failures = 0
            with self.db.session() as session:
                fresh = store_events(session, self.channel.name, events, next_cursor)
            cursor = next_cursor
            if fresh:
                self.on_stored.set()
            for event in fresh:
                if event.kind == "button":
                    await self.channel.answer_button(event)


class Processor:
    def __init__(
        self,
        db: Database,
        channels: dict[str, ChatChannel],
        conversation: Conversation,
        media_dir: Path,
        on_enqueued: asyncio.Event | None = None,
        max_bytes: int = 5 * 1024 * 1024,
    ) -> None:
        self.db = db
        self.channels = channels
        self.conversation = conversation
        self.media_dir = media_dir
        self.max_bytes = max_bytes
        self.on_enqueued = on_enqueued
        self.wake = asyncio.Event()
        self.chunk = CHUNK

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop``; then finish the events already stored, and return."""
        while not stop.is_set():
            self.wake.clear()
            if await self.process_pending() == 0:
                await wait_any(stop, self.wake, timeout=1.0)
        while await self.process_pending():
            pass

    async def process_pending(self, limit: int = 200) -> int:
        """Process up to ``limit`` stored events, oldest first; returns how many were taken."""
        with self.db.session() as session:
            pending = [
                (event_id, channel, InboundEvent.from_record(payload))
                for event_id, channel, payload in session.execute(
                    select(EventRow.id, EventRow.channel, EventRow.payload)
                    .where(EventRow.processed_at.is_(None))
                    .order_by(EventRow.id)
                    .limit(limit)
                )
            ]
        start = 0
        while start < len(pending):
            chunk = pending[start : start + self.chunk]
            start += len(chunk)
            media = [await self._fetch_media(channel, event) for _, channel, event in chunk]
            began = time.monotonic()
            self._process_chunk(chunk, media)
            took = time.monotonic() - began
            # Answers cost more than plain replies: the chunk follows what events cost lately.
            fits = int(CHUNK_SECONDS * len(chunk) / max(took, 1e-6))
            self.chunk = min(max((self.chunk + fits) // 2, CHUNK_LIMITS[0]), CHUNK_LIMITS[1])
            # A backlog must not hold up polling (and acknowledging), nor keep the database's
            # write lock from other processes (SQLite: a CLI command waits for a free moment).
            await asyncio.sleep(max(YIELD_SECONDS, took * PAUSE_SHARE))
        if pending and self.on_enqueued is not None:
            self.on_enqueued.set()
        return len(pending)

    def _process_chunk(
        self, chunk: list[tuple[int, str, InboundEvent]], media: list[list[dict[str, Any]]]
    ) -> None:
        """One transaction for the chunk. If anything in it fails, it is rolled back and done
        again with a savepoint per event: the bad event is marked with its error, the others
        stand."""
        try:
            self._handle_chunk(chunk, media, one_by_one=False)
        except Exception:  # the chunk's transaction rolled back: nothing of it was kept
            log.info("a chunk of %d events failed; handling them one at a time", len(chunk))
            self._handle_chunk(chunk, media, one_by_one=True)

    def _handle_chunk(
        self,
        chunk: list[tuple[int, str, InboundEvent]],
        media: list[list[dict[str, Any]]],
        *,
        one_by_one: bool,
    ) -> None:
        with self.db.session() as session:
            waiting = set(
                session.scalars(
                    select(EventRow.id).where(
                        EventRow.id.in_([event_id for event_id, _, _ in chunk]),
                        EventRow.processed_at.is_(None),
                    )
                )
            )
            facts = ChunkFacts.load(
                session,
                [(channel, event.chat_id) for _, channel, event in chunk],
                now=utcnow(),
                prompt_ttl_days=self.conversation.settings.prompt_ttl_days,
            )
            done: list[dict[str, Any]] = []
            for (event_id, channel, event), stored in zip(chunk, media, strict=True):
                if event_id not in waiting:
                    continue
                if one_by_one:
                    outcome = self._handle_alone(session, channel, event_id, event, stored, facts)
                else:
                    outcome = self.conversation.handle(
                        session, channel, event_id, event, stored, facts
                    )
                done.append({"id": event_id, "processed_at": utcnow(), "outcome": outcome[:200]})
            if done:
                session.execute(update(EventRow), done)  # by primary key, in one executemany

    def _handle_alone(
        self,
        session: Session,
        channel: str,
        event_id: int,
        event: InboundEvent,
        media: list[dict[str, Any]],
        facts: ChunkFacts,
    ) -> str:
        try:
            with session.begin_nested():
                return self.conversation.handle(session, channel, event_id, event, media, facts)
        except Exception as exc:  # one bad event must not block the queue; it is kept
            log.exception("event %s could not be processed", event_id)
            return f"error: {exc!r}"

    async def _fetch_media(self, channel: str, event: InboundEvent) -> list[dict[str, Any]]:
        stored: list[dict[str, Any]] = []
        adapter = self.channels.get(channel)
        for item in event.media:
            entry = dict(item)
            path = self.media_dir / channel / str(item["file_unique_id"])
            known = (
                next(iter(path.parent.glob(path.name + ".*")), None)
                if path.parent.exists()
                else None
            )
            if known is None and adapter is not None:
                try:
                    data = await adapter.download(item["file_id"])
                    known = self._keep(path, data)
                except DeliveryError as exc:
                    entry["error"] = str(exc)
                    log.warning("could not fetch %s: %s", item["file_id"], exc)
                except MediaRefused as exc:
                    entry["error"] = str(exc)
            if known is not None:
                entry["path"] = str(known)
            stored.append(entry)
        return stored

    def _keep(self, path: Path, data: bytes) -> Path:
        """Store an image under its type's suffix, atomically; refuse what is not one we keep."""
        if len(data) > self.max_bytes:
            raise MediaRefused(f"refused: {len(data)} bytes, over the {self.max_bytes} limit")
        suffix = image_suffix(data)
        if suffix is None:
            raise MediaRefused("refused: not a JPEG, PNG, GIF or WebP image")
        final = path.with_suffix(suffix)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(final)  # atomic: a crash never leaves half a file under the name
        return final


def _already_stored(path: Path) -> Path | None:
    """The file kept for this media id, whatever its type (a crash's ``.part`` does not count)."""
    if not path.parent.exists():
        return None
    return next((p for p in path.parent.glob(path.name + ".*") if p.suffix != ".part"), None)


class MediaRefused(Exception):
    pass


def image_suffix(data: bytes) -> str | None:
    """The file type from the first bytes (what was sent, not what the name claims)."""
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None
