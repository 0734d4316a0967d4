"""The contract harness for Telegram: python-telegram-bot against the Telegram sandbox."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.telegram.adapter import TelegramChannel
from bot.channels.telegram.settings import TelegramSettings
from pledgebot_sandbox import TelegramSandbox

CHAT = 4242
GONE = 4343


class TelegramHarness:
    name = "telegram"
    not_applicable: ClassVar[dict[str, str]] = {}
    # A post already gone (404 / "message to delete not found") is what a delete wants: done.
    delete_again = None

    async def start(self) -> None:
        self.sandbox = TelegramSandbox()
        await self.sandbox.start()
        self.sandbox.add_chat(CHAT)

    async def stop(self) -> None:
        await self.sandbox.stop()

    def secrets(self) -> list[str]:
        return [self.sandbox.token, self.sandbox.token.partition(":")[2]]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        token = "999:NOT-OUR-TOKEN" if bad_credentials else self.sandbox.token
        settings = TelegramSettings(
            enabled=True, base_url=self.sandbox.base_url, poll_timeout=1, request_timeout=3
        )
        return TelegramChannel(settings, {"token": SecretStr(token)})

    def recipient(self) -> str:
        return str(CHAT)

    def received(self) -> list[str]:
        return [m["text"] for m in self.sandbox.sent_messages(CHAT) if not m.get("deleted")]

    async def fail_next_send(self, how: str) -> bool | None:
        if how == "rate_limited":
            self.sandbox.inject_fault("sendMessage", retry_after=2)
        elif how == "transient":
            self.sandbox.inject_fault("sendMessage", status=502)
        else:
            return None
        return True

    async def gone_recipient(self) -> str | None:
        self.sandbox.add_chat(GONE)
        self.sandbox.block(GONE)
        return str(GONE)

    async def push_inbound(self, text: str) -> bool | None:
        self.sandbox.push_message(CHAT, text)
        return True

    def too_long(self) -> str:
        return "x" * 4097

    def gone(self, external_id: str) -> bool | None:
        sent = self.sandbox.sent_messages(CHAT)
        return any(m["message_id"] == int(external_id) and m.get("deleted") for m in sent)
