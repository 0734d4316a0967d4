"""The whole sending path vs bare python-telegram-bot calls, against the same sandbox Bot API.

pledgebot: a manual run of the ``act-checkin`` follow-up to N pledgemakers (``runs.fire``: plan
from the database, render the real Jinja template and buttons in each pledgemaker's language,
enqueue in the SQLite outbox, one transaction), then the ``Dispatcher`` with its default
settings (claim, send through ``TelegramChannel``, commit each outcome) until every row is
``sent``. All of it is timed. Rate limits are set out of reach on both the adapter and the
sandbox.

Baseline: the same rendered texts and buttons sent with a bare ``telegram.Bot.send_message``,
by as many workers as the dispatcher keeps sends in flight (``DispatcherSettings.batch_size``).

Both share one sandbox in its own process and take turns (time slices of ``--slice`` seconds
each, until pledgebot has sent all N), so a machine that gets busier or quieter during the run
affects both alike. Each slice ends by letting the sends
on the wire finish; that time is counted. Ratio: pledgebot msgs/s ÷ baseline msgs/s, target
≥ 0.8. N = 10,000 takes about a minute on 2 cores.

    .venv/bin/python bench/dispatch.py [--messages 10000] [--slice 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import TEMPLATES, Peek, RemoteSandbox, insert_audience, log, report
from pydantic import SecretStr
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.request import HTTPXRequest

from bot.campaigns.base import RunContext
from bot.campaigns.followup import FollowupCampaign, plan
from bot.channels.registry import plain_text_channels
from bot.channels.telegram.adapter import TelegramChannel
from bot.channels.telegram.settings import TelegramSettings
from bot.core.db import Database
from bot.core.models import utcnow
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.scheduling import runs
from bot.settings.config import DispatcherSettings
from bot.text.templates import Templates

TARGET = 0.8
SPEC = FollowupCampaign.model_validate(
    {"id": "act-checkin", "kind": "followup", "pillar": "act", "channels": ["telegram"]}
)
SENT = "SELECT count(*) FROM outbox WHERE state = 'sent'"


def prepare(folder: Path, messages: int) -> tuple[Path, list[int], list[PlannedMessage]]:
    """The audience database and, for the baseline, the very messages pledgebot will send
    (planned here, outside any timing, then rolled back)."""
    path = folder / "pledgebot.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.session() as session:
        chats = insert_audience(session, messages)
    with db.session() as session:
        context = RunContext(SPEC.id, utcnow(), manual=True)
        planned = plan(
            SPEC, context, session, Templates(TEMPLATES, plain_text=plain_text_channels())
        )
        session.rollback()
    db.dispose()
    return path, chats, planned.messages


class Baseline:
    """Bare ``send_message`` calls by ``concurrency`` workers, in slices of time."""

    def __init__(self, bot: Bot, planned: Sequence[PlannedMessage], concurrency: int) -> None:
        self.bot, self.concurrency = bot, concurrency
        self.queue = itertools.cycle(planned)  # no limits: a chat may get its prompt again
        self.sent, self.seconds = 0, 0.0

    async def send(self, message: PlannedMessage) -> None:
        markup = InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(b["text"], callback_data=b["data"]) for b in row]
                for row in message.buttons or []
            ]
        )
        await self.bot.send_message(
            chat_id=int(message.recipient),
            text=message.text,
            parse_mode=message.parse_mode,
            reply_markup=markup,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def run_for(self, seconds: float) -> None:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> int:
            sent = 0
            while time.perf_counter() < deadline:
                await self.send(next(self.queue))
                sent += 1
            return sent

        self.sent += sum(await asyncio.gather(*(worker() for _ in range(self.concurrency))))
        self.seconds += time.perf_counter() - started


class Pledgebot:
    """``runs.fire`` (its own first slice), then the dispatcher, stopped at each slice's end."""

    def __init__(self, path: Path, channel: TelegramChannel, messages: int) -> None:
        self.db = Database(f"sqlite:///{path}")
        self.templates = Templates(TEMPLATES, plain_text=plain_text_channels())
        self.dispatcher = Dispatcher(self.db, {"telegram": channel}, DispatcherSettings())
        self.peek = Peek(path)
        self.messages = messages
        self.fired, self.planning = False, 0.0
        self.sent, self.seconds = 0, 0.0

    @property
    def done(self) -> bool:
        return self.sent >= self.messages

    async def run_for(self, seconds: float) -> None:
        started = time.perf_counter()
        if not self.fired:
            fired = runs.fire(self.db, self.templates, SPEC, utcnow(), trigger="manual")
            assert fired.enqueued == self.messages, fired
            self.fired, self.planning = True, time.perf_counter() - started
        else:
            stop = asyncio.Event()
            running = asyncio.create_task(self.dispatcher.run(stop))
            await self.peek.wait_for(SENT, self.messages, timeout=seconds, fail=False)
            stop.set()
            await running  # returns once every send on the wire has its outcome committed
            self.sent = int(self.peek.scalar(SENT))
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.peek.close()
        self.db.dispose()


