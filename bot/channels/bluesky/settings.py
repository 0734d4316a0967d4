"""The ``[channels.bluesky]`` table: the PDS, the account and its app password's variable.
Imports no client library: a config is checked without atproto (the ``bluesky`` extra)."""

from __future__ import annotations

from pydantic import Field

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

# The client library the adapter imports (atproto, the bluesky extra): whether it is installed
# is asked without importing it (registry.unavailable).
LIBRARY = "atproto_client"


class BlueskySettings(ChannelSettings):
    required = ("handle", "the account is required, e.g. pledgebot.bsky.social")

    service_url: str = Field(default="https://bsky.social", pattern=r"^https?://[^\s/]+\S*$")
    handle: str = ""  # the campaign's account, e.g. "pledgebot.bsky.social"
    app_password_env: EnvVarName = "BLUESKY_APP_PASSWORD"
    langs: list[str] = Field(default_factory=list)  # declared on every post; none by default
    request_timeout: float = Field(default=15, gt=0)
    max_image_bytes: int = Field(default=2_000_000, gt=0)  # 1_000_000 on an older PDS
    require_alt_text: bool = True  # an image without alt text is refused
    delete_on_withdraw: bool = False  # take posts down when a pledgemaker withdraws consent
