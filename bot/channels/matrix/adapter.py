"""Matrix adapter, on matrix-nio's ``AsyncClient``: prompts and replies in direct rooms.

Sending: ``m.room.message``/``m.text`` to a room id, or to a user id (``@them:server``), whose
direct room is found in the bot's ``m.direct`` account data or created with an invitation — the
"invitation by room invite". Unlike Telegram, Matrix gives us idempotency: each send carries a
transaction id derived from the message's idempotency key, and the homeserver answers a resend
with the same token and transaction id with the event it already made (Synapse keeps them for a
day), so a message in flight at a crash is resent without a duplicate. HTML (our templates'
markup) goes out as ``formatted_body`` beside a plain-text ``body``.

Receiving: one ``/sync`` per ``poll``; the cursor is Matrix's ``next_batch`` (a string). A
timeline the homeserver cut short ("limited") is completed from ``/messages`` back to the
previous cursor, so a long downtime loses nothing. Invitations are accepted (a pledgemaker
starting a conversation). When the last other member leaves a room, the bot leaves it too:
Synapse accepts messages to a room nobody else is in, but refuses them from a non-member, so
every later send there fails as ``RecipientGone`` — in every process, not just the listener.

nio never retries on its own here (``max_limit_exceeded=0``, ``max_timeouts=0``): the dispatcher
decides. End-to-end encrypted rooms are not supported (no libolm): their messages are skipped
with a warning; rooms the bot creates are unencrypted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, TypeVar

import nio
from pydantic import BaseModel, SecretStr

from bot.channels.base import ChatChannel, Deletes, InboundEvent, OutboundMessage, Receipt
from bot.channels.matrix.content import message_content, transaction_id
from bot.channels.matrix.errors import call
from bot.channels.matrix.events import someone_left, to_event
from bot.channels.matrix.rooms import DirectRooms
from bot.channels.matrix.settings import MatrixSettings
from bot.channels.ratelimit import Limits
from bot.core.errors import ChannelUnauthorized, DeliveryError, RecipientGone

log = logging.getLogger(__name__)
T = TypeVar("T")

TIMELINE_LIMIT = 100  # events per room and sync; beyond it the gap is filled from /messages
BACKFILL_PAGES = 20  # at most this many pages of /messages per room and poll
SYNC_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": TIMELINE_LIMIT},
        "state": {"lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}


class MatrixChannel:
    name: ClassVar[str] = "matrix"
    Settings: ClassVar[type[BaseModel]] = MatrixSettings
    # Synapse refuses an event over 65,536 bytes of JSON. The text goes out twice (body and
    # formatted_body) and a character takes up to 4 bytes: 6,000 characters always fit.

    def __init__(
        self,
        settings: MatrixSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        token = secrets["access_token"].get_secret_value()
        # Names this account in shared state (the listener's lead), not the token.
        self.listener_key = f"matrix:{hashlib.sha256(token.encode()).hexdigest()[:16]}"
        config = nio.AsyncClientConfig(
            max_limit_exceeded=0,
            max_timeouts=0,
            request_timeout=settings.request_timeout,
            store_sync_tokens=False,
        )
        self.client = nio.AsyncClient(
            settings.homeserver.rstrip("/"),
            user=settings.user_id or "",
            device_id=settings.device_id,
            config=config,
        )
        self.client.access_token = token
        self._user_id: str | None = None
        self.rooms = DirectRooms(self.client)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Learn (and check) who the token belongs to."""
        if self._user_id is not None:
            return
        who = await self._call("whoami", self.client.whoami())
        if self.settings.user_id and who.user_id != self.settings.user_id:
            raise ChannelUnauthorized(
                f"Matrix: the access token belongs to {who.user_id}, "
                f"not to the configured user_id {self.settings.user_id}"
            )
        self.client.user_id = who.user_id
        self.client.device_id = self.client.device_id or who.device_id
        self._user_id = who.user_id

    async def aclose(self) -> None:
        await self.client.close()

    async def user_id(self) -> str:
        await self.start()
        assert self._user_id is not None
        return self._user_id

    async def username(self) -> str:
        return self.settings.user_id or await self.user_id()

    async def invite_link(self, token: str) -> str:
        """Matrix has no deep link that carries a payload to a bot: the link opens a chat with
        the bot, and the pledgemaker sends the command shown after it (one line)."""
        return f"https://matrix.to/#/{await self.username()} !start {token}"

    # -- sending -------------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> Receipt:
        await self.start()
        room_id = await self.rooms.room_for(message.recipient)
        content = message_content(message)
        response = await self._call(
            "send",
            self.client.room_send(
                room_id, "m.room.message", content, tx_id=transaction_id(message)
            ),
            sending=True,
            room_id=room_id,
        )
        return Receipt(external_id=str(response.event_id))

    async def delete(self, message: OutboundMessage) -> None:
        """Redact the event whose id is the message's text (consent was withdrawn)."""
        await self.start()
        room_id = await self.rooms.room_for(message.recipient)
        await self._call(
            "redact",
            self.client.room_redact(room_id, message.text, tx_id=transaction_id(message)),
            sending=True,
            room_id=room_id,
        )

    # -- receiving -----------------------------------------------------------------------------
    async def poll(self, cursor: str | None) -> tuple[list[InboundEvent], str | None]:
        """One /sync after ``cursor``; returns the new messages and ``next_batch``."""
        me = await self.user_id()
        sync = await self._call(
            "sync",
            self.client.sync(
                timeout=self.settings.sync_timeout_ms, sync_filter=SYNC_FILTER, since=cursor
            ),
        )
        events: list[InboundEvent] = []
        emptied: list[str] = []
        for room_id, info in sync.rooms.join.items():
            raws = [event.source for event in info.timeline.events]
            if info.timeline.limited and cursor is not None and info.timeline.prev_batch:
                raws = await self._backfill(room_id, info.timeline.prev_batch, cursor) + raws
            chat_type = self._chat_type(room_id)
            for raw in raws:
                event = to_event(room_id, raw, me=me, chat_type=chat_type)
                if event is not None:
                    events.append(event)
                elif raw.get("type") == "m.room.encrypted":
                    log.warning("Matrix: skipped an encrypted message in %s", room_id)
            if any(someone_left(raw, me) for raw in raws + [e.source for e in info.state]):
                emptied.append(room_id)
        # An invitation or a departure shows once: if acting on it fails for now, the whole
        # batch fails and is served again from the same cursor (its events are deduplicated).
        for room_id in sync.rooms.invite:
            try:
                await self._call("join", self.client.join(room_id))
            except DeliveryError as exc:
                if exc.retryable:
                    raise
                log.warning("Matrix: could not join %s: %s", room_id, exc)
        for room_id in emptied:
            try:
                await self._leave_if_alone(room_id, me)
            except DeliveryError as exc:
                if exc.retryable:
                    raise
                log.warning("Matrix: could not check or leave %s: %s", room_id, exc)
        return events, sync.next_batch

    async def _backfill(self, room_id: str, prev_batch: str, since: str) -> list[dict[str, Any]]:
        """The events between the previous sync and a cut-short timeline, oldest first."""
        older: list[dict[str, Any]] = []
        token = prev_batch
        for _ in range(BACKFILL_PAGES):
            page = await self._call(
                "messages",
                self.client.room_messages(
                    room_id, start=token, end=since, direction=nio.MessageDirection.back, limit=100
                ),
            )
            older.extend(event.source for event in page.chunk)
            if not page.chunk or not page.end or page.end == token:
                break
            token = page.end
        older.reverse()
        return older

    async def _leave_if_alone(self, room_id: str, me: str) -> None:
        members = await self._call("members", self.client.joined_members(room_id))
        if all(member.user_id == me for member in members.members):
            await self._call("leave", self.client.room_leave(room_id))
            self.rooms.forget(room_id)
            log.info("Matrix: left %s: everyone else had left", room_id)

    def _chat_type(self, room_id: str) -> str:
        room = self.client.rooms.get(room_id)
        if room is None or room.member_count <= 2:
            return "private"
        return "group"

    async def answer_button(self, event: InboundEvent) -> None:
        """Matrix has no buttons: nothing to answer."""

    async def download(self, file_id: str) -> bytes:
        """The content of an ``mxc://`` URI (authenticated media)."""
        response = await self._call("download", self.client.download(mxc=file_id))
        return bytes(response.body)

    # -- errors --------------------------------------------------------------------------------
    async def _call(
        self, what: str, request: Awaitable[T], *, sending: bool = False, room_id: str | None = None
    ) -> T:
        """Await one nio request; a room we may no longer write to (gone) is forgotten."""
        try:
            return await call(what, request, sending=sending)
        except RecipientGone:
            if room_id is not None:
                self.rooms.forget(room_id)
            raise


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHAT_CHANNEL: type[ChatChannel] = MatrixChannel
_AS_DELETES: type[Deletes] = MatrixChannel
