"""The ``[channels.mastodon]`` table: the instance, the token's variable and how statuses go
out. Imports no client library: a config is checked without Mastodon.py (the ``mastodon``
extra)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

# The client library the adapter imports (Mastodon.py, the mastodon extra): whether it is installed
# is asked without importing it (registry.unavailable).
LIBRARY = "mastodon"


class MastodonSettings(ChannelSettings):
    required = ("api_base_url", "the instance is required, e.g. https://mastodon.social")

    api_base_url: str = Field(default="", pattern=r"^(https?://[^\s/]+\S*)?$")  # the instance
    access_token_env: EnvVarName = "MASTODON_ACCESS_TOKEN"
    max_characters: int = Field(default=500, ge=50)  # the instance's limit on one status
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    spoiler_text: str | None = None  # a content warning on every post; off by default
    request_timeout: float = Field(default=15, gt=0)
    delete_on_withdraw: bool = False  # take posts down when a pledgemaker withdraws consent
