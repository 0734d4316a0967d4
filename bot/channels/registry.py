"""The one place channels are registered: one line per channel, naming its spec.

A spec (``channels/<name>/spec.py``) imports no client library: asking what a channel can do
costs nothing. Nor does its settings model (``channels/<name>/settings.py``): a config is checked
without the channel's pip extra. Its adapter is imported only when the channel is used."""

from __future__ import annotations

from contextlib import nullcontext
from importlib import import_module
from types import ModuleType
from typing import Any

from bot.channels.bluesky import spec as bluesky
from bot.channels.email import spec as email
from bot.channels.facebook import spec as facebook
from bot.channels.instagram import spec as instagram
from bot.channels.linkedin import spec as linkedin
from bot.channels.mastodon import spec as mastodon
from bot.channels.matrix import spec as matrix
from bot.channels.settings import ChannelSettings
from bot.channels.spec import ChannelSpec
from bot.channels.telegram import spec as telegram
from bot.channels.webhook import spec as webhook
from bot.channels.x import spec as x
from bot.core.extras import ExtraMissing, importable, needs

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
    """What the core knows of a registered channel (KeyError, naming the known ones, for a
    name that is not one: config and schedule files are checked against the registry, so only
    a bug gets here)."""
    try:
        return CHANNELS[name]
    except KeyError:
        raise KeyError(f"unknown channel {name!r} (known: {', '.join(known_channels())})") from None


def plain_text_channels() -> frozenset[str]:
    """The channels whose templates render plain text (values as they are, not HTML-escaped)."""
    return frozenset(name for name, found in CHANNELS.items() if found.markup == "plain")


def adapter_class(name: str) -> Any:
    """The channel's adapter class, for an enabled channel: ``ExtraMissing`` (one line naming
    the extra its spec names) when its client library is not installed."""
    found = CHANNELS[name]
    module, _, attr = found.adapter.partition(":")
    with needs(found.extra, _off(name)) if found.extra else nullcontext():
        loaded = import_module(module)
    return getattr(loaded, attr)


def unavailable(name: str) -> ExtraMissing | None:
    """Why an enabled channel cannot run in this install: the client library its adapter
    imports (``LIBRARY`` in its settings module; its spec's extra brings it) is not there.
    Asked without importing the library (atproto alone takes seconds)."""
    extra = CHANNELS[name].extra
    library: str | None = getattr(_settings_module(name), "LIBRARY", None)
    if extra is None or library is None or importable(library):
        return None
    return ExtraMissing(_off(name), extra)


def _off(name: str) -> str:
    return f"channel {name} is enabled but its library is not installed"


def settings_model(name: str) -> type[ChannelSettings]:
    """The model of its ``[channels.<name>]`` table, named after its adapter (``XChannel`` →
    ``XSettings``) in its ``settings.py``, which imports no client library."""
    adapter = CHANNELS[name].adapter.partition(":")[2]
    model: type[ChannelSettings] = getattr(
        _settings_module(name), adapter.removesuffix("Channel") + "Settings"
    )
    return model


def _settings_module(name: str) -> ModuleType:
    """``channels/<name>/settings.py``: beside the adapter the spec names."""
    module = CHANNELS[name].adapter.partition(":")[0]
    return import_module(module.rpartition(".")[0] + ".settings")


def has_buttons(name: str) -> bool:
    """Whether the channel shows real buttons (else their options are written out, numbered,
    and answered by a reply; templates say so through their ``buttons`` variable)."""
    return name not in CHANNELS or CHANNELS[name].buttons
