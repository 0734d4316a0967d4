"""Telegram adapter, on python-telegram-bot's ``Bot``.

Sending respects Telegram's limits — about 30 messages/s overall, 1/s per chat, 20/min per group
or channel — as paced turns (``bot.channels.ratelimit``: per process, or in Redis for every worker
sharing the bot token), a ``rate_headroom`` below them, each message's turn taken as its request
goes on the wire; and maps PTB's errors onto ``bot.core.errors``. Receiving is our own
``getUpdates`` loop (see ``bot.inbound.inbox``), not PTB's ``run_polling``: an update is confirmed
to Telegram only by the *next* ``getUpdates`` call, which the inbox makes after the events are
committed; ``bot.channels.telegram.events`` turns updates into events.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import logging
import warnings
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram import error as tg
from telegram.request import HTTPXRequest

from bot.channels.base import (
    ChatChannel,
    Deletes,
    InboundEvent,
    OutboundMessage,
    Receipt,
    SetsCommands,
)
from bot.channels.ratelimit import Limits, Pace, Turn
from bot.channels.telegram.events import to_event
from bot.channels.telegram.settings import TelegramSettings
from bot.core.errors import (
    ChannelUnauthorized,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)
from bot.core.logs import scrub

log = logging.getLogger(__name__)

GONE_MARKERS = ("chat not found", "user is deactivated", "bot was kicked", "peer_id_invalid")
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # immutable, like every PTB object
COMMANDS = {
    "start": "Connect this chat, or opt back in",
    "stop": "Stop all messages from this bot",
    "withdraw": "Do not publish my updates",
    "language": "Choose a language: /language en|fr|es",
    "help": "What this bot does",
}


class TelegramChannel:
    name: ClassVar[str] = "telegram"
    Settings: ClassVar[type[BaseModel]] = TelegramSettings

    def __init__(
        self,
        settings: TelegramSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        token = secrets["token"]
        # Names this bot in shared state (rate-limit buckets, the listener's lead), not the token.
        digest = hashlib.sha256(token.get_secret_value().encode()).hexdigest()[:16]
        self.listener_key = f"telegram:{digest}"
        self.limits = limits or Limits()
        self._overall = self._pace("all", settings.max_messages_per_second)
        timeout = settings.request_timeout
        self._polling = _KeepsUpdates(
            connection_pool_size=2, read_timeout=settings.poll_timeout + timeout
        )
        self.bot = Bot(
            token.get_secret_value(),
            base_url=settings.base_url,
            base_file_url=settings.file_url(),
            request=HTTPXRequest(
                connection_pool_size=64,
                read_timeout=timeout,
                write_timeout=timeout,
                connect_timeout=timeout,
                pool_timeout=timeout,
                # Each send's turn is taken by its request, once its connection is open.
                httpx_kwargs={"event_hooks": {"request": [_trace_turn]}},
            ),
            get_updates_request=self._polling,
        )
        self._started = False

    async def start(self) -> None:
        if not self._started:
            try:
                await self.bot.initialize()
            except tg.TelegramError as exc:
                raise _delivery_error(exc) from exc
            self._started = True

    async def aclose(self) -> None:
        if self._started:
            await self.bot.shutdown()
            self._started = False

    async def username(self) -> str:
        if self.settings.bot_username:
            return self.settings.bot_username
        await self.start()
        return str(self.bot.username)

    async def invite_link(self, token: str) -> str:
        return f"https://t.me/{await self.username()}?start={token}"

    async def set_commands(self) -> None:
        await self.bot.set_my_commands([BotCommand(k, v) for k, v in COMMANDS.items()])

    # -- sending -------------------------------------------------------------------------------
    def _pace(self, name: str, per_second: float) -> Pace:
        key = f"{self.listener_key}:{name}"
        return Pace.per_second(key, per_second, headroom=self.settings.rate_headroom)

    def _paces(self, recipient: str) -> list[Pace]:
        """The chat's pace (a group or channel: also 20 a minute), then the bot's."""
        paces = [self._pace(f"chat:{recipient}", self.settings.max_messages_per_chat_per_second)]
        if recipient.startswith(("-", "@")):
            per_minute = self.settings.max_messages_per_group_per_minute
            paces.append(self._pace(f"group:{recipient}", per_minute / 60))
        return [*paces, self._overall]

    async def send(self, message: OutboundMessage) -> Receipt:
        markup = None
        if message.buttons:
            markup = _keyboard(
                tuple(tuple((b["text"], b["data"]) for b in row) for row in message.buttons)
            )
        # A reply (a staff answer, a thread's next part) quotes the message it answers; if that
        # message is gone, it goes out on its own rather than failing.
        reply = (
            ReplyParameters(message_id=int(message.reply_to), allow_sending_without_reply=True)
            if message.reply_to and message.reply_to.isdigit()
            else None
        )
        photo = None
        if message.media:  # a post with an image: the text is its caption (≤ 1024)
            photo = await asyncio.to_thread(Path(message.media[0].path).read_bytes)
        # Wait until the chat's and the bot's turns are near; the request takes them (see
        # _trace_turn) right before its headers are written, on an open connection.
        async with self.limits.turn(self._paces(message.recipient)) as turn:
            current = _TURN.set(turn)
            try:
                return await self._send(message, photo, markup, reply)
            except TransientError as exc:
                if turn.error is not None:  # the shared limits could not be reached
                    raise turn.error from exc
                raise
            finally:
                _TURN.reset(current)

    async def _send(
        self,
        message: OutboundMessage,
        photo: bytes | None,
        markup: InlineKeyboardMarkup | None,
        reply: ReplyParameters | None,
    ) -> Receipt:
        try:
            if photo is not None:
                sent = await self.bot.send_photo(
                    chat_id=_chat(message.recipient),
                    photo=photo,
                    caption=message.text,
                    parse_mode=message.parse_mode,
                    reply_markup=markup,
                    reply_parameters=reply,
                )
            else:
                sent = await self.bot.send_message(
                    chat_id=_chat(message.recipient),
                    text=message.text,
                    parse_mode=message.parse_mode,
                    reply_markup=markup,
                    link_preview_options=NO_PREVIEW,
                    reply_parameters=reply,
                )
        except tg.TelegramError as exc:
            raise _delivery_error(exc) from exc
        return Receipt(external_id=str(sent.message_id))

    async def delete(self, message: OutboundMessage) -> None:
        """Take down the post whose message id is the message's text (consent was withdrawn).
        A message already gone (400 "message to delete not found": deleted in the channel by
        staff, or by this delete before a crash) is what was wanted: done, not a failure."""
        try:
            await self.bot.delete_message(
                chat_id=_chat(message.recipient), message_id=int(message.text)
            )
        except tg.BadRequest as exc:
            if "message to delete not found" not in str(exc).lower():
                raise _delivery_error(exc) from exc
        except tg.TelegramError as exc:
            raise _delivery_error(exc) from exc

    # -- receiving -----------------------------------------------------------------------------
    async def poll(self, cursor: int | None) -> tuple[list[InboundEvent], int | None]:
        try:
            updates = await self.bot.get_updates(
                offset=cursor,
                timeout=self.settings.poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
        except tg.TelegramError as exc:
            raise _delivery_error(exc) from exc
        received = {raw.get("update_id"): raw for raw in self._polling.taken()}
        events = [
            event
            for update in updates
            if (event := to_event(update, received.get(update.update_id))) is not None
        ]
        next_cursor = max((u.update_id for u in updates), default=None)
        return events, (next_cursor + 1 if next_cursor is not None else cursor)

    async def answer_button(self, event: InboundEvent) -> None:
        try:
            await self.bot.answer_callback_query(event.button_id or "")
        except tg.TelegramError as exc:  # the spinner times out on its own; not worth failing for
            log.info("answerCallbackQuery failed: %s", exc)

    async def download(self, file_id: str) -> bytes:
        try:
            file = await self.bot.get_file(file_id)
            return bytes(await file.download_as_bytearray())
        except tg.TelegramError as exc:
            raise _delivery_error(exc) from exc


_TURN: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("telegram_turn", default=None)


async def _trace_turn(request: httpx.Request) -> None:
    """httpx request hook: a send's request carries its turn in the ``trace`` extension, which
    httpcore calls as the connection is opened and the request written (``Turn.on_trace``)."""
    turn = _TURN.get()
    if turn is not None and not turn.taken:
        request.extensions["trace"] = turn.on_trace


class _KeepsUpdates(HTTPXRequest):
    """The getUpdates connection, keeping the updates' JSON as received: stored as each event's
    raw record, it spares rebuilding it with ``Update.to_dict`` (as costly as parsing it).
    ``parse_json_payload`` is the documented hook for decoding Telegram's answers."""

    _kept: list[dict[str, Any]] = []  # noqa: RUF012 - replaced per answer, never mutated

    # A staticmethod in python-telegram-bot, always called on the instance: this method serves.
    def parse_json_payload(self, payload: bytes) -> dict[str, Any]:  # type: ignore[override]
        data = HTTPXRequest.parse_json_payload(payload)
        result = data.get("result") if isinstance(data, dict) else None
        self._kept = [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []
        return data

    def taken(self) -> list[dict[str, Any]]:
        kept, self._kept = self._kept, []
        return kept


@functools.lru_cache(maxsize=256)
def _keyboard(rows: tuple[tuple[tuple[str, str], ...], ...]) -> InlineKeyboardMarkup:
    """Buttons as rows of (label, data). PTB's objects are immutable once built, so the
    prompts of one campaign in one language share one keyboard instead of building it each."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


def _chat(recipient: str) -> int | str:
    """A numeric chat id, or a public channel's "@username"."""
    return int(recipient) if recipient.lstrip("-").isdigit() else recipient


def _retry_after(exc: tg.RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns while retry_after moves from int to timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _delivery_error(exc: tg.TelegramError) -> Exception:
    text = scrub(str(exc))  # PTB quotes a refused token: never into the outbox or the dashboard
    if isinstance(exc, tg.RetryAfter):
        return RateLimited(_retry_after(exc), f"Telegram: {text}")
    if isinstance(exc, tg.Forbidden) or any(m in text.lower() for m in GONE_MARKERS):
        return RecipientGone(f"Telegram: {text}")
    if isinstance(exc, tg.BadRequest | tg.ChatMigrated):
        return Rejected(f"Telegram: {text}")
    if isinstance(exc, tg.TimedOut):
        return TransientError(f"Telegram: {text or 'timed out'}", maybe_delivered=True)
    if isinstance(exc, tg.InvalidToken):  # every message would fail alike: pause, tell staff
        return ChannelUnauthorized(f"Telegram rejected the bot token ({text}); check token_env")
    return TransientError(f"Telegram: {text or type(exc).__name__}")


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHAT_CHANNEL: type[ChatChannel] = TelegramChannel
_AS_DELETES: type[Deletes] = TelegramChannel
_AS_SETS_COMMANDS: type[SetsCommands] = TelegramChannel
