"""An in-process pledgebot (``bot.cli.runner.serve``) talking HTTP to a TelegramSandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.cli.runner import serve
from bot.community import contacts
from bot.community.importer import import_pledgemakers
from bot.core.models import Contact, InboundEvent, OutboxMessage, utcnow
from bot.delivery import outbox
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import load_config
from pledgebot_sandbox import TelegramSandbox
from tests.conftest import SAMPLE_CSV, TOKEN_ENV, write_config


async def eventually(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Live:
    def __init__(self, app: App, sandbox: TelegramSandbox) -> None:
        self.app, self.sandbox = app, sandbox
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(serve(self.app, self.stop, with_scheduler=False))

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task

    def scalar(self, query: Any) -> Any:
        with self.app.db.session() as session:
            return session.scalar(query)

    def all(self, query: Any) -> list[Any]:
        with self.app.db.session() as session:
            return list(session.scalars(query))

    def count(self, model: Any, *conditions: Any) -> int:
        return int(self.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)

    async def bind(self, pledgemaker_id: str, chat_id: int, **chat: Any) -> None:
        with self.app.db.session() as session:
            token = contacts.create_invite(session, pledgemaker_id, "telegram").token
        self.sandbox.add_chat(chat_id, **chat)
        self.sandbox.push_message(chat_id, f"/start {token}")
        await eventually(
            lambda: self.count(
                Contact, Contact.address == str(chat_id), Contact.status == "active"
            ),
            f"chat {chat_id} to be bound",
        )
        await self.settle()

    async def fire(
        self, campaign_id: str = "act-checkin", to: str | None = None, *, settle: bool = True
    ) -> runs.FireResult:
        spec = self.app.schedules().get(campaign_id).spec
        result = runs.fire(
            self.app.db, self.app.templates, spec, utcnow(), trigger="manual", only=to
        )
        if settle:
            await self.settle()
        return result

    async def settle(self, timeout: float = 15) -> None:
        """Wait until every stored event is processed and nothing is left to send."""

        def settled() -> bool:
            return (
                self.count(InboundEvent, InboundEvent.processed_at.is_(None)) == 0
                and self.count(OutboxMessage, OutboxMessage.state.in_(outbox.OPEN_STATES)) == 0
                and self.sandbox.pending_updates == 0
            )

        await eventually(settled, "pledgebot to settle", timeout)
        await asyncio.sleep(0.05)
        await eventually(settled, "pledgebot to settle", timeout)

    def last_prompt(self, chat_id: int) -> dict[str, Any]:
        return next(
            m for m in reversed(self.sandbox.sent_messages(chat_id)) if m.get("reply_markup")
        )

    def texts(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sandbox.sent_messages(chat_id)]


async def start_live(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    before_start: Callable[[TelegramSandbox], None] | None = None,
    extra: str = "",
) -> Live:
    """Sandbox first (its port goes into the config), then pledgebot's loops."""
    sandbox = TelegramSandbox(overall_rate=1000.0, chat_rate=100.0, chat_burst=100)
    await sandbox.start()
    if before_start is not None:
        before_start(sandbox)
    monkeypatch.setenv(TOKEN_ENV, sandbox.token)
    path = write_config(tmp_path, base_url=sandbox.base_url, extra=extra)
    app = build_app(load_config(path, required=True))
    app.db.upgrade()
    with app.db.session() as session:
        import_pledgemakers(session, SAMPLE_CSV)
    live = Live(app, sandbox)
    await live.start()
    return live
