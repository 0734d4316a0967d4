"""Outbox dispatch vs the raw client, in one process, against the sandbox Bot API server.

Baseline: python-telegram-bot's ``send_message`` called directly, 32 at a time.
pledgebot: the same messages enqueued in a SQLite outbox and sent by ``Dispatcher`` (claim,
send, record each outcome durably). Printed as a ratio: the price of durability per message.
Absolute times on shared machines mislead; the ratio is the figure to compare across runs.

    .venv/bin/python bench/dispatch.py [--messages 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from bot.campaigns.base import PlannedMessage
from bot.channels.telegram import TelegramChannel, TelegramSettings
from bot.config import DispatcherSettings
from bot.db import Database
from bot.dispatcher import Dispatcher
from bot.outbox import enqueue
from bot.sandbox import TelegramSandbox

CONCURRENCY = 32


async def raw_client(channel: TelegramChannel, chats: list[int]) -> float:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(chat: int, index: int) -> None:
        async with semaphore:
            await channel.bot.send_message(chat_id=chat, text=f"raw {index}")

    started = time.perf_counter()
    await asyncio.gather(*(one(chat, i) for i, chat in enumerate(chats)))
    return time.perf_counter() - started


async def through_outbox(
    channel: TelegramChannel, sandbox: TelegramSandbox, chats: list[int], folder: Path, tag: str
) -> float:
    db = Database(f"sqlite:///{folder / f'bench-{tag}.db'}")
    db.upgrade()
    with db.session() as session:
        enqueue(
            session,
            [
                PlannedMessage(f"bench:{tag}:{i}", "telegram", str(chat), f"outbox {i}")
                for i, chat in enumerate(chats)
            ],
        )
    dispatcher = Dispatcher(
        db, {"telegram": channel}, DispatcherSettings(batch_size=CONCURRENCY, poll_interval=0.01)
    )
    target = sandbox.method_calls["sendMessage"] + len(chats)
    stop = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.create_task(dispatcher.run(stop))
    while sandbox.method_calls["sendMessage"] < target:  # noqa: ASYNC110 - no event to await
        await asyncio.sleep(0.005)
    stop.set()
    await running  # returns once every outcome on the wire is recorded
    elapsed = time.perf_counter() - started
    db.dispose()
    return elapsed


async def main(messages: int, rounds: int) -> None:
    sandbox = TelegramSandbox(overall_rate=1e6, chat_rate=1e6, chat_burst=10**6)
    await sandbox.start()
    chats = [100_000 + i for i in range(messages)]
    for chat in chats:
        sandbox.add_chat(chat)
    settings = TelegramSettings(
        enabled=True,
        base_url=sandbox.base_url,
        max_messages_per_second=1e6,
        max_messages_per_chat_per_second=1e6,
    )
    channel = TelegramChannel(settings, {"token": SecretStr(sandbox.token)})
    await channel.start()
    raw, outbox = [], []
    with tempfile.TemporaryDirectory() as folder:
        await raw_client(channel, chats[:50])  # warm up connections
        for round_number in range(rounds):
            raw.append(await raw_client(channel, chats))
            outbox.append(
                await through_outbox(channel, sandbox, chats, Path(folder), str(round_number))
            )
    await channel.aclose()
    await sandbox.stop()
    raw_median, outbox_median = statistics.median(raw), statistics.median(outbox)
    print(f"messages per round: {messages} (rounds: {rounds}, concurrency {CONCURRENCY})")
    print(f"raw client msgs/s (median): {messages / raw_median:.0f}")
    print(f"outbox dispatcher msgs/s (median): {messages / outbox_median:.0f}")
    print(f"outbox time / raw time: {outbox_median / raw_median:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    asyncio.run(main(args.messages, args.rounds))
