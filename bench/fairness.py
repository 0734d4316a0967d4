"""Head-of-line blocking: does one busy chat delay everybody else's messages?

100 messages queued for one chat (held to its per-chat limit) and, behind them, one message for
each of 100 other chats. Printed: when the other chats were served, as a share of the time the
busy chat needed. A dispatcher that lets one chat hold up the queue scores near 1.0; a fair one
near 0. That share is the ratio (lower is better, target ≤ 0.2); the baseline is the busy chat's
own time, measured in the same run. A slower busy chat also lowers the ratio, so the JSON line
also gives ``busy_share_of_limit``: the busy chat's rate as a share of its per-chat limit.

    .venv/bin/python bench/fairness.py [--per-chat-rate 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import log, report
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
from pledgebot_sandbox import TelegramSandbox

BUSY_CHAT, OTHERS = 500, list(range(600, 700))
TARGET = 0.2


async def main(per_chat_rate: float) -> bool:
    sandbox = TelegramSandbox(overall_rate=1e6, chat_rate=per_chat_rate, chat_burst=2)
    await sandbox.start()
    for chat in [BUSY_CHAT, *OTHERS]:
        sandbox.add_chat(chat)
    settings = TelegramSettings(
        enabled=True,
        base_url=sandbox.base_url,
        max_messages_per_second=1e6,
        max_messages_per_chat_per_second=per_chat_rate,
    )
    channel = TelegramChannel(settings, {"token": SecretStr(sandbox.token)})
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{Path(folder) / 'fair.db'}")
        db.upgrade()
        planned = [
            PlannedMessage(f"busy:{i}", "telegram", str(BUSY_CHAT), f"busy {i}") for i in range(100)
        ]
        planned += [PlannedMessage(f"other:{c}", "telegram", str(c), "hello") for c in OTHERS]
        with db.session() as session:
            enqueue(session, planned)
        dispatcher = Dispatcher(db, {"telegram": channel}, DispatcherSettings(poll_interval=0.05))
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(dispatcher.run(stop))
        while True:
            with db.session() as session:
                left = session.scalar(
                    select(OutboxMessage.id).where(OutboxMessage.state != "sent").limit(1)
                )
            if left is None:
                break
            await asyncio.sleep(0.05)
        total = time.perf_counter() - started
        stop.set()
        await task
        with db.session() as session:
            rows = list(session.execute(select(OutboxMessage.recipient, OutboxMessage.sent_at)))
        db.dispose()
    await channel.aclose()
    await sandbox.stop()
    errors = sandbox.rate_limited
    first = min(sent for _, sent in rows)
    others = max(sent for chat, sent in rows if chat != str(BUSY_CHAT))
    busy = max(sent for chat, sent in rows if chat == str(BUSY_CHAT))
    others_s, busy_s = (others - first).total_seconds(), (busy - first).total_seconds()
    log(f"per-chat limit: {per_chat_rate:g}/s; wall time {total:.1f} s")
    return report(
        "fairness",
        ratio=others_s / busy_s,
        target=TARGET,
        higher_is_better=False,
        summary=(
            f"100 other chats all served {others_s:.2f} s after the first send, while the busy "
            f"chat's 100 messages took {busy_s:.2f} s, {100 / busy_s:.1f}/s of its "
            f"{per_chat_rate:g}/s limit; 429s: {errors}"
        ),
        others_served_s=others_s,
        busy_served_s=busy_s,
        busy_share_of_limit=100 / busy_s / per_chat_rate,  # not part of the target; watch it
        rate_limited_429s=errors,
        per_chat_rate=per_chat_rate,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-chat-rate", type=float, default=20)
    parser.add_argument("--quick", action="store_true", help="accepted for `make bench`; no effect")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    arguments = parser.parse_args()
    met = asyncio.run(main(arguments.per_chat_rate))
    raise SystemExit(1 if arguments.strict and not met else 0)
