"""The contract harness for Matrix: matrix-nio against a real Synapse (tests/channels/synapse.py).

Each harness gets a fresh bot account and pledgemaker in a direct room on the process's one
Synapse. The adapter talks to Synapse through a loopback proxy, which can answer the next send
with a 5xx or a 401 (Synapse cannot be made to); the 429 is Synapse's own: the bot's rate-limit
exemption is withdrawn and its burst used up.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.error
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import SecretStr

from bot.channels.matrix.adapter import MatrixChannel
from bot.channels.matrix.settings import MatrixSettings
from tests.channels.synapse import Account, FaultyProxy, Synapse, shared


class MatrixHarness:
    name = "matrix"
    not_applicable: ClassVar[dict[str, str]] = {}
    # The same redaction again reuses its transaction id: Synapse answers as the first time.
    delete_again = None

    async def start(self) -> None:
        self.synapse: Synapse = await asyncio.to_thread(shared)
        self.bot: Account = self.synapse.register("pledgebot")
        self.maker: Account = self.synapse.register("maker")
        self.room = self.synapse.create_room(self.bot, invite=(self.maker.user_id,))
        self.synapse.join(self.maker, self.room)
        self.proxy = FaultyProxy(self.synapse.base_url)
        await self.proxy.start()

    async def stop(self) -> None:
        await self.proxy.stop()

    def secrets(self) -> list[str]:
        return [self.bot.access_token]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        token = f"syt_{secrets.token_urlsafe(16)}" if bad_credentials else self.bot.access_token
        settings = MatrixSettings(
            enabled=True, homeserver=self.proxy.base_url, request_timeout=5, sync_timeout_ms=500
        )
        return MatrixChannel(settings, {"access_token": SecretStr(token)})

    def recipient(self) -> str:
        return self.room

    def received(self) -> list[str]:
        return [
            str(event["content"].get("body"))
            for event in self.synapse.messages(self.maker, self.room)
            if event["sender"] == self.bot.user_id and not _redacted(event)
        ]

    async def fail_next_send(self, how: str) -> bool | None:
        if how == "rate_limited":
            self._use_up_rate_limit()
        elif how == "transient":
            self.proxy.fail_next("/send/", 502)
        elif how == "unauthorized":
            body = {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed."}
            self.proxy.fail_next("/send/", 401, body)
        else:
            return None
        return True

    def _use_up_rate_limit(self) -> None:
        """Synapse's own 429: the bot loses its exemption and sends elsewhere until refused."""
        admin = self.synapse.admin
        assert admin is not None
        self.synapse.request(
            "DELETE",
            f"/_synapse/admin/v1/users/{quote(self.bot.user_id)}/override_ratelimit",
            token=admin.access_token,
        )
        scratch = self.synapse.create_room(self.bot, direct=False)
        for _ in range(20):
            try:
                self.synapse.say(self.bot, scratch, {"msgtype": "m.text", "body": "warm-up"})
            except urllib.error.HTTPError as exc:
                if exc.code == 429:
                    return
                raise
        raise AssertionError("Synapse never rate-limited the bot")

    async def gone_recipient(self) -> str | None:
        """A direct room its pledgemaker left; the bot notices on its next poll and leaves too."""
        leaver = self.synapse.register("leaver")
        room = self.synapse.create_room(self.bot, invite=(leaver.user_id,))
        self.synapse.join(leaver, room)
        self.synapse.leave(leaver, room)
        watcher = await self.adapter()
        try:
            await watcher.poll(None)
        finally:
            await watcher.aclose()
        return room

    async def push_inbound(self, text: str) -> bool | None:
        self.synapse.say(self.maker, self.room, {"msgtype": "m.text", "body": text})
        return True

    def too_long(self) -> str:
        return "x" * 70_000  # Synapse refuses events over 65,536 bytes (M_TOO_LARGE)

    def gone(self, external_id: str) -> bool | None:
        """Redacted, as the pledgemaker's client sees it: the body stripped, the redaction named."""
        events = self.synapse.messages(self.maker, self.room)
        return any(e["event_id"] == external_id and _redacted(e) for e in events)


def _redacted(event: dict[str, Any]) -> bool:
    return "redacted_because" in event.get("unsigned", {}) and "body" not in event["content"]
