"""The ``[channels.telegram]`` table: the bot's token (named, never held), its Bot API address,
the channel amplify posts to and Telegram's rate limits. Imports no client library: a config
is checked without python-telegram-bot (the ``telegram`` extra)."""

from __future__ import annotations

from pydantic import Field

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

# The client library the adapter imports (python-telegram-bot, the telegram extra): whether it
# is installed is asked without importing it (registry.unavailable).
LIBRARY = "telegram"


class TelegramSettings(ChannelSettings):
    token_env: EnvVarName = "TELEGRAM_BOT_TOKEN"
    # Means exactly what python-telegram-bot's base_url means: the token is appended.
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str | None = None  # default: base_url with /bot → /file/bot
    bot_username: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
    post_chat_id: str | None = None  # the public channel amplify posts to: "@name" or "-100…"
    delete_on_withdraw: bool = False  # take channel posts down when consent is withdrawn
    max_messages_per_second: float = Field(default=30, gt=0)
    max_messages_per_chat_per_second: float = Field(default=1, gt=0)
    max_messages_per_group_per_minute: float = Field(default=20, gt=0)
    # Telegram counts messages as they arrive, and network jitter between our send and its
    # arrival can bring two sends closer: stay this share below each limit above (0.1: 27/s,
    # one every 37 ms for the whole deployment; a chat's messages 1.11 s apart).
    rate_headroom: float = Field(default=0.1, ge=0, lt=1)
    poll_timeout: int = Field(default=25, ge=0, le=50)
    request_timeout: float = Field(default=10, gt=0)

    def file_url(self) -> str:
        if self.base_file_url:
            return self.base_file_url
        head, sep, _ = self.base_url.rstrip("/").rpartition("/bot")
        return f"{head}/file/bot" if sep else self.base_url.rstrip("/") + "/file/bot"
