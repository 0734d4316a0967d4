"""The one place channels are registered: name → adapter class. One line per channel."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pydantic import BaseModel

# Imported lazily so that commands which never touch a platform do not pay for its client library.
CHANNELS: dict[str, str] = {
    "telegram": "bot.channels.telegram:TelegramChannel",
    "x": "bot.channels.x:XChannel",
    "email": "bot.channels.email:EmailChannel",
    "matrix": "bot.channels.matrix:MatrixChannel",
    "mastodon": "bot.channels.mastodon:MastodonChannel",
    "bluesky": "bot.channels.bluesky:BlueskyChannel",
    "linkedin": "bot.channels.linkedin:LinkedInChannel",
    "facebook": "bot.channels.facebook:FacebookChannel",
    "instagram": "bot.channels.instagram:InstagramChannel",
    "webhook": "bot.channels.webhook:WebhookChannel",
}


def known_channels() -> list[str]:
    return sorted(CHANNELS)


def adapter_class(name: str) -> Any:
    module, _, attr = CHANNELS[name].partition(":")
    return getattr(import_module(module), attr)


def settings_model(name: str) -> type[BaseModel]:
    model: type[BaseModel] = adapter_class(name).Settings
    return model


def has_buttons(name: str) -> bool:
    """Whether the channel shows real buttons (else their options are written out, numbered,
    and answered by a reply; templates say so through their ``buttons`` variable)."""
    return name not in CHANNELS or bool(adapter_class(name).capabilities.buttons)
