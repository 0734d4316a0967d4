"""A local Telegram Bot API server: the subset pledgebot uses, for tests and the demo.

Owns the HTTP surface the real python-telegram-bot client talks to (``/bot{token}/{method}``
and ``/file/bot{token}/{path}``), the simulated users on the other side (messages, edits,
button presses, blocking), fault injection (scripted, or random at seeded rates), and a
``/_sandbox/...`` control surface for subprocess tests. Telegram's rules live in the private
modules next to this one: the method checks in ``_telegram_methods``, parsing and limits in
``_telegram_rules``, the update queue in ``_telegram_state``, faults in ``_telegram_faults``;
``SandboxThread`` (in ``_telegram_thread``, exported by ``pledgebot_sandbox``) runs it in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import Counter, deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from pledgebot_sandbox._server import serve
from pledgebot_sandbox._telegram_faults import Fault, FaultRates
from pledgebot_sandbox._telegram_methods import BotApi, Handler
from pledgebot_sandbox._telegram_rules import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    ApiError,
    bad_request,
    command_entities,
    inline_callback_data,
)
from pledgebot_sandbox._telegram_state import Chat, SandboxState, now

__all__ = ["TelegramSandbox"]

CHAT_TYPES = ("private", "group", "supergroup", "channel")
STICKER_BYTES = b"RIFF\x0c\x00\x00\x00WEBPVP8 \x00\x00\x00\x00"  # a placeholder, not an image


class TelegramSandbox:
    """One fake Telegram with one bot. Call it only from the server's event loop thread."""

    def __init__(
        self,
        *,
        token: str = "123456:SANDBOX-TOKEN",
        bot_username: str = "pledgebot_sandbox_bot",
        overall_rate: float = 30.0,
        chat_rate: float = 1.0,
        chat_burst: int = 3,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        bot_id, sep, _ = token.partition(":")
        if not sep or not bot_id.isdigit():
            raise ValueError("a bot token looks like '<bot id>:<secret>'")
        if overall_rate <= 0 or chat_rate <= 0 or chat_burst < 1:
            raise ValueError("rates must be positive and chat_burst at least 1")
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(bot_id)
        self.host = host
        self.port = port
        self.method_calls: Counter[str] = Counter()
        self.rate_limited = 0
        # method → kind → how many calls were faulted: "server_error", "rate_limit", "timeout",
        # "timeout_delivered" (timeouts carried out all the same) and "scripted" (inject_fault).
        self.injected_faults: dict[str, Counter[str]] = {}
        self._state = SandboxState(self.bot_id, bot_username)
        api = BotApi(
            self._state, overall_rate=overall_rate, chat_rate=chat_rate, chat_burst=chat_burst
        )
        # Telegram matches method names case-insensitively.
        self._methods: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler) for name, handler in api.handlers.items()
        }
        self._faults: dict[str, deque[Fault]] = {}
        self._fault_rates: dict[str, FaultRates] = {}
        self._runner: web.AppRunner | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._state.queue.closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/_sandbox/{action}", self._handle_control)
        self._runner, self.port = await serve(app, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._state.queue.close()
        await self._runner.cleanup()
        self._runner = None

    # --- what tests look at -------------------------------------------------------------------
    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by a ``getUpdates`` offset."""
        return len(self._state.queue.updates)

    @property
    def answered_callbacks(self) -> list[dict[str, Any]]:
        return self._state.answered_callbacks

    @property
    def commands(self) -> list[dict[str, Any]]:
        """The last ``setMyCommands`` list."""
        return self._state.commands

    def sent_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent, oldest first (copies).

        ``text`` is exactly what the bot sent; ``plain_text`` is what the user sees.
        """
        return [
            copy.deepcopy(record)
            for record in self._state.sent
            if chat_id is None or record["chat_id"] == chat_id
        ]

    def arrivals(self) -> list[tuple[float, int]]:
        """(monotonic seconds, chat id) of each message of the bot, as it arrived; check with
        ``busiest_window`` and ``closest_in_one_chat`` (``pledgebot_sandbox._telegram_state``)."""
        return list(self._state.arrivals)

    def sent_counts(self) -> Counter[int]:
        """How many messages the bot sent to each chat (more than planned = duplicates)."""
        return Counter(record["chat_id"] for record in self._state.sent)

    def fault_counts(self, method: str | None = None) -> Counter[str]:
        """Faults served so far by kind, for one method or summed over all of them."""
        if method is not None:
            entry = self._methods.get(method.lower())
            return Counter(self.injected_faults.get(entry[0] if entry else method, Counter()))
        total: Counter[str] = Counter()
        for counts in self.injected_faults.values():
            total.update(counts)
        return total

    def stats(self) -> dict[str, Any]:
        """Counters as JSON: calls per method, 429s, faults served, messages sent per chat."""
        return {
            "method_calls": dict(self.method_calls),
            "rate_limited": self.rate_limited,
            "faults": {method: dict(counts) for method, counts in self.injected_faults.items()},
            "sent_per_chat": {str(chat): n for chat, n in self.sent_counts().items()},
        }

    # --- simulated users ----------------------------------------------------------------------
    def add_chat(
        self,
        chat_id: int,
        *,
        first_name: str = "User",
        username: str | None = None,
        chat_type: str = "private",
        language_code: str | None = None,
        title: str | None = None,
    ) -> None:
        """Create a chat the bot can talk to (or update its profile)."""
        if chat_type not in CHAT_TYPES:
            raise ValueError(f"chat_type must be one of {CHAT_TYPES}")
        # Telegram's sign convention: users are positive, groups and channels negative.
        if (chat_type == "private") != (chat_id > 0):
            raise ValueError("private chat ids are positive, group and channel ids negative")
        chat = self._state.chats.setdefault(chat_id, Chat(chat_id, chat_type, first_name))
        chat.type, chat.first_name, chat.username = chat_type, first_name, username
        chat.title = None if chat_type == "private" else (title or f"Chat {chat_id}")
        if chat_type == "private":
            user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": first_name}
            if username:
                user["username"] = username
            if language_code:
                user["language_code"] = language_code
            self._state.users[chat_id] = user

    def push_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        reply_to_message_id: int | None = None,
        photo: bytes | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        sticker: bool = False,
        from_id: int | None = None,
    ) -> int:
        """A user sends a message; returns its message_id. Unknown chats become private chats.

        Writing to a bot you blocked is only possible through the client's "Restart" button,
        which unblocks it, so a blocked chat is unblocked first. ``from_id`` picks the sender
        in group chats (default: a member derived from the chat id).
        """
        if chat_id not in self._state.chats:
            self.add_chat(chat_id)
        chat = self._state.chats[chat_id]
        if sum((text is not None, photo is not None, sticker)) != 1:
            raise ValueError("a message has exactly one of text, photo or sticker")
        if text is not None and not 1 <= len(text) <= MAX_TEXT_LENGTH:
            raise ValueError(f"a user's text is 1-{MAX_TEXT_LENGTH} characters")
        if caption is not None and (photo is None or len(caption) > MAX_CAPTION_LENGTH):
            raise ValueError(f"a caption goes with a photo and is <= {MAX_CAPTION_LENGTH} chars")
        reply = None
        if reply_to_message_id is not None:
            reply = self._state.reply_copy(chat_id, reply_to_message_id)
        if chat.blocked:
            self.unblock(chat_id)
        message = self._state.new_message(chat, self._state.sender(chat, from_id))
        if reply is not None:
            message["reply_to_message"] = reply
        if text is not None:
            message["text"] = text
            if entities := command_entities(text):
                message["entities"] = entities
        if photo is not None:
            message["photo"] = [self._photo_size(photo)]
            if caption is not None:
                message["caption"] = caption
                if entities := command_entities(caption):
                    message["caption_entities"] = entities
        if sticker:
            message["sticker"] = self._sticker()
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        self._state.messages[(chat_id, message["message_id"])] = message
        self._state.queue.push("channel_post" if chat.type == "channel" else "message", message)
        return int(message["message_id"])

    def push_edit(self, chat_id: int, message_id: int, text: str) -> None:
        """A user edits one of their text messages: an ``edited_message`` update."""
        message = self._state.messages.get((chat_id, message_id))
        if message is None or self._state.is_from_bot(message):
            raise ValueError(f"no user message {message_id} in chat {chat_id}")
        if "text" not in message or not 1 <= len(text) <= MAX_TEXT_LENGTH:
            raise ValueError(f"only a text message can be edited, to 1-{MAX_TEXT_LENGTH} chars")
        message["text"] = text
        message.pop("entities", None)
        if entities := command_entities(text):
            message["entities"] = entities
        message["edit_date"] = max(now(), message["date"])
        channel = self._state.chats[chat_id].type == "channel"
        self._state.queue.push("edited_channel_post" if channel else "edited_message", message)

    def press_button(
        self, chat_id: int, message_id: int, data: str, *, from_id: int | None = None
    ) -> str:
        """A user presses an inline button under a bot message; returns the callback query id.

        As in Telegram, only the ``callback_data`` of a button the message shows can be sent.
        """
        message = self._state.messages.get((chat_id, message_id))
        if message is None or not self._state.is_from_bot(message):
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        if data not in inline_callback_data(message.get("reply_markup")):
            raise ValueError(f"message {message_id} has no button with callback_data {data!r}")
        chat = self._state.chats[chat_id]
        if chat.blocked:
            raise ValueError(f"chat {chat_id} has blocked the bot")
        query_id = self._state.new_callback_id()
        query = {
            "id": query_id,
            "from": self._state.sender(chat, from_id),
            "message": message,
            "chat_instance": str(abs(chat_id) * 7919 + self.bot_id),
            "data": data,
        }
        self._state.queue.push("callback_query", query)
        return query_id

    def block(self, chat_id: int) -> None:
        """The user blocks the bot (or removes it from a group): sending gets 403 Forbidden."""
        self._set_blocked(chat_id, True)

    def unblock(self, chat_id: int) -> None:
        self._set_blocked(chat_id, False)

    def inject_fault(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        delay: float | None = None,
        deliver: bool = False,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` misbehave (FIFO per method).

        ``status`` answers with that HTTP error, ``retry_after`` with a 429, ``delay`` waits
        first. Without ``deliver`` a faulted call is not carried out, except a pure delay whose
        client is still connected when it ends. With ``deliver`` it is carried out first:
        "timed out but delivered".
        """
        if method.lower() not in self._methods:
            raise ValueError(f"the sandbox does not implement {method!r}")
        if status is None and retry_after is None and delay is None:
            raise ValueError("give status, retry_after or delay")
        if times < 1:
            raise ValueError("times must be at least 1")
        error: ApiError | None = None
        if retry_after is not None:
            text = description or f"Too Many Requests: retry after {retry_after}"
            error = ApiError(429, text, {"retry_after": retry_after})
        elif status is not None:
            if not 400 <= status <= 599:
                raise ValueError("status must be an HTTP error status")
            error = ApiError(status, description or HTTPStatus(status).phrase)
        queue = self._faults.setdefault(method.lower(), deque())
        queue.extend(Fault(error, delay, deliver) for _ in range(times))

    def set_fault_rates(
        self,
        method: str = "sendMessage",
        *,
        server_error: float = 0.0,
        rate_limit: float = 0.0,
        timeout: float = 0.0,
        retry_after: int = 1,
        timeout_delay: float = 5.0,
        timeout_delivered: float = 0.5,
        seed: int | None = None,
    ) -> None:
        """Fault a random share of the calls of ``method`` from now on (all rates 0: stop).

        Each call draws at most one fault from a ``random.Random(seed)``: a 500/502/503 with
        probability ``server_error``, a 429 with ``retry_after`` seconds with ``rate_limit``,
        a timeout with ``timeout``. Neither an error nor a 429 is carried out. A timeout holds
        the answer for ``timeout_delay`` seconds (make it longer than the client's read
        timeout); like a real one, its outcome is unknown to the client: with probability
        ``timeout_delivered`` the call was carried out before the hold (the message arrived:
        a retry is a duplicate), otherwise it never is (a client still waiting gets 504).
        Scripted faults (``inject_fault``) are served first. The same seed gives the same
        faults in the order the calls arrive. Counters: ``injected_faults``/``fault_counts``.
        """
        entry = self._methods.get(method.lower())
        if entry is None:
            raise ValueError(f"the sandbox does not implement {method!r}")
        rates = FaultRates(
            server_error=server_error,
            rate_limit=rate_limit,
            timeout=timeout,
            retry_after=retry_after,
            timeout_delay=timeout_delay,
            timeout_delivered=timeout_delivered,
            seed=seed,
        )
        if rates.total == 0:
            self._fault_rates.pop(method.lower(), None)
        else:
            self._fault_rates[method.lower()] = rates

    def reset_update_ids(self, start: int) -> None:
        """Restart update ids at ``start``, as Telegram may after a week without updates.

        By then every pending update has expired (they live 24 h), so the queue is emptied too.
        """
        if not 1 <= start < 2**31:
            raise ValueError("update ids are positive 32-bit integers")
        self._state.queue.reset(start)

    def _photo_size(self, photo: bytes) -> dict[str, Any]:
        stored = self._state.store_file(photo, "photos", "jpg", "AgAC")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 1280,
            "height": 960,
            "file_size": len(photo),
        }

    def _sticker(self) -> dict[str, Any]:
        stored = self._state.store_file(STICKER_BYTES, "stickers", "webp", "CAAC")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "emoji": "👍",
            "file_size": len(STICKER_BYTES),
        }

    def _set_blocked(self, chat_id: int, blocked: bool) -> None:
        chat = self._state.chats.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}")
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        if chat.type != "private":
            return
        # Telegram tells the bot with a my_chat_member update (pledgebot does not ask for it).
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        bot_user = self._state.bot_user()
        update = {
            "chat": self._state.chat_json(chat),
            "from": self._state.sender(chat, None),
            "date": now(),
            "old_chat_member": {"user": bot_user, "status": old, "until_date": 0},
            "new_chat_member": {"user": bot_user, "status": new, "until_date": 0},
        }
        self._state.queue.push("my_chat_member", update)

    # --- HTTP ---------------------------------------------------------------------------------
    def _error_response(self, error: ApiError) -> web.Response:
        if error.status == 429:
            self.rate_limited += 1
        return web.json_response(error.payload(), status=error.status)

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error_response(ApiError(401, "Unauthorized"))
        requested = request.match_info["method"]
        entry = self._methods.get(requested.lower())
        self.method_calls[entry[0] if entry else requested] += 1
        if entry is None:
            return self._error_response(ApiError(404, "Not Found"))
        name, handler = entry
        try:
            params = await _read_params(request)
        except ApiError as exc:
            return self._error_response(exc)
        faults = self._faults.get(name.lower())
        if faults:
            fault: Fault | None = faults.popleft()
        else:
            rates = self._fault_rates.get(name.lower())
            fault = rates.draw() if rates is not None else None
        if fault is None:
            return await self._run(handler, params)
        counts = self.injected_faults.setdefault(name, Counter())
        counts[fault.kind] += 1
        delivered = await self._run(handler, params) if fault.deliver else None
        if fault.kind == "timeout" and delivered is not None and delivered.status == 200:
            counts["timeout_delivered"] += 1
        if fault.delay:
            with contextlib.suppress(TimeoutError):  # stop() cuts the delay short
                await asyncio.wait_for(self._state.queue.closing.wait(), fault.delay)
        if fault.error is not None:
            return self._error_response(fault.error)
        if delivered is not None:
            return delivered
        if request.transport is None or request.transport.is_closing():
            return web.Response(status=499)  # the client gave up: the call is never carried out
        return await self._run(handler, params)

    async def _run(self, handler: Handler, params: dict[str, Any]) -> web.Response:
        try:
            result = await handler(params)
        except ApiError as exc:
            return self._error_response(exc)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error_response(ApiError(401, "Unauthorized"))
        stored = self._state.file_paths.get(request.match_info["path"])
        if stored is None:
            return self._error_response(ApiError(404, "Not Found"))
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _handle_control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            if request.method == "GET" and action == "sent":
                chat = request.query.get("chat_id")
                return web.json_response(self.sent_messages(int(chat) if chat else None))
            if request.method == "GET" and action == "stats":
                return web.json_response(self.stats())
            if request.method != "POST" or action not in _CONTROL_ACTIONS:
                return web.json_response({"error": "unknown control action"}, status=404)
            body = await request.json() if request.body_exists else {}
            return web.json_response(_CONTROL_ACTIONS[action](self, body) or {"ok": True})
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus body: url-encoded or multipart form fields, or a JSON object."""
    params: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON encoded request parameters") from None
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON encoded request parameters")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        params.update((await request.post()).items())
    return params


# POST /_sandbox/<action> with a JSON body; each returns the JSON answer (None means ok).
_CONTROL_ACTIONS: dict[str, Callable[[TelegramSandbox, dict[str, Any]], Any]] = {
    "message": lambda sb, body: {
        "message_id": sb.push_message(
            int(body["chat_id"]),
            body.get("text"),
            reply_to_message_id=body.get("reply_to_message_id"),
        )
    },
    "edit": lambda sb, body: sb.push_edit(
        int(body["chat_id"]), int(body["message_id"]), body["text"]
    ),
    "button": lambda sb, body: {
        "callback_query_id": sb.press_button(
            int(body["chat_id"]), int(body["message_id"]), body["data"]
        )
    },
    "block": lambda sb, body: sb.block(int(body["chat_id"])),
    "unblock": lambda sb, body: sb.unblock(int(body["chat_id"])),
    "fault": lambda sb, body: sb.inject_fault(body.pop("method"), **body),
    "fault_rates": lambda sb, body: sb.set_fault_rates(body.pop("method", "sendMessage"), **body),
}
