"""The contract harness for Bluesky: the atproto SDK against the in-package PDS sandbox
(sandbox/pledgebot_sandbox/bluesky.py), faults injected through the sandbox's own methods."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.bluesky.adapter import BlueskyChannel
from bot.channels.bluesky.settings import BlueskySettings
from pledgebot_sandbox.bluesky import BlueskySandbox

CREATE = "com.atproto.repo.createRecord"
REFUSED_PASSWORD = "zzzz-zzzz-zzzz-zzzz"


class BlueskyHarness:
    name = "bluesky"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "posts go to the account's own public feed: no recipient can leave it",
        "inbound": "pledgebot only posts on Bluesky; it reads no replies or mentions there",
    }
    delete_again = None  # deleteRecord is idempotent on a PDS: a record not there succeeds

    async def start(self) -> None:
        self.sandbox = BlueskySandbox()
        await self.sandbox.start()

    async def stop(self) -> None:
        await self.sandbox.stop()

    def secrets(self) -> list[str]:
        return [self.sandbox.app_password, REFUSED_PASSWORD]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        settings = BlueskySettings(
            enabled=True,
            service_url=self.sandbox.base_url,
            handle=self.sandbox.handle,
            request_timeout=3,
        )
        password = REFUSED_PASSWORD if bad_credentials else self.sandbox.app_password
        return BlueskyChannel(settings, {"app_password": SecretStr(password)})

    def recipient(self) -> str:
        return "timeline"

    def received(self) -> list[str]:
        return self.sandbox.texts()

    async def fail_next_send(self, how: str) -> bool | None:
        kinds = {
            "rate_limited": "rate_limited",
            "transient": "unavailable",
            "unauthorized": "unauthorized",
        }
        if how not in kinds:
            return None
        self.sandbox.fail_next(CREATE, kinds[how])
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return "Child labour ends with all of us. " * 10  # 340 graphemes; Bluesky allows 300

    def gone(self, external_id: str) -> bool | None:
        return all(post["uri"] != external_id for post in self.sandbox.posts())  # out of the repo
