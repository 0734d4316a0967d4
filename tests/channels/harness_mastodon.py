"""The Mastodon channel for the shared contract (tests/channels/contract.py): the real adapter
against a real mastodon-mock server (tests/channels/mastodon_server.py), faults injected through
the mock's control plane."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.mastodon.adapter import MastodonChannel
from bot.channels.mastodon.settings import MastodonSettings
from bot.core.errors import ChannelUnauthorized
from tests.channels.mastodon_server import MastodonServer

REFUSED_TOKEN = "revoked-mastodon-token"


class MastodonHarness:
    name = "mastodon"
    delete_again = None  # the instance's 404 for a status already deleted counts as deleted
    # The mock runs in this process: its SQL log shows the token it stores (ours does not).
    server_loggers = ("sqlalchemy", "mastodon_mock", "uvicorn", "fastapi")

    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "posts go to our own public timeline: no recipient can leave it",
        "inbound": "a public timeline, outbound only: replies and mentions are not read",
    }

    def __init__(self) -> None:
        self.server = MastodonServer()
        self._adapters: list[MastodonChannel] = []

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        for adapter in self._adapters:
            await adapter.aclose()
        self._adapters.clear()
        await asyncio.to_thread(self.server.stop)

    def secrets(self) -> list[str]:
        return [self.server.token, REFUSED_TOKEN]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        settings = MastodonSettings(
            enabled=True, api_base_url=self.server.base_url, request_timeout=3
        )
        token = REFUSED_TOKEN if bad_credentials else self.server.token
        adapter = MastodonChannel(settings, {"access_token": SecretStr(token)})
        self._adapters.append(adapter)
        try:
            await adapter.start()
        except ChannelUnauthorized:
            if not bad_credentials:
                raise  # refused credentials show again on every send, as the contract expects
        return adapter

    def recipient(self) -> str:
        return "timeline"

    def received(self) -> list[str]:
        return self.server.texts()

    async def fail_next_send(self, how: str) -> bool | None:
        if how == "rate_limited":
            await asyncio.to_thread(self.server.rate_limit_next, 2)
        elif how == "transient":
            await asyncio.to_thread(lambda: self.server.fault(status=503))
        elif how == "unauthorized":
            await asyncio.to_thread(lambda: self.server.fault(status=401))
        else:
            return None
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return "Child labour ends with all of us. " * 20  # 680 characters; Mastodon allows 500

    def gone(self, external_id: str) -> bool | None:
        return self.server.status(external_id) is None  # the instance answers 404
