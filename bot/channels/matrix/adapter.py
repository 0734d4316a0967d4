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

import asyncio
import hashlib
import html
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Mapping
from html.parser import HTMLParser
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import aiohttp
import nio
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bot.channels.base import Capabilities, InboundEvent, OutboundMessage, Receipt
from bot.channels.ratelimit import Limits
from bot.core import choices
from bot.core.env import EnvVarName
from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Matrix clients send "/…" to their own command parser: commands to a bot are written "!…".
# These are passed on as the "/…" the conversation already understands.
COMMANDS = ("start", "stop", "withdraw", "language", "help")
TIMELINE_LIMIT = 100  # events per room and sync; beyond it the gap is filled from /messages
BACKFILL_PAGES = 20  # at most this many pages of /messages per room and poll
USER_ID = re.compile(r"^@[^:\s]+:\S+$")
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


class MatrixSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    homeserver: str = ""  # the client-server API's base URL, e.g. https://matrix.example.org
    user_id: str | None = Field(default=None, pattern=USER_ID.pattern)  # checked by whoami
    access_token_env: EnvVarName = "MATRIX_ACCESS_TOKEN"
    device_id: str | None = None  # the token's device (nio wants it; whoami tells it otherwise)
    request_timeout: float = Field(default=15, gt=0)
    sync_timeout_ms: int = Field(default=25_000, ge=0, le=60_000)

    @model_validator(mode="after")
    def _homeserver_when_enabled(self) -> MatrixSettings:
        if self.enabled and not self.homeserver.startswith(("https://", "http://")):
            raise ValueError("homeserver: the homeserver's URL is required (https://…)")
        return self


class MatrixChannel:
    name: ClassVar[str] = "matrix"
    Settings: ClassVar[type[BaseModel]] = MatrixSettings
    # Synapse refuses an event over 65,536 bytes of JSON. The text goes out twice (body and
    # formatted_body) and a character takes up to 4 bytes: 6,000 characters always fit.
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_length=6_000, parse_mode="HTML", buttons=False, inbound=True
    )

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
        self._direct: dict[str, str] = {}  # user id → their direct room with the bot
        self._finding = asyncio.Lock()  # two sends to a new user must not make two rooms

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
        room_id = await self._room_for(message.recipient)
        content = _content(message)
        response = await self._call(
            "send",
            self.client.room_send(room_id, "m.room.message", content, tx_id=_txn_id(message)),
            sending=True,
            room_id=room_id,
        )
        return Receipt(external_id=str(response.event_id))

    async def delete(self, message: OutboundMessage) -> None:
        """Redact the event whose id is the message's text (consent was withdrawn)."""
        await self.start()
        room_id = await self._room_for(message.recipient)
        await self._call(
            "redact",
            self.client.room_redact(room_id, message.text, tx_id=_txn_id(message)),
            sending=True,
            room_id=room_id,
        )

    async def _room_for(self, recipient: str) -> str:
        """A room id as it is; a user id: their direct room, created (and invited) if none."""
        if not USER_ID.match(recipient):
            return recipient
        async with self._finding:
            known = self._direct.get(recipient)
            return known if known is not None else await self._find_direct_room(recipient)

    async def _find_direct_room(self, recipient: str) -> str:
        direct = await self._direct_rooms()
        left = False
        for room_id in reversed(direct.get(recipient, [])):  # the newest first
            membership = await self._membership(room_id, recipient)
            if membership in ("join", "invite"):
                self._direct[recipient] = room_id
                return room_id
            left = left or membership in ("leave", "ban")
        if left:  # they walked out of our conversation: do not invite them again
            raise RecipientGone(f"Matrix: {recipient} left the direct room with the bot")
        # Synapse invites a local user who does not exist without complaint: ask first.
        profile = await self._request("profile", self.client.get_profile(recipient))
        if isinstance(profile, nio.ErrorResponse) and _status(profile) == 404:
            raise RecipientGone(f"Matrix: there is no user {recipient}")
        created = await self._call(
            "create room",
            self.client.room_create(
                is_direct=True, invite=[recipient], preset=nio.RoomPreset.trusted_private_chat
            ),
            recipient=recipient,
        )
        room_id = str(created.room_id)
        self._direct[recipient] = room_id
        direct.setdefault(recipient, []).append(room_id)
        await self._save_direct_rooms(direct)
        return room_id

    async def _direct_rooms(self) -> dict[str, list[str]]:
        response = await self._request("m.direct", self.client.list_direct_rooms())
        if isinstance(response, nio.DirectRoomsErrorResponse):
            if response.status_code == "M_NOT_FOUND":  # no direct room yet
                return {}
            raise _delivery_error("m.direct", response)
        return {user: list(rooms) for user, rooms in response.rooms.items()}

    async def _save_direct_rooms(self, direct: dict[str, list[str]]) -> None:
        """Remember direct rooms where every Matrix client does (so a restart finds them)."""
        path = (
            f"/_matrix/client/v3/user/{quote(await self.user_id(), safe='')}/account_data/m.direct"
        )
        try:
            answer = await self.client.send(
                "PUT",
                path,
                json.dumps(direct),
                headers={
                    "Authorization": f"Bearer {self.client.access_token}",
                    "Content-Type": "application/json",
                },
            )
            answer.release()
            if answer.status != 200:
                log.warning("Matrix: could not save m.direct (HTTP %d)", answer.status)
        except (TimeoutError, aiohttp.ClientError) as exc:  # the room works; only the memo failed
            log.warning("Matrix: could not save m.direct (%s)", type(exc).__name__)

    async def _membership(self, room_id: str, user_id: str) -> str | None:
        response = await self._request(
            "membership", self.client.room_get_state_event(room_id, "m.room.member", user_id)
        )
        if isinstance(response, nio.ErrorResponse):
            if _status(response) in (403, 404):
                return None  # not a room we can see (any more)
            raise _delivery_error("membership", response)
        return str(response.content.get("membership") or "")

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
            if any(_someone_left(raw, me) for raw in raws + [e.source for e in info.state]):
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
            self._direct = {u: r for u, r in self._direct.items() if r != room_id}
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
        self,
        what: str,
        request: Awaitable[T],
        *,
        sending: bool = False,
        room_id: str | None = None,
        recipient: str | None = None,
    ) -> T:
        """Await one nio request; its failure as a ``bot.core.errors`` delivery error."""
        response = await self._request(what, request, sending=sending)
        if isinstance(response, nio.ErrorResponse):
            error = _delivery_error(what, response, recipient=recipient)
            if isinstance(error, RecipientGone) and room_id is not None:
                self._direct = {u: r for u, r in self._direct.items() if r != room_id}
            raise error
        return response

    async def _request(self, what: str, request: Awaitable[T], *, sending: bool = False) -> T:
        """Await one nio request; a transport failure as a ``TransientError``."""
        try:
            return await request
        except TimeoutError as exc:
            raise TransientError(f"Matrix {what}: timed out", maybe_delivered=sending) from exc
        except aiohttp.ClientConnectorError as exc:  # never reached the homeserver
            raise TransientError(f"Matrix {what}: cannot connect ({exc.os_error})") from exc
        except aiohttp.ClientError as exc:
            raise TransientError(
                f"Matrix {what}: {type(exc).__name__}", maybe_delivered=sending
            ) from exc


