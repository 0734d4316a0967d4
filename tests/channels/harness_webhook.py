"""The contract harness for the webhook: the adapter against a receiver that checks signatures."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.webhook import WebhookChannel, WebhookSettings
from bot.sandbox.webhook import WebhookReceiver


class WebhookHarness:
    name = "webhook"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "a webhook has one receiver, the comms team's own tool",
        "inbound": "a webhook only sends",
        "too_long": "a document is never split or refused for length (up to 1,000,000 chars)",
    }

    async def start(self) -> None:
        self.receiver = WebhookReceiver()
        await self.receiver.start()

    async def stop(self) -> None:
        await self.receiver.stop()

    def secrets(self) -> list[str]:
        return [self.receiver.secret]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        secret = "not-the-shared-secret" if bad_credentials else self.receiver.secret
        settings = WebhookSettings(enabled=True, url=self.receiver.url, request_timeout=3)
        return WebhookChannel(settings, {"secret": SecretStr(secret)})

    def recipient(self) -> str:
        return "webhook"

    def received(self) -> list[str]:
        return [
            str(body["document"].get("text", body["document"])) for body in self.receiver.received
        ]

    async def fail_next_send(self, how: str) -> bool | None:
        status = {"rate_limited": 429, "transient": 503}.get(how)
        if status is None:
            return None
        self.receiver.inject_fault(status, retry_after=2 if status == 429 else None)
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return ""
