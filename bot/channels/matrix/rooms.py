"""Direct rooms: where the bot writes to a pledgemaker it knows by user id (``@them:server``).

Their direct room with the bot is found in the bot's ``m.direct`` account data (where every
Matrix client keeps it, so a restart finds it) or created with an invitation — the "invitation
by room invite". Someone who left our conversation is not invited again: ``RecipientGone``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import quote

import aiohttp
import nio

from bot.channels.matrix.errors import answer, call, delivery_error, http_status
from bot.channels.matrix.settings import USER_ID
from bot.core.errors import RecipientGone

log = logging.getLogger(__name__)


class DirectRooms:
    """The bot's direct rooms, by the user they are with (the client must be signed in)."""

    def __init__(self, client: nio.AsyncClient) -> None:
        self.client = client
        self.known: dict[str, str] = {}  # user id → their direct room with the bot
        self._finding = asyncio.Lock()  # two sends to a new user must not make two rooms

    def forget(self, room_id: str) -> None:
        self.known = {user: room for user, room in self.known.items() if room != room_id}

    async def room_for(self, recipient: str) -> str:
        """A room id as it is; a user id: their direct room, created (and invited) if none."""
        if not USER_ID.match(recipient):
            return recipient
        async with self._finding:
            known = self.known.get(recipient)
            return known if known is not None else await self._find(recipient)

    async def _find(self, recipient: str) -> str:
        direct = await self._direct_rooms()
        left = False
        for room_id in reversed(direct.get(recipient, [])):  # the newest first
            membership = await self._membership(room_id, recipient)
            if membership in ("join", "invite"):
                self.known[recipient] = room_id
                return room_id
            left = left or membership in ("leave", "ban")
        if left:  # they walked out of our conversation: do not invite them again
            raise RecipientGone(f"Matrix: {recipient} left the direct room with the bot")
        # Synapse invites a local user who does not exist without complaint: ask first.
        profile = await answer("profile", self.client.get_profile(recipient))
        if isinstance(profile, nio.ErrorResponse) and http_status(profile) == 404:
            raise RecipientGone(f"Matrix: there is no user {recipient}")
        created = await call(
            "create room",
            self.client.room_create(
                is_direct=True, invite=[recipient], preset=nio.RoomPreset.trusted_private_chat
            ),
            recipient=recipient,
        )
        room_id = str(created.room_id)
        self.known[recipient] = room_id
        direct.setdefault(recipient, []).append(room_id)
        await self._save(direct)
        return room_id

    async def _direct_rooms(self) -> dict[str, list[str]]:
        response = await answer("m.direct", self.client.list_direct_rooms())
        if isinstance(response, nio.DirectRoomsErrorResponse):
            if response.status_code == "M_NOT_FOUND":  # no direct room yet
                return {}
            raise delivery_error("m.direct", response)
        return {user: list(rooms) for user, rooms in response.rooms.items()}

    async def _save(self, direct: dict[str, list[str]]) -> None:
        """Remember direct rooms where every Matrix client does (so a restart finds them)."""
        user = quote(self.client.user_id, safe="")
        path = f"/_matrix/client/v3/user/{user}/account_data/m.direct"
        try:
            saved = await self.client.send(
                "PUT",
                path,
                json.dumps(direct),
                headers={
                    "Authorization": f"Bearer {self.client.access_token}",
                    "Content-Type": "application/json",
                },
            )
            saved.release()
            if saved.status != 200:
                log.warning("Matrix: could not save m.direct (HTTP %d)", saved.status)
        except (TimeoutError, aiohttp.ClientError) as exc:  # the room works; only the memo failed
            log.warning("Matrix: could not save m.direct (%s)", type(exc).__name__)

    async def _membership(self, room_id: str, user_id: str) -> str | None:
        response = await answer(
            "membership", self.client.room_get_state_event(room_id, "m.room.member", user_id)
        )
        if isinstance(response, nio.ErrorResponse):
            if http_status(response) in (403, 404):
                return None  # not a room we can see (any more)
            raise delivery_error("membership", response)
        return str(response.content.get("membership") or "")
