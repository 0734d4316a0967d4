"""The contract harness for the webhook: the adapter against a receiver that checks signatures."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.webhook.adapter import WebhookChannel
from bot.channels.webhook.settings import WebhookSettings
from pledgebot_sandbox.webhook import WebhookReceiver


class WebhookHarness:
    name = "webhook"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "a webhook has one receiver, the comms team's own tool",
        "inbound": "a webhook only sends",
        "too_long": "a document is never split or refused for length (up to 1,000,000 chars)",
    }
    # The same delete again carries the same Idempotency-Key: the receiver drops it, 200.
    delete_again = None

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
        """The posts the receiver holds and was not told to delete (it gave the n-th document
        stored the id ``wh-<n>``)."""
        deleted = {body["post_id"] for body in self.receiver.received if body["event"] == "delete"}
        return [
            str(body["document"].get("text", body["document"]))
            for number, body in enumerate(self.receiver.received, start=1)
            if body["event"] == "post" and f"wh-{number}" not in deleted
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

    def gone(self, external_id: str) -> bool | None:
        """The receiver was told, once, with a valid signature, to take the post down."""
        told = [
            b for b in self.receiver.received if b == {"event": "delete", "post_id": external_id}
        ]
        return len(told) == 1
