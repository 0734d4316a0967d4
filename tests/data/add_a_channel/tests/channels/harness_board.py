"""The contract harness for the board."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from bot.channels.board.adapter import BoardChannel, BoardSettings
from pledgebot_sandbox.board import Board


class BoardHarness:
    name = "board"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "a board has no recipient who can leave",
        "inbound": "a board only shows notes",
    }
    delete_again = None  # a note already taken down: 404, done

    async def start(self) -> None:
        self.board = Board()
        await self.board.start()

    async def stop(self) -> None:
        await self.board.stop()

    def secrets(self) -> list[str]:
        return [self.board.token]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        token = "not-the-token" if bad_credentials else self.board.token
        settings = BoardSettings(enabled=True, base_url=self.board.url)
        return BoardChannel(settings, {"token": SecretStr(token)})

    def recipient(self) -> str:
        return "timeline"

    def received(self) -> list[str]:
        return list(self.board.notes.values())

    async def fail_next_send(self, how: str) -> bool | None:
        status = {"rate_limited": 429, "transient": 503}.get(how)
        if status is None:
            return None
        self.board.faults.append(status)
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return "x" * 201

    def gone(self, external_id: str) -> bool | None:
        return external_id in self.board.removed
