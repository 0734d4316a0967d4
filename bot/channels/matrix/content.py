"""What a message to Matrix carries: an ``m.room.message``/``m.text`` whose HTML (our
templates' markup) goes out as ``formatted_body`` beside a plain-text ``body``, with options
written out (Matrix has no buttons), and the transaction id that makes a resend harmless."""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from html.parser import HTMLParser
from typing import Any

from bot.channels.base import OutboundMessage
from bot.core import choices


def transaction_id(message: OutboundMessage) -> str:
    """The same idempotency key gives the same transaction id: the homeserver dedupes it."""
    if not message.idempotency_key:
        return f"pb-{uuid.uuid4().hex}"
    return "pb-" + hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:40]


def message_content(message: OutboundMessage) -> dict[str, Any]:
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