async def main(messages: int, slice_s: float) -> bool:
    concurrency = DispatcherSettings().batch_size
    with (
        tempfile.TemporaryDirectory() as tmp,
        RemoteSandbox(overall_rate=1e6, chat_rate=1e6, chat_burst=10**6) as sandbox,
    ):
        folder = Path(tmp)
        log(f"dispatch: preparing {messages:,} pledgemakers")
        path, chats, planned = prepare(folder, messages)
        sandbox.add_chats(chats)
        settings = TelegramSettings(
            enabled=True,
            base_url=sandbox.base_url,
            max_messages_per_second=1e6,
            max_messages_per_chat_per_second=1e6,
        )
        channel = TelegramChannel(settings, {"token": SecretStr(sandbox.token)})
        await channel.start()
        bot = Bot(
            sandbox.token,
            base_url=sandbox.base_url,
            request=HTTPXRequest(connection_pool_size=concurrency),
        )
        await bot.initialize()
        base = Baseline(bot, planned, concurrency)
        ours = Pledgebot(path, channel, messages)
        # Warm up both clients' connection pools (not counted).
        await Baseline(channel.bot, planned, concurrency).run_for(0.5)
        await Baseline(bot, planned, concurrency).run_for(0.5)
        slices = 0
        while not ours.done:
            await ours.run_for(slice_s)
            await base.run_for(slice_s)  # as long as pledgebot's: short windows are noisy
            slices += 1
            if slices % 5 == 0:
                log(
                    f"{ours.sent:,}/{messages:,} sent by pledgebot "
                    f"({ours.sent / ours.seconds:.0f}/s), baseline {base.sent / base.seconds:.0f}/s"
                )
        ours.close()
        await bot.shutdown()
        await channel.aclose()
        counters = sandbox.counters()
    ours_rate, base_rate = messages / ours.seconds, base.sent / base.seconds
    return report(
        "dispatch",
        ratio=ours_rate / base_rate,
        target=TARGET,
        higher_is_better=True,
        summary=(
            f"{messages:,} prompts planned+rendered+enqueued+dispatched at {ours_rate:.0f} "
            f"msgs/s ({ours.seconds:.0f} s, planning {ours.planning:.1f} s of it) vs bare "
            f"send_message at {base_rate:.0f} msgs/s ({concurrency} in flight; "
            f"{slices} interleaved slices)"
        ),
        pledgebot_per_s=ours_rate,
        baseline_per_s=base_rate,
        messages=messages,
        baseline_messages=base.sent,
        concurrency=concurrency,
        planning_s=ours.planning,
        pledgebot_s=ours.seconds,
        slices=slices,
        sandbox_429s=counters["rate_limited"],
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="prompts in the run")
    parser.add_argument("--slice", type=float, default=3.0, help="seconds per pledgebot turn")
    parser.add_argument("--quick", action="store_true", help="2,000 prompts")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages = 2_000
    return args


if __name__ == "__main__":
    arguments = parse()
    met = asyncio.run(main(arguments.messages, arguments.slice))
    raise SystemExit(1 if arguments.strict and not met else 0)