def _status(response: nio.ErrorResponse) -> int | None:
    transport = getattr(response, "transport_response", None)
    return int(transport.status) if transport is not None else None


def _delivery_error(
    what: str, response: nio.ErrorResponse, *, recipient: str | None = None
) -> DeliveryError:
    transport = getattr(response, "transport_response", None)
    status = _status(response)
    code = response.status_code
    text = f"Matrix {what}: {code or status}: {response.message}"
    if status == 429 or code == "M_LIMIT_EXCEEDED":
        delay = response.retry_after_ms
        if delay is None and transport is not None:
            header = transport.headers.get("Retry-After", "")
            delay = int(header) * 1000 if header.isdigit() else None
        return RateLimited((delay if delay is not None else 5000) / 1000, text)
    if code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN") or status == 401:
        return ChannelUnauthorized(f"{text} (token revoked or expired? check access_token_env)")
    if code == "M_FORBIDDEN":  # not (or no longer) in the room, or not allowed to write there
        return RecipientGone(text)
    if recipient is not None and (code == "M_NOT_FOUND" or status == 404):
        return RecipientGone(f"{text} (inviting {recipient})")  # no such user
    if code == "M_TOO_LARGE" or status == 413:
        return Rejected(text)
    if status is None or status >= 500:
        return TransientError(text)
    return Rejected(text)


# -- outbound content ---------------------------------------------------------------------------
def _txn_id(message: OutboundMessage) -> str:
    """The same idempotency key gives the same transaction id: the homeserver dedupes it."""
    if not message.idempotency_key:
        return f"pb-{uuid.uuid4().hex}"
    return "pb-" + hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:40]


def _content(message: OutboundMessage) -> dict[str, Any]:
    text = message.text
    if message.buttons:  # no buttons in Matrix: numbered options, answered by a message
        options = choices.as_text(message.buttons)
        text += "\n\n" + (html.escape(options, quote=False) if message.parse_mode else options)
    if message.parse_mode == "HTML":
        content: dict[str, Any] = {
            "msgtype": "m.text",
            "body": plain_text(text),
            "format": "org.matrix.custom.html",
            "formatted_body": _html_lines(text),
        }
    else:
        content = {"msgtype": "m.text", "body": text}
    if message.reply_to and message.reply_to.startswith("$"):
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": message.reply_to}}
    return content


