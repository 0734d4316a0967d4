"""Telegram: chats with pledgemakers (buttons, a command menu) and posts to a channel."""

import html
import re

from bot.channels.spec import ChannelSpec

TAG = re.compile(r"<[^>]*>")


def length(text: str) -> int:
    """Telegram's count against its limits: the text after the HTML parse mode (tags gone,
    entities decoded), in UTF-16 code units (an emoji counts 2)."""
    return len(html.unescape(TAG.sub("", text)).encode("utf-16-le")) // 2


def link(destination: str, external_id: str) -> str | None:
    """t.me/<username>/<id> for a public channel, t.me/c/<id>/<id> for a private one."""
    if destination.startswith("@"):
        return f"https://t.me/{destination[1:]}/{external_id}"
    return f"https://t.me/c/{destination.removeprefix('-100')}/{external_id}"


SPEC = ChannelSpec(
    name="telegram",
    adapter="bot.channels.telegram.adapter:TelegramChannel",
    destination="chat",
    text_limit=4096,
    caption_limit=1024,
    markup="html",
    measure="bot.channels.telegram.spec:length",
    buttons=True,
    inbound=True,
    commands=True,
    link=link,
    extra="telegram",
)
