"""``pledgebot run``: scheduler + dispatcher + listeners + inbox processor in one process.

Shutdown (Ctrl-C or SIGTERM): stop polling, finish the events already stored (at most
``SHUTDOWN_SECONDS``), let sends on the wire complete, then exit. After ``kill -9`` a restart
begins at once: the run lock is an ``flock`` the kernel releases with the process, and messages
left ``sending`` are resent (counted as possible duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO

from bot import outbox
from bot.alerts import Alerts
from bot.app import App
from bot.dispatcher import Dispatcher
from bot.errors import UserInputError
from bot.inbox import Listener, Processor
from bot.scheduler import CampaignScheduler

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 20.0


@contextlib.contextmanager
def run_lock(app: App) -> Iterator[None]:
    """One `run` per SQLite database (PostgreSQL coordination comes with several workers)."""
    url = app.config.database_url
    if not url.startswith("sqlite:///"):
        yield
        return
    path = Path(url.removeprefix("sqlite:///") + ".run.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise UserInputError(f"another `pledgebot run` (pid {holder}) is using {url}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


async def serve(app: App, stop: asyncio.Event, *, with_scheduler: bool = True) -> None:
    """Run every loop until ``stop`` is set, then shut down in order."""
    with app.db.session() as session:
        in_flight = outbox.expire_leases(session)
    if in_flight:
        log.warning(
            "%d message(s) in flight at the last stop: resending (counted as possible duplicates)",
            in_flight,
        )
    channels = app.enabled_channels()
    for name, channel in channels.items():
        try:
            await channel.start()
            if hasattr(channel, "set_commands"):
                await channel.set_commands()
        except Exception as exc:  # getMe / setMyCommands: the loops retry the platform anyway
            log.warning("%s: start-up call failed (%s); continuing", name, exc)
    alerts = Alerts(app.db, app.config.alerts)
    dispatcher = Dispatcher(app.db, channels, app.config.dispatcher, alerts)
    chat_channels = {n: c for n, c in channels.items() if c.capabilities.inbound}
    processor = Processor(
        app.db,
        chat_channels,
        app.conversation(),
        app.config.path("media"),
        max_bytes=app.config.media.max_bytes,
        on_enqueued=dispatcher.wake,
    )
    listeners = [Listener(app.db, c, processor.wake) for c in chat_channels.values()]
    scheduler = None
    if with_scheduler:
        scheduler = CampaignScheduler(
            app.db,
            app.templates,
            app.schedules(),
            dispatcher.wake.set,
            alerts=alerts,
            loader=app.schedules,
            watched=[app.config.path("schedules")],
            prompt_ttl=timedelta(days=app.config.conversation.prompt_ttl_days),
            destinations=app.destinations(),
        )
        scheduler.start()
    stop_listening = asyncio.Event()
    stop_processing = asyncio.Event()
    stop_sending = asyncio.Event()
    tasks = [asyncio.create_task(listener.run(stop_listening)) for listener in listeners]
    processing = asyncio.create_task(processor.run(stop_processing))
    sending = asyncio.create_task(dispatcher.run(stop_sending))
    log.info("pledgebot running: channels %s", ", ".join(channels) or "none")
    try:
        await stop.wait()
    finally:
        log.info("stopping: finishing stored events")
        if scheduler is not None:
            scheduler.shutdown()
        stop_listening.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_processing.set()
        try:
            await asyncio.wait_for(processing, SHUTDOWN_SECONDS)
        except TimeoutError:
            log.warning(
                "stored events not finished within %.0f s; they finish at the next start",
                SHUTDOWN_SECONDS,
            )
        stop_sending.set()
        await asyncio.gather(sending, return_exceptions=True)
        await app.aclose()


def run_forever(app: App) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, stop)

    with run_lock(app):
        app.db.upgrade()
        asyncio.run(main())
