"""The ``[channels.webhook]`` table: the receiver's address and the signing secret's variable."""

from __future__ import annotations

from pydantic import Field

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName


class WebhookSettings(ChannelSettings):
    required = ("url", "the receiver's https:// address is needed when enabled")

    url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    secret_env: EnvVarName = "PLEDGEBOT_WEBHOOK_SECRET"
    request_timeout: float = Field(default=15, gt=0)
    inline_media: bool = True  # base64 images in the document (off: name and alt text only)
    delete_on_withdraw: bool = False  # tell the receiver when consent is withdrawn
