"""Board: POST /notes pins a note, DELETE /notes/<id> takes it down; a bearer token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from bot.channels.base import Channel, Deletes, OutboundMessage, Receipt
from bot.channels.board.settings import BoardSettings
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError


class BoardChannel:
    name: ClassVar[str] = "board"
    Settings: ClassVar[type[BaseModel]] = BoardSettings

    def __init__(self, settings: BoardSettings, secrets: Mapping[str, SecretStr], **_: Any) -> None:
        token = secrets["token"].get_secret_value()
        self.client = httpx.AsyncClient(
            base_url=settings.base_url, headers={"authorization": f"Bearer {token}"}, timeout=5
        )

    async def start(self) -> None:
        await self._call("GET", "/me")

    async def send(self, message: OutboundMessage) -> Receipt:
        body = {"text": message.text, "key": message.idempotency_key}
        answer = await self._call("POST", "/notes", json=body)
        return Receipt(external_id=str(answer.json()["id"]))

    async def delete(self, message: OutboundMessage) -> None:
        await self._call("DELETE", f"/notes/{message.text}")

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            answer = await self.client.request(method, path, **options)
        except httpx.TransportError as exc:
            raise TransientError(f"the board is unreachable ({type(exc).__name__})") from None
        status = answer.status_code
        if status == 429:
            raise RateLimited(float(answer.headers.get("retry-after", "60")))
        if status == 401:
            raise ChannelUnauthorized("the board refused the token")
        if status >= 500:
            raise TransientError(f"the board answered {status}")
        if status == 404 and method == "DELETE":
            return answer  # already taken down: what was asked is done
        if status >= 400:
            raise Rejected(answer.json().get("error", f"the board answered {status}"))
        return answer


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = BoardChannel
_AS_DELETES: type[Deletes] = BoardChannel
