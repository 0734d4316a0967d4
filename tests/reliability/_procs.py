"""Helpers for the crash and takeover suites: pledgebot's long-running commands as real child
processes (killed with SIGKILL), their JSON logs, a tuned config, and bulk-bound chats."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bot.core.models import Contact, Pledgemaker, utcnow
from bot.service.app import App
from tests.auxil.cli import PLEDGEBOT
from tests.conftest import TOKEN_ENV, cli_env


def wait_for(check: Callable[[], Any], what: str, timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return value


class Proc:
    """One ``pledgebot <command>`` child process; restartable; logs JSON lines to ``<name>.log``."""

    def __init__(self, folder: Path, command: str, token: str, name: str | None = None) -> None:
        self.folder, self.command, self.token = folder, command, token
        self.name = name or command
        self.log = folder / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PLEDGEBOT,
                    "--config",
                    str(self.folder / "config.toml"),
                    "--log-format",
                    "json",
                    self.command,
                ],
                cwd=self.folder,
                env=cli_env(**{TOKEN_ENV: self.token}),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> float:
        """SIGKILL and reap; returns the wall-clock time of the kill."""
        assert self.process is not None
        at = time.time()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        return at

    def started(self) -> bool:
        """The current process has said it is running (its signal handlers are in place)."""
        return any(
            record.get("pid") == self.pid
            and str(record.get("message", "")).startswith("pledgebot running")
            for record in self.records()
        )

    def terminate(self, timeout: float = 60) -> int:
        """A graceful stop (SIGTERM) of a started process: one restarted just now is first let
        finish starting, else the signal would meet Python's default handler (exit -15)."""
        assert self.process is not None
        process = self.process
        if process.poll() is None:
            wait_for(
                lambda: process.poll() is not None or self.started(),
                f"{self.name} (pid {self.pid}) to finish starting",
                timeout,
            )
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def cleanup(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records of every start of this process (other lines are skipped)."""
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                record["at"] = datetime.fromisoformat(record["time"]).timestamp()
                found.append(record)
        return found

    def logged(self, text: str, *, pid: int | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records()
            if text in r["message"] and (pid is None or r.get("pid") == pid)
        ]

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def tune_config(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    """Set keys in sections of a config written by tests.conftest.write_config (a key the
    section lacks is added to it; a section the file lacks is appended)."""
    text = path.read_text(encoding="utf-8")
    for section, values in sections.items():
        header = f"[{section}]"
        if header not in text:
            text += f"\n{header}\n"
        head, _, rest = text.partition(header + "\n")
        body, nxt, tail = rest.partition("\n[")
        lines = body.splitlines()
        for key, value in values.items():
            line = f"{key} = {json.dumps(value)}"
            at = [i for i, old in enumerate(lines) if old.split("=")[0].strip() == key]
            if at:
                lines[at[0]] = line
            else:
                lines.append(line)
        text = head + header + "\n" + "\n".join(lines) + (nxt + tail if nxt else "\n")
    path.write_text(text, encoding="utf-8")


def use_database(path: Path, url: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert 'url = "sqlite:///pledgebot.db"' in text
    path.write_text(text.replace('url = "sqlite:///pledgebot.db"', f'url = "{url}"'), "utf-8")


def bind_chats(app: App, chat_ids: list[int], prefix: str = "crash", **fields: Any) -> None:
    """One pledgemaker per chat, copied from a sample one (``fields`` changed), with an active
    Telegram contact."""
    with app.db.session() as session:
        template = session.get(Pledgemaker, "gh-min-labour")
        assert template is not None
        copied = {c.key: getattr(template, c.key) for c in Pledgemaker.__table__.columns}
        session.execute(
            insert(Pledgemaker),
            [{**copied, **fields, "id": f"{prefix}-{c}", "name": f"Org {c}"} for c in chat_ids],
        )
        now = utcnow()
        session.execute(
            insert(Contact),
            [
                {
                    "pledgemaker_id": f"{prefix}-{c}",
                    "channel": "telegram",
                    "address": str(c),
                    "status": "active",
                    "bound_at": now,
                }
                for c in chat_ids
            ],
        )


def count(app: App, model: Any, *conditions: Any) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)
