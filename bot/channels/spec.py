"""What the rest of pledgebot knows of a channel, without importing its client library.

Each channel's folder holds its adapter (``adapter.py``, which talks to the platform) and its
spec (``spec.py``, one ``ChannelSpec``: limits, how length counts, markup, where posts go,
whether an image is required, whether a post can be deleted, how a post id becomes a public
link, which pledgemaker handle it addresses). The registry lists the specs; the core asks it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Literal

from pydantic import SecretStr

# chat: a conversation with a pledgemaker (and, for posts, a configured channel or room);
# timeline: the account's (or page's) own timeline; receiver: one configured endpoint.
Destination = Literal["chat", "timeline", "receiver"]
# What its templates render: HTML (escaped values) or plain text (values as they are).
Markup = Literal["html", "plain"]
Measure = Callable[[str], int]


@dataclass(frozen=True)
class HandleShape:
    """What a pledgemaker's handle or address on a network looks like, checked on import."""

    pattern: str  # the whole value must match
    rule: str  # what an import says of a value that does not: "must be …"
    lower: bool = False  # case means nothing there: stored in lower case


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    adapter: str  # "module:Class", imported only when the channel is used
    destination: Destination
    text_limit: int  # one message or post, text alone
    caption_limit: int  # text that goes with an image
    markup: Markup
    measure: str = "builtins:len"  # "module:function" counting a text as the platform does
    image_required: bool = False  # no text-only posts: skipped, with the reason
    can_delete: bool = True  # a withdrawn update's posts are taken down
    buttons: bool = False  # real buttons (else options are written out, numbered)
    inbound: bool = False  # pledgemakers answer on it
    commands: bool = False  # a command menu is set when the listener starts
    # The pledgemakers.csv column holding their address or handle on this network, if any,
    # and what a value must look like there (without a shape: one line, at most 300 characters).
    handle: str | None = None
    handle_shape: HandleShape | None = None
    # Replies quote our outbox id (an email's Message-ID), not the platform's id of the message.
    replies_name_outbox_id: bool = False
    # Every message carries a one-click unsubscribe link: "module:function" reading a link's
    # token with the channel's secrets (a light module: an opt-out is taken even where the
    # channel's client library is not installed).
    unsubscribe: str | None = None
    public_media: bool = False  # the platform fetches images from a public URL (signed)
    # (destination, post id) → the post's public address, where the id alone makes one.
    link: Callable[[str, str], str | None] | None = None
    extra: str | None = None  # the pip extra that brings its client library

    def length(self) -> Measure:
        """The channel's measure (imported on first use: it may live beside the adapter)."""
        module, _, name = self.measure.partition(":")
        function: Measure = getattr(import_module(module), name)
        return function

    @property
    def unsubscribe_links(self) -> bool:
        return self.unsubscribe is not None

    def read_unsubscribe(self, secrets: Mapping[str, SecretStr], token: str) -> str | None:
        """The address a one-click unsubscribe link's token names, or None if this channel
        did not sign it (or has no such links)."""
        if self.unsubscribe is None:
            return None
        module, _, name = self.unsubscribe.partition(":")
        reader: Callable[[Mapping[str, SecretStr], str], str | None]
        reader = getattr(import_module(module), name)
        return reader(secrets, token)

    def public_link(self, destination: str, external_id: str) -> str | None:
        """The post's public address, where its id makes one without asking the platform
        (none on Mastodon, whose links need the account's address, on Instagram, whose need a
        permalink look-up, or for a webhook's receiver)."""
        if not external_id or self.link is None:
            return None
        return self.link(destination, external_id)
