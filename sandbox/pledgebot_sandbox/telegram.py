"""A local Telegram Bot API server: the subset pledgebot uses, for tests and the demo.

Owns the HTTP surface the real python-telegram-bot client talks to (``/bot{token}/{method}``
and ``/file/bot{token}/{path}``), fault injection (scripted, or random at seeded rates), and
its ``/_sandbox/...`` control actions for subprocess tests. Telegram's rules live in the
private modules next to this one: the method checks in ``_telegram_methods``, parsing and
limits in ``_telegram_rules``, the update queue in ``_telegram_state``, the simulated users on
the other side (messages, edits, button presses, blocking) in ``_telegram_users``, the random
faults in ``_telegram_faults``; the server's life, scripted faults and the control routes are
every sandbox's (``_control``). ``SandboxThread`` (in ``_telegram_thread``, exported by
``pledgebot_sandbox``) runs it in a thread.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from http import HTTPStatus
from typing import Any

from aiohttp import web

from pledgebot_sandbox._control import (
    ControlAction,
    Fault,
    SandboxServer,
    check_error_status,
    ready,
)
from pledgebot_sandbox._telegram_faults import FaultRates
from pledgebot_sandbox._telegram_methods import BotApi, Handler
from pledgebot_sandbox._telegram_rules import ApiError, bad_request
from pledgebot_sandbox._telegram_state import SandboxState
from pledgebot_sandbox._telegram_users import ChatUsers

__all__ = ["TelegramSandbox"]


class TelegramSandbox(ChatUsers, SandboxServer):
    """One fake Telegram with one bot. Call it only from the server's event loop thread.

    The users on the other side of its chats (``add_chat``, ``push_message``, ``block``, ...)
    are ``ChatUsers``'.
    """

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
        super().__init__(host, port)
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(bot_id)
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
        self._fault_rates: dict[str, FaultRates] = {}  # by the method's name

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    async def _open(self) -> None:
        self._state.queue.closing = asyncio.Event()

    async def stop(self) -> None:
        if self._runner is not None:
            self._state.queue.close()  # a waiting getUpdates answers now
        await super().stop()

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/bot{token}/{method}", self._handle_api)
        router.add_get("/file/bot{token}/{path:.+}", self._handle_file)

    def _control_actions(self) -> dict[str, ControlAction]:
        """What a subprocess test does: read ``sent`` (``?chat_id=``) and ``stats``; a user's
        ``message``, ``edit``, ``button``, ``block``, ``unblock``; ``fault``, ``fault_rates``."""
        return {
            "GET sent": lambda query: self.sent_messages(
                int(query["chat_id"]) if query.get("chat_id") else None
            ),
            "GET stats": lambda _: self.stats(),
            "POST message": lambda body: {
                "message_id": self.push_message(
                    int(body["chat_id"]),
                    body.get("text"),
                    reply_to_message_id=body.get("reply_to_message_id"),
                )
            },
            "POST edit": lambda body: self.push_edit(
                int(body["chat_id"]), int(body["message_id"]), body["text"]
            ),
            "POST button": lambda body: {
                "callback_query_id": self.press_button(
                    int(body["chat_id"]), int(body["message_id"]), body["data"]
                )
            },
            "POST block": lambda body: self.block(int(body["chat_id"])),
            "POST unblock": lambda body: self.unblock(int(body["chat_id"])),
            "POST fault": lambda body: self.inject_fault(body.pop("method"), **body),
            "POST fault_rates": lambda body: self.set_fault_rates(
                body.pop("method", "sendMessage"), **body
            ),
        }

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

    # --- faults ------------------------------------------------------------------------------
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
        name = self._method_name(method)
        if status is None and retry_after is None and delay is None:
            raise ValueError("give status, retry_after or delay")
        error: ApiError | None = None
        if retry_after is not None:
            text = description or f"Too Many Requests: retry after {retry_after}"
            error = ApiError(429, text, {"retry_after": retry_after})
        elif status is not None:
            check_error_status(status)
            error = ApiError(status, description or HTTPStatus(status).phrase)
        self._queue_fault(name, Fault(ready(error) if error else None, delay, deliver), times)

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
        name = self._method_name(method)
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
            self._fault_rates.pop(name, None)
        else:
            self._fault_rates[name] = rates

    def _method_name(self, method: str) -> str:
        """The Bot API's spelling of ``method`` (Telegram matches names case-insensitively)."""
        entry = self._methods.get(method.lower())
        if entry is None:
            raise ValueError(f"the sandbox does not implement {method!r}")
        return entry[0]

    def reset_update_ids(self, start: int) -> None:
        """Restart update ids at ``start``, as Telegram may after a week without updates.

        By then every pending update has expired (they live 24 h), so the queue is emptied too.
        """
        if not 1 <= start < 2**31:
            raise ValueError("update ids are positive 32-bit integers")
        self._state.queue.reset(start)

    # --- HTTP ---------------------------------------------------------------------------------
    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error(ApiError(401, "Unauthorized"))
        requested = request.match_info["method"]
        entry = self._methods.get(requested.lower())
        self.method_calls[entry[0] if entry else requested] += 1
        if entry is None:
            return self._error(ApiError(404, "Not Found"))
        name, handler = entry
        try:
            params = await _read_params(request)
        except ApiError as exc:
            return self._error(exc)
        return await self._answer_call(name, request, lambda: self._run(handler, params))

    def _next_fault(self, key: str) -> Fault | None:
        """A scripted fault first, else one drawn at the method's rates."""
        fault = super()._next_fault(key)
        rates = self._fault_rates.get(key)
        return fault or (rates.draw() if rates is not None else None)

    def _fault_served(self, key: str, fault: Fault, delivered: web.StreamResponse | None) -> None:
        counts = self.injected_faults.setdefault(key, Counter())
        counts[fault.kind] += 1
        if fault.kind == "timeout" and delivered is not None and delivered.status == 200:
            counts["timeout_delivered"] += 1

    async def _run(self, handler: Handler, params: dict[str, Any]) -> web.Response:
        try:
            result = await handler(params)
        except ApiError as exc:
            return self._error(exc)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(ApiError(401, "Unauthorized"))
        stored = self._state.file_paths.get(request.match_info["path"])
        if stored is None:
            return self._error(ApiError(404, "Not Found"))
        return web.Response(body=stored.data, content_type="application/octet-stream")


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
