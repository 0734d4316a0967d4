"""The Bot API's input rules, as the Telegram sandbox enforces them.

Owns: its error answers, decoding request parameters the way the Bot API does (form fields are
strings, complex values are JSON-encoded strings, a JSON body carries native values),
reply-markup validation and the token bucket behind flood control; message text and
``parse_mode`` are ``_telegram_text``'s. Nothing here knows about HTTP or the sandbox state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64

# Telegram's update kinds; "default" leaves out the three that must be asked for explicitly.
ALL_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
DEFAULT_UPDATE_TYPES = ALL_UPDATE_TYPES - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters
        self.headers: dict[str, str] = {}  # the Bot API says it all in the body

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


# --- request parameters -----------------------------------------------------------------------
# Form fields arrive as strings (PTB sends strings raw and everything else json.dumps'ed);
# a JSON body arrives with native types. Each reader accepts both.


def param_str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def param_int(params: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise bad_request(f"invalid {name} specified") from None


def param_float(params: Mapping[str, Any], name: str, default: float) -> float:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {name} specified") from None


def param_bool(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def param_json(params: Mapping[str, Any], name: str, error: str) -> Any:
    """A complex parameter: a JSON-encoded string in a form, a native value in a JSON body."""
    value = params.get(name)
    if not isinstance(value, str):
        return value
    if value == "":
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise bad_request(error) from None


def param_chat_id(params: Mapping[str, Any]) -> int | str:
    """An integer chat id or an ``@channelusername``; anything else names no chat."""
    raw = param_str(params, "chat_id")
    if raw is None or raw.strip() == "":
        raise bad_request("chat_id is empty")
    raw = raw.strip()
    if raw.startswith("@"):
        return raw[1:].lower()
    try:
        return int(raw)
    except ValueError:
        raise bad_request("chat not found") from None


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def parse_allowed_updates(value: Any) -> frozenset[str] | None:
    """The new allowed set, or None for "keep the previous one" (tdlib's rules, not the docs')."""
    if value is None or not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        return None
    chosen = frozenset(item.lower() for item in value) & ALL_UPDATE_TYPES
    # An empty list, or one with only unknown names, means "the default set".
    return chosen or DEFAULT_UPDATE_TYPES


# --- reply markup -----------------------------------------------------------------------------
_INLINE_ACTIONS = (
    "callback_data",
    "url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "login_url",
    "web_app",
    "callback_game",
    "pay",
)


def parse_reply_markup(params: Mapping[str, Any]) -> dict[str, Any] | None:
    markup = param_json(params, "reply_markup", "can't parse reply keyboard markup JSON object")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    elif not any(key in markup for key in ("keyboard", "remove_keyboard", "force_reply")):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: Text must be a String")
            actions = [key for key in _INLINE_ACTIONS if key in button]
            if not actions:
                raise bad_request("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            # The 64-byte limit is on UTF-8 bytes, which is what trips non-ASCII payloads.
            if "callback_data" in button and (
                not isinstance(data, str)
                or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
            ):
                raise bad_request("BUTTON_DATA_INVALID")


def inline_callback_data(markup: dict[str, Any] | None) -> set[str]:
    if not markup or "inline_keyboard" not in markup:
        return set()
    return {
        button["callback_data"]
        for row in markup["inline_keyboard"]
        for button in row
        if "callback_data" in button
    }


# --- flood control ----------------------------------------------------------------------------
class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second."""

    def __init__(
        self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self) -> float:
        """Seconds until one token is available; 0 when one is available now."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self) -> None:
        self._refill()
        self._tokens -= 1


def retry_after_seconds(wait: float) -> int:
    """What Telegram puts in ``retry_after``: whole seconds, never 0."""
    return max(1, math.ceil(wait))
