"""The one place channels are registered: one line per channel, naming its spec.

A spec (``channels/<name>/spec.py``) imports no client library: asking what a channel can do
costs nothing. Its adapter is imported only when the channel is used."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pydantic import BaseModel

from bot.channels.bluesky import spec as bluesky
from bot.channels.email import spec as email
from bot.channels.facebook import spec as facebook
from bot.channels.instagram import spec as instagram
from bot.channels.linkedin import spec as linkedin
from bot.channels.mastodon import spec as mastodon
from bot.channels.matrix import spec as matrix
from bot.channels.spec import ChannelSpec
from bot.channels.telegram import spec as telegram
from bot.channels.webhook import spec as webhook
from bot.channels.x import spec as x

CHANNELS: dict[str, ChannelSpec] = {
    spec.name: spec
    for spec in (
        telegram.SPEC,
        x.SPEC,
        email.SPEC,
        matrix.SPEC,
        mastodon.SPEC,
        bluesky.SPEC,
        linkedin.SPEC,
        facebook.SPEC,
        instagram.SPEC,
        webhook.SPEC,
    )
}


def known_channels() -> list[str]:
    return sorted(CHANNELS)


def spec(name: str) -> ChannelSpec:
    """What the core knows of a registered channel (KeyError for a name that is not one)."""
    return CHANNELS[name]


def adapter_class(name: str) -> Any:
    module, _, attr = CHANNELS[name].adapter.partition(":")
    return getattr(import_module(module), attr)


def settings_model(name: str) -> type[BaseModel]:
    model: type[BaseModel] = adapter_class(name).Settings
    return model


def has_buttons(name: str) -> bool:
    """Whether the channel shows real buttons (else their options are written out, numbered,
    and answered by a reply; templates say so through their ``buttons`` variable)."""
    return name not in CHANNELS or CHANNELS[name].buttons
