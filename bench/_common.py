"""Shared by the bench scripts: the sandbox in its own process, test data, the result line.

Every bench prints exactly one JSON line (``bench``, ``ratio``, ``target``, ``higher_is_better``
and its own figures) and then one human line. The ratio compares pledgebot with a baseline
measured in the same run, so a noisy or slow machine moves both sides alike.

The Telegram sandbox runs in a child process (its own core on a 2-core machine), not on the
event loop of the code being measured: otherwise the server's work would be billed to the
client and would hide most of the difference between pledgebot and the baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
LANGUAGES = ("en", "fr", "es")
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
FIRST_CHAT = 100_000


# -- the result line -------------------------------------------------------------------------
def report(
    bench: str,
    *,
    ratio: float,
    target: float,
    higher_is_better: bool,
    summary: str,
    also_required: bool = True,
    **figures: Any,
) -> bool:
    """Print the JSON line and the human line; returns whether the target is met (``met``:
    the ratio's target and ``also_required``, a bench's other condition, e.g. no 429s)."""
    met = (ratio >= target if higher_is_better else ratio <= target) and also_required
    line = {
        "bench": bench,
        "ratio": round(ratio, 3),
        "target": target,
        "higher_is_better": higher_is_better,
        "met": met,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
    }
    print(json.dumps(line), flush=True)
    sign = "≥" if higher_is_better else "≤"
    verdict = "ok" if met else "MISSED"
    print(f"{bench}: ratio {ratio:.3f} (target {sign} {target}, {verdict}) — {summary}", flush=True)
    return met


def log(message: str) -> None:
    """Progress goes to stderr, so stdout stays the two result lines."""
    print(message, file=sys.stderr, flush=True)


# -- test data -------------------------------------------------------------------------------
def pledgemaker_rows(size: int, *, prefix: str = "p") -> list[dict[str, Any]]:
    """``size`` pledgemakers in three languages and three time zones (ids ``p000000``…)."""
    zones = ("Africa/Accra", "Europe/Paris", "America/Santiago")
    return [
        {
            "id": f"{prefix}{i:06d}",
            "name": f"Org {i} & partners",  # an ampersand: the HTML escaping is exercised
            "country": "GH",
            "region": "africa",
            "sector": "ngo",
            "language": LANGUAGES[i % 3],
            "timezone": zones[i % 3],
            "pledge_title": f"Pledge number {i}",
            "pledge_text": "We pledge to act, inspire and scale up.",
            "pledge_date": date(2021, 5, 1),
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(size)
    ]


def insert_audience(session: Any, size: int, *, first_chat: int = FIRST_CHAT) -> list[int]:
    """Pledgemakers, each with an active Telegram contact bound to chat ``first_chat + i``."""
    from sqlalchemy import insert

    from bot.core.models import Contact, Pledgemaker

    people = pledgemaker_rows(size)
    chats = [first_chat + i for i in range(size)]
    for start in range(0, size, 5000):
        session.execute(insert(Pledgemaker), people[start : start + 5000])
        session.execute(
            insert(Contact),
            [
                {
                    "pledgemaker_id": p["id"],
                    "channel": "telegram",
                    "address": str(chat),
                    "status": "active",
                    "bound_at": NOW,
                }
                for p, chat in zip(
                    people[start : start + 5000], chats[start : start + 5000], strict=True
                )
            ],
        )
    return chats


class Peek:
    """A plain read-only SQLite connection for watching progress from outside pledgebot.

    pledgebot's own sessions start with ``BEGIN IMMEDIATE`` (a write lock); this reader takes
    none in WAL mode, so watching does not slow down what is watched.
    """

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.connection.execute(sql, params).fetchone()[0]

    async def wait_for(
        self, sql: str, target: int, *, timeout: float, interval: float = 0.02, fail: bool = True
    ) -> bool:
        """Poll until ``sql`` counts ``target``; at the timeout raise, or return False."""
        deadline = time.monotonic() + timeout
        while self.scalar(sql) < target:
            if time.monotonic() > deadline:
                if not fail:
                    return False
                raise TimeoutError(f"{sql!r} did not reach {target} in {timeout:.0f} s")
            await asyncio.sleep(interval)
        return True

    def close(self) -> None:
        self.connection.close()


# -- the sandbox in a child process ----------------------------------------------------------
def _add_chats(sandbox: Any, chat_ids: list[int]) -> None:
    for chat_id in chat_ids:
        sandbox.add_chat(chat_id)


def _push_messages(sandbox: Any, messages: list[tuple[int, str]]) -> None:
    for chat_id, text in messages:
        sandbox.push_message(chat_id, text)


def _counters(sandbox: Any) -> dict[str, Any]:
    return {
        "method_calls": dict(sandbox.method_calls),
        "rate_limited": sandbox.rate_limited,
        "pending_updates": sandbox.pending_updates,
        "sent": len(sandbox._state.sent),  # the records themselves would be copied: count only
    }


REMOTE: dict[str, Callable[..., Any]] = {
    "add_chats": _add_chats,
    "push_messages": _push_messages,
    "counters": _counters,
}


def _serve(kwargs: dict[str, Any]) -> None:
    """The child: one sandbox on one event loop; JSON requests on stdin, answers on stdout."""
    from pledgebot_sandbox import TelegramSandbox

    async def main() -> None:
        sandbox = TelegramSandbox(**kwargs)
        await sandbox.start()
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def answer(name: str, args: list[Any]) -> None:
            try:
                reply = {"ok": REMOTE[name](sandbox, *args)}
            except Exception as exc:  # reported to the parent, which raises it
                reply = {"error": repr(exc)}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()

        def reader() -> None:  # blocking reads off the loop; each request runs on the loop
            for line in sys.stdin:
                request = json.loads(line)
                if request["name"] == "stop":
                    break
                loop.call_soon_threadsafe(answer, request["name"], request["args"])
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=reader, daemon=True).start()
        answer_line = {"ok": [sandbox.base_url, sandbox.token]}
        sys.stdout.write(json.dumps(answer_line) + "\n")
        sys.stdout.flush()
        await done.wait()
        await sandbox.stop()

    asyncio.run(main())


class RemoteSandbox:
    """``with RemoteSandbox(overall_rate=…, chat_rate=…, chat_burst=…) as sandbox:``

    A ``TelegramSandbox`` in a child process, driven by JSON lines over its stdin and stdout.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.base_url = ""
        self.token = ""
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> RemoteSandbox:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "serve", json.dumps(self.kwargs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url, self.token = self._receive()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        with contextlib.suppress(OSError):
            self._process.stdin.write(json.dumps({"name": "stop"}) + "\n")
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _receive(self) -> Any:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"sandbox: {reply['error']}")
        return reply["ok"]

    def call(self, name: str, *args: Any) -> Any:
        assert self._process is not None and self._process.stdin is not None
        with self._lock:
            self._process.stdin.write(json.dumps({"name": name, "args": args}) + "\n")
            self._process.stdin.flush()
            return self._receive()

    async def acall(self, name: str, *args: Any) -> Any:
        """The same, from a coroutine: the wait for the answer does not block the loop."""
        return await asyncio.to_thread(self.call, name, *args)

    def add_chats(self, chat_ids: list[int]) -> None:
        for start in range(0, len(chat_ids), 5000):
            self.call("add_chats", chat_ids[start : start + 5000])

    def push_messages(self, messages: list[tuple[int, str]]) -> None:
        for start in range(0, len(messages), 5000):
            self.call("push_messages", messages[start : start + 5000])

    def counters(self) -> dict[str, Any]:
        return dict(self.call("counters"))


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    _serve(json.loads(sys.argv[2]))
