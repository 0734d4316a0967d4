"""The contract harness for Facebook Pages: the adapter's Graph client (httpx) against the
in-package Graph sandbox (sandbox/pledgebot_sandbox/facebook.py), faults injected through the sandbox."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.facebook.adapter import FacebookChannel
from bot.channels.facebook.settings import FacebookSettings
from pledgebot_sandbox.facebook import GraphSandbox

REFUSED_TOKEN = "EAArevoked-facebook-page-token-000"


class FacebookHarness:
    name = "facebook"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "posts go to the campaign's own Page: no recipient can leave it",
        "inbound": "pledgebot only posts on Facebook; it reads no comments or messages there",
    }
    delete_again = None  # Graph's code 100, subcode 33 (no such object) counts as deleted

    async def start(self) -> None:
        self.sandbox = GraphSandbox()
        await self.sandbox.start()

    async def stop(self) -> None:
        await self.sandbox.stop()

    def secrets(self) -> list[str]:
        return [self.sandbox.page_token, self.sandbox.ig_token, REFUSED_TOKEN]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        settings = FacebookSettings(
            enabled=True,
            page_id=self.sandbox.page_id,
            graph_url=self.sandbox.base_url,
            request_timeout=3,
        )
        token = REFUSED_TOKEN if bad_credentials else self.sandbox.page_token
        return FacebookChannel(settings, {"page_token": SecretStr(token)})

    def recipient(self) -> str:
        return "timeline"

    def received(self) -> list[str]:
        return self.sandbox.texts()

    async def fail_next_send(self, how: str) -> bool | None:
        kinds = {"rate_limited": "rate_limited", "transient": "server_error"}
        kinds["unauthorized"] = "expired_token"
        if how not in kinds:
            return None
        self.sandbox.fail_next(kinds[how], "feed")
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return "Child labour ends with all of us. " * 1860  # 63,240 characters; a Page: 63,206

    def gone(self, external_id: str) -> bool | None:
        return external_id in self.sandbox.deleted()
