"""Inbound: updates from getUpdates into stored replies, pledgebot vs a bare loop.

Each side drains its own sandbox (two sandbox processes, so neither steals the other's
updates), filled with text messages from pledgemakers' bound chats (``--per-chat`` each, in
arrival order across chats).

pledgebot: ``bot.inbound.inbox.Listener`` (getUpdates through ``TelegramChannel.poll``; events and
the
cursor committed before the next poll acknowledges them) and ``Processor`` (a transaction per
chunk of events through ``bot.inbound.conversation``: contact, reply, prompt lookups) together,
until all N
updates are rows in ``replies``. By default the chats have no open prompt, so each message is
stored as a reply and nothing else; ``--answers`` gives every chat an open prompt first, so each
chat's first message creates a journey update, a thank-you and a consent question (heavier).

Baseline: python-telegram-bot's ``bot.get_updates`` in a loop, each batch stored with two
SQLAlchemy Core ``executemany`` inserts (``inbound_events``, then ``replies``) in one
transaction on an engine with pledgebot's SQLite settings, then the next call with the offset.

The two take turns (``--slice`` seconds of pledgebot, a tenth of that of baseline) until
pledgebot is done, so changes in machine load hit both alike. Ratio: pledgebot updates/s ÷
baseline updates/s, target ≥ 0.5. The default N is 10,000, not 20,000, to keep ``make bench``
short; ``--updates 20000`` works.

    .venv/bin/python bench/ingest.py [--updates 10000] [--per-chat 4] [--answers] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from _common import TEMPLATES, Peek, RemoteSandbox, insert_audience, log, report
from pydantic import SecretStr
from sqlalchemy import String, cast, insert, update
from telegram import Bot, Update
from telegram.request import HTTPXRequest

from bot.campaigns.followup import FollowupCampaign
from bot.channels.registry import plain_text_channels
from bot.channels.telegram.adapter import ALLOWED_UPDATES, TelegramChannel
from bot.channels.telegram.settings import TelegramSettings
from bot.core.db import Database, make_engine
from bot.core.models import InboundEvent, OutboxMessage, Reply, utcnow
from bot.inbound.conversation import Conversation
from bot.inbound.inbox import Listener, Processor
from bot.scheduling import runs
from bot.settings.config import ConversationSettings
from bot.text.templates import Templates

TARGET = 0.5
POLL_TIMEOUT = 25  # TelegramSettings' default, for both sides
REPLIES = "SELECT count(*) FROM replies"
EVENTS = "SELECT count(*) FROM inbound_events"
SPEC = FollowupCampaign.model_validate(
    {"id": "act-checkin", "kind": "followup", "pillar": "act", "channels": ["telegram"]}
)


def traffic(chats: list[int], per_chat: int, count: int, tag: str) -> list[tuple[int, str]]:
    """What pledgemakers write: round after round, one message from each chat."""
    return [
        (chat, f"{tag} {k}: we trained {k + 12} more labour inspectors in our district")
        for k in range(per_chat)
        for chat in chats
    ][:count]


def give_open_prompts(db: Database, templates: Templates) -> None:
    """A follow-up sent to every chat a minute ago: the first message of each is an answer."""
    runs.fire(db, templates, SPEC, utcnow(), trigger="manual")
    sent = utcnow() - timedelta(minutes=1)
    with db.session() as session:
        session.execute(
            update(OutboxMessage).values(
                state="sent", sent_at=sent, external_id=cast(OutboxMessage.id, String)
            )
        )


class Baseline:
    """getUpdates → executemany into ``inbound_events`` and ``replies``, in slices of time."""

    def __init__(self, path: Path, sandbox: RemoteSandbox, refill: list[tuple[int, str]]) -> None:
        self.engine = make_engine(f"sqlite:///{path}")
        self.sandbox, self.refill = sandbox, refill
        self.bot = Bot(
            sandbox.token,
            base_url=sandbox.base_url,
            get_updates_request=HTTPXRequest(
                connection_pool_size=2, read_timeout=POLL_TIMEOUT + 10
            ),
        )
        self.offset: int | None = None
        self.stored, self.seconds = 0, 0.0

    def store(self, batch: list[Update]) -> None:
        events, replies = InboundEvent.__table__, Reply.__table__
        messages = [u.message for u in batch if u.message is not None]
        now = utcnow()
        with self.engine.begin() as connection:
            ids = connection.execute(
                insert(events).returning(events.c.id, sort_by_parameter_order=True),
                [
                    {
                        "channel": "telegram",
                        "event_key": f"msg:{m.chat.id}:{m.message_id}",
                        "kind": "message",
                        "chat_id": str(m.chat.id),
                        "update_id": u.update_id,
                        "payload": u.to_dict(),
                        "received_at": now,
                        "processed_at": now,
                        "outcome": "stored",
                    }
                    for u in batch
                    if (m := u.message) is not None
                ],
            ).scalars()
            connection.execute(
                insert(replies),
                [
                    {
                        "inbound_event_id": event_id,
                        "channel": "telegram",
                        "chat_id": str(m.chat.id),
                        "external_id": str(m.message_id),
                        "text": m.text or "",
                        "media": [],
                        "acknowledgement": False,
                        "received_at": m.date,
                    }
                    for event_id, m in zip(ids, messages, strict=True)
                ],
            )
        self.stored += len(messages)

    async def run_for(self, seconds: float) -> None:
        if self.sandbox.counters()["pending_updates"] < 2000:  # never let it run dry (not timed)
            self.sandbox.push_messages(self.refill)
        started = time.perf_counter()
        while time.perf_counter() < started + seconds:
            batch = await self.bot.get_updates(
                offset=self.offset, timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES
            )
            if not batch:  # ran dry (refilled before the next slice)
                break
            self.store(list(batch))
            self.offset = batch[-1].update_id + 1
        self.seconds += time.perf_counter() - started

    async def close(self) -> None:
        await self.bot.shutdown()
        self.engine.dispose()


class Pledgebot:
    """Listener and Processor, started for each slice and stopped as ``pledgebot run`` does.

    Each slice gets its own ``TelegramChannel`` (its ``getMe`` is counted): a Listener stopped
    mid-poll can leave a connection of the adapter's 2-connection getUpdates pool occupied for
    good, and two such stops starve polling (see bench/RESULTS.md); a bench must not trip on it.
    """

    def __init__(self, path: Path, sandbox: RemoteSandbox, folder: Path, updates: int) -> None:
        self.db = Database(f"sqlite:///{path}")
        self.settings = TelegramSettings(
            enabled=True, base_url=sandbox.base_url, poll_timeout=POLL_TIMEOUT
        )
        self.secrets = {"token": SecretStr(sandbox.token)}
        self.conversation = Conversation(
            Templates(TEMPLATES, plain_text=plain_text_channels()), ConversationSettings()
        )
        self.media = folder / "media"
        self.peek = Peek(path)
        self.updates = updates
        self.seconds = 0.0
        self.acknowledged: float | None = None  # pledgebot time when all were stored as events

    @property
    def done(self) -> bool:
        return self.peek.scalar(REPLIES) >= self.updates

    async def run_for(self, seconds: float) -> None:
        started = time.perf_counter()
        channel = TelegramChannel(self.settings, self.secrets)
        await channel.start()
        processor = Processor(self.db, {"telegram": channel}, self.conversation, self.media)
        listener = Listener(self.db, channel, processor.wake)
        stop_listening, stop_processing = asyncio.Event(), asyncio.Event()
        listening = asyncio.create_task(listener.run(stop_listening))
        processing = asyncio.create_task(processor.run(stop_processing))
        if self.acknowledged is None and await self.peek.wait_for(
            EVENTS, self.updates, timeout=seconds, fail=False
        ):
            self.acknowledged = self.seconds + time.perf_counter() - started
        left = max(0.0, started + seconds - time.perf_counter())
        await self.peek.wait_for(REPLIES, self.updates, timeout=left, fail=False)
        stop_listening.set()
        await listening
        stop_processing.set()
        await processing  # finishes the events already stored
        await channel.aclose()
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.peek.close()
        self.db.dispose()


async def main(updates: int, per_chat: int, answers: bool, slice_s: float) -> bool:
    chats_needed = max(1, -(-updates // per_chat))
    with (
        tempfile.TemporaryDirectory() as tmp,
        RemoteSandbox() as ours_sandbox,
        RemoteSandbox() as base_sandbox,
    ):
        folder = Path(tmp)
        ours_path, base_path = folder / "pledgebot.db", folder / "baseline.db"
        for path in (ours_path, base_path):
            db = Database(f"sqlite:///{path}")
            db.upgrade()
            with db.session() as session:
                chats = insert_audience(session, chats_needed)
            if answers and path == ours_path:
                give_open_prompts(db, Templates(TEMPLATES, plain_text=plain_text_channels()))
            db.dispose()
        log(f"ingest: {updates:,} updates from {len(chats):,} chats")
        ours_sandbox.push_messages(traffic(chats, per_chat, updates, "pledgebot"))
        refill = traffic(chats, per_chat, updates, "baseline")
        base_sandbox.push_messages(refill)
        ours = Pledgebot(ours_path, ours_sandbox, folder, updates)
        base = Baseline(base_path, base_sandbox, refill)
        await base.bot.initialize()
        slices, progress, stalled = 0, 0, 0
        while not ours.done:
            await ours.run_for(slice_s)
            await base.run_for(slice_s / 10)
            slices += 1
            stalled = stalled + 1 if ours.peek.scalar(REPLIES) == progress else 0
            progress = ours.peek.scalar(REPLIES)
            if stalled >= 5:
                raise RuntimeError(f"pledgebot stored no reply in 5 slices ({progress:,} so far)")
            if slices % 5 == 0:
                log(
                    f"pledgebot {ours.peek.scalar(REPLIES):,}/{updates:,} "
                    f"({ours.peek.scalar(REPLIES) / ours.seconds:.0f}/s), "
                    f"baseline {base.stored / base.seconds:.0f}/s"
                )
        if answers:
            made = ours.peek.scalar("SELECT count(*) FROM journey_updates")
            log(f"pledgebot: {made:,} journey updates created from the answers")
        ours.close()
        await base.close()
    ours_rate, base_rate = updates / ours.seconds, base.stored / base.seconds
    events_rate = updates / (ours.acknowledged or ours.seconds)
    return report(
        "ingest",
        ratio=ours_rate / base_rate,
        target=TARGET,
        higher_is_better=True,
        summary=(
            f"{updates:,} updates from {len(chats):,} chats stored as replies at "
            f"{ours_rate:.0f}/s by Listener+Processor vs {base_rate:.0f}/s by "
            f"getUpdates+executemany"
            + (" (each chat answering an open prompt)" if answers else "")
            + f"; all stored as events (acknowledged) at {events_rate:.0f}/s; {slices} slices"
        ),
        pledgebot_per_s=ours_rate,
        baseline_per_s=base_rate,
        pledgebot_events_per_s=events_rate,
        updates=updates,
        baseline_updates=base.stored,
        chats=len(chats),
        answers=answers,
        slices=slices,
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--per-chat", type=int, default=4, help="messages from each chat")
    parser.add_argument("--answers", action="store_true", help="every chat has an open prompt")
    parser.add_argument("--slice", type=float, default=3.0, help="seconds per pledgebot turn")
    parser.add_argument("--quick", action="store_true", help="3,000 updates")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.updates = 3_000
    return args


if __name__ == "__main__":
    arguments = parse()
    met = asyncio.run(
        main(arguments.updates, arguments.per_chat, arguments.answers, arguments.slice)
    )
    raise SystemExit(1 if arguments.strict and not met else 0)
