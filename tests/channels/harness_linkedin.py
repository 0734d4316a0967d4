"""The contract harness for LinkedIn: the adapter (httpx) against the in-package LinkedIn REST
sandbox (sandbox/pledgebot_sandbox/linkedin.py), faults injected through the sandbox's own methods."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.linkedin.adapter import LinkedInChannel
from bot.channels.linkedin.settings import LinkedInSettings
from pledgebot_sandbox.linkedin import LinkedInSandbox

REFUSED_TOKEN = "AQXrefusedrefusedrefusedrefusedrefused"


class LinkedInHarness:
    name = "linkedin"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "posts go to the organisation's own page: no recipient can leave it",
        "inbound": "pledgebot only posts on LinkedIn; it reads no comments or mentions there",
    }
    delete_again = None  # LinkedIn answers 204 again (a 404 would count as deleted too)

    async def start(self) -> None:
        self.sandbox = LinkedInSandbox()
        await self.sandbox.start()

    async def stop(self) -> None:
        await self.sandbox.stop()

    def secrets(self) -> list[str]:
        return [self.sandbox.access_token, REFUSED_TOKEN]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        settings = LinkedInSettings(
            enabled=True,
            api_base_url=self.sandbox.api_base_url,
            organization_id=self.sandbox.organization_id,
            api_version=self.sandbox.latest_version,
            request_timeout=3,
        )
        token = REFUSED_TOKEN if bad_credentials else self.sandbox.access_token
        return LinkedInChannel(settings, {"access_token": SecretStr(token)})

    def recipient(self) -> str:
        return "timeline"

    def received(self) -> list[str]:
        return self.sandbox.texts()  # as readers see them: escapes undone

    async def fail_next_send(self, how: str) -> bool | None:
        kinds = {
            "rate_limited": "rate_limited",
            "transient": "unavailable",
            "unauthorized": "expired_token",
        }
        if how not in kinds:
            return None
        self.sandbox.fail_next("posts.create", kinds[how])
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return "Child labour ends with all of us. " * 100  # 3,400 characters; LinkedIn allows 3,000

    def gone(self, external_id: str) -> bool | None:
        return external_id in [post["id"] for post in self.sandbox.posts(deleted=True)]
