"""Which process does what, when several run against one database.

SQLite is single-process: every long-running command (``run``, ``worker``, ``scheduler``,
``listener``) takes an ``flock`` beside the database file, and a second one is refused with the
pid of the first. The kernel drops the lock with the process, so a restart after ``kill -9``
begins at once. One-shot commands (``campaign fire``, ``review``, …) never take it.

PostgreSQL runs any number of processes. Workers share the outbox through ``SELECT … FOR UPDATE
SKIP LOCKED``; the roles that must run exactly once — the campaign scheduler, and the listener of
each bot token (Telegram answers a second ``getUpdates`` consumer with 409 Conflict) — run in the
process holding a session-level advisory lock on a connection kept for the purpose. The others
poll for the lock every ``poll`` seconds. When the holder dies its connection closes, PostgreSQL
frees the lock, and a waiter takes over within a poll; if the holder's connection breaks, it
steps down.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, text

from bot.core.aio import wait_any
from bot.core.errors import UserInputError

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@contextlib.contextmanager
def process_lock(url: str, command: str) -> Iterator[None]:
    """Refuse a second long-running process on one SQLite database (PostgreSQL: no-op)."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
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
        raise UserInputError(
            f"another long-running pledgebot ({holder}) is using {url}.\n"
            "SQLite allows one long-running process (run, worker, scheduler or listener) at a "
            "time; one-shot commands still work. To run several workers, use PostgreSQL "
            "(see 'Scaling out' in the README)."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"`pledgebot {command}`, pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a role name (same in every process)."""
    return int.from_bytes(hashlib.sha256(f"pledgebot:{name}".encode()).digest()[:8], signed=True)


LEADERS_SQL = """
SELECT l.pid, a.application_name, a.client_addr, a.backend_start,
       (l.classid::bigint << 32) | l.objid::bigint AS key
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = (
    SELECT oid FROM pg_database WHERE datname = current_database())
"""


def leaders(engine: Engine, names: list[str]) -> dict[str, str]:
    """Who leads each role, as PostgreSQL sees it: ``{name: "pid 123 (pledgebot …) since …"}``."""
    wanted = {lock_key(name) & 0xFFFFFFFFFFFFFFFF: name for name in names}
    found: dict[str, str] = {}
    with engine.connect() as connection:
        for pid, app_name, addr, since, key in connection.execute(text(LEADERS_SQL)):
            name = wanted.get(int(key) & 0xFFFFFFFFFFFFFFFF)
            if name is not None:
                where = f" on {addr}" if addr else ""
                found[name] = f"{app_name or 'pid ' + str(pid)}{where}, since {since:%H:%M:%S}"
    return found


class Leadership:
    """Exactly one holder per ``name`` across processes: a PostgreSQL advisory lock.

    On SQLite the process lock already makes this process the only one, so it always leads.
    """

    def __init__(self, engine: Engine, name: str, *, poll: float = POLL_SECONDS) -> None:
        self.engine, self.name, self.poll = engine, name, poll
        self.key = lock_key(name)
        self._connection: Connection | None = None
        self.single_process = is_sqlite(str(engine.url))

    def _try(self) -> bool:
        if self._connection is None:
            self._connection = self.engine.connect()
        # Session-level: held until unlocked or the connection closes, across transactions.
        got = self._connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
        ).scalar()
        self._connection.commit()
        return bool(got)

    def _alive(self) -> bool:
        assert self._connection is not None
        self._connection.execute(text("SELECT 1")).scalar()
        self._connection.commit()
        return True

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                # Invalidate, not close: a pooled connection would keep the session, and the lock.
                self._connection.invalidate()
                self._connection.close()
            self._connection = None

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process leads; False if ``stop`` was set first."""
        if self.single_process:
            return not stop.is_set()
        waited = False
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self._try):
                    log.info("%s: this process leads", self.name)
                    return True
            except Exception as exc:  # the database is unreachable: keep trying
                log.warning("%s: cannot ask for the lead (%s)", self.name, exc)
                self._drop()
            if not waited:
                log.info("%s: another process leads; standing by", self.name)
                waited = True
            await wait_any(stop, timeout=self.poll)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Return when ``stop`` is set, or when the lead is lost (the connection broke)."""
        while not stop.is_set():
            await wait_any(stop, timeout=self.poll)
            if self.single_process or stop.is_set():
                continue
            try:
                await asyncio.to_thread(self._alive)
            except Exception as exc:
                log.warning("%s: lost the lead (%s); stepping down", self.name, exc)
                self._drop()
                return

    def release(self) -> None:
        self._drop()


async def lead(
    leadership: Leadership,
    stop: asyncio.Event,
    start: Callable[[], Awaitable[Any]],
    finish: Callable[[Any], Awaitable[None]],
) -> None:
    """Run a role while this process leads; step down and stand by again if the lead is lost."""
    try:
        while await leadership.acquire(stop):
            role = await start()
            try:
                await leadership.hold(stop)
            finally:
                await finish(role)
    finally:
        leadership.release()
