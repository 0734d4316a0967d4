"""The Bot API's input rules, as the Telegram sandbox enforces them.

Owns: decoding request parameters the way the Bot API does (form fields are strings, complex
values are JSON-encoded strings, a JSON body carries native values), the HTML ``parse_mode``
parser (a port of tdlib's ``parse_html``, with the same error texts), reply-markup validation
and the token bucket behind flood control. Nothing here knows about HTTP or the sandbox state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
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

    def payload(self) -> dict[str, Any]:
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


# --- text and entities ------------------------------------------------------------------------
def utf16_len(text: str) -> int:
    """Entity offsets and lengths are counted in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str | None) -> list[dict[str, Any]]:
    """The ``bot_command`` entity Telegram attaches to a text that starts with ``/command``."""
    if not text or not text.startswith("/") or len(text) < 2 or text[1].isspace():
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


@dataclass
class ParsedText:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def parse_text(text: str, parse_mode: str | None) -> ParsedText:
    """Apply ``parse_mode`` the way sendMessage does; MarkdownV2 and Markdown pass through."""
    mode = (parse_mode or "").strip().lower()
    if mode == "html":
        return parse_html(text)
    if mode in ("", "markdown", "markdownv2"):
        return ParsedText(text)
    raise bad_request(f"unsupported parse_mode {parse_mode!r}")