def _html_lines(text: str) -> str:
    """Telegram's HTML keeps line breaks as "\\n"; a Matrix client renders HTML: "<br>" them
    (but not inside <pre>, which keeps its own)."""
    parts = re.split(r"(<pre\b.*?</pre>)", text, flags=re.DOTALL | re.IGNORECASE)
    return "".join(p if i % 2 else p.replace("\n", "<br>\n") for i, p in enumerate(parts))


class _PlainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: list[str | None] = []
        self._start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href.append(dict(attrs).get("href"))
            self._start = len(self.parts)
        elif tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href:
            href = self._href.pop()
            label = "".join(self.parts[self._start :])
            if href and href != label:
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(markup: str) -> str:
    """The plain-text ``body`` of an HTML message: tags dropped, a link's address kept."""
    parser = _PlainText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


# -- inbound events -----------------------------------------------------------------------------
def to_event(
    room_id: str, raw: dict[str, Any], *, me: str, chat_type: str = "private"
) -> InboundEvent | None:
    """Normalise one room event; None for what we do not handle (our own messages, state,
    notices from other bots, redacted and encrypted events). Someone joining a room (accepting
    the bot's invitation) is a ``join`` event: it redeems an invitation sent to their id."""
    if raw.get("sender") == me:
        return None
    if raw.get("type") == "m.room.member":
        return _join(room_id, raw, chat_type)
    if raw.get("type") != "m.room.message":
        return None
    content = raw.get("content") or {}
    relates = content.get("m.relates_to") or {}
    event_id = str(raw.get("event_id") or "")
    if not content or not event_id:
        return None
    edited = relates.get("rel_type") == "m.replace"
    body = (content.get("m.new_content") or {}) if edited else content
    if body.get("msgtype") == "m.notice":  # bots answer with notices: never a pledgemaker
        return None
    reply_to = None
    if not edited:
        if relates.get("rel_type") == "m.thread":  # a thread answers its root
            reply_to = relates.get("event_id")
        else:
            reply_to = (relates.get("m.in_reply_to") or {}).get("event_id")
    text = str(body.get("body") or "")
    media = _media(body)
    if media and body.get("filename") in (None, text):  # the body is only a file name
        text = ""
    if reply_to and not edited:
        text = _without_reply_fallback(text)
    sender = str(raw.get("sender") or "")
    stamp = raw.get("origin_server_ts")
    return InboundEvent(
        key=f"mx:{event_id}",
        kind="edit" if edited else "message",
        chat_id=room_id,
        chat_type=chat_type,
        message_id=str(relates.get("event_id") or event_id) if edited else event_id,
        text=_as_command(text),
        reply_to=str(reply_to) if reply_to else None,
        media=media,
        sender={"id": sender, "username": sender},
        date=int(stamp) // 1000 if isinstance(stamp, int) else None,
        raw=raw,
    )


def _join(room_id: str, raw: dict[str, Any], chat_type: str) -> InboundEvent | None:
    """A user's own join (not a profile change, which is also "join" after "join")."""
    user = str(raw.get("state_key") or "")
    content = raw.get("content") or {}
    before = ((raw.get("unsigned") or {}).get("prev_content") or {}).get("membership")
    if raw.get("sender") != user or content.get("membership") != "join" or before == "join":
        return None
    stamp = raw.get("origin_server_ts")
    return InboundEvent(
        key=f"mx:{raw.get('event_id')}",
        kind="join",
        chat_id=room_id,
        chat_type=chat_type,
        message_id=str(raw.get("event_id") or ""),
        sender={"id": user, "username": user},
        date=int(stamp) // 1000 if isinstance(stamp, int) else None,
        raw=raw,
    )


def _media(content: dict[str, Any]) -> list[dict[str, Any]]:
    kind = {"m.image": "photo", "m.file": "document"}.get(str(content.get("msgtype")))
    url = content.get("url")
    if kind is None or not isinstance(url, str) or not url.startswith("mxc://"):
        return []
    return [{"type": kind, "file_id": url, "file_unique_id": re.sub(r"[^\w-]", "_", url[6:])}]


def _without_reply_fallback(body: str) -> str:
    """Older clients quote the message replied to ("> <@bot:…> …" lines, then a blank line)."""
    lines = body.split("\n")
    quoted = 0
    while quoted < len(lines) and lines[quoted].startswith(">"):
        quoted += 1
    if quoted and quoted < len(lines) and lines[quoted] == "":
        return "\n".join(lines[quoted + 1 :])
    return body


def _as_command(text: str) -> str:
    """ "!start TOKEN" → "/start TOKEN" (only our commands; other text stays as written)."""
    word = text.split(maxsplit=1)[0] if text.strip() else ""
    if word[:1] == "!" and word[1:].lower() in COMMANDS:
        return "/" + text.lstrip()[1:]
    return text


def _someone_left(raw: dict[str, Any], me: str) -> bool:
    return (
        raw.get("type") == "m.room.member"
        and raw.get("state_key") != me
        and (raw.get("content") or {}).get("membership") in ("leave", "ban")
    )
