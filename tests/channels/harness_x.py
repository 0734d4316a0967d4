"""The contract harness for X: tweepy against the X API v2 sandbox."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.x.adapter import XChannel
from bot.channels.x.settings import XSettings
from pledgebot_sandbox.x import XSandbox


class XHarness:
    name = "x"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "posts go to the account's own timeline: no recipient can leave",
        "inbound": "pledgebot only posts on X; it reads no messages there",
    }
    # A post already gone (404 / "message to delete not found") is what a delete wants: done.
    delete_again = None

    async def start(self) -> None:
        self.sandbox = XSandbox()
        await self.sandbox.start()

    async def stop(self) -> None:
        await self.sandbox.stop()

    def secrets(self) -> list[str]:
        return list(self.sandbox.credentials.values())

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        secrets = {k: SecretStr(v) for k, v in self.sandbox.credentials.items()}
        if bad_credentials:
            secrets["access_token_secret"] = SecretStr("not-the-secret")
        settings = XSettings(enabled=True, api_base_url=self.sandbox.base_url, request_timeout=3)
        return XChannel(settings, secrets)

    def recipient(self) -> str:
        return "timeline"

    def received(self) -> list[str]:
        return [post["text"] for post in self.sandbox.posts()]

    async def fail_next_send(self, how: str) -> bool | None:
        if how == "rate_limited":
            self.sandbox.inject_fault(
                "POST /2/tweets", status=429, headers={"x-rate-limit-reset": "0"}
            )
        elif how == "transient":
            self.sandbox.inject_fault("POST /2/tweets", status=503)
        else:
            return None
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return "x" * 281

    def gone(self, external_id: str) -> bool | None:
        posts = self.sandbox.posts(include_deleted=True)
        return any(post["id"] == external_id and post["deleted"] for post in posts)
