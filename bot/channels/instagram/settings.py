"""The ``[channels.instagram]`` table: the business account, its token's variable and how long
publishing may take (the Graph API's settings are Facebook's)."""

from __future__ import annotations

from pydantic import Field

from bot.channels.facebook.settings import GraphSettings
from bot.core.env import EnvVarName


class InstagramSettings(GraphSettings):
    required = ("ig_user_id", "the Instagram business account's id is required")

    ig_user_id: str = Field(default="", pattern=r"^[0-9]*$")  # the business account
    # A token with instagram_content_publish: the linked Page's token (may be the variable
    # [channels.facebook] page_token_env names) or a user token.
    access_token_env: EnvVarName = "INSTAGRAM_ACCESS_TOKEN"
    poll_interval: float = Field(default=2.0, gt=0)  # between two looks at the container
    publish_timeout: float = Field(default=60, gt=0)  # the image is processed within this
    max_image_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    require_alt_text: bool = True
