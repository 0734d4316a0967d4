"""The long-running processes: ``run`` (everything) or one role each (``worker``, ``scheduler``,
``listener``, ``web``), on one database.

Roles: ``dispatcher`` sends the outbox (any number of processes on PostgreSQL, claiming with
SKIP LOCKED); ``scheduler`` fires campaigns and sweeps cadences, ``listener`` polls each chat
channel and ``inbox`` turns stored events into replies — each of those three runs in exactly one
process at a time (``bot.core.coordination.Leadership``); ``web`` serves health and metrics.

Shutdown (Ctrl-C or SIGTERM): stop polling, finish the events already stored (at most
``SHUTDOWN_SECONDS``), let sends on the wire complete, then exit. After ``kill -9`` a restart
begins at once: SQLite's process lock is an ``flock`` the kernel releases with the process, and
messages left ``sending`` are resent (counted as possible duplicates); on PostgreSQL the other
processes take over the dead one's roles within seconds and its leases expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from typing import Any, cast

from bot.channels import registry
from bot.channels.base import ChatChannel, SetsCommands
from bot.community import invitations
from bot.core.aio import wait_any
from bot.core.coordination import Leadership, is_sqlite, lead, process_lock
from bot.core.db import one_line
from bot.core.logs import scrub
from bot.delivery import outbox
from bot.delivery.alerts import Alerts
from bot.delivery.dispatcher import Dispatcher
from bot.inbound.inbox import Listener, Processor
from bot.scheduling.scheduler import CampaignScheduler
from bot.service.app import App

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 20.0
RESTART_MAX_SECONDS = 30.0  # a failed role is started again after at most this long
ROLES = ("dispatcher", "scheduler", "listener", "inbox", "web")
COMMAND_ROLES: dict[str, tuple[str, ...]] = {
    "run": ROLES,
    "worker": ("dispatcher",),
    "scheduler": ("scheduler",),
    "listener": ("listener", "inbox"),
    "web": ("web",),
}


class Roles:
    """The roles of one process, started and stopped in order."""

    def __init__(self, app: App, roles: Collection[str]) -> None:
        self.app, self.roles = app, set(roles)
        self.engine = app.db.engine
        # Only roles that talk to a platform need its adapters (and their secrets).
        talks = self.roles & {"dispatcher", "listener", "inbox"}
        self.channels = app.enabled_channels() if talks else {}
        self.chat_channels = {
            name: cast(ChatChannel, channel)
            for name, channel in self.channels.items()
            if registry.spec(name).inbound
        }
        self.alerts = Alerts(app.db, app.config.alerts)
        self.dispatcher = Dispatcher(
            app.db,
            self.channels,
            app.config.dispatcher,
            self.alerts,
            on_gone=invitations.address_gone,
        )
        self.processor = Processor(
            app.db,
            self.chat_channels,
            app.conversation(),
            app.config.path("media"),
            max_bytes=app.config.media.max_bytes,
            on_enqueued=self.dispatcher.wake,
        )
        self.stops = {name: asyncio.Event() for name in ("listen", "process", "schedule", "send")}
        self._dispatched = False
        self.tasks: dict[str, list[asyncio.Task[Any]]] = {name: [] for name in self.stops}

    async def start(self) -> None:
        if "dispatcher" in self.roles and is_sqlite(self.app.config.database_url):
            # Single process (the process lock is held): whatever is 'sending' was in flight
            # when the last process died. On PostgreSQL other workers' leases expire instead.
            with self.app.db.session() as session:
                in_flight = outbox.expire_leases(session)
            if in_flight:
                log.warning(
                    "%d message(s) in flight at the last stop: resending "
                    "(counted as possible duplicates)",
                    in_flight,
                )
        for name, channel in self.channels.items():
            try:
                await channel.start()
                if "listener" in self.roles and registry.spec(name).commands:
                    await cast(SetsCommands, channel).set_commands()
            except Exception as exc:  # getMe / setMyCommands: the loops retry the platform anyway
                log.warning("%s: start-up call failed (%s); continuing", name, exc)
        if "listener" in self.roles:
            for channel in self.chat_channels.values():
                self._lead(
                    "listen", f"listener:{channel.listener_key}", self._start_listener(channel)
                )
        if "inbox" in self.roles:
            self._lead("process", "inbox", self._start_processor)
        if "scheduler" in self.roles:
            self._lead("schedule", "scheduler", self._start_scheduler)
        if "dispatcher" in self.roles:
            sending = supervise("dispatcher", self._dispatch, self.stops["send"])
            self.tasks["send"].append(asyncio.create_task(sending))
        if "web" in self.roles:
            from bot.web import serve_web

            self.tasks["send"].append(asyncio.create_task(serve_web(self.app, self.stops["send"])))
        log.info(
            "pledgebot running: roles %s; channels %s",
            ", ".join(r for r in ROLES if r in self.roles),
            ", ".join(self.channels) or "none",
        )

    def _lead(self, stage: str, name: str, start: Any) -> None:
        leadership = Leadership(self.engine, name)
        self.tasks[stage].append(
            asyncio.create_task(lead(leadership, self.stops[stage], start, _finish))
        )

    def _start_listener(self, channel: ChatChannel) -> Any:
        async def start() -> tuple[asyncio.Task[None], asyncio.Event, float]:
            stop = asyncio.Event()
            listener = Listener(self.app.db, channel, self.processor.wake)
            name = f"listener ({channel.name})"
            return asyncio.create_task(supervise(name, listener.run, stop)), stop, 10.0

        return start

    async def _start_processor(self) -> tuple[asyncio.Task[None], asyncio.Event, float]:
        stop = asyncio.Event()
        running = supervise("inbox", self.processor.run, stop)
        return asyncio.create_task(running), stop, SHUTDOWN_SECONDS

    async def _dispatch(self, stop: asyncio.Event) -> None:
        # Restarted after an error: its rows left 'sending' are not expired (that resent what
        # the platform had, or was still on the wire). The failed run waited for its sends and
        # recorded them; what it could not record yet, the dispatcher kept and records first.
        # The rows of a process that died are expired at start (SQLite) or by their lease.
        if self._dispatched and self.dispatcher.carried:
            log.info("dispatcher: %d send(s) of its last run to record", self.dispatcher.carried)
        self._dispatched = True
        await self.dispatcher.run(stop)

    async def _start_scheduler(self) -> CampaignScheduler:
        scheduler = CampaignScheduler(
            self.app.db,
            self.app.templates,
            self.app.schedules(),
            self.dispatcher.wake.set,
            alerts=self.alerts,
            loader=self.app.schedules,
            watched=[self.app.config.path("schedules")],
            prompt_ttl=timedelta(days=self.app.config.conversation.prompt_ttl_days),
            destinations=self.app.destinations(),
            media_dir=self.app.config.path("media"),
        )
        scheduler.start()
        return scheduler

    async def stop(self) -> None:
        """In order: stop listening and scheduling, finish stored events, finish sends."""
        log.info("stopping: finishing stored events")
        for stage in ("schedule", "listen", "process", "send"):
            self.stops[stage].set()
            await asyncio.gather(*self.tasks[stage], return_exceptions=True)
        await self.app.aclose()


async def supervise(
    name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Run a role until ``stop``; a role that fails (the database locked past its timeout by a
    long import, a lost connection) is logged and started again after a pause that doubles up
    to ``RESTART_MAX_SECONDS`` — never left dead while the process looks healthy. A failure
    once ``stop`` is set is logged and ends it: what is left (stored events not processed yet)
    is done at the next start."""
    failures = 0
    while True:
        began = time.monotonic()
        try:
            await run(stop)
            return
        except Exception as exc:
            if time.monotonic() - began > RESTART_MAX_SECONDS:
                failures = 0  # it ran well for a while: a new episode
            failures += 1
            delay = min(RESTART_MAX_SECONDS, 0.5 * 2**failures)
            if stop.is_set():
                log.error("%s failed while stopping: %s", name, scrub(one_line(str(exc))))
                return
            log.error(
                "%s failed (%s: %s); restarting it in %.0f s",
                name,
                type(exc).__name__,
                scrub(one_line(str(exc))),
                delay,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            await wait_any(stop, timeout=delay)


async def _finish(role: Any) -> None:
    if isinstance(role, CampaignScheduler):
        role.shutdown()
        return
    task, stop, limit = role
    stop.set()
    try:
        await asyncio.wait_for(task, limit)
    except TimeoutError:
        log.warning("not finished within %.0f s; the rest is done at the next start", limit)


async def serve(
    app: App,
    stop: asyncio.Event,
    *,
    with_scheduler: bool = True,
    roles: Collection[str] = ("dispatcher", "scheduler", "listener", "inbox"),
) -> None:
    """Run the given roles until ``stop`` is set, then shut down in order."""
    chosen = set(roles) - (set() if with_scheduler else {"scheduler"})
    process = Roles(app, chosen)
    await process.start()
    stopping = asyncio.ensure_future(stop.wait())
    tasks = [task for stage in process.tasks.values() for task in stage]
    try:
        # A role that fails (a schedule file broken at start, say) stops the process with its
        # error, rather than leaving it running without that role.
        await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        await process.stop()
    for task in tasks:
        if task.done() and not task.cancelled() and (failure := task.exception()) is not None:
            raise failure


def check_port(app: App) -> None:
    """Refuse to start at all when the dashboard's port is taken: before any role starts, so the
    error is one line, not the other roles shutting down around it."""
    settings = app.config.dashboard
    if settings.port == 0:  # any free port
        return
    try:
        socket.create_server((settings.host, settings.port)).close()
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise app.config.error(
            "dashboard.port",
            f"cannot serve on {settings.host}:{settings.port} ({why}); stop the program "
            "using it or choose another [dashboard] host or port",
        ) from None


def run_forever(app: App, command: str = "run") -> None:
    if "web" in COMMAND_ROLES[command]:
        check_port(app)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, stop, roles=COMMAND_ROLES[command])

    with process_lock(app.config.database_url, command):
        app.db.upgrade()
        asyncio.run(main())