_HTML_TAGS = {
    "a": "text_link",
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACES = " \t\r\n\v\0"  # tdlib's is_space(), which also stops at the end of the text
_NAME_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    utf16_start: int


class _HtmlParser:
    """tdlib's ``parse_html`` state machine; error texts match Telegram's, byte offsets too."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.out: list[str] = []
        self.utf16 = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []

    def char(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        return self.src[pos] if pos < len(self.src) else ""

    def fail(self, detail: str) -> NoReturn:
        raise bad_request(f"can't parse entities: {detail}")

    def byte_offset(self, pos: int) -> int:
        return len(self.src[:pos].encode("utf-8", "surrogatepass"))

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.utf16 += utf16_len(text)

    def skip_spaces(self) -> None:
        while self.pos < len(self.src) and self.src[self.pos] in _SPACES:
            self.pos += 1

    def run(self) -> ParsedText:
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch == "&":
                self.emit(self.entity())
            elif ch == "<":
                self.tag()
            else:
                self.emit(ch)
                self.pos += 1
        if self.stack:
            self.fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return ParsedText("".join(self.out), self.entities)

    def entity(self) -> str:
        """Decode ``&name;``/``&#N;``/``&#xH;`` (the ``;`` is optional, as in tdlib)."""
        start = self.pos
        decoded = decode_html_entity(self.src, start)
        if decoded is None:
            # Stricter than tdlib, which keeps a bare "&" literally: the docs require &amp;.
            self.fail(f'Unescaped "&" at byte offset {self.byte_offset(start)}; use &amp;')
        value, self.pos = decoded
        if 0xD800 <= ord(value) <= 0xDFFF:
            self.fail(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        return value

    def tag(self) -> None:
        begin = self.pos
        self.pos += 1
        if self.char() == "/":
            self.end_tag(begin)
            return
        while self.char() not in _SPACES and self.char() != ">":
            self.pos += 1
        if self.char() == "":
            self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
        name = self.src[begin + 1 : self.pos].lower()
        if name not in _HTML_TAGS:
            self.fail(f'Unsupported start tag "{name}" at byte offset {self.byte_offset(begin)}')
        attrs = self.attributes(name, begin)
        self.pos += 1  # the ">"
        if name == "span" and attrs.get("class") != "tg-spoiler":
            self.fail(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(begin)}'
            )
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            self.fail("Invalid custom emoji identifier specified")
        self.stack.append(_OpenTag(name, attrs, self.utf16))

    def attributes(self, tag: str, begin: int) -> dict[str, str]:
        attrs: dict[str, str] = {}
        unclosed = f'Unclosed start tag "{tag}" at byte offset {self.byte_offset(begin)}'
        while self.char() != ">":
            self.skip_spaces()
            if self.char() == ">":
                break
            if self.char() == "":
                self.fail(unclosed)
            attr_begin = self.pos
            while self.char() not in _SPACES and self.char() not in ("=", ">"):
                self.pos += 1
            attr = self.src[attr_begin : self.pos].lower()
            if not attr:
                self.fail(
                    f'Empty attribute name in the tag "{tag}" at byte offset '
                    f"{self.byte_offset(begin)}"
                )
            self.skip_spaces()
            if self.char() != "=":
                if tag == "blockquote" and attr == "expandable":
                    attrs[attr] = ""
                    continue
                if self.char() == "":
                    self.fail(unclosed)
                self.fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                    f"at byte offset {self.byte_offset(begin)}"
                )
            self.pos += 1
            self.skip_spaces()
            if self.char() == "":
                self.fail(unclosed)
            attrs[attr] = self.attribute_value(begin)
        return attrs

    def attribute_value(self, begin: int) -> str:
        quote = self.char()
        if quote in ("'", '"'):
            self.pos += 1
            value_begin = self.pos
            while self.char() not in (quote, ""):
                self.pos += 1
            if self.char() == "":
                self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
            raw = self.src[value_begin : self.pos]
            self.pos += 1
            return decode_html_entities(raw)
        value_begin = self.pos
        while self.char() in _NAME_TOKEN and self.char() != "":
            self.pos += 1
        if self.char() not in _SPACES and self.char() != ">":
            self.fail(
                f"Unexpected end of name token at byte offset {self.byte_offset(value_begin)}"
            )
        return self.src[value_begin : self.pos]

    def end_tag(self, begin: int) -> None:
        if not self.stack:
            self.fail(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        self.pos += 1  # the "/"
        name_begin = self.pos
        while self.char() not in _SPACES and self.char() != ">":
            self.pos += 1
        name = self.src[name_begin : self.pos].lower()
        self.skip_spaces()
        if self.char() != ">":
            self.fail(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        self.pos += 1
        open_tag = self.stack.pop()
        if name and name != open_tag.name:
            self.fail(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{open_tag.name}>", found "</{name}>"'
            )
        self.add_entity(open_tag)

    def add_entity(self, tag: _OpenTag) -> None:
        length = self.utf16 - tag.utf16_start
        kind = _HTML_TAGS[tag.name]
        if kind == "blockquote" and "expandable" in tag.attrs:
            kind = "expandable_blockquote"
        if length <= 0 or (kind == "text_link" and not tag.attrs.get("href")):
            return  # tdlib drops empty entities and links without a target
        entity: dict[str, Any] = {"type": kind, "offset": tag.utf16_start, "length": length}
        if kind == "text_link":
            entity["url"] = tag.attrs["href"]
        elif kind == "custom_emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an entity at ``text[pos] == "&"`` stands for, and where it ends."""
    end = pos + 1
    if end < len(text) and text[end] == "#":
        end += 1
        base, digits = 10, "0123456789"
        if end < len(text) and text[end] in "xX":
            end += 1
            base, digits = 16, "0123456789abcdefABCDEF"
        start = end
        while end < len(text) and text[end] in digits and end - start < 8:
            end += 1
        if end == start:
            return None
        code = int(text[start:end], base)
        if code == 0 or code > 0x10FFFF:
            return None
        value = chr(code)
    else:
        start = end
        while end < len(text) and text[end].isascii() and text[end].isalnum():
            end += 1
        if text[start:end] not in _NAMED_ENTITIES:
            return None
        value = _NAMED_ENTITIES[text[start:end]]
    if end < len(text) and text[end] == ";":
        end += 1
    return value, end


def decode_html_entities(text: str) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        decoded = decode_html_entity(text, pos) if text[pos] == "&" else None
        if decoded is None:
            out.append(text[pos])
            pos += 1
        else:
            out.append(decoded[0])
            pos = decoded[1]
    return "".join(out)


def parse_html(text: str) -> ParsedText:
    return _HtmlParser(text).run()


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
