"""Under Telegram's limits: does the dispatcher use the allowed rate, and never trip a 429?

The sandbox enforces the limits pledgebot is configured with — by default Telegram's own,
30 messages/s overall and 1/s per chat (token buckets; a chat may burst 3, as the sandbox
models Telegram) — and the adapter gets the same numbers through ``TelegramSettings``
(``max_messages_per_second``, ``max_messages_per_chat_per_second``). ``--scale 10`` multiplies
both. The outbox holds ``rate × seconds`` messages, spread over ``1.2 × rate ÷ per-chat rate``
chats (each chat gets several, in the order several campaign runs would enqueue them), so the
overall limit is the one that binds and every chat runs at over 80 % of its own limit.

Ratio: the steady rate ÷ the rate pledgebot aims at — the allowed rate (min(overall, chats ×
per-chat)) less the adapter's ``rate_headroom`` (10 %: Telegram counts arrivals, and network
jitter brings sends closer) — target ≥ 0.95; the summary gives the allowed rate too. The
steady rate leaves out the first second's worth of messages (both the sandbox and a client
may start with a full bucket, and that burst would flatter the figure) and is counted over
whole seconds. ``rate_limited_429s`` (the sandbox's count of 429 answers) must be 0.

    .venv/bin/python bench/throttled.py [--seconds 12] [--scale 1] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import FIRST_CHAT, Peek, RemoteSandbox, log, report
from pydantic import SecretStr
from sqlalchemy import select

from bot.channels.telegram.adapter import TelegramChannel
from bot.channels.telegram.settings import TelegramSettings
from bot.core.db import Database
from bot.core.models import OutboxMessage
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.delivery.outbox import enqueue
from bot.settings.config import DispatcherSettings

TARGET = 0.95
OVERALL, PER_CHAT, CHAT_BURST = 30.0, 1.0, 3  # Telegram's limits, as the sandbox models them
SENT = "SELECT count(*) FROM outbox WHERE state = 'sent'"


def steady_rate(times: list[float], skip: int) -> float:
    """Messages per second after the first ``skip`` (the opening burst), counted over the
    longest whole number of seconds that follows: a limiter that admits its quota at the start
    of each second is then measured at exactly its quota, not flattered by its last burst."""
    times = sorted(times)
    start = times[min(skip, len(times) // 2)]
    window = math.floor(times[-1] - start) or times[-1] - start
    return sum(1 for t in times if start <= t < start + window) / window


async def main(seconds: float, scale: float) -> bool:
    overall, per_chat = OVERALL * scale, PER_CHAT * scale
    chats = [FIRST_CHAT + i for i in range(math.ceil(1.2 * overall / per_chat))]
    total = round(overall * seconds)
    rounds = math.ceil(total / len(chats))
    allowed = min(overall, len(chats) * per_chat)
    aimed = allowed * (1 - TelegramSettings().rate_headroom)
    with (
        tempfile.TemporaryDirectory() as tmp,
        RemoteSandbox(overall_rate=overall, chat_rate=per_chat, chat_burst=CHAT_BURST) as sandbox,
    ):
        sandbox.add_chats(chats)
        path = Path(tmp) / "throttled.db"
        db = Database(f"sqlite:///{path}")
        db.upgrade()
        planned = [  # run k enqueues message k for every chat: the natural order of the queue
            PlannedMessage(f"bench:{k}:{chat}", "telegram", str(chat), f"Update {k} for {chat}")
            for k in range(rounds)
            for chat in chats
        ][:total]
        with db.session() as session:
            enqueue(session, planned)
        settings = TelegramSettings(
            enabled=True,
            base_url=sandbox.base_url,
            max_messages_per_second=overall,
            max_messages_per_chat_per_second=per_chat,
        )
        channel = TelegramChannel(settings, {"token": SecretStr(sandbox.token)})
        await channel.start()
        dispatcher = Dispatcher(db, {"telegram": channel}, DispatcherSettings())
        log(
            f"throttled: {total:,} messages to {len(chats)} chats, limits {overall:g}/s overall, "
            f"{per_chat:g}/s per chat"
        )
        peek = Peek(path)
        stop = asyncio.Event()
        started = time.perf_counter()
        running = asyncio.create_task(dispatcher.run(stop))
        await peek.wait_for(SENT, total, timeout=seconds * 10 + 60, interval=0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        await running
        await channel.aclose()
        counters = sandbox.counters()
        with db.session() as session:
            sent_at = [
                at.timestamp()
                for at in session.scalars(select(OutboxMessage.sent_at))
                if at is not None
            ]
        peek.close()
        db.dispose()
    steady = steady_rate(sent_at, skip=round(overall))
    ratio = steady / aimed
    errors = int(counters["rate_limited"])
    return report(
        "throttled",
        ratio=ratio,
        target=TARGET,
        higher_is_better=True,
        summary=(
            f"{total:,} messages to {len(chats)} chats at {steady:.1f} msgs/s steady "
            f"({total / elapsed:.1f} overall) of {aimed:g} aimed at, {allowed:g} allowed "
            f"({overall:g}/s overall, {per_chat:g}/s per chat); 429s: {errors} (must be 0)"
        ),
        pledgebot_per_s=steady,
        allowed_per_s=allowed,
        overall_per_s=total / elapsed,
        rate_limited_429s=errors,
        messages=total,
        chats=len(chats),
        scale=scale,
        also_required=errors == 0,
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12, help="how long at the full rate")
    parser.add_argument("--scale", type=float, default=1, help="multiply both limits")
    parser.add_argument("--quick", action="store_true", help="6 seconds")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 6
    return args


if __name__ == "__main__":
    arguments = parse()
    met = asyncio.run(main(arguments.seconds, arguments.scale))
    raise SystemExit(1 if arguments.strict and not met else 0)
